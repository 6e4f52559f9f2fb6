// The operator console in a real browser (Debian's headless Chromium, driven by playwright-core)
// against a live `mpc up` that this script starts on ephemeral ports with a fresh data directory.
//
// It signs in; creates a wallet through the API and watches its keygen complete on the sessions
// page; signs once and reads r, s, v on the session page; opens the account and suspends it;
// makes a sign request, which is refused, and finds the refusal on the audit page; creates and
// revokes an API key; and checks that a wrong key cannot sign in. A screenshot of every page goes
// to the output directory (CONSOLE_TEST_OUTPUT, default test-output/ beside this script).
//
//   MPC_BIN=target/debug/mpc node test/browser.mjs
//
// Bounded: the whole run is killed after CONSOLE_TEST_TIMEOUT_SECS (default 300).

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../../../..");
const mpcBin = resolve(process.env.MPC_BIN ?? join(repo, "target/debug/mpc"));
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const out = resolve(process.env.CONSOLE_TEST_OUTPUT ?? join(here, "..", "test-output"));
const timeoutSecs = Number(process.env.CONSOLE_TEST_TIMEOUT_SECS ?? "300");
const STEP_MS = 120_000;

const started = Date.now();
const scratch = mkdtempSync(join(tmpdir(), "mpc-console-test-"));
const dataDir = join(scratch, "data");
const apiKey = `mpc_${randomBytes(32).toString("base64url")}`;
let up;
let context;
let page;
let shot = 0;

function log(message) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${message}`);
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

const watchdog = setTimeout(() => {
  console.error(`browser test: timed out after ${timeoutSecs} s`);
  up?.kill("SIGKILL");
  process.exit(1);
}, timeoutSecs * 1000);

async function screenshot(name) {
  shot += 1;
  const file = join(out, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot ${file}`);
}

async function startUp() {
  mkdirSync(dataDir, { recursive: true });
  check(existsSync(mpcBin), `no mpc binary at ${mpcBin} (build it, or set MPC_BIN)`);
  const logFile = createWriteStream(join(out, "mpc-up.log"));
  up = spawn(mpcBin, ["up", "--ephemeral-ports", "--data-dir", dataDir], {
    env: { ...process.env, MPC_API_KEY: apiKey, MPC_LOG: process.env.MPC_LOG ?? "info" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  up.stderr.pipe(logFile);
  up.on("exit", (code, signal) => log(`mpc up exited (${code ?? signal})`));
  const deadline = Date.now() + STEP_MS;
  let endpoints;
  while (!endpoints) {
    check(up.exitCode === null, "mpc up stopped during start-up (see mpc-up.log)");
    check(Date.now() < deadline, "mpc up did not bind its listeners");
    try {
      endpoints = JSON.parse(readFileSync(join(dataDir, "endpoints.json"), "utf8"));
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  for (;;) {
    check(Date.now() < deadline, "mpc up did not become ready");
    const ready = await fetch(`${endpoints.account}/readyz`).then((r) => r.ok, () => false);
    if (ready) return endpoints;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function callApi(base, method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { "X-API-Key": apiKey, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: await response.json().catch(() => null) };
}

/** Waits until the session has ended at the coordinator (the API, not the page). */
async function waitForSession(base, id) {
  const deadline = Date.now() + STEP_MS;
  for (;;) {
    const { body } = await callApi(base, "GET", `/api/v1/mpc/sessions/${id}`);
    if (["completed", "failed", "expired"].includes(body?.status)) return body;
    check(Date.now() < deadline, `session ${id} did not end`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function main() {
  mkdirSync(out, { recursive: true });
  log(`output: ${out}`);
  const endpoints = await startUp();
  const base = endpoints.account;
  log(`mpc up ready at ${base}`);

  // The page's own headers: a strict CSP and no framing.
  const head = await fetch(`${base}/admin/`);
  const csp = head.headers.get("content-security-policy") ?? "";
  check(head.ok && csp.includes("default-src 'none'") && csp.includes("script-src 'self'"), `CSP: ${csp}`);
  check(head.headers.get("x-frame-options") === "DENY", "X-Frame-Options");

  context = await chromium.launchPersistentContext(join(scratch, "chromium-profile"), {
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1360, height: 900 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_MS);
  const problems = [];
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  // Nothing may be loaded from anywhere but the Account Service.
  page.on("request", (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith("data:")) problems.push(`request to ${r.url()}`);
  });

  // 1. A wrong key cannot sign in, and is not kept.
  await page.goto(`${base}/admin`);
  await page.waitForSelector("#sign-in");
  await screenshot("sign-in");
  await page.fill("#api-key", `mpc_${randomBytes(32).toString("base64url")}`);
  await page.click("#sign-in button[type=submit]");
  await page.waitForSelector("#sign-in-status .error");
  const refusal = await page.textContent("#sign-in-status");
  check(/invalid API key/i.test(refusal ?? ""), `wrong key refusal: ${refusal}`);
  check((await page.evaluate(() => sessionStorage.length)) === 0, "a refused key was stored");
  await screenshot("sign-in-wrong-key");
  // Wrong keys are refused before the page asks for any data (the console never pretends).
  check((await page.locator("nav").count()) === 0, "navigation shown after a wrong key");
  // The browser logs the refused check (a 401) as a failed load: expected here, and only here.
  check(problems.every((p) => p.includes("status of 401")), `after a wrong key: ${problems}`);
  problems.length = 0;

  // 2. The right key: the overview, with the parties' health.
  await page.fill("#api-key", apiKey);
  await page.click("#sign-in button[type=submit]");
  await page.waitForSelector("#parties .badge-up");
  const storage = await page.evaluate(() => ({ session: sessionStorage.length, local: localStorage.length }));
  check(storage.session === 1 && storage.local === 0, `key storage: ${JSON.stringify(storage)}`);

  // 3. A wallet created through the API; its keygen seen completing on the sessions page.
  const keygen = await callApi(base, "POST", "/api/v1/mpc/keygen", {
    threshold_n: 3,
    threshold_t: 2,
    username: "console-test",
    email: "console-test@example.com",
    participants: ["server_party_1", "server_party_2", "server_party_3"].map((party_id) => ({
      party_id,
      device_type: "server",
    })),
  });
  check(keygen.status === 201, `keygen: ${keygen.status} ${JSON.stringify(keygen.body)}`);
  const { session_id: keygenId, account_id: accountId } = keygen.body;
  log(`keygen ${keygenId} for account ${accountId}`);
  await page.goto(`${base}/admin/#/sessions`);
  const keygenRow = page.locator("#session-list tr", { hasText: keygenId.slice(0, 13) });
  await keygenRow.waitFor();
  await keygenRow.locator(".badge-completed").waitFor();
  log("keygen completed on the sessions page");
  await screenshot("sessions");
  await keygenRow.locator(`a[href="#/sessions/${keygenId}"]`).click();
  await page.waitForSelector("#session-detail .badge-completed");
  await screenshot("session-keygen");

  // 4. A signature, and its r, s, v, DER and address on its session page.
  const hash = randomBytes(32).toString("hex");
  const sign = await callApi(base, "POST", "/api/v1/mpc/sign", {
    account_id: accountId,
    message_hash: hash,
    participants: [{ party_id: "server_party_1" }, { party_id: "server_party_2" }],
  });
  check(sign.status === 201, `sign: ${sign.status} ${JSON.stringify(sign.body)}`);
  const signed = await waitForSession(base, sign.body.session_id);
  check(signed.status === "completed", `sign ended ${signed.status}`);
  await page.goto(`${base}/admin/#/sessions/${sign.body.session_id}`);
  await page.waitForSelector("#session-detail .badge-completed");
  const detail = await page.textContent("#session-detail");
  for (const value of [signed.r, signed.s, signed.signature, signed.ethereum_address, hash]) {
    check(detail.includes(value), `session page lacks ${value}`);
  }
  await screenshot("session-signature");

  // 5. The overview now counts them, with figures from the coordinator's metrics.
  await page.goto(`${base}/admin/#/overview`);
  await page.waitForSelector("#session-counts a");
  await page.waitForFunction(() => !document.querySelector("#fig-sign .card-value")?.textContent?.includes("—"));
  await screenshot("overview");

  // 6. The account, found by its username and by its address; suspended after a confirmation.
  await page.goto(`${base}/admin/#/accounts?q=console-test`);
  await page.waitForSelector(`#account-list a[href="#/accounts/${accountId}"]`);
  const address = signed.ethereum_address;
  await page.goto(`${base}/admin/#/accounts?q=${address.toLowerCase()}`);
  await page.waitForSelector(`#account-list a[href="#/accounts/${accountId}"]`);
  await screenshot("accounts");
  await page.click(`#account-list a[href="#/accounts/${accountId}"]`);
  await page.waitForSelector("#account-detail #suspend");
  const account = await page.textContent("#account-detail");
  check(account.includes("server_party_3") && account.includes(address), "account page: shares and address");
  await screenshot("account");
  await page.click("#suspend");
  await page.waitForSelector("dialog.confirm[open]");
  await screenshot("account-suspend-confirm");
  await page.click("dialog.confirm button.danger");
  await page.waitForSelector("#account-detail .badge-suspended");
  await page.waitForSelector("#account-detail #activate");
  await screenshot("account-suspended");

  // 7. A sign request for the suspended account is refused, and the refusal is on the audit page.
  const refused = await callApi(base, "POST", "/api/v1/mpc/sign", {
    account_id: accountId,
    message_hash: randomBytes(32).toString("hex"),
    participants: [{ party_id: "server_party_1" }, { party_id: "server_party_2" }],
  });
  check(refused.status === 403 && refused.body?.error?.code === "account_suspended", `refused: ${refused.status}`);
  await page.goto(`${base}/admin/#/audit`);
  const refusalRow = page.locator("#audit-list tr", { hasText: "403" }).filter({ hasText: "sign" });
  await refusalRow.first().waitFor();
  await refusalRow.first().locator("summary").click();
  const audited = await refusalRow.first().textContent();
  check(audited.includes(accountId.slice(0, 8)) && audited.includes("message_hash"), `audit row: ${audited}`);
  await screenshot("audit");

  // 8. API keys: one created (shown once) and revoked.
  await page.goto(`${base}/admin/#/keys`);
  await page.fill("#key-name", "console-test-key");
  await page.click("#key-form button[type=submit]");
  await page.waitForSelector("#new-key");
  const newKey = await page.textContent("#new-key");
  check(/^mpc_/.test(newKey ?? ""), "the new key is shown");
  await screenshot("api-keys-created");
  await page.click("#key-created button.secondary");
  check((await page.locator("#new-key").count()) === 0, "the new key stays on screen after Done");
  await page.locator("#key-list tr", { hasText: "console-test-key" }).locator("button.danger").click();
  await page.click("dialog.confirm button.danger");
  await page.locator("#key-list tr", { hasText: "console-test-key" }).locator(".badge-revoked").waitFor();
  await screenshot("api-keys");
  const revokedWorks = await fetch(`${base}/api/v1/admin/api-keys`, { headers: { "X-API-Key": newKey } });
  check(revokedWorks.status === 401, "a revoked key still works");

  // 9. The signed-in key never appears on a page; signing out forgets it.
  check(!(await page.evaluate((k) => document.body.innerText.includes(k), apiKey)), "the API key is on the page");
  await page.click("#sign-out");
  await page.waitForSelector("#sign-in");
  check((await page.evaluate(() => sessionStorage.length)) === 0, "the key outlived sign-out");

  check(problems.length === 0, `browser problems:\n  ${problems.join("\n  ")}`);
  log(`passed in ${((Date.now() - started) / 1000).toFixed(1)} s; ${shot} screenshots in ${out}`);
}

async function stopUp() {
  if (!up || up.exitCode !== null) return;
  const exited = new Promise((r) => up.once("exit", r));
  up.kill("SIGTERM");
  await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
  if (up.exitCode === null) up.kill("SIGKILL");
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error(e);
  if (page) await page.screenshot({ path: join(out, "failure.png"), fullPage: true }).catch(() => {});
  console.error(`mpc up's log: ${join(out, "mpc-up.log")}`);
} finally {
  await context?.close().catch(() => {});
  await stopUp();
  rmSync(scratch, { recursive: true, force: true });
  clearTimeout(watchdog);
}
process.exit(failed ? 1 : 0);
