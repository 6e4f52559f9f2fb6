//! The Grafana dashboard (`deploy/grafana/mpc-system.json`) and the alerting rules
//! (`deploy/prometheus/alerts.yml`) only use metrics the services export: a running `mpc up`
//! goes through a wallet flow (a device keygen through the Server Party API, a server-only
//! keygen, signatures), then every service's `/metrics` is scraped and every `mpc_*` name the
//! two files use must be there, with the labels they group by.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use serde_json::{Value, json};

const API_KEY: &str = "observability-test-key-0123456789";

struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
    }
}

async fn start(dir: &Path) -> (Up, Value) {
    let child = Command::new(env!("CARGO_BIN_EXE_mpc"))
        .args(["up", "--ephemeral-ports", "--data-dir"])
        .arg(dir)
        .env("MPC_API_KEY", API_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.with_extension("log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let up = Up(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    let endpoints: Value = loop {
        if let Some(v) = std::fs::read(dir.join("endpoints.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            break v;
        }
        assert!(Instant::now() < deadline, "mpc up did not bind");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let account = endpoints["account"].as_str().unwrap().to_owned();
    while !reqwest::get(format!("{account}/readyz"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "mpc up did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (up, endpoints)
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> Value {
    let mut request = reqwest::Client::new()
        .request(method, &url)
        .header("X-API-Key", API_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let v: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {v}");
    v
}

async fn post(url: String, body: Value) -> Value {
    call(reqwest::Method::POST, url, Some(body)).await
}

async fn ended(account: &str, session: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = call(
            reqwest::Method::GET,
            format!(
                "{account}/api/v1/mpc/sessions/{}",
                session.as_str().unwrap()
            ),
            None,
        )
        .await;
        if ["completed", "failed", "expired"].contains(&s["status"].as_str().unwrap_or("")) {
            return s;
        }
        assert!(Instant::now() < deadline, "session never ended: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// k256's ecrecover, not the code that produced the signature.
fn check_signature(public_key_hex: &str, hash: &[u8; 32], sig: &Value) {
    let key = VerifyingKey::from_sec1_bytes(&hex::decode(public_key_hex).unwrap()).unwrap();
    let scalar = |name: &str| -> [u8; 32] {
        hex::decode(sig[name].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let signature = Signature::from_scalars(scalar("r"), scalar("s")).unwrap();
    let v = RecoveryId::from_byte(u8::try_from(sig["v"].as_u64().unwrap()).unwrap()).unwrap();
    assert_eq!(
        VerifyingKey::recover_from_prehash(hash, &signature, v).unwrap(),
        key
    );
}

/// Every `mpc_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("mpc_") {
        let start = i + at;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| start + n);
        if boundary {
            names.insert(text[start..end].to_owned());
        }
        i = end;
    }
    names
}

/// The PromQL of the dashboard's panels and variables.
fn dashboard_queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

/// The sample lines of `name` in `scrape` (exactly that name, any labels).
fn samples<'a>(scrape: &'a str, name: &str) -> Vec<&'a str> {
    scrape
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alerts_use_only_exported_metrics() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (_up, endpoints) = start(&dir.path().join("mpc-data")).await;
    let account = endpoints["account"].as_str().unwrap();
    let party_api = endpoints["party_api"].as_str().unwrap();

    // A device wallet (through the Server Party API) and a server-only one, each signing once.
    let device = "user_device_observability";
    let keygen = post(
        format!("{account}/api/v1/mpc/keygen"),
        json!({"threshold_n": 3, "threshold_t": 2, "participants": [
            {"party_id": device, "device_type": "android"},
            {"party_id": "server_party_1", "device_type": "server"},
            {"party_id": "server_party_2", "device_type": "server"}]}),
    )
    .await;
    let share = post(
        format!("{party_api}/api/v1/keygen/generate-user-share"),
        json!({"session_id": keygen["session_id"], "party_id": device,
               "join_token": keygen["join_tokens"][device]}),
    )
    .await;
    assert_eq!(
        ended(account, &keygen["session_id"]).await["status"],
        "completed"
    );
    let hash = [0x5au8; 32];
    let signing = post(
        format!("{account}/api/v1/mpc/sign"),
        json!({"account_id": keygen["account_id"], "message_hash": hex::encode(hash),
               "participants": [{"party_id": device}, {"party_id": "server_party_2"}]}),
    )
    .await;
    let signed = post(
        format!("{party_api}/api/v1/sign/with-user-share"),
        json!({"session_id": signing["session_id"], "party_id": device,
               "join_token": signing["join_tokens"][device], "share_data": share["share_data"],
               "message_hash": hex::encode(hash)}),
    )
    .await;
    check_signature(share["public_key"].as_str().unwrap(), &hash, &signed);

    let servers = post(
        format!("{account}/api/v1/mpc/keygen"),
        json!({"threshold_n": 3, "threshold_t": 2, "participants": [
            {"party_id": "server_party_1", "device_type": "server"},
            {"party_id": "server_party_2", "device_type": "server"},
            {"party_id": "server_party_3", "device_type": "server"}]}),
    )
    .await;
    let key = ended(account, &servers["session_id"]).await;
    let hash = [0xa5u8; 32];
    let signing = post(
        format!("{account}/api/v1/mpc/sign"),
        json!({"account_id": servers["account_id"], "message_hash": hex::encode(hash),
               "participants": [{"party_id": "server_party_1"}, {"party_id": "server_party_3"}]}),
    )
    .await;
    let signed = ended(account, &signing["session_id"]).await;
    check_signature(key["public_key"].as_str().unwrap(), &hash, &signed);

    // Every service's metrics, once the counts have caught up with the responses.
    let mut urls: Vec<String> = ["account", "coordinator_http", "router_http", "party_api"]
        .iter()
        .map(|k| endpoints[k].as_str().unwrap().to_owned())
        .collect();
    urls.extend(
        endpoints["parties"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_str().unwrap().to_owned()),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let scrape = loop {
        let mut all = String::new();
        for url in &urls {
            all.push_str(
                &reqwest::get(format!("{url}/metrics"))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap(),
            );
        }
        let signs = samples(&all, "mpc_sessions_total")
            .iter()
            .filter(|l| l.contains("type=\"sign\"") && l.contains("outcome=\"completed\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>();
        if signs == 2.0 {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "the coordinator never counted both signatures"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dashboard: Value = serde_json::from_slice(
        &std::fs::read(root.join("deploy/grafana/mpc-system.json")).unwrap(),
    )
    .unwrap();
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    let alerts = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();
    let expressions = alerts
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let used: BTreeSet<String> = queries
        .iter()
        .flat_map(|q| metric_names(q))
        // Annotations name metrics in prose too; those must exist like the rest.
        .chain(metric_names(&expressions))
        .collect();
    assert!(used.len() > 20, "too few metrics found: {used:?}");

    let mut missing = Vec::new();
    for name in &used {
        let exported = !samples(&scrape, name).is_empty();
        if !exported {
            missing.push(name.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "used but not exported: {missing:?}\n{scrape}"
    );

    // The labels the dashboard and the rules group by.
    for (name, labels) in [
        (
            "mpc_keygen_duration_seconds_bucket",
            &["threshold=\"2-of-3\"", "le="][..],
        ),
        (
            "mpc_sign_duration_seconds_bucket",
            &["threshold=\"2-of-3\"", "le="],
        ),
        ("mpc_sessions_total", &["type=", "outcome="]),
        (
            "mpc_http_requests_total",
            &["service=", "route=", "status="],
        ),
        ("mpc_grpc_requests_total", &["service=", "method=", "code="]),
        ("mpc_party_sessions_total", &["type=", "outcome="]),
        ("mpc_party_api_sessions_total", &["type=", "outcome="]),
        (
            "mpc_party_protocol_duration_seconds_bucket",
            &["type=", "le="],
        ),
        ("mpc_accounts_total", &["status="]),
        ("mpc_webhook_deliveries_total", &["result="]),
    ] {
        assert!(
            samples(&scrape, name)
                .iter()
                .any(|l| labels.iter().all(|label| l.contains(label))),
            "{name} without {labels:?}: {:?}",
            samples(&scrape, name)
        );
    }
    // The guide's names are the coordinator's alone (issue: one meaning per name).
    for line in samples(&scrape, "mpc_sign_duration_seconds_count") {
        assert!(line.contains("service=\"session-coordinator\""), "{line}");
    }
}
