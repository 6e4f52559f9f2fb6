//! The operator console's files, served at `/admin/` from the binary (no CDN; it works offline).
//!
//! Sources: `console/src/*.ts` (compiled by `tsc` into `console/dist/`, committed; CI rebuilds
//! and compares) and `console/public/` (served as written). The page holds no data of its own:
//! it signs in with an admin API key (kept in the tab's session storage) and calls the API.
//! Every answer carries a strict Content-Security-Policy: scripts, styles and requests only from
//! this origin, no inline code, no framing.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// Only this origin's files and API; nothing inline, no plugins, no framing, no form posts.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../../console/public/index.html");

/// `/admin/assets/<name>` → (content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../console/public/style.css"),
    ),
    ("main.js", JS, include_str!("../../console/dist/main.js")),
    ("api.js", JS, include_str!("../../console/dist/api.js")),
    ("dom.js", JS, include_str!("../../console/dist/dom.js")),
    (
        "format.js",
        JS,
        include_str!("../../console/dist/format.js"),
    ),
    (
        "overview.js",
        JS,
        include_str!("../../console/dist/overview.js"),
    ),
    (
        "sessions.js",
        JS,
        include_str!("../../console/dist/sessions.js"),
    ),
    (
        "accounts.js",
        JS,
        include_str!("../../console/dist/accounts.js"),
    ),
    ("audit.js", JS, include_str!("../../console/dist/audit.js")),
    ("keys.js", JS, include_str!("../../console/dist/keys.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route("/admin/", get(index))
        .route("/admin/assets/{name}", get(asset))
}

fn with_headers(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            // Small files that change with the binary: always revalidate.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    with_headers("text/html; charset=utf-8", INDEX)
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => with_headers(content_type, body),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every built or public file is served, so a new module cannot be forgotten here.
    #[test]
    fn every_console_file_is_served() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk = BTreeSet::new();
        for dir in ["dist", "public"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"))
            {
                let name = entry
                    .unwrap_or_else(|e| panic!("{e}"))
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                if name != "index.html" {
                    on_disk.insert(name);
                }
            }
        }
        let served: BTreeSet<String> = ASSETS.iter().map(|(n, _, _)| (*n).to_owned()).collect();
        assert_eq!(on_disk, served);
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_nothing_inline() {
        for (name, _, body) in ASSETS.iter().chain([&("index.html", "", INDEX)]) {
            for banned in [
                "http://",
                "https://",
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
            ] {
                assert!(!body.contains(banned), "{name} contains {banned}");
            }
        }
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style="));
    }
}
