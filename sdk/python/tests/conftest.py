"""A live `mpc up` for the whole test session: ephemeral loopback ports, a fresh data directory,
the Account Service's URL from endpoints.json and the API key from secrets.json.

The binary is `$MPC_BIN`, else `target/debug/mpc` (then `target/release/mpc`) of this repository.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]


def _binary() -> str:
    if os.environ.get("MPC_BIN"):
        return os.environ["MPC_BIN"]
    for profile in ("debug", "release"):
        candidate = REPO / "target" / profile / "mpc"
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("no mpc binary: build it (cargo build -p mpc-cli) or set MPC_BIN")


@pytest.fixture(scope="session")
def system():
    tmp = tempfile.TemporaryDirectory(prefix="mpc-py-")
    data = Path(tmp.name) / "mpc-data"
    log = open(Path(tmp.name) / "mpc-up.log", "wb")
    env = {k: v for k, v in os.environ.items() if k != "MPC_API_KEY"}
    proc = subprocess.Popen(
        [_binary(), "up", "--ephemeral-ports", "--host", "127.0.0.1", "--data-dir", str(data)],
        stdout=log,
        stderr=log,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not (data / "endpoints.json").exists():
            assert proc.poll() is None, "mpc up exited"
            assert time.monotonic() < deadline, "mpc up did not bind"
            time.sleep(0.1)
        endpoints = json.loads((data / "endpoints.json").read_text())
        key = json.loads((data / "secrets.json").read_text())["api_key"]
        url = endpoints["account"]
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "mpc up exited"
            assert time.monotonic() < deadline, "mpc up did not become ready"
            time.sleep(0.1)
        yield {"url": url, "api_key": key, "data_dir": data}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        tmp.cleanup()
