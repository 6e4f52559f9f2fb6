//! The OpenAPI document (`/openapi.json`) and its UI (`/docs/`): every documented operation is
//! routed, answers only statuses it documents for a malformed request and for a missing key,
//! and every error body has the documented shape. (`.ci/run` also runs schemathesis against it.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mpc_testkit::{Backend, Cluster, http};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_as_documented() {
    let cluster = Cluster::builder()
        .backend(Backend::Sqlite)
        .server_parties(1)
        .party_api(true)
        .build()
        .await
        .unwrap();
    let api = cluster.party_api();
    let doc = http::get(api.http, "/openapi.json").await.unwrap();
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().unwrap();
    let mut names: Vec<&String> = paths.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "/api/v1/identity",
            "/api/v1/keygen/generate-user-share",
            "/api/v1/recovery/new-user-share",
            "/api/v1/refresh/with-user-share",
            "/api/v1/sign/with-user-share",
        ]
    );
    let ui = http::get(api.http, "/docs/").await.unwrap();
    assert_eq!(ui.status, 200, "the Swagger UI");

    let documented = |op: &Value, status: u16| op["responses"].get(status.to_string()).is_some();
    for (path, item) in paths {
        if let Some(op) = item.get("post") {
            for status in [400, 401, 413, 429, 503] {
                assert!(documented(op, status), "{path}: {status} undocumented");
            }
            // A body that is not the operation's: 400, documented, with the error shape.
            let r = api.post(path, &json!({"unexpected": true})).await;
            assert_eq!(r.status, 400, "{path}: {}", r.body);
            assert!(documented(op, r.status));
            assert!(!r.error_code().is_empty() && !r.error_message().is_empty());
            // No credentials: 401, documented.
            let r = api.post_with(path, &[], &json!({})).await;
            assert_eq!(r.status, 401, "{path}");
            assert_eq!(r.error_code(), "invalid_api_key");
        } else {
            let op = &item["get"];
            let r = http::get(api.http, path).await.unwrap();
            assert!(documented(op, r.status), "{path}: {}", r.status);
            assert!(r.body["identity_public_key"].is_string());
        }
    }
}
