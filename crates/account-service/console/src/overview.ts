// The overview: live sessions by status and type, the figures from the services' metrics
// (signatures per minute, success rate, p50/p95 latency), accounts, and the parties' health.
// Refreshed every five seconds.

import { type Latency, type Overview, type Party, api } from "./api.js";
import { type Child, badge, h, link, mono, section, show, table } from "./dom.js";
import { ago, number, percent, seconds, short, time } from "./format.js";
import type { Page } from "./main.js";

const REFRESH_MS = 5000;
const TYPES = ["keygen", "sign", "refresh", "recovery"];
const STATUSES = ["pending", "completed", "failed", "expired"];

function card(label: string, value: string, note?: string, id?: string): HTMLElement {
  return h(
    "div",
    { class: "card", id },
    h("div", { class: "card-label" }, label),
    h("div", { class: "card-value" }, value),
    note ? h("div", { class: "card-note" }, note) : null,
  );
}

function latencyCard(label: string, rows: Latency[], id: string): HTMLElement {
  const all = rows.find((r) => r.threshold === "all");
  return card(
    label,
    all ? `${seconds(all.p50_seconds)} / ${seconds(all.p95_seconds)}` : "—",
    all ? `p50 / p95 over ${all.count}` : "no sessions yet",
    id,
  );
}

function figuresPanel(o: Overview): HTMLElement {
  const f = o.figures;
  const scope = f.latency_scope === "window" ? "last 5 min" : "since start";
  const window =
    f.window_seconds === null
      ? "collecting…"
      : f.window_seconds < 120
        ? `last ${Math.round(f.window_seconds)} s`
        : `last ${Math.round(f.window_seconds / 60)} min`;
  const cards = h(
    "div",
    { class: "cards" },
    card("Active sessions", number(f.active_sessions), "not yet ended", "fig-active"),
    card("Signatures / min", number(f.signatures_per_minute, 1), window, "fig-signs"),
    card(
      "Success rate",
      percent(f.success_rate ?? f.success_rate_since_start),
      f.success_rate !== null ? window : "since start",
      "fig-success",
    ),
    latencyCard("Keygen latency", f.keygen, "fig-keygen"),
    latencyCard("Sign latency", f.sign, "fig-sign"),
  );
  const perThreshold: Child[][] = [];
  for (const [kind, rows] of [
    ["keygen", f.keygen],
    ["sign", f.sign],
  ] as const) {
    for (const r of rows.filter((r) => r.threshold !== "all")) {
      perThreshold.push([kind, r.threshold, `${r.count}`, seconds(r.p50_seconds), seconds(r.p95_seconds)]);
    }
  }
  const sources = f.sources.map((s) =>
    h("li", {}, s.url, " ", badge(s.ok ? "up" : "down"), s.error ? ` ${s.error}` : null),
  );
  return section(
    "Figures",
    f.available
      ? null
      : h("p", { class: "empty" }, "No metrics source answers (MPC_CONSOLE_METRICS_URLS)."),
    cards,
    perThreshold.length
      ? h(
          "details",
          {},
          h("summary", {}, `Latency per threshold (${scope})`),
          table(["type", "threshold", "sessions", "p50", "p95"], perThreshold),
        )
      : null,
    sources.length ? h("ul", { class: "sources" }, ...sources) : null,
  );
}

function sessionsPanel(o: Overview): HTMLElement {
  const count = (type: string, status: string) =>
    o.session_counts.find((c) => c.session_type === type && c.status === status)?.count ?? 0;
  const rows = TYPES.map((type) => [
    type,
    ...STATUSES.map((status) => {
      const n = count(type, status);
      return n ? link(`#/sessions?type=${type}&status=${status}`, `${n}`) : "0";
    }),
  ]);
  const live = o.live_sessions.map((s) => [
    link(`#/sessions/${s.session_id}`, short(s.session_id)),
    s.session_type,
    badge(s.live_status ?? s.status),
    link(`#/accounts/${s.account_id}`, short(s.account_id)),
    ago(s.created_at),
  ]);
  return section(
    "Sessions",
    h("h3", {}, `Running now (${o.live_total})`),
    table(["session", "type", "status", "account", "created"], live, "No session is running."),
    h("h3", {}, `Created in the last ${o.window_hours} h, by outcome`),
    h("div", { id: "session-counts" }, table(["type", ...STATUSES], rows)),
  );
}

function accountsPanel(o: Overview): HTMLElement {
  return section(
    "Accounts",
    h(
      "div",
      { class: "cards" },
      ...["active", "pending", "suspended", "failed"].map((status) =>
        card(status, `${o.accounts.find((a) => a.status === status)?.count ?? 0}`),
      ),
    ),
  );
}

function partiesPanel(parties: Party[] | string): HTMLElement {
  if (typeof parties === "string") return section("Parties", h("p", { class: "error" }, parties));
  return section(
    "Parties",
    h(
      "div",
      { id: "parties" },
      table(
        ["party", "kind", "health", "last seen", "sessions running", "identity key", "version"],
        parties.map((p) => [
          p.party_id,
          p.kind === "party_api" ? "Server Party API" : "server party",
          badge(p.live ? "up" : "down"),
          p.last_seen ? ago(p.last_seen) : "never",
          `${p.active_sessions}`,
          mono(short(p.identity_public_key, 16)),
          p.version ?? "—",
        ]),
        "No party is known to the Account Service.",
      ),
    ),
  );
}

export async function render(page: Page): Promise<void> {
  const updated = h("p", { class: "updated", id: "updated" }, "Loading…");
  const body = h("div", { class: "overview" });
  show(page.main, h("h1", {}, "Overview"), updated, body);
  page.every(REFRESH_MS, async () => {
    const [overview, parties] = await Promise.all([
      api<Overview>("GET", "/api/v1/admin/overview"),
      api<{ parties: Party[] }>("GET", "/api/v1/parties")
        .then((p) => p.parties)
        .catch((e: Error) => `Parties unavailable: ${e.message}`),
    ]);
    if (!page.current()) return;
    show(
      body,
      figuresPanel(overview),
      sessionsPanel(overview),
      partiesPanel(parties),
      accountsPanel(overview),
    );
    show(updated, `Updated ${time(overview.generated_at)} · refreshes every ${REFRESH_MS / 1000} s`);
  });
}
