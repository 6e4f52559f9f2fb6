// API keys: list, create (the key is shown this once, then only its prefix exists), revoke.

import { type ApiKey, ApiError, api } from "./api.js";
import { badge, confirmAction, h, show, table } from "./dom.js";
import { time } from "./format.js";
import type { Page } from "./main.js";

function state(k: ApiKey): string {
  if (k.revoked_at) return "revoked";
  if (k.expires_at && new Date(k.expires_at).getTime() <= Date.now()) return "expired";
  return "active";
}

export async function render(page: Page): Promise<void> {
  const list = h("div", { id: "key-list" }, "Loading…");
  const created = h("div", { id: "key-created" });
  const name = h("input", { name: "name", id: "key-name", placeholder: "name, e.g. wallet-service", required: true, size: 28 });
  const scope = h(
    "select",
    { name: "scope", id: "key-scope" },
    h("option", { value: "operator" }, "operator (the API)"),
    h("option", { value: "admin" }, "admin (also keys, audit, console)"),
  );
  const days = h("input", { type: "number", name: "expires_in_days", id: "key-days", min: 1, value: 90, size: 5 });
  const form = h(
    "form",
    { class: "filters", id: "key-form" },
    name,
    scope,
    h("label", {}, "expires in ", days, " days"),
    h("button", { type: "submit" }, "Create key"),
  );

  const reload = async () => {
    const { keys } = await api<{ keys: ApiKey[] }>("GET", "/api/v1/admin/api-keys");
    if (!page.current()) return;
    show(
      list,
      table(
        ["name", "prefix", "scope", "state", "created", "expires", "last used", ""],
        keys.map((k) => [
          k.name,
          h("code", {}, `${k.prefix}…`),
          k.scope,
          badge(state(k)),
          time(k.created_at),
          time(k.expires_at),
          time(k.last_used_at),
          k.revoked_at
            ? ""
            : h(
                "button",
                {
                  type: "button",
                  class: "danger small",
                  onclick: async () => {
                    if (!(await confirmAction(`Revoke “${k.name}”? Callers using it are refused at once.`, "Revoke")))
                      return;
                    try {
                      await api("DELETE", `/api/v1/admin/api-keys/${encodeURIComponent(k.id)}`);
                      page.notify(`Key “${k.name}” revoked.`);
                    } catch (e) {
                      page.notify(e instanceof ApiError ? e.message : "the service is unreachable", "error");
                    }
                    await reload();
                  },
                },
                "Revoke",
              ),
        ]),
        "No key has been created (the bootstrap key is not listed).",
      ),
    );
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const result = await api<{ api_key: string; key: ApiKey }>("POST", "/api/v1/admin/api-keys", {
        name: name.value.trim(),
        scope: scope.value,
        expires_in_days: Number(days.value) || undefined,
      });
      name.value = "";
      const secret = h("code", { class: "mono secret", id: "new-key" }, result.api_key);
      show(
        created,
        h(
          "div",
          { class: "panel once" },
          h("p", {}, `Key “${result.key.name}” created. Copy it now: it is shown this once and never stored.`),
          secret,
          h(
            "div",
            { class: "actions" },
            h(
              "button",
              {
                type: "button",
                onclick: () => void navigator.clipboard?.writeText(result.api_key).then(() => page.notify("Copied.")),
              },
              "Copy",
            ),
            h("button", { type: "button", class: "secondary", onclick: () => show(created) }, "Done"),
          ),
        ),
      );
      await reload();
    } catch (e) {
      page.notify(e instanceof ApiError ? e.message : "the service is unreachable", "error");
    }
  });

  show(page.main, h("h1", {}, "API keys"), form, created, list);
  await reload();
}
