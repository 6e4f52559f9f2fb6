// The console's shell: sign-in, navigation, and routing between pages (#/overview,
// #/sessions[/id], #/accounts[/id], #/audit, #/keys). Each page renders into the main element
// and may poll; polling stops when the page is left.
import { ApiError, apiKey, signIn, signOut } from "./api.js";
import { append, errorBox, h, show } from "./dom.js";
import * as accounts from "./accounts.js";
import * as audit from "./audit.js";
import * as keys from "./keys.js";
import * as overview from "./overview.js";
import * as sessions from "./sessions.js";
const PAGES = {
    overview: { title: "Overview", render: overview.render },
    sessions: { title: "Sessions", render: sessions.render },
    accounts: { title: "Accounts", render: accounts.render },
    audit: { title: "Audit log", render: audit.render },
    keys: { title: "API keys", render: keys.render },
};
const app = document.getElementById("app");
let generation = 0;
const timers = [];
function stopTimers() {
    while (timers.length)
        window.clearTimeout(timers.pop());
}
/** A 401 while signed in: the key was revoked or expired. */
function handleSignedOut(error) {
    if (error instanceof ApiError && error.status === 401 && apiKey()) {
        signOut();
        renderSignIn("The API key is no longer accepted; sign in again.");
        return true;
    }
    return false;
}
function renderSignIn(message) {
    generation++;
    stopTimers();
    const input = h("input", {
        type: "password",
        id: "api-key",
        name: "api-key",
        autocomplete: "off",
        placeholder: "mpc_…",
        required: true,
    });
    const status = h("div", { id: "sign-in-status" }, message ? errorBox(message) : null);
    const form = h("form", { class: "sign-in", id: "sign-in" }, h("h1", {}, "MPC-System operator console"), h("p", {}, "Sign in with an API key that has the admin scope. It is kept in this tab only."), h("label", { for: "api-key" }, "API key"), input, h("button", { type: "submit" }, "Sign in"), status);
    form.addEventListener("submit", async (event) => {
        event.preventDefault();
        show(status, h("p", {}, "Checking…"));
        try {
            await signIn(input.value);
            input.value = "";
            route();
        }
        catch (e) {
            input.value = "";
            show(status, errorBox(e instanceof ApiError ? e.message : "the service is unreachable"));
        }
    });
    show(app, form);
    input.focus();
}
function renderShell(active) {
    const nav = h("nav", {}, ...Object.entries(PAGES).map(([name, p]) => h("a", { href: `#/${name}`, class: name === active ? "active" : undefined }, p.title)));
    const signOutButton = h("button", {
        type: "button",
        class: "secondary",
        id: "sign-out",
        onclick: () => {
            signOut();
            window.location.hash = "";
            renderSignIn();
        },
    }, "Sign out");
    const main = h("main", { id: "page" });
    show(app, h("header", {}, h("span", { class: "brand" }, "MPC-System"), nav, signOutButton), h("div", { id: "notice", role: "status" }), main);
    return main;
}
function route() {
    if (!apiKey()) {
        renderSignIn();
        return;
    }
    generation++;
    stopTimers();
    const mine = generation;
    const [pathPart, queryPart = ""] = window.location.hash.replace(/^#\/?/, "").split("?", 2);
    const [name = "overview", ...rest] = pathPart.split("/").filter(Boolean);
    const page = PAGES[name] ? name : "overview";
    document.title = `${PAGES[page].title} · MPC-System`;
    const main = renderShell(page);
    const ctx = {
        main,
        path: rest.map(decodeURIComponent),
        params: new URLSearchParams(queryPart),
        current: () => generation === mine,
        every(ms, task) {
            const tick = async () => {
                if (generation !== mine)
                    return;
                try {
                    await task();
                }
                catch (e) {
                    if (!handleSignedOut(e) && generation === mine) {
                        ctx.notify(e instanceof ApiError ? e.message : "the service is unreachable", "error");
                    }
                }
                if (generation === mine)
                    timers.push(window.setTimeout(tick, ms));
            };
            void tick();
        },
        notify(message, kind = "ok") {
            const notice = document.getElementById("notice");
            if (!notice)
                return;
            show(notice, h("p", { class: kind === "error" ? "error" : "ok" }, message));
        },
    };
    PAGES[page].render(ctx).catch((e) => {
        if (handleSignedOut(e) || generation !== mine)
            return;
        append(main, errorBox(e instanceof ApiError ? e.message : "the service is unreachable"));
    });
}
window.addEventListener("hashchange", route);
route();
