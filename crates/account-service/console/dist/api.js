// The Account Service API as the console uses it. The admin API key lives in this tab's
// session storage only (gone when the tab closes) and is sent as X-API-Key; nothing else is
// stored in the browser.
const KEY_STORAGE = "mpc-console-api-key";
export class ApiError extends Error {
    status;
    code;
    constructor(status, code, message) {
        super(message);
        this.status = status;
        this.code = code;
    }
}
export function apiKey() {
    return sessionStorage.getItem(KEY_STORAGE);
}
export function signOut() {
    sessionStorage.removeItem(KEY_STORAGE);
}
async function call(key, method, path, body) {
    const headers = { "X-API-Key": key, Accept: "application/json" };
    if (body !== undefined)
        headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
    });
    const text = await response.text();
    let data = null;
    try {
        data = text ? JSON.parse(text) : null;
    }
    catch {
        data = null;
    }
    if (!response.ok) {
        const error = data?.error;
        throw new ApiError(response.status, error?.code ?? `http_${response.status}`, error?.message ?? `HTTP ${response.status}`);
    }
    return data;
}
/** Calls the API with the signed-in key. */
export function api(method, path, body) {
    const key = apiKey();
    if (!key)
        return Promise.reject(new ApiError(401, "signed_out", "not signed in"));
    return call(key, method, path, body);
}
/** Keeps `key` if it is an admin key; otherwise says why not. */
export async function signIn(key) {
    const trimmed = key.trim();
    if (!trimmed)
        throw new ApiError(401, "invalid_api_key", "enter an API key");
    try {
        await call(trimmed, "GET", "/api/v1/admin/api-keys");
    }
    catch (e) {
        if (e instanceof ApiError && e.status === 403) {
            throw new ApiError(403, e.code, "this API key is not an admin key");
        }
        throw e;
    }
    sessionStorage.setItem(KEY_STORAGE, trimmed);
}
/** A query string from the non-empty values. */
export function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
        if (v !== undefined && v !== null && `${v}` !== "")
            q.set(k, `${v}`);
    }
    const s = q.toString();
    return s ? `?${s}` : "";
}
