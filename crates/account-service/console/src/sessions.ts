// Sessions: a filtered list (type, status, account, time), refreshed while shown, and one
// session's detail: participants and their states, timings, failure and blame, and for a
// signature r, s, v, DER and the address. Join tokens are never requested or shown.

import { type SessionPage, type SessionView, api, query } from "./api.js";
import { type Child, badge, fields, h, link, mono, section, show, table } from "./dom.js";
import { ago, between, fromLocalInput, short, time, toLocalInput } from "./format.js";
import type { Page } from "./main.js";

const REFRESH_MS = 3000;
const PAGE_SIZE = 50;
const TERMINAL = ["completed", "failed", "expired"];

function select(name: string, options: string[], value: string): HTMLSelectElement {
  return h(
    "select",
    { name, id: `filter-${name}` },
    h("option", { value: "" }, `any ${name}`),
    ...options.map((o) => h("option", { value: o, selected: o === value }, o)),
  );
}

function filters(page: Page): HTMLFormElement {
  const p = page.params;
  const type = select("type", ["keygen", "sign", "refresh", "recovery"], p.get("type") ?? "");
  const status = select("status", ["pending", "completed", "failed", "expired"], p.get("status") ?? "");
  const account = h("input", {
    name: "account_id",
    id: "filter-account",
    placeholder: "account id",
    value: p.get("account_id") ?? "",
    size: 38,
  });
  const since = h("input", { type: "datetime-local", name: "since", value: toLocalInput(p.get("since")) });
  const until = h("input", { type: "datetime-local", name: "until", value: toLocalInput(p.get("until")) });
  const form = h(
    "form",
    { class: "filters", id: "session-filters" },
    type,
    status,
    account,
    h("label", {}, "from ", since),
    h("label", {}, "to ", until),
    h("button", { type: "submit" }, "Filter"),
    h("a", { href: "#/sessions", class: "button secondary" }, "Clear"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    window.location.hash = `#/sessions${query({
      type: type.value,
      status: status.value,
      account_id: account.value.trim(),
      since: fromLocalInput(since.value),
      until: fromLocalInput(until.value),
    })}`;
  });
  return form;
}

export function sessionRows(page: SessionPage): Child[][] {
  return page.sessions.map((s) => [
    time(s.created_at),
    s.session_type,
    badge(s.status === "pending" ? (s.live_status ?? s.status) : s.status),
    link(`#/sessions/${s.session_id}`, h("code", {}, short(s.session_id, 13))),
    link(`#/accounts/${s.account_id}`, short(s.account_id)),
    s.status === "pending" ? ago(s.created_at) : between(s.created_at, s.updated_at),
    s.failure_reason ?? "",
    s.blamed_party_id ?? "",
  ]);
}

export const SESSION_HEADERS = ["created", "type", "status", "session", "account", "took", "failure", "blamed"];

async function renderList(page: Page): Promise<void> {
  const offset = Number(page.params.get("offset") ?? "0") || 0;
  const results = h("div", { id: "session-list" }, "Loading…");
  const pager = h("div", { class: "pager" });
  show(page.main, h("h1", {}, "Sessions"), filters(page), results, pager);
  page.every(REFRESH_MS, async () => {
    const p = page.params;
    const list = await api<SessionPage>(
      "GET",
      `/api/v1/admin/sessions${query({
        type: p.get("type"),
        status: p.get("status"),
        account_id: p.get("account_id"),
        since: p.get("since"),
        until: p.get("until"),
        limit: PAGE_SIZE,
        offset,
      })}`,
    );
    if (!page.current()) return;
    show(results, table(SESSION_HEADERS, sessionRows(list), "No session matches."));
    const move = (to: number) => {
      const next = new URLSearchParams(p);
      next.set("offset", `${to}`);
      return `#/sessions?${next.toString()}`;
    };
    show(
      pager,
      `${list.total === 0 ? 0 : offset + 1}–${offset + list.sessions.length} of ${list.total}`,
      offset > 0 ? link(move(Math.max(0, offset - PAGE_SIZE)), "newer") : null,
      offset + list.sessions.length < list.total ? link(move(offset + PAGE_SIZE), "older") : null,
    );
  });
}

function detail(s: SessionView): HTMLElement[] {
  const out = [
    section(
      "Session",
      fields([
        ["id", mono(s.session_id)],
        ["type", s.session_type],
        ["status", badge(s.status)],
        ["threshold", `${s.threshold_t}-of-${s.threshold_n}`],
        ["account", s.account_id ? link(`#/accounts/${s.account_id}`, s.account_id) : null],
        ["message hash", mono(s.message_hash)],
        ["failure reason", s.failure_reason ? h("span", { class: "error-text" }, s.failure_reason) : null],
        ["blamed party", s.blamed_party_id],
      ]),
    ),
    section(
      "Timings",
      fields([
        ["created", time(s.created_at)],
        ["completed", s.completed_at ? time(s.completed_at) : null],
        ["took", s.completed_at ? between(s.created_at, s.completed_at) : null],
        ["expires", time(s.expires_at)],
      ]),
    ),
  ];
  if (s.public_key || s.r) {
    out.push(
      section(
        s.r ? "Signature" : "Key",
        fields([
          ["r", mono(s.r)],
          ["s", mono(s.s)],
          ["v", s.v === null ? null : `${s.v}`],
          ["DER", mono(s.signature)],
          ["address", mono(s.ethereum_address)],
          ["public key", mono(s.public_key)],
        ]),
      ),
    );
  }
  out.push(
    section(
      "Participants",
      table(
        ["party", "index", "device", "status", "joined"],
        s.participants.map((p) => [
          p.party_id,
          `${p.party_index}`,
          p.device_type ?? "—",
          badge(p.status),
          time(p.joined_at),
        ]),
      ),
    ),
  );
  return out;
}

async function renderDetail(page: Page, id: string): Promise<void> {
  const body = h("div", { id: "session-detail" }, "Loading…");
  show(page.main, h("h1", {}, "Session ", h("code", {}, short(id, 13))), link("#/sessions", "← all sessions"), body);
  let done = false;
  page.every(REFRESH_MS, async () => {
    if (done) return;
    const s = await api<SessionView>("GET", `/api/v1/mpc/sessions/${encodeURIComponent(id)}`);
    if (!page.current()) return;
    show(body, ...detail(s));
    done = TERMINAL.includes(s.status);
  });
}

export async function render(page: Page): Promise<void> {
  const [id] = page.path;
  return id ? renderDetail(page, id) : renderList(page);
}
