/**
 * Every error of the SDK: `code` is the API's stable code (`session_not_found`, …) or the
 * client's own (`connection_error`, `timeout`, `aborted`, `session_failed`, `session_expired`),
 * `status` the HTTP status (0 on the client side), `message` the guide's wording.
 */
export class MPCError extends Error {
  readonly code: string;
  readonly status: number;
  /** Seconds, from `Retry-After` on 429 and 503. */
  readonly retryAfter?: number;
  /** The party a failed session blames, if any. */
  readonly blamedPartyId?: string;

  constructor(
    message: string,
    code: string,
    status = 0,
    extra: { retryAfter?: number; blamedPartyId?: string; cause?: unknown } = {},
  ) {
    super(message);
    this.name = "MPCError";
    this.code = code;
    this.status = status;
    this.retryAfter = extra.retryAfter;
    this.blamedPartyId = extra.blamedPartyId;
    if (extra.cause !== undefined) {
      (this as { cause?: unknown }).cause = extra.cause;
    }
  }

  /** 429: retry after `retryAfter` seconds. */
  get throttled(): boolean {
    return this.status === 429;
  }
}
