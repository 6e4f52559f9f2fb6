// A live `mpc up` for a test file: ephemeral loopback ports, a fresh data directory; the
// Account Service's URL from endpoints.json, the API key from secrets.json. The binary is
// $MPC_BIN, else target/debug/mpc (then release) of this repository.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(fileURLToPath(import.meta.url), "../../../..");

function binary() {
  if (process.env.MPC_BIN) return process.env.MPC_BIN;
  for (const profile of ["debug", "release"]) {
    const b = join(repo, "target", profile, "mpc");
    if (existsSync(b)) return b;
  }
  throw new Error("no mpc binary: cargo build -p mpc-cli, or set MPC_BIN");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function startSystem() {
  const tmp = mkdtempSync(join(tmpdir(), "mpc-ts-"));
  const data = join(tmp, "mpc-data");
  const log = openSync(join(tmp, "mpc-up.log"), "w");
  const env = { ...process.env };
  delete env.MPC_API_KEY;
  const child = spawn(binary(), ["up", "--ephemeral-ports", "--host", "127.0.0.1", "--data-dir", data], {
    stdio: ["ignore", log, log],
    env,
  });
  let exited = false;
  child.on("exit", () => (exited = true));
  const deadline = Date.now() + 120_000;
  while (!existsSync(join(data, "endpoints.json"))) {
    if (exited) throw new Error("mpc up exited");
    if (Date.now() > deadline) throw new Error("mpc up did not bind");
    await sleep(100);
  }
  await sleep(50);
  const url = JSON.parse(readFileSync(join(data, "endpoints.json"), "utf8")).account;
  const apiKey = JSON.parse(readFileSync(join(data, "secrets.json"), "utf8")).api_key;
  for (;;) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch {}
    if (exited) throw new Error("mpc up exited");
    if (Date.now() > deadline) throw new Error("mpc up did not become ready");
    await sleep(100);
  }
  return {
    url,
    apiKey,
    async stop() {
      if (!exited) {
        const done = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
        await done;
        clearTimeout(timer);
      }
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}
