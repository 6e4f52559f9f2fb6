// The webhook verification helper: a good delivery passes, a tampered body or an old timestamp
// fails. The expected signature is computed here with node:crypto, not by the helper.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import { verifyWebhook, WebhookVerificationError } from "@rwadurian/mpc-client-sdk";

const SECRET = "whsec_test";
const BODY = '{"event_id":"e","event":"session.completed"}';
const NOW = 1700000000;
const sign = (ts, body) => "v1=" + createHmac("sha256", SECRET).update(`${ts}.${body}`).digest("hex");

test("a good delivery passes", async () => {
  await verifyWebhook(SECRET, BODY, String(NOW), sign(NOW, BODY), { now: NOW + 10 });
  await verifyWebhook(SECRET, new TextEncoder().encode(BODY), String(NOW), sign(NOW, BODY), { now: NOW });
});

test("a tampered body, an old timestamp, a wrong secret fail", async () => {
  await assert.rejects(verifyWebhook(SECRET, BODY + " ", String(NOW), sign(NOW, BODY), { now: NOW }), WebhookVerificationError);
  const old = NOW - 301;
  await assert.rejects(verifyWebhook(SECRET, BODY, String(old), sign(old, BODY), { now: NOW }), WebhookVerificationError);
  await assert.rejects(verifyWebhook("other", BODY, String(NOW), sign(NOW, BODY), { now: NOW }), WebhookVerificationError);
  await assert.rejects(verifyWebhook(SECRET, BODY, "soon", sign(NOW, BODY), { now: NOW }), WebhookVerificationError);
});
