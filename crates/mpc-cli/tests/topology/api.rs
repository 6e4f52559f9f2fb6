//! The wallet back end's side of the test: HTTP calls to the Account Service and the Server Party
//! API with the API key, signature checks with k256 ecrecover, and reading Prometheus text.

use std::time::{Duration, Instant};

use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use serde_json::{Value, json};

/// How long one keygen or sign may take end to end before the test gives up on it.
const OPERATION_WITHIN: Duration = Duration::from_secs(90);

#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub key: String,
    pub account: String,
    pub party_api: String,
}

impl Api {
    pub async fn post(&self, url: String, body: Value) -> Value {
        let resp = self
            .client
            .post(&url)
            .header("X-API-Key", &self.key)
            .timeout(OPERATION_WITHIN)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "{url}: {status} {v}");
        v
    }

    pub async fn get(&self, url: String) -> Value {
        let resp = self
            .client
            .get(&url)
            .header("X-API-Key", &self.key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "{url}: {status} {v}");
        v
    }

    /// `POST /api/v1/mpc/sign` for `parties` of the account; the created session.
    pub async fn create_sign(&self, account: &str, parties: &[&str], hash: [u8; 32]) -> Value {
        let participants: Vec<Value> = parties.iter().map(|p| json!({"party_id": p})).collect();
        let session = self
            .post(
                format!("{}/api/v1/mpc/sign", self.account),
                json!({"account_id": account, "message_hash": format!("0x{}", hex::encode(hash)),
                       "participants": participants}),
            )
            .await;
        assert_eq!(session["session_type"], "sign", "{session}");
        session
    }

    /// The device's part of a sign session, through the Server Party API (synchronous: returns
    /// the signature once the coordinator has verified it).
    pub async fn device_sign(
        &self,
        session: &Value,
        device: &str,
        share: &str,
        hash: [u8; 32],
    ) -> Value {
        self.post(
            format!("{}/api/v1/sign/with-user-share", self.party_api),
            json!({"session_id": session["session_id"], "party_id": device,
                   "join_token": session["join_tokens"][device],
                   "share_data": share, "message_hash": hex::encode(hash)}),
        )
        .await
    }

    /// Waits for a session to complete (as the Account Service reports it) and returns it.
    pub async fn completed_session(&self, session_id: &str) -> Value {
        let deadline = Instant::now() + OPERATION_WITHIN;
        loop {
            let s = self
                .get(format!("{}/api/v1/mpc/sessions/{session_id}", self.account))
                .await;
            match s["status"].as_str() {
                Some("completed") => return s,
                Some("failed" | "expired") => panic!("session {session_id} ended: {s}"),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "session {session_id} did not complete: {s}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for the account to reach `status` and returns it (with its share rows).
    pub async fn account_with_status(&self, account: &str, status: &str) -> Value {
        let deadline = Instant::now() + OPERATION_WITHIN;
        loop {
            let a = self
                .get(format!("{}/api/v1/accounts/{account}", self.account))
                .await;
            if a["status"] == status {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "account never became {status}: {a}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `ecrecover(hash, r, s, v)` must give the wallet's key, and `r, s` must be a valid signature
/// under it (low-s included: k256 refuses a high s here).
pub fn check_signature(public_key_hex: &str, hash: &[u8; 32], sig: &Value) {
    let vk = VerifyingKey::from_sec1_bytes(&hex::decode(public_key_hex).unwrap()).unwrap();
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    hex::decode_to_slice(sig["r"].as_str().unwrap(), &mut r).unwrap();
    hex::decode_to_slice(sig["s"].as_str().unwrap(), &mut s).unwrap();
    let k = Signature::from_scalars(r, s).unwrap();
    let v = RecoveryId::from_byte(u8::try_from(sig["v"].as_u64().unwrap()).unwrap()).unwrap();
    assert_eq!(
        VerifyingKey::recover_from_prehash(hash, &k, v).unwrap(),
        vk,
        "ecrecover must return the wallet key: {sig}"
    );
}

/// The sum of the samples of `name` whose labels include every `labels` pair (0 when none).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (label_set, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once('}')?,
                None if rest.starts_with(' ') => ("", rest),
                None => return None,
            };
            if !labels
                .iter()
                .all(|(k, v)| label_set.contains(&format!("{k}=\"{v}\"")))
            {
                return None;
            }
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

/// Whether a metric of that exact name is exposed at all (any sample).
pub fn has_metric(text: &str, name: &str) -> bool {
    text.lines().filter(|l| !l.starts_with('#')).any(|l| {
        l.strip_prefix(name)
            .is_some_and(|r| r.starts_with(['{', ' ']))
    })
}

#[test]
fn metric_reads_labelled_and_plain_samples() {
    let text = "# HELP x.\nmpc_sessions_total{service=\"c\",type=\"sign\",outcome=\"completed\"} 3\n\
                mpc_sessions_total{service=\"c\",type=\"keygen\",outcome=\"completed\"} 1\n\
                mpc_sessions_total_other 9\nmpc_active_sessions 2\n";
    assert_eq!(metric(text, "mpc_sessions_total", &[]), 4.0);
    assert_eq!(metric(text, "mpc_sessions_total", &[("type", "sign")]), 3.0);
    assert_eq!(metric(text, "mpc_active_sessions", &[]), 2.0);
    assert_eq!(metric(text, "mpc_missing", &[]), 0.0);
    assert!(has_metric(text, "mpc_active_sessions") && !has_metric(text, "mpc_sessions"));
}
