// The SDK's own rules without a server: retries after 429 under one Idempotency-Key, typed
// errors, abort. A stub `fetch` plays the API's answers.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import { MPCClient, MPCError } from "@rwadurian/mpc-client-sdk";

const KEYGEN = {
  session_id: "s", session_type: "keygen", threshold_n: 2, threshold_t: 2,
  join_tokens: { user_device_1: "t" }, status: "created", account_id: "a", expires_at: "x",
};

const json = (status, body, headers = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

test("429 is retried after Retry-After with one Idempotency-Key; join token keys stay", async () => {
  const keys = [];
  const client = new MPCClient({
    baseUrl: "http://mpc.test",
    apiKey: "k",
    fetch: async (_url, init) => {
      keys.push(init.headers["Idempotency-Key"]);
      return keys.length < 3
        ? json(429, { error: { code: "overloaded", message: "too many requests" } }, { "retry-after": "0" })
        : json(201, KEYGEN);
    },
  });
  const out = await client.createKeygen({ thresholdN: 2, thresholdT: 2, participants: [{ partyId: "user_device_1" }] });
  assert.equal(out.accountId, "a");
  assert.deepEqual(out.joinTokens, { user_device_1: "t" });
  assert.equal(keys.length, 3);
  assert.ok(keys[0] && keys.every((k) => k === keys[0]));
});

test("without retries a 429 is an MPCError with code, status, retryAfter", async () => {
  const client = new MPCClient({
    baseUrl: "http://mpc.test",
    apiKey: "k",
    maxRetries: 0,
    fetch: async () => json(429, { error: { code: "overloaded", message: "too many requests" } }, { "retry-after": "7" }),
  });
  await assert.rejects(client.getSession("x"), (e) => e instanceof MPCError && e.throttled && e.code === "overloaded" && e.retryAfter === 7);
});

test("the CommonJS build loads with require", () => {
  const require = createRequire(import.meta.url);
  const cjs = require("@rwadurian/mpc-client-sdk");
  assert.equal(typeof cjs.MPCClient, "function");
  assert.equal(typeof cjs.MPCError, "function");
});
