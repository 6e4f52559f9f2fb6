export { MPCClient, MAX_WAIT_SECONDS } from "./client.js";
export type { ClientConfig } from "./client.js";
export { MPCError } from "./errors.js";
export type * from "./types.js";
export {
  verifyWebhook,
  WebhookVerificationError,
  DEFAULT_WEBHOOK_TOLERANCE_SECONDS,
} from "./webhooks.js";
export type { VerifyWebhookOptions } from "./webhooks.js";
