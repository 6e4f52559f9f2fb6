// Accounts: search by id, username, email or address; an account's key, address, where each
// share is held and its sessions; suspend, activate and refresh, each after a confirmation.
import { ApiError, api, query } from "./api.js";
import { badge, confirmAction, errorBox, fields, h, link, mono, section, show, table } from "./dom.js";
import { short, time } from "./format.js";
import { SESSION_HEADERS, sessionRows } from "./sessions.js";
const PAGE_SIZE = 50;
async function renderList(page) {
    const p = page.params;
    const q = h("input", {
        type: "search",
        name: "q",
        id: "account-search",
        placeholder: "id, username, email or 0x address",
        value: p.get("q") ?? "",
        size: 44,
    });
    const status = h("select", { name: "status", id: "account-status" }, h("option", { value: "" }, "any status"), ...["pending", "active", "suspended", "failed"].map((s) => h("option", { value: s, selected: s === p.get("status") }, s)));
    const form = h("form", { class: "filters" }, q, status, h("button", { type: "submit" }, "Search"));
    form.addEventListener("submit", (event) => {
        event.preventDefault();
        window.location.hash = `#/accounts${query({ q: q.value.trim(), status: status.value })}`;
    });
    const results = h("div", { id: "account-list" }, "Loading…");
    show(page.main, h("h1", {}, "Accounts"), form, results);
    const offset = Number(p.get("offset") ?? "0") || 0;
    const list = await api("GET", `/api/v1/admin/accounts${query({ q: p.get("q"), status: p.get("status"), limit: PAGE_SIZE, offset })}`);
    const move = (to) => {
        const next = new URLSearchParams(p);
        next.set("offset", `${to}`);
        return `#/accounts?${next.toString()}`;
    };
    show(results, table(["account", "username", "email", "status", "threshold", "address", "created"], list.accounts.map((a) => [
        link(`#/accounts/${a.account_id}`, h("code", {}, short(a.account_id, 13))),
        a.username ?? "—",
        a.email ?? "—",
        badge(a.status),
        `${a.threshold_t}-of-${a.threshold_n}`,
        mono(a.ethereum_address) ?? "—",
        time(a.created_at),
    ]), "No account matches."), h("div", { class: "pager" }, `${list.total === 0 ? 0 : offset + 1}–${offset + list.accounts.length} of ${list.total}`, offset > 0 ? link(move(Math.max(0, offset - PAGE_SIZE)), "previous") : null, offset + list.accounts.length < list.total ? link(move(offset + PAGE_SIZE), "next") : null));
}
function actions(page, a, reload) {
    const act = async (what, message, label) => {
        if (!(await confirmAction(message, label)))
            return;
        try {
            // A refresh answers with the new session's join tokens: only its id is kept.
            const result = await api("POST", `/api/v1/accounts/${encodeURIComponent(a.account_id)}/${what}`);
            page.notify(what === "refresh" && result.session_id
                ? `Refresh started: session ${result.session_id}`
                : `Account ${what === "suspend" ? "suspended" : "activated"}.`);
        }
        catch (e) {
            page.notify(e instanceof ApiError ? e.message : "the service is unreachable", "error");
        }
        await reload();
    };
    const buttons = [];
    if (a.status === "active") {
        buttons.push(h("button", {
            type: "button",
            class: "danger",
            id: "suspend",
            onclick: () => act("suspend", "Suspend this account? It cannot sign until activated again.", "Suspend"),
        }, "Suspend"), h("button", {
            type: "button",
            class: "secondary",
            id: "refresh",
            onclick: () => act("refresh", "Refresh the shares? Every party takes part; the key and address stay.", "Refresh"),
        }, "Refresh shares"));
    }
    if (a.status === "suspended") {
        buttons.push(h("button", {
            type: "button",
            id: "activate",
            onclick: () => act("activate", "Activate this account? It can sign again.", "Activate"),
        }, "Activate"));
    }
    return h("div", { class: "actions" }, ...buttons);
}
async function renderDetail(page, id) {
    const body = h("div", { id: "account-detail" }, "Loading…");
    show(page.main, h("h1", {}, "Account ", h("code", {}, short(id, 13))), link("#/accounts", "← all accounts"), body);
    const reload = async () => {
        try {
            const [a, sessions] = await Promise.all([
                api("GET", `/api/v1/accounts/${encodeURIComponent(id)}?include_inactive=true`),
                api("GET", `/api/v1/admin/sessions${query({ account_id: id, limit: 50 })}`),
            ]);
            if (!page.current())
                return;
            show(body, section("Account", fields([
                ["id", mono(a.account_id)],
                ["status", badge(a.status)],
                ["username", a.username],
                ["email", a.email],
                ["threshold", `${a.threshold_t}-of-${a.threshold_n}`],
                ["address", mono(a.ethereum_address)],
                ["public key", mono(a.public_key)],
                ["xpub", mono(a.xpub ?? null)],
                ["keygen session", a.keygen_session_id ? link(`#/sessions/${a.keygen_session_id}`, a.keygen_session_id) : null],
                ["failure reason", a.failure_reason],
                ["created", time(a.created_at)],
                ["updated", time(a.updated_at)],
            ]), actions(page, a, reload)), section("Shares (where each is held; never the share)", table(["party", "index", "type", "device", "held at", "state", "since"], (a.shares ?? []).map((s) => [
                s.party_id,
                `${s.party_index}`,
                s.share_type,
                s.device_type ?? "—",
                s.storage_location ?? "—",
                badge(s.is_active ? "active" : "retired"),
                time(s.created_at),
            ]), "No share yet (the keygen has not completed).")), section(`Sessions (${sessions.total})`, table(SESSION_HEADERS, sessionRows(sessions), "No session.")));
        }
        catch (e) {
            if (e instanceof ApiError && e.status === 404) {
                show(body, errorBox("No such account."));
                return;
            }
            throw e;
        }
    };
    await reload();
}
export async function render(page) {
    const [id] = page.path;
    return id ? renderDetail(page, id) : renderList(page);
}
