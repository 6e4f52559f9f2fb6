// Verification of webhook deliveries from the Account Service. A delivery carries
// `X-MPC-Timestamp` (Unix seconds) and `X-MPC-Signature`: `v1=` and the lowercase hex
// HMAC-SHA256, under the webhook's secret, of the timestamp, `.`, and the raw body.
// WebCrypto only (Node >= 18 and browsers alike), so the helper is async.

/** How far a delivery's timestamp may be from now, by default. */
export const DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 300;

/** The delivery's signature or timestamp is not acceptable; do not act on it. */
export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}

export interface VerifyWebhookOptions {
  /** Seconds; default 300. */
  toleranceSeconds?: number;
  /** Unix seconds; default now. */
  now?: number;
}

/** Equal-length strings compared without an early exit. */
function constantTimeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    diff |= (a.charCodeAt(i) || 0) ^ (b.charCodeAt(i) || 0);
  }
  return diff === 0;
}

/**
 * Resolves if `signature` is the delivery's signature under `secret` and `timestamp` is within
 * the tolerance; rejects with {@link WebhookVerificationError} otherwise. `body` must be the raw
 * body received (a string or bytes), before any JSON parsing.
 */
export async function verifyWebhook(
  secret: string,
  body: string | Uint8Array,
  timestamp: string,
  signature: string,
  options: VerifyWebhookOptions = {},
): Promise<void> {
  const tolerance = options.toleranceSeconds ?? DEFAULT_WEBHOOK_TOLERANCE_SECONDS;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const ts = /^\d+$/.test(timestamp.trim()) ? Number(timestamp.trim()) : NaN;
  if (!Number.isSafeInteger(ts)) {
    throw new WebhookVerificationError("X-MPC-Timestamp is not a Unix time");
  }
  if (Math.abs(now - ts) > tolerance) {
    throw new WebhookVerificationError("X-MPC-Timestamp is outside the tolerance");
  }
  const enc = new TextEncoder();
  const raw = typeof body === "string" ? enc.encode(body) : body;
  const prefix = enc.encode(`${ts}.`);
  const message = new Uint8Array(prefix.length + raw.length);
  message.set(prefix);
  message.set(raw, prefix.length);
  const key = await globalThis.crypto.subtle.importKey(
    "raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"],
  );
  const mac = new Uint8Array(await globalThis.crypto.subtle.sign("HMAC", key, message));
  const expected = "v1=" + Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
  if (!constantTimeEqual(expected, (signature ?? "").trim())) {
    throw new WebhookVerificationError("X-MPC-Signature does not match");
  }
}
