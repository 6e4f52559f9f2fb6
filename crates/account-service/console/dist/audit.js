// The audit log (guide §7.3): by default the requests answered with a status of 400 or more in
// the last hour, newest first; filters, and each entry's request body as stored (redacted).
import { api, query } from "./api.js";
import { badge, h, link, show, table } from "./dom.js";
import { fromLocalInput, redact, short, time, toLocalInput } from "./format.js";
const PAGE_SIZE = 100;
function defaults(p) {
    const out = new URLSearchParams(p);
    if (!p.has("status_min"))
        out.set("status_min", "400");
    if (!p.has("since"))
        out.set("since", new Date(Date.now() - 3600_000).toISOString());
    return out;
}
function input(name, value, placeholder, size = 10) {
    return h("input", { name, id: `audit-${name}`, value, placeholder, size });
}
export async function render(page) {
    const p = defaults(page.params);
    const statusMin = input("status_min", p.get("status_min") ?? "", "any", 5);
    const statusMax = input("status_max", p.get("status_max") ?? "", "any", 5);
    const operation = input("operation", p.get("operation") ?? "", "operation (e.g. sign)", 18);
    const session = input("session_id", p.get("session_id") ?? "", "session id", 36);
    const account = input("account_id", p.get("account_id") ?? "", "account id", 36);
    const since = h("input", { type: "datetime-local", name: "since", value: toLocalInput(p.get("since")) });
    const until = h("input", { type: "datetime-local", name: "until", value: toLocalInput(p.get("until")) });
    const form = h("form", { class: "filters", id: "audit-filters" }, h("label", {}, "status ≥ ", statusMin), h("label", {}, "≤ ", statusMax), operation, session, account, h("label", {}, "from ", since), h("label", {}, "to ", until), h("button", { type: "submit" }, "Filter"), h("a", { href: "#/audit", class: "button secondary" }, "Last hour's failures"));
    form.addEventListener("submit", (event) => {
        event.preventDefault();
        // An empty status or time is kept as empty, so that the defaults do not come back.
        window.location.hash = `#/audit?${new URLSearchParams({
            status_min: statusMin.value.trim(),
            status_max: statusMax.value.trim(),
            operation: operation.value.trim(),
            session_id: session.value.trim(),
            account_id: account.value.trim(),
            since: fromLocalInput(since.value),
            until: fromLocalInput(until.value),
        }).toString()}`;
    });
    const results = h("div", { id: "audit-list" }, "Loading…");
    show(page.main, h("h1", {}, "Audit log"), form, results);
    const params = {};
    for (const key of ["status_min", "status_max", "operation", "session_id", "account_id", "since", "until", "before_id"]) {
        params[key] = p.get(key) ?? "";
    }
    const log = await api("GET", `/api/v1/audit-logs${query({ ...params, limit: PAGE_SIZE })}`);
    const rows = log.entries.map((e) => [
        time(e.created_at),
        badge(e.response_status === null ? "none" : e.response_status >= 400 ? "failed" : "completed"),
        `${e.response_status ?? "—"}`,
        e.operation,
        e.user_id ?? "—",
        e.ip_address ?? "—",
        e.session_id ? link(`#/sessions/${e.session_id}`, short(e.session_id)) : "—",
        e.account_id ? link(`#/accounts/${e.account_id}`, short(e.account_id)) : "—",
        e.request_body === null && !e.user_agent
            ? "—"
            : h("details", {}, h("summary", {}, "request"), e.user_agent ? h("p", { class: "muted" }, e.user_agent) : null, e.request_body === null ? null : h("pre", {}, JSON.stringify(redact(e.request_body), null, 2))),
    ]);
    const older = new URLSearchParams(p);
    if (log.next_before_id !== null)
        older.set("before_id", `${log.next_before_id}`);
    show(results, table(["time", "", "status", "operation", "caller", "ip", "session", "account", "body"], rows, "No entry matches."), log.next_before_id !== null ? h("div", { class: "pager" }, link(`#/audit?${older.toString()}`, "older")) : null);
}
