#!/usr/bin/env python3
"""The compose deployment, run as local processes of a real `mpc` binary (no Docker engine).

Each service gets exactly the environment `docker-compose config` resolves for it from an env
file, with the container host names and ports rewritten to 127.0.0.1 and free ports. Then the
README's bootstrap and the guide's flow run against it:
  1. the public keys gen-env.sh derived offline equal the ones the services derive;
  2. before the pins are filled in, a keygen with server parties is refused (fails closed);
  3. the parties' identity keys are read from GET /api/v1/identity into MPC_SERVER_PARTY_PINS,
     the parties and the party API restarted with the re-resolved environment;
  4. keygen 2-of-3 (a device through the Server Party API + two server parties), the account
     becomes active, and a device + server party signature comes back.

Run by `MPC_SMOKE_BIN=target/debug/mpc bash deploy/validate.sh`, which provides the scratch
PostgreSQL cluster initialised by postgres-init/ with the env file's passwords. Needs a local
RabbitMQ (AMQP_URL, user with vhost rights) and rabbitmqctl: it works in its own vhost.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

START_ORDER = [
    "mpc-session-coordinator",
    "mpc-message-router",
    "mpc-server-party-1",
    "mpc-server-party-2",
    "mpc-server-party-3",
    "mpc-server-party-api",
    "mpc-account-service",
]
# Per service: the variables that choose its listen addresses, and which of them is HTTP.
LISTEN = {
    "mpc-session-coordinator": ["MPC_COORDINATOR_HTTP_ADDR", "MPC_COORDINATOR_GRPC_ADDR"],
    "mpc-message-router": ["MPC_ROUTER_HTTP_ADDR", "MPC_ROUTER_GRPC_ADDR"],
    "mpc-server-party-1": ["MPC_PARTY_HTTP_ADDR"],
    "mpc-server-party-2": ["MPC_PARTY_HTTP_ADDR"],
    "mpc-server-party-3": ["MPC_PARTY_HTTP_ADDR"],
    "mpc-server-party-api": ["MPC_PARTY_API_HTTP_ADDR"],
    "mpc-account-service": ["MPC_ACCOUNT_HTTP_ADDR"],
}
READY_SECONDS = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if line.strip() and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


class Smoke:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.env_file = Path(args.env)
        self.env = read_env(self.env_file)
        self.logs = Path(args.logs)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.ports = {name: [free_port() for _ in addrs] for name, addrs in LISTEN.items()}
        self.procs: dict[str, subprocess.Popen] = {}
        amqp = urllib.parse.urlsplit(args.amqp_url)
        self.vhost = f"mpc-deploy-smoke-{os.getpid()}"
        self.amqp = f"amqp://{amqp.netloc}/{self.vhost}"
        self.services = self.resolve(self.env_file)

    def resolve(self, env_file: Path) -> dict:
        out = subprocess.run(
            ["docker-compose", "-f", self.args.compose_file, "--env-file", str(env_file), "config"],
            check=True, capture_output=True, text=True).stdout
        return yaml.safe_load(out)["services"]

    def rewrite(self, value: str) -> str:
        """Container addresses to this host's."""
        grpc = {"mpc-session-coordinator:50051": self.ports["mpc-session-coordinator"][1],
                "mpc-message-router:50052": self.ports["mpc-message-router"][1]}
        value = value.replace("@mpc-postgres:5432/", f"@127.0.0.1:{self.args.postgres_port}/")
        if value.startswith("amqp://") and "@mpc-rabbitmq:5672/" in value:
            value = self.amqp
        for container, port in grpc.items():
            value = value.replace(f"http://{container}", f"http://127.0.0.1:{port}")
        return value

    def http_port(self, name: str) -> int:
        return self.ports[name][0]

    def start(self, name: str) -> None:
        service = self.services[name]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        env.update({k: self.rewrite(str(v)) for k, v in service["environment"].items()})
        for var, port in zip(LISTEN[name], self.ports[name]):
            env[var] = f"127.0.0.1:{port}"
        log = open(self.logs / f"{name}.log", "a")
        self.procs[name] = subprocess.Popen([self.args.mpc, *service["command"]], env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready(name)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.terminate()
        proc.wait(timeout=60)

    def get(self, name: str, path: str) -> tuple[int, str]:
        """Through mpc-http-get, the helper the image's healthchecks use."""
        r = subprocess.run([self.args.http_get, str(self.http_port(name)), path],
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout.strip()

    def wait_ready(self, name: str) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise SystemExit(f"{name} exited; see {self.logs / (name + '.log')}")
            if self.get(name, "/readyz")[0] == 0:
                return
            time.sleep(0.2)
        raise SystemExit(f"{name} not ready within {READY_SECONDS} s")

    def post(self, name: str, path: str, body: dict, key: str) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port(name)}{path}", data=json.dumps(body).encode(),
            method="POST", headers={"Content-Type": "application/json", "X-API-Key": key})
        try:
            with urllib.request.urlopen(request, timeout=600) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def keygen(self) -> tuple[int, dict, dict]:
        """The guide's §5.1: the Account Service creates it, the device joins via the party API."""
        status, session = self.post("mpc-account-service", "/api/v1/mpc/keygen", {
            "threshold_n": 3, "threshold_t": 2, "username": f"smoke-{time.time_ns()}",
            "participants": [{"party_id": "user_device_1", "device_type": "android"},
                             {"party_id": "server_party_1", "device_type": "server"},
                             {"party_id": "server_party_2", "device_type": "server"}]},
            self.env["MPC_API_KEY"])
        check(status == 201, f"keygen session: {status} {session}")
        status, share = self.post("mpc-server-party-api", "/api/v1/keygen/generate-user-share", {
            "session_id": session["session_id"], "party_id": "user_device_1",
            "join_token": session["join_tokens"]["user_device_1"]}, self.env["MPC_PARTY_API_KEY"])
        return status, session, share

    def run(self) -> None:
        for name in START_ORDER:
            self.start(name)
        print("all seven services ready")

        _, body = self.get("mpc-session-coordinator", "/api/v1/join-token-key")
        check(json.loads(body)["public_key"] == self.env["MPC_JOIN_TOKEN_PUBLIC_KEY"],
              "the coordinator's join-token key differs from gen-env.sh's")
        _, body = self.get("mpc-server-party-api", "/api/v1/identity")
        check(json.loads(body)["identity_public_key"] == self.env["MPC_PARTY_API_IDENTITY_PUBLIC_KEY"],
              "the party API's identity key differs from gen-env.sh's")
        print("ok: the derived public keys match the services'")

        status, _, refused = self.keygen()
        check(status == 422 and "not trusted" in json.dumps(refused),
              f"a keygen before pinning should be refused as untrusted: {status} {refused}")
        print("ok: before the pins are filled in, sessions are refused")

        pins = []
        for n in (1, 2, 3):
            identity = json.loads(self.get(f"mpc-server-party-{n}", "/api/v1/identity")[1])
            pins.append(f"{identity['party_id']}={identity['identity_public_key']}")
        # What the operator does by hand: fill in the line of the env file.
        text = self.env_file.read_text()
        check("\nMPC_SERVER_PARTY_PINS=\n" in text, "the env file has no empty MPC_SERVER_PARTY_PINS line")
        pinned_env = self.logs / "pinned.env"
        pinned_env.write_text(text.replace(
            "\nMPC_SERVER_PARTY_PINS=\n", f"\nMPC_SERVER_PARTY_PINS={','.join(pins)}\n"))
        self.services = self.resolve(pinned_env)
        for name in ["mpc-server-party-1", "mpc-server-party-2", "mpc-server-party-3",
                     "mpc-server-party-api"]:
            self.stop(name)
            self.start(name)
        print("ok: pins filled in, parties and party API restarted")

        status, session, share = self.keygen()
        check(status == 200 and share.get("success"), f"keygen: {status} {share}")
        account = self.wait_active(session["account_id"])
        check(account.get("public_key") == share["public_key"], "the account's key is not the session's")
        message_hash = "ab" * 32
        status, sign = self.post("mpc-account-service", "/api/v1/mpc/sign", {
            "account_id": session["account_id"], "message_hash": message_hash,
            "participants": [{"party_id": "user_device_1"}, {"party_id": "server_party_1"}]},
            self.env["MPC_API_KEY"])
        check(status == 201, f"sign session: {status} {sign}")
        status, signed = self.post("mpc-server-party-api", "/api/v1/sign/with-user-share", {
            "session_id": sign["session_id"], "party_id": "user_device_1",
            "join_token": sign["join_tokens"]["user_device_1"], "share_data": share["share_data"],
            "message_hash": message_hash}, self.env["MPC_PARTY_API_KEY"])
        # The coordinator verifies the signature against the key before it completes the session.
        check(status == 200 and signed.get("v") in (0, 1) and len(signed.get("r", "")) == 64,
              f"sign: {status} {signed}")
        print(f"ok: keygen 2-of-3 with a device, account active, signature r={signed['r'][:16]}…")

    def wait_active(self, account_id: str) -> dict:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.http_port('mpc-account-service')}/api/v1/accounts/{account_id}",
                headers={"X-API-Key": self.env["MPC_API_KEY"]})
            with urllib.request.urlopen(request, timeout=30) as r:
                account = json.loads(r.read())
            if account.get("status") == "active":
                return account
            time.sleep(0.2)
        raise SystemExit(f"account {account_id} did not become active")

    def __enter__(self) -> "Smoke":
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", self.vhost], check=True)
        user = urllib.parse.urlsplit(self.args.amqp_url).username or "guest"
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", self.vhost, user,
                        ".*", ".*", ".*"], check=True)
        return self

    def __exit__(self, *_exc) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.vhost], check=False)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"smoke-local: {message}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mpc", required=True, help="the mpc binary")
    parser.add_argument("--compose-file", required=True)
    parser.add_argument("--env", required=True, help="an env file written by gen-env.sh")
    parser.add_argument("--postgres-port", type=int, required=True,
                        help="a local PostgreSQL initialised by postgres-init/ with that file")
    parser.add_argument("--amqp-url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"))
    parser.add_argument("--http-get", required=True, help="deploy/mpc-http-get")
    parser.add_argument("--logs", required=True, help="where the services' logs go")
    os.umask(0o077)  # the env files written here hold secrets
    with Smoke(parser.parse_args()) as smoke:
        smoke.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
