import { MPCError } from "./errors.js";
import type {
  AccessToken,
  Account,
  AccountList,
  CallOptions,
  DeviceSignature,
  GenerateUserShareRequest,
  KeygenRequest,
  KeygenResponse,
  RecoverRequest,
  RecoveryNewUserShareRequest,
  RefreshWithUserShareRequest,
  Session,
  SessionCreated,
  Signature,
  SignRequest,
  SignSession,
  SignWithUserShareRequest,
  UserShare,
} from "./types.js";

/** The longest long poll the API accepts on a session (`?wait=`), in seconds. */
export const MAX_WAIT_SECONDS = 60;

export interface ClientConfig {
  /** The Account Service, e.g. `http://mpc-account-service:4000`. */
  baseUrl: string;
  /** Sent as `X-API-Key`. */
  apiKey?: string;
  /** A device's scoped token, sent as `Authorization: Bearer` instead of the key. */
  accessToken?: string;
  /** Deadline of each request in ms (default 300 000). */
  timeoutMs?: number;
  /** Retries after 429/503 (and connection errors for keygen and sign). Default 3. */
  maxRetries?: number;
  /** Another `fetch` (default: the global one, Node ≥ 18 and browsers). */
  fetch?: typeof fetch;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** snake_case → camelCase, deeply; the keys of `join_tokens` are party ids and stay. */
function fromWire(v: Json): unknown {
  if (Array.isArray(v)) return v.map(fromWire);
  if (v === null || typeof v !== "object") return v;
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(v)) {
    out[camel(k)] = k === "join_tokens" ? val : fromWire(val);
  }
  return out;
}

function toWire(v: unknown): Json {
  if (Array.isArray(v)) return v.map(toWire);
  if (v === null || typeof v !== "object") return v as Json;
  const out: Record<string, Json> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (val !== undefined) out[snake(k)] = toWire(val);
  }
  return out;
}

function checkHash(hash: string): void {
  const bare = hash.trim().replace(/^0x/, "");
  if (!/^[0-9a-fA-F]{64}$/.test(bare)) {
    throw new MPCError("message_hash must be 32 bytes as 64 hex characters", "invalid_message_hash");
  }
}

function randomKey(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return "mpc-ts-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(aborted(signal));
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(aborted(signal as AbortSignal));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function aborted(signal: AbortSignal): MPCError {
  return new MPCError("the call was aborted", "aborted", 0, { cause: signal.reason });
}

const backoffMs = (attempt: number) => Math.min(500 * 2 ** (attempt - 1), 10_000);

interface Call {
  method: "GET" | "POST";
  path: string;
  body?: unknown;
  idempotent?: boolean;
  timeoutMs?: number;
}

/**
 * A client of the Account Service, the one base URL a wallet back end needs. No runtime
 * dependencies: it uses the global `fetch`.
 */
export class MPCClient {
  private readonly baseUrl: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly fetch: typeof fetch;

  constructor(config: ClientConfig) {
    if (!config.apiKey && !config.accessToken) {
      throw new MPCError("give apiKey (or a device's accessToken)", "invalid_argument");
    }
    this.baseUrl = config.baseUrl.replace(/\/+$/, "");
    this.headers = config.accessToken
      ? { Authorization: `Bearer ${config.accessToken}` }
      : { "X-API-Key": config.apiKey as string };
    this.timeoutMs = config.timeoutMs ?? 300_000;
    this.maxRetries = config.maxRetries ?? 3;
    this.fetch = config.fetch ?? globalThis.fetch.bind(globalThis);
  }

  private async call<T>(call: Call, options: CallOptions = {}): Promise<T> {
    const { signal } = options;
    const key = call.idempotent ? randomKey() : undefined;
    for (let attempt = 1; ; attempt++) {
      const retriesLeft = attempt <= this.maxRetries;
      if (signal?.aborted) throw aborted(signal);
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(), call.timeoutMs ?? this.timeoutMs);
      const onAbort = () => timeout.abort();
      signal?.addEventListener("abort", onAbort, { once: true });
      let response: Response;
      let text: string;
      try {
        const headers: Record<string, string> = { ...this.headers };
        if (call.body !== undefined) headers["Content-Type"] = "application/json";
        if (key) headers["Idempotency-Key"] = key;
        response = await this.fetch(this.baseUrl + call.path, {
          method: call.method,
          headers,
          body: call.body === undefined ? undefined : JSON.stringify(toWire(call.body)),
          signal: timeout.signal,
        });
        text = await response.text();
      } catch (e) {
        if (signal?.aborted) throw aborted(signal);
        if (timeout.signal.aborted) {
          throw new MPCError(`${call.method} ${call.path} timed out`, "timeout", 0, { cause: e });
        }
        if (call.idempotent && retriesLeft) {
          await sleep(backoffMs(attempt), signal);
          continue;
        }
        throw new MPCError(`${call.method} ${call.path}: ${String(e)}`, "connection_error", 0, { cause: e });
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      }
      const retryAfterHeader = Number.parseFloat(response.headers.get("retry-after") ?? "");
      const retryAfter = Number.isFinite(retryAfterHeader) ? retryAfterHeader : undefined;
      if ((response.status === 429 || response.status === 503) && retriesLeft) {
        await sleep(retryAfter !== undefined ? retryAfter * 1000 : backoffMs(attempt), signal);
        continue;
      }
      let body: Json = null;
      try {
        body = text ? (JSON.parse(text) as Json) : null;
      } catch {
        body = null;
      }
      if (response.ok) {
        if (body === null) throw new MPCError(`${call.method} ${call.path}: not JSON`, "invalid_response", response.status);
        return fromWire(body) as T;
      }
      const error =
        body && typeof body === "object" && !Array.isArray(body) && body.error && typeof body.error === "object"
          ? (body.error as { code?: string; message?: string })
          : {};
      throw new MPCError(error.message || `HTTP ${response.status}`, error.code || "unknown", response.status, {
        retryAfter,
      });
    }
  }

  /** Creates a wallet account and its keygen session (guide §5.1 step 1). */
  createKeygen(request: KeygenRequest, options?: CallOptions): Promise<KeygenResponse> {
    return this.call({ method: "POST", path: "/api/v1/mpc/keygen", body: request, idempotent: true }, options);
  }

  /** The device's part of the keygen (guide §5.1 step 2): resolves when the key exists. */
  generateUserShare(request: GenerateUserShareRequest, options?: CallOptions): Promise<UserShare> {
    return this.call({ method: "POST", path: "/api/v1/keygen/generate-user-share", body: request }, options);
  }

  /** A sign session (guide §5.2 step 2); with a participant's `shareData`, signed in one call. */
  async createSign(request: SignRequest, options?: CallOptions): Promise<SignSession> {
    checkHash(request.messageHash);
    return this.call({ method: "POST", path: "/api/v1/mpc/sign", body: request, idempotent: true }, options);
  }

  /** Signs: with a device's `shareData` in one call; with server parties only, by waiting. */
  async signTransaction(request: SignRequest, options?: CallOptions): Promise<Signature> {
    const created = await this.createSign(request, options);
    if (created.signature && created.r && created.s && created.v !== undefined) {
      return { signature: created.signature, r: created.r, s: created.s, v: created.v, sessionId: created.sessionId };
    }
    const session = await this.waitForSession(created.sessionId, { ...options, timeoutMs: this.timeoutMs });
    if (session.status === "completed" && session.signature && session.r && session.s && session.v !== null) {
      return { signature: session.signature, r: session.r, s: session.s, v: session.v, sessionId: session.sessionId };
    }
    throw new MPCError(
      session.failureReason ?? `session is ${session.status}`,
      session.status === "expired" ? "session_expired" : "session_failed",
      0,
      { blamedPartyId: session.blamedPartyId ?? undefined },
    );
  }

  /** A session; with `wait` (seconds, ≤ 60) as soon as it is final. */
  getSession(sessionId: string, options: CallOptions & { wait?: number } = {}): Promise<Session> {
    const wait = Math.max(0, Math.min(MAX_WAIT_SECONDS, Math.floor(options.wait ?? 0)));
    const path = `/api/v1/mpc/sessions/${encodeURIComponent(sessionId)}` + (wait ? `?wait=${wait}` : "");
    return this.call({ method: "GET", path, timeoutMs: wait ? (wait + 30) * 1000 : undefined }, options);
  }

  /** The session once final (long polls, no busy polling); `timeout` error after `timeoutMs`. */
  async waitForSession(sessionId: string, options: CallOptions & { timeoutMs?: number } = {}): Promise<Session> {
    const deadline = Date.now() + (options.timeoutMs ?? this.timeoutMs);
    for (;;) {
      const left = Math.floor((deadline - Date.now()) / 1000);
      const session = await this.getSession(sessionId, { signal: options.signal, wait: Math.max(0, left) });
      if (["completed", "failed", "expired"].includes(session.status)) return session;
      if (Date.now() >= deadline) {
        throw new MPCError(`session ${sessionId} is still ${session.status}`, "timeout");
      }
    }
  }

  async signWithUserShare(request: SignWithUserShareRequest, options?: CallOptions): Promise<DeviceSignature> {
    checkHash(request.messageHash);
    return this.call({ method: "POST", path: "/api/v1/sign/with-user-share", body: request }, options);
  }

  refreshWithUserShare(request: RefreshWithUserShareRequest, options?: CallOptions): Promise<UserShare> {
    return this.call({ method: "POST", path: "/api/v1/refresh/with-user-share", body: request }, options);
  }

  recoveryNewUserShare(request: RecoveryNewUserShareRequest, options?: CallOptions): Promise<UserShare> {
    return this.call({ method: "POST", path: "/api/v1/recovery/new-user-share", body: request }, options);
  }

  getAccount(accountId: string, options?: CallOptions): Promise<Account> {
    return this.call({ method: "GET", path: `/api/v1/accounts/${encodeURIComponent(accountId)}` }, options);
  }

  listAccounts(
    query: { status?: string; limit?: number; offset?: number } = {},
    options?: CallOptions,
  ): Promise<AccountList> {
    const q = new URLSearchParams({ limit: String(query.limit ?? 50), offset: String(query.offset ?? 0) });
    if (query.status) q.set("status", query.status);
    return this.call({ method: "GET", path: `/api/v1/accounts?${q}` }, options);
  }

  private action<T>(accountId: string, action: string, body: unknown, options?: CallOptions): Promise<T> {
    return this.call({ method: "POST", path: `/api/v1/accounts/${encodeURIComponent(accountId)}/${action}`, body }, options);
  }

  suspendAccount(accountId: string, options?: CallOptions): Promise<Account> {
    return this.action(accountId, "suspend", {}, options);
  }

  activateAccount(accountId: string, options?: CallOptions): Promise<Account> {
    return this.action(accountId, "activate", {}, options);
  }

  refreshAccount(accountId: string, options?: CallOptions): Promise<SessionCreated> {
    return this.action(accountId, "refresh", {}, options);
  }

  recoverAccount(accountId: string, request: RecoverRequest, options?: CallOptions): Promise<SessionCreated> {
    return this.action(accountId, "recover", request, options);
  }

  /** A token with which a device may call the device operations of this account only. */
  createAccessToken(accountId: string, options?: CallOptions): Promise<AccessToken> {
    return this.action(accountId, "access-tokens", {}, options);
  }
}
