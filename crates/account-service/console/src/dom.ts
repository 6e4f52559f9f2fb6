// Building the page from elements and text nodes only: no HTML strings, so nothing the API
// returns can ever become markup or script.

export type Child = Node | string | number | null | undefined | false;
type Attr = string | number | boolean | undefined | ((event: Event) => void);

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, Attr> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") {
      el.addEventListener(name.replace(/^on/, ""), value);
    } else if (name === "value" && "value" in el) {
      (el as HTMLInputElement).value = `${value}`;
    } else {
      el.setAttribute(name, value === true ? "" : `${value}`);
    }
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(`${c}`));
  }
}

export function link(href: string, ...children: Child[]): HTMLAnchorElement {
  return h("a", { href }, ...children);
}

/** A status word, coloured by its meaning. */
export function badge(status: string | null | undefined): HTMLSpanElement {
  const s = status ?? "unknown";
  return h("span", { class: `badge badge-${s.replace(/[^a-z_]/g, "")}` }, s);
}

export function table(headers: string[], rows: Child[][], empty = "Nothing to show."): HTMLElement {
  if (rows.length === 0) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, ...headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, ...rows.map((cells) => h("tr", {}, ...cells.map((c) => h("td", {}, c))))),
  );
}

/** Label/value pairs. */
export function fields(pairs: [string, Child][]): HTMLDListElement {
  const dl = h("dl", { class: "fields" });
  for (const [label, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    append(dl, h("dt", {}, label), h("dd", {}, value));
  }
  return dl;
}

/** Long hex, breakable, in a monospace font. */
export function mono(text: string | null | undefined): HTMLElement | null {
  return text ? h("code", { class: "mono" }, text) : null;
}

export function section(title: string, ...children: Child[]): HTMLElement {
  return h("section", { class: "panel" }, h("h2", {}, title), ...children);
}

/** Asks before a change; resolves true when confirmed. */
export function confirmAction(message: string, confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-label": "Confirm" });
    const finish = (ok: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(ok);
    };
    append(
      dialog,
      h("p", {}, message),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => finish(false) }, "Cancel"),
        h("button", { type: "button", class: "danger", onclick: () => finish(true) }, confirmLabel),
      ),
    );
    dialog.addEventListener("cancel", () => finish(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Replaces the contents of `el`. */
export function show(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

export function errorBox(message: string): HTMLElement {
  return h("p", { class: "error", role: "alert" }, message);
}
