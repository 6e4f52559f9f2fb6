//! The whole system as separate processes (issue 6): account service, coordinator, two routers,
//! three server parties and the Server Party API, each an `mpc serve` process on loopback, on the
//! real PostgreSQL (`DATABASE_URL`) and RabbitMQ (`AMQP_URL`). A 2-of-3 wallet (device through the
//! Server Party API, server parties 1 and 3) is created and used through HTTP only; server party 1
//! is killed with SIGKILL (and a session for it is created while it is down), then router A;
//! every signature is checked with k256 ecrecover, and at the end nothing may be lost: the
//! account, its shares, every session completed, the guide's metrics, JSON logs, no secret in
//! any output, and a clean exit of every process on SIGTERM.
//!
//! Without `DATABASE_URL` or `AMQP_URL` the test is skipped with a notice, except under `CI`,
//! where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "topology/api.rs"]
mod api;
#[path = "topology/procs.rs"]
mod procs;
#[path = "topology/system.rs"]
mod system;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use api::{Api, check_signature, has_metric, metric};
use system::{Secrets, Topology};

const DEVICE: &str = "user_device_topology";

fn remember_tokens(secrets: &mut Secrets, session: &Value) {
    for token in session["join_tokens"].as_object().unwrap().values() {
        secrets.handed_out.push(token.as_str().unwrap().to_owned());
    }
}

/// The wallet: its account id, group public key, and the device's share.
struct Wallet {
    account: String,
    public_key: String,
    share: String,
}

impl Wallet {
    /// Device + `server`, the device's part through the Server Party API; returns the session id.
    async fn sign_with_device(
        &self,
        api: &Api,
        secrets: &mut Secrets,
        server: &str,
        hash: [u8; 32],
    ) -> String {
        let session = api
            .create_sign(&self.account, &[DEVICE, server], hash)
            .await;
        remember_tokens(secrets, &session);
        let sig = api.device_sign(&session, DEVICE, &self.share, hash).await;
        check_signature(&self.public_key, &hash, &sig);
        session["session_id"].as_str().unwrap().to_owned()
    }

    /// Two server parties alone: they join from the bus; the result is read from the session.
    async fn sign_servers_only(
        &self,
        api: &Api,
        secrets: &mut Secrets,
        servers: [&str; 2],
        hash: [u8; 32],
    ) -> String {
        let session = api.create_sign(&self.account, &servers, hash).await;
        remember_tokens(secrets, &session);
        let id = session["session_id"].as_str().unwrap().to_owned();
        let done = api.completed_session(&id).await;
        check_signature(&self.public_key, &hash, &done);
        id
    }
}

async fn wait_party_api_ready(api: &Api, ready: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = api
            .client
            .get(format!("{}/readyz", api.party_api))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok == ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the Server Party API never became {}",
            if ready { "ready" } else { "unready" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until a server party has reported `reported` sessions since it started and runs none.
/// A sign completes when the coordinator has verified the signature, which can be a moment
/// before every signer has reported: a kill "between operations" waits for this.
async fn wait_party_idle(sys: &Topology, party: &str, reported: f64) {
    sys.metrics_until(
        party,
        &format!("{reported} sessions reported, none running"),
        |t| {
            metric(t, "mpc_party_sessions_total", &[("outcome", "reported")]) == reported
                && has_metric(t, "mpc_party_active_sessions")
                && metric(t, "mpc_party_active_sessions", &[]) == 0.0
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_as_processes_survives_killed_parties_and_routers_and_loses_nothing() {
    let Some(database_url) = mpc_store::testing::postgres_url() else {
        return;
    };
    let Some(amqp_url) = mpc_bus::testing::amqp_url() else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let started = Instant::now();
    let mut sys = Topology::start(&database_url, &amqp_url).await;
    eprintln!("topology ready after {:.1?}", started.elapsed());
    let api = Api {
        client: sys.client.clone(),
        key: sys.secrets.api_key.clone(),
        account: sys.url("account"),
        party_api: sys.url("party_api"),
    };

    // Keygen 2-of-3 through the Account Service: the device and server party 1 are on router A,
    // server party 3 on router B.
    let keygen = api
        .post(
            format!("{}/api/v1/mpc/keygen", api.account),
            json!({"threshold_n": 3, "threshold_t": 2, "username": "topology-wallet",
                   "participants": [
                       {"party_id": DEVICE, "device_type": "android"},
                       {"party_id": "server_party_1", "device_type": "server"},
                       {"party_id": "server_party_3", "device_type": "server"}]}),
        )
        .await;
    remember_tokens(&mut sys.secrets, &keygen);
    let keygen_session = keygen["session_id"].as_str().unwrap().to_owned();
    let share = api
        .post(
            format!("{}/api/v1/keygen/generate-user-share", api.party_api),
            json!({"session_id": keygen_session, "party_id": DEVICE,
                   "join_token": keygen["join_tokens"][DEVICE]}),
        )
        .await;
    let wallet = Wallet {
        account: keygen["account_id"].as_str().unwrap().to_owned(),
        public_key: share["public_key"].as_str().unwrap().to_lowercase(),
        share: share["share_data"].as_str().unwrap().to_owned(),
    };
    sys.secrets.handed_out.push(wallet.share.clone());
    let account = api.account_with_status(&wallet.account, "active").await;
    assert_eq!(
        account["public_key"].as_str().map(str::to_lowercase),
        Some(wallet.public_key.clone()),
        "{account}"
    );
    eprintln!("keygen done after {:.1?}", started.elapsed());

    let mut sessions = vec![keygen_session.clone()];
    let mut device_signs = 0;
    sessions.push(
        wallet
            .sign_with_device(&api, &mut sys.secrets, "server_party_1", [0x11; 32])
            .await,
    );
    device_signs += 1;

    // Server party 1 dies (SIGKILL), once done with the keygen and the sign. A session that
    // needs it is created while it is down: its event waits in the party's durable queue, the
    // device waits in the session, and the restarted party (same schema, same master key)
    // picks it up and signs.
    wait_party_idle(&sys, "party_1", 2.0).await;
    sys.kill("party_1");
    let hash = [0x22; 32];
    let pending = api
        .create_sign(&wallet.account, &[DEVICE, "server_party_1"], hash)
        .await;
    remember_tokens(&mut sys.secrets, &pending);
    sessions.push(pending["session_id"].as_str().unwrap().to_owned());
    let device = {
        let (api, pending, share) = (api.clone(), pending.clone(), wallet.share.clone());
        tokio::spawn(async move { api.device_sign(&pending, DEVICE, &share, hash).await })
    };
    sys.restart("party_1").await;
    check_signature(&wallet.public_key, &hash, &device.await.unwrap());
    device_signs += 1;
    sessions.push(
        wallet
            .sign_with_device(&api, &mut sys.secrets, "server_party_1", [0x33; 32])
            .await,
    );
    device_signs += 1;
    eprintln!("party 1 restarted, signed after {:.1?}", started.elapsed());

    // Router A dies (SIGKILL) once the parties are idle: the Server Party API, which uses it,
    // says it is not ready until the router is back on the same port and schema.
    wait_party_idle(&sys, "party_1", 2.0).await;
    wait_party_idle(&sys, "party_3", 1.0).await;
    sys.kill("router_a");
    wait_party_api_ready(&api, false).await;
    sys.restart("router_a").await;
    wait_party_api_ready(&api, true).await;
    sessions.push(
        wallet
            .sign_with_device(&api, &mut sys.secrets, "server_party_1", [0x44; 32])
            .await,
    );
    device_signs += 1;
    // Across the routers: party 1 (A) with party 3 (B), and the device (A) with party 3 (B).
    sessions.push(
        wallet
            .sign_servers_only(
                &api,
                &mut sys.secrets,
                ["server_party_1", "server_party_3"],
                [0x55; 32],
            )
            .await,
    );
    sessions.push(
        wallet
            .sign_with_device(&api, &mut sys.secrets, "server_party_3", [0x66; 32])
            .await,
    );
    device_signs += 1;
    let signs = sessions.len() - 1;
    eprintln!("router A restarted, signed after {:.1?}", started.elapsed());

    // Nothing lost: the account, its shares, and every session of its history completed.
    let account = api.account_with_status(&wallet.account, "active").await;
    assert_eq!(
        account["public_key"].as_str().map(str::to_lowercase),
        Some(wallet.public_key.clone())
    );
    let shares: BTreeSet<(String, String, bool)> = account["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["party_id"].as_str().unwrap().to_owned(),
                s["share_type"].as_str().unwrap().to_owned(),
                s["is_active"].as_bool().unwrap(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, bool)> = [
        (DEVICE, "user_device"),
        ("server_party_1", "server"),
        ("server_party_3", "server"),
    ]
    .iter()
    .map(|(p, t)| ((*p).to_owned(), (*t).to_owned(), true))
    .collect();
    assert_eq!(shares, expected, "{account}");
    for id in &sessions {
        api.completed_session(id).await;
    }
    check_audit_history(&api, &wallet.account, &sessions).await;

    check_metrics(&sys, signs, device_signs).await;

    // Every process stops cleanly on SIGTERM; then its whole output is there to inspect.
    sys.stop_all().await;
    check_outputs(&sys, &keygen_session);
    eprintln!(
        "topology test done in {:.1?} ({} sessions)",
        started.elapsed(),
        sessions.len()
    );
}

/// The audit log holds the account's history: each of our sessions completed (the outcome came
/// to the Account Service over the bus or its reconciliation), none failed or expired, and no
/// session we did not create.
async fn check_audit_history(api: &Api, account: &str, sessions: &[String]) {
    let ours: BTreeSet<&str> = sessions.iter().map(String::as_str).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = api
            .get(format!(
                "{}/api/v1/audit-logs?account_id={account}&limit=1000",
                api.account
            ))
            .await;
        let entries = page["entries"].as_array().unwrap();
        let with = |op: &str| -> BTreeSet<&str> {
            entries
                .iter()
                .filter(|e| e["operation"] == op)
                .filter_map(|e| e["session_id"].as_str())
                .collect()
        };
        for bad in ["session.failed", "session.expired"] {
            assert!(with(bad).is_empty(), "{bad} in the audit log: {page}");
        }
        let seen: BTreeSet<&str> = entries
            .iter()
            .filter_map(|e| e["session_id"].as_str())
            .collect();
        assert!(
            seen.is_subset(&ours),
            "sessions we did not create: {seen:?}"
        );
        if with("session.completed") == ours {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not every session's completion reached the account's history: {page}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The guide's metrics and each service's own. Counts can trail a response by a moment (a
/// sign completes before every signer has counted it), so each scrape waits for the expected
/// totals, and the other series are then checked against the same scrape.
async fn check_metrics(sys: &Topology, signs: usize, device_signs: usize) {
    let signs = signs as f64;
    let session_count = |t: &str, ty: &str, outcome: &str| {
        metric(
            t,
            "mpc_sessions_total",
            &[("type", ty), ("outcome", outcome)],
        )
    };
    // The coordinator: the guide's §6.3 metrics. It ran throughout, so it counted everything.
    let coordinator = sys
        .metrics_until("coordinator", "every session ended, none active", |t| {
            session_count(t, "keygen", "completed") == 1.0
                && session_count(t, "sign", "completed") == signs
                && has_metric(t, "mpc_active_sessions")
                && metric(t, "mpc_active_sessions", &[]) == 0.0
        })
        .await;
    assert_eq!(
        metric(&coordinator, "mpc_sessions_total", &[]),
        1.0 + signs,
        "nothing failed or expired: {coordinator}"
    );
    assert_eq!(metric(&coordinator, "mpc_session_success_rate", &[]), 1.0);
    assert_eq!(
        metric(&coordinator, "mpc_keygen_duration_seconds_count", &[]),
        1.0
    );
    assert_eq!(
        metric(&coordinator, "mpc_sign_duration_seconds_count", &[]),
        signs
    );
    assert!(metric(&coordinator, "mpc_grpc_requests_total", &[]) > 0.0);
    assert!(metric(&coordinator, "mpc_http_requests_total", &[]) > 0.0);

    // The server parties count their own part. Party 1 counts since its restart (4 signs), party
    // 3 took part in the keygen and the two cross-router signs, party 2 in nothing.
    for (party, keygens, party_signs) in [
        ("party_1", 0.0, 4.0),
        ("party_2", 0.0, 0.0),
        ("party_3", 1.0, 2.0),
    ] {
        let reported = |t: &str, ty: &str| {
            metric(
                t,
                "mpc_party_sessions_total",
                &[("type", ty), ("outcome", "reported")],
            )
        };
        let text = sys
            .metrics_until(party, "its sessions reported, none running", |t| {
                reported(t, "keygen") == keygens
                    && reported(t, "sign") == party_signs
                    && has_metric(t, "mpc_party_active_sessions")
                    && metric(t, "mpc_party_active_sessions", &[]) == 0.0
            })
            .await;
        assert_eq!(
            metric(&text, "mpc_party_sessions_total", &[("outcome", "failed")]),
            0.0,
            "{party}: {text}"
        );
        for (ty, n) in [("keygen", keygens), ("sign", party_signs)] {
            assert_eq!(
                metric(
                    &text,
                    "mpc_party_protocol_duration_seconds_count",
                    &[("type", ty)]
                ),
                n,
                "{party}: {text}"
            );
        }
    }

    // Both routers carried envelopes (router A since its restart).
    for router in ["router_a", "router_b"] {
        let text = sys
            .metrics_until(router, "envelopes", |t| {
                metric(t, "mpc_router_messages_total", &[]) > 0.0
            })
            .await;
        assert!(
            metric(&text, "mpc_grpc_requests_total", &[]) > 0.0,
            "{text}"
        );
    }

    let api_sessions = |t: &str, ty: &str| {
        metric(
            t,
            "mpc_party_api_sessions_total",
            &[("type", ty), ("outcome", "completed")],
        )
    };
    let party_api = sys
        .metrics_until("party_api", "every device session", |t| {
            api_sessions(t, "keygen") == 1.0 && api_sessions(t, "sign") == device_signs as f64
        })
        .await;
    assert_eq!(
        metric(&party_api, "mpc_party_api_sessions_total", &[]),
        1.0 + device_signs as f64,
        "none refused or failed: {party_api}"
    );

    let account = sys
        .metrics_until("account", "the active account", |t| {
            metric(t, "mpc_accounts_total", &[("status", "active")]) == 1.0
        })
        .await;
    assert_eq!(
        metric(
            &account,
            "mpc_http_requests_total",
            &[("route", "/api/v1/mpc/sign"), ("status", "201")]
        ),
        signs,
        "{account}"
    );
}

/// The coordinator's log is JSON (`MPC_LOG_FORMAT=json`) in the guide's words; no process wrote
/// a secret anywhere.
fn check_outputs(sys: &Topology, keygen_session: &str) {
    let outputs = sys.outputs();
    let coordinator = &outputs
        .iter()
        .find(|(name, _)| name == "coordinator.1.err")
        .unwrap()
        .1;
    let mut messages = Vec::new();
    for line in coordinator.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string(), "no level: {line}");
        messages.push(
            v["fields"]["message"]
                .as_str()
                .unwrap_or_else(|| panic!("no message: {line}"))
                .to_owned(),
        );
    }
    let short = &keygen_session[..8];
    for expected in [
        format!("Session {short} created: type=keygen, participants=3"),
        format!("Party server_party_3 joined session {short}"),
        format!("Session {short} started: all parties ready"),
        format!("Keygen completed: session={short}"),
    ] {
        assert!(
            messages.iter().any(|m| m.starts_with(&expected)),
            "the coordinator never logged {expected:?}"
        );
    }
    for (name, text) in &outputs {
        for (what, secret) in sys.secrets.all() {
            assert!(!text.contains(secret), "{name} contains a {what}");
        }
    }
}
