// The Account Service API as the console uses it. The admin API key lives in this tab's
// session storage only (gone when the tab closes) and is sent as X-API-Key; nothing else is
// stored in the browser.

const KEY_STORAGE = "mpc-console-api-key";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function apiKey(): string | null {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function signOut(): void {
  sessionStorage.removeItem(KEY_STORAGE);
}

async function call<T>(key: string, method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { "X-API-Key": key, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(
      response.status,
      error?.code ?? `http_${response.status}`,
      error?.message ?? `HTTP ${response.status}`,
    );
  }
  return data as T;
}

/** Calls the API with the signed-in key. */
export function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const key = apiKey();
  if (!key) return Promise.reject(new ApiError(401, "signed_out", "not signed in"));
  return call<T>(key, method, path, body);
}

/** Keeps `key` if it is an admin key; otherwise says why not. */
export async function signIn(key: string): Promise<void> {
  const trimmed = key.trim();
  if (!trimmed) throw new ApiError(401, "invalid_api_key", "enter an API key");
  try {
    await call<unknown>(trimmed, "GET", "/api/v1/admin/api-keys");
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) {
      throw new ApiError(403, e.code, "this API key is not an admin key");
    }
    throw e;
  }
  sessionStorage.setItem(KEY_STORAGE, trimmed);
}

/** A query string from the non-empty values. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && `${v}` !== "") q.set(k, `${v}`);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// --- response shapes -----------------------------------------------------------------------

export interface Latency {
  threshold: string;
  count: number;
  p50_seconds: number | null;
  p95_seconds: number | null;
}

export interface Figures {
  available: boolean;
  window_seconds: number | null;
  signatures_per_minute: number | null;
  success_rate: number | null;
  success_rate_since_start: number | null;
  sessions_ended_in_window: number | null;
  active_sessions: number | null;
  latency_scope: string;
  keygen: Latency[];
  sign: Latency[];
  sources: { url: string; ok: boolean; error: string | null }[];
}

export interface SessionRow {
  session_id: string;
  account_id: string;
  session_type: string;
  status: string;
  live_status: string | null;
  failure_reason: string | null;
  blamed_party_id: string | null;
  created_at: string;
  updated_at: string;
  lost_party_id: string | null;
  new_party_id: string | null;
}

export interface SessionPage {
  sessions: SessionRow[];
  total: number;
  limit: number;
  offset: number;
}

export interface Overview {
  generated_at: string;
  window_hours: number;
  session_counts: { session_type: string; status: string; count: number }[];
  live_sessions: SessionRow[];
  live_total: number;
  accounts: { status: string; count: number }[];
  figures: Figures;
}

export interface Party {
  party_id: string;
  kind: string;
  live: boolean;
  last_seen: string | null;
  active_sessions: number;
  identity_public_key: string | null;
  version: string | null;
}

export interface Participant {
  party_id: string;
  party_index: number;
  device_type: string | null;
  status: string;
  joined_at: string | null;
}

export interface SessionView {
  session_id: string;
  session_type: string;
  status: string;
  threshold_n: number;
  threshold_t: number;
  account_id: string | null;
  participants: Participant[];
  message_hash: string | null;
  public_key: string | null;
  ethereum_address: string | null;
  signature: string | null;
  r: string | null;
  s: string | null;
  v: number | null;
  failure_reason: string | null;
  blamed_party_id: string | null;
  created_at: string | null;
  expires_at: string | null;
  completed_at: string | null;
}

export interface Share {
  party_id: string;
  party_index: number;
  share_type: string;
  device_type: string | null;
  storage_location: string | null;
  is_active: boolean;
  created_at: string;
}

export interface Account {
  account_id: string;
  username: string | null;
  email: string | null;
  status: string;
  threshold_n: number;
  threshold_t: number;
  public_key: string | null;
  ethereum_address: string | null;
  /** Once HD derivation exists. */
  xpub?: string | null;
  keygen_session_id: string | null;
  failure_reason: string | null;
  created_at: string;
  updated_at: string;
  shares?: Share[];
}

export interface AccountList {
  accounts: Account[];
  total: number;
  limit: number;
  offset: number;
}

export interface AuditEntry {
  id: number;
  session_id: string | null;
  account_id: string | null;
  operation: string;
  user_id: string | null;
  ip_address: string | null;
  user_agent: string | null;
  request_body: unknown;
  response_status: number | null;
  created_at: string;
}

export interface AuditPage {
  entries: AuditEntry[];
  next_before_id: number | null;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  scope: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}
