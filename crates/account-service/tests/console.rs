//! The operator console's endpoints over real HTTP, on SQLite and PostgreSQL: admin keys only;
//! sessions under filters with the coordinator's live status; account search; the overview's
//! counts and figures (from the coordinator's real `/metrics`); and the console's files with their security headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mpc_store::testing::TestDb;
use serde_json::{Value, json};

async fn operator_key(c: &Cluster) -> String {
    let created = c
        .admin_post(
            "/api/v1/admin/api-keys",
            &json!({"name": "wallet", "scope": "operator"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    created.body["api_key"].as_str().unwrap().to_owned()
}

fn ids(page: &Value, list: &str, id: &str) -> Vec<String> {
    page[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[id].as_str().unwrap().to_owned())
        .collect()
}

async fn console_reads_are_for_admin_keys_only(t: TestDb) {
    let c = Cluster::start(t).await;
    let operator = operator_key(&c).await;
    for path in [
        "/api/v1/admin/overview",
        "/api/v1/admin/sessions",
        "/api/v1/admin/accounts",
    ] {
        c.get(path, None).await.expect_error(401, "invalid_api_key");
        c.get(path, Some(&operator))
            .await
            .expect_error(403, "permission_denied");
        assert_eq!(c.admin_get(path).await.status, 200, "{path}");
    }
    // Any key may list the parties (the registry's contract); none configured here.
    let parties = c.get("/api/v1/parties", Some(&operator)).await;
    assert_eq!(
        (parties.status, &parties.body),
        (200, &json!({"parties": []}))
    );
    c.stop().await;
}
mpc_store::backend_tests!(
    console_reads_are_for_admin_keys_only,
    console_reads_are_for_admin_keys_only
);

async fn sessions_accounts_and_overview(t: TestDb) {
    let c = Cluster::start(t).await;
    // An active account that signed once; a keygen that failed; a keygen still waiting.
    let (account, key) = active_account(&c).await;
    let sign = c
        .admin_post(
            "/api/v1/mpc/sign",
            &json!({"account_id": account, "message_hash": hex::encode([7u8; 32]),
                    "participants": [{"party_id": "user_device_12345"}, {"party_id": "server_party_1"}]}),
        )
        .await;
    complete_sign(&c, &sign.body, &key, &[7u8; 32]).await;
    c.wait_for_session_end(sign.body["session_id"].as_str().unwrap())
        .await;
    let mut named = guide_keygen();
    named["username"] = json!("Carol_Example");
    named["email"] = json!("carol@example.com");
    let failing = c.admin_post("/api/v1/mpc/keygen", &named).await;
    fail_session(&c, &failing.body, "keygen failed: abort", "server_party_2").await;
    let failed_account = failing.body["account_id"].as_str().unwrap().to_owned();
    c.wait_for_account(&failed_account, |a| a["status"] == "failed")
        .await;
    let waiting = c.admin_post("/api/v1/mpc/keygen", &guide_keygen()).await;
    let waiting_id = waiting.body["session_id"].as_str().unwrap().to_owned();

    // Sessions: newest first, filtered; the pending one with the coordinator's status.
    let all = c.admin_get("/api/v1/admin/sessions").await;
    assert_eq!(all.body["total"], 4, "{:?}", all.body);
    assert_eq!(ids(&all.body, "sessions", "session_id")[0], waiting_id);
    assert_eq!(all.body["sessions"][0]["status"], "pending");
    assert_eq!(all.body["sessions"][0]["live_status"], "created");
    let signs = c.admin_get("/api/v1/admin/sessions?type=sign").await;
    assert_eq!(
        ids(&signs.body, "sessions", "session_id"),
        [sign.body["session_id"].as_str().unwrap()]
    );
    assert_eq!(signs.body["sessions"][0]["status"], "completed");
    let failed = c.admin_get("/api/v1/admin/sessions?status=failed").await;
    let row = &failed.body["sessions"][0];
    assert_eq!(
        (
            &row["failure_reason"],
            &row["blamed_party_id"],
            failed.body["total"].as_u64()
        ),
        (
            &json!("keygen failed: abort"),
            &json!("server_party_2"),
            Some(1)
        )
    );
    let mine = c
        .admin_get(&format!("/api/v1/admin/sessions?account_id={account}"))
        .await;
    assert_eq!(mine.body["total"], 2);
    let future = c
        .admin_get("/api/v1/admin/sessions?since=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(future.body["total"], 0);
    for bad in [
        "type=transfer",
        "status=done",
        "since=yesterday",
        "account_id=x",
    ] {
        c.admin_get(&format!("/api/v1/admin/sessions?{bad}"))
            .await
            .expect_error(400, "invalid_argument");
    }

    // Accounts: by part of a name or email, by address, by id; bad input is a 400.
    let carol = c.admin_get("/api/v1/admin/accounts?q=carol_ex").await;
    assert_eq!(
        ids(&carol.body, "accounts", "account_id"),
        [failed_account.as_str()]
    );
    let viewed = c.admin_get(&format!("/api/v1/accounts/{account}")).await;
    let address = viewed.body["ethereum_address"].as_str().unwrap().to_owned();
    for q in [address.clone(), address.to_lowercase(), account.clone()] {
        let found = c.admin_get(&format!("/api/v1/admin/accounts?q={q}")).await;
        assert_eq!(
            ids(&found.body, "accounts", "account_id"),
            [account.as_str()],
            "{q}"
        );
    }
    let active = c.admin_get("/api/v1/admin/accounts?status=active").await;
    assert_eq!(active.body["total"], 1);
    c.admin_get("/api/v1/admin/accounts?status=gone")
        .await
        .expect_error(400, "invalid_argument");
    c.admin_get(&format!("/api/v1/admin/accounts?q={}", "x".repeat(300)))
        .await
        .expect_error(400, "invalid_argument");

    // The overview: counts, the running session, accounts, figures from the real coordinator.
    let o = c.admin_get("/api/v1/admin/overview").await;
    assert_eq!(o.status, 200, "{:?}", o.body);
    let count = |ty: &str, status: &str| {
        o.body["session_counts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["session_type"] == ty && c["status"] == status)
            .map_or(0, |c| c["count"].as_u64().unwrap())
    };
    assert_eq!(
        (
            count("keygen", "completed"),
            count("keygen", "failed"),
            count("keygen", "pending"),
            count("sign", "completed")
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(o.body["live_total"], 1);
    assert_eq!(
        o.body["live_sessions"][0]["session_id"],
        waiting_id.as_str()
    );
    let f = &o.body["figures"];
    assert_eq!(f["available"], true, "{f}");
    assert_eq!(f["sources"][0]["ok"], true, "{f}");
    // Two keygens and a sign ended: one failed.
    assert!(
        (f["success_rate_since_start"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9,
        "{f}"
    );
    // The coordinator refreshes its gauge on its own schedule: present, not necessarily 1 yet.
    assert!(f["active_sessions"].is_number(), "{f}");
    let sign_all = f["sign"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["threshold"] == "all")
        .unwrap();
    assert_eq!(sign_all["count"], 1, "{f}");
    assert!(sign_all["p95_seconds"].as_f64().unwrap() > 0.0, "{f}");
    c.stop().await;
}
mpc_store::backend_tests!(
    sessions_accounts_and_overview,
    sessions_accounts_and_overview
);

async fn the_console_is_served_with_a_strict_policy(t: TestDb) {
    let c = Cluster::start(t).await;
    let redirect = c.get("/admin", None).await;
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.headers["location"], "/admin/");
    let index = c.get("/admin/", None).await;
    assert_eq!(index.status, 200);
    let csp = index.headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert_eq!(index.headers["x-frame-options"], "DENY");
    assert!(
        index
            .body
            .as_str()
            .unwrap()
            .contains("/admin/assets/main.js")
    );
    let script = c.get("/admin/assets/main.js", None).await;
    assert_eq!(script.status, 200);
    assert!(
        script.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(script.headers["x-content-type-options"], "nosniff");
    assert_eq!(c.get("/admin/assets/secrets.json", None).await.status, 404);
    assert_eq!(
        c.get("/admin/assets/..%2Fsrc%2Fmain.ts", None).await.status,
        404
    );
    // The console's endpoints are documented.
    let openapi = c.get("/openapi.json", None).await;
    for path in [
        "/api/v1/admin/overview",
        "/api/v1/admin/sessions",
        "/api/v1/admin/accounts",
        "/api/v1/parties",
    ] {
        assert!(
            openapi.body["paths"][path]["get"].is_object(),
            "{path} undocumented"
        );
    }
    c.stop().await;
}
mpc_store::backend_tests!(
    the_console_is_served_with_a_strict_policy,
    the_console_is_served_with_a_strict_policy
);
