//! Webhooks (issue 13 §3): an API key registers endpoints; the outcomes of the sessions it
//! started are pushed to them, signed with the webhook's secret.
//!
//! - Registration validates the URL (http/https, a host, no credentials), caps webhooks per key,
//!   and returns a random secret once. The secret is stored sealed (XChaCha20-Poly1305 under a
//!   key derived from the access-token seed with HKDF, the webhook id as associated data).
//! - Which key started a session is recorded before the session is (`webhook_session_owners`),
//!   read from the task-local [`CALLER_KEY`] that the API-key middleware sets, so an outcome
//!   goes only to the webhooks of the key that started it.
//! - [`Webhooks::enqueue`] runs before the outcome is applied to the account (in
//!   `outcomes.rs`), so a crash in between re-enqueues on the next observation; the store's
//!   unique (webhook, session, event) makes that, and an outcome observed twice, a no-op.
//! - [`delivery::run_worker`] sends due deliveries (leases let several replicas share them).

pub mod config;
pub mod delivery;

use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::Utc;
use hkdf::Hkdf;
use mpc_proto::{ApiError, ErrorCode, SessionId};
use mpc_service::Metrics;
use mpc_store::webhook::{NewEvent, NewWebhook, WebhookRecord, WebhookStore};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sha2::Sha256;
use zeroize::Zeroizing;

pub use config::WebhookConfig;

/// The events a webhook can subscribe to.
pub const EVENTS: [&str; 4] = [
    "session.completed",
    "session.failed",
    "session.expired",
    "account.activated",
];

const NONCE_LEN: usize = 24;
const SECRET_PREFIX: &str = "whsec_";
const MAX_URL_LEN: usize = 2048;

tokio::task_local! {
    /// The API key id of the request being served (set by `keys::require_api_key`).
    pub static CALLER_KEY: String;
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Delivery attempts by result, `mpc_webhook_deliveries_total{result}`: `delivered`, `retry`
/// (a non-2xx or no answer, to be tried again), `failed` (given up after the retry window).
#[derive(Clone, Debug, Default)]
pub struct WebhookMetrics {
    deliveries: Family<ResultLabel, Counter>,
}

impl WebhookMetrics {
    pub const RESULTS: [&'static str; 3] = ["delivered", "retry", "failed"];

    pub fn register(metrics: &Metrics) -> Self {
        let this = Self::default();
        // Exported from the start, at zero, so dashboards and alerts see them.
        for result in Self::RESULTS {
            let _ = this.deliveries.get_or_create(&ResultLabel { result });
        }
        metrics.register(
            "mpc_webhook_deliveries",
            "Webhook delivery attempts by result (delivered, retry, failed)",
            this.deliveries.clone(),
        );
        this
    }

    fn count(&self, result: &'static str) {
        self.deliveries.get_or_create(&ResultLabel { result }).inc();
    }
}

/// Registration, enqueueing and the keys to seal secrets.
pub struct Webhooks {
    pub store: Arc<dyn WebhookStore>,
    pub config: WebhookConfig,
    pub metrics: WebhookMetrics,
    seal_key: Zeroizing<[u8; 32]>,
    client: reqwest::Client,
    /// This replica's lease owner name.
    worker_id: String,
}

impl Webhooks {
    pub fn new(
        store: Arc<dyn WebhookStore>,
        config: WebhookConfig,
        metrics: WebhookMetrics,
        access_token_seed: &[u8; 32],
    ) -> Result<Self, String> {
        let mut seal_key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(b"mpc-system webhooks"), access_token_seed)
            .expand(b"webhook secret sealing key v1", seal_key.as_mut_slice())
            .map_err(|_| "hkdf expand".to_owned())?;
        // reqwest's rustls has no built-in provider (no aws-lc build); the `mpc` binary installs
        // ring at start, a library user (or a test) may not have: install it if none is.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // A receiver answers; it does not send the delivery elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("webhook http client: {e}"))?;
        Ok(Self {
            store,
            config,
            metrics,
            seal_key,
            client,
            worker_id: format!("account-service-{}", uuid::Uuid::new_v4()),
        })
    }

    fn cipher(&self) -> Result<XChaCha20Poly1305, ApiError> {
        XChaCha20Poly1305::new_from_slice(self.seal_key.as_slice())
            .map_err(|_| ApiError::internal(&"webhook sealing key"))
    }

    fn seal(&self, id: uuid::Uuid, secret: &str) -> Result<Vec<u8>, ApiError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| ApiError::internal(&e))?;
        let sealed = self
            .cipher()?
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| ApiError::internal(&"webhook secret sealing"))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// The webhook's secret; an error when it does not open (e.g. the access-token seed changed).
    pub(crate) fn open(
        &self,
        id: uuid::Uuid,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ApiError> {
        let fail = || ApiError::internal(&"a webhook secret does not open");
        if sealed.len() < NONCE_LEN {
            return Err(fail());
        }
        let nonce = XNonce::try_from(&sealed[..NONCE_LEN]).map_err(|_| fail())?;
        self.cipher()?
            .decrypt(
                &nonce,
                Payload {
                    msg: &sealed[NONCE_LEN..],
                    aad: id.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| fail())
    }

    /// Registers a webhook for `api_key_id`; returns it with its secret (shown once).
    pub async fn register(
        &self,
        api_key_id: &str,
        url: &str,
        events: &[String],
    ) -> Result<(WebhookRecord, Zeroizing<String>), ApiError> {
        let url = validate_url(url)?;
        let events = validate_events(events)?;
        let mut random = Zeroizing::new([0u8; 32]);
        getrandom::fill(random.as_mut_slice()).map_err(|e| ApiError::internal(&e))?;
        let secret = Zeroizing::new(format!("{SECRET_PREFIX}{}", hex::encode(random.as_slice())));
        let id = uuid::Uuid::new_v4();
        let webhook = NewWebhook {
            id,
            api_key_id: api_key_id.to_owned(),
            url,
            events,
            secret_sealed: self.seal(id, &secret)?,
            created_at: Utc::now(),
        };
        if !self
            .store
            .create_webhook(&webhook, self.config.max_per_key)
            .await?
        {
            return Err(ApiError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "this API key has {} webhooks already, the most allowed; delete one first",
                    self.config.max_per_key
                ),
            ));
        }
        Ok((webhook, secret))
    }

    /// Records the calling key (if the request has one) as the owner of `session_id`.
    pub async fn record_owner(&self, session_id: SessionId) -> Result<(), ApiError> {
        let Ok(key) = CALLER_KEY.try_with(Clone::clone) else {
            return Ok(());
        };
        self.store
            .set_session_owner(session_id, &key)
            .await
            .map_err(ApiError::from)
    }

    /// The events any webhook of the key that started `session_id` subscribes to (empty when
    /// none: nothing to prepare).
    pub async fn subscribed(
        &self,
        session_id: SessionId,
    ) -> Result<Vec<String>, mpc_store::StoreError> {
        let Some(owner) = self.store.session_owner(session_id).await? else {
            return Ok(Vec::new());
        };
        let mut events: Vec<String> = Vec::new();
        for hook in self.store.list_webhooks(&owner).await? {
            for e in hook.events {
                if !events.contains(&e) {
                    events.push(e);
                }
            }
        }
        Ok(events)
    }

    /// Enqueues `events` of a session for the webhooks of the key that started it.
    pub async fn enqueue(
        &self,
        session_id: SessionId,
        account_id: mpc_proto::AccountId,
        events: &[(&str, serde_json::Value)],
    ) -> Result<(), mpc_store::StoreError> {
        let Some(owner) = self.store.session_owner(session_id).await? else {
            return Ok(());
        };
        for (event, outcome) in events {
            let new = NewEvent {
                session_id,
                account_id,
                event: (*event).to_owned(),
                created_at: Utc::now(),
            };
            let body = |event_id: uuid::Uuid| {
                serde_json::json!({
                    "event_id": event_id,
                    "event": event,
                    "session_id": session_id,
                    "account_id": account_id,
                    "created_at": new.created_at,
                    "outcome": outcome,
                })
                .to_string()
            };
            let added = self.store.enqueue(&owner, &new, &body).await?;
            if added > 0 {
                tracing::debug!(%session_id, event, added, "webhook deliveries enqueued");
            }
        }
        Ok(())
    }
}

/// An absolute http(s) URL with a host and no credentials, at most 2048 bytes.
pub fn validate_url(raw: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::invalid_argument(format!("invalid webhook url: {why}"));
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(bad("url is required"));
    }
    if raw.len() > MAX_URL_LEN {
        return Err(bad("longer than 2048 bytes"));
    }
    let url = reqwest::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in the url are not accepted"));
    }
    if url.fragment().is_some() {
        return Err(bad("a fragment is not sent to the receiver; remove it"));
    }
    Ok(url.to_string())
}

/// One or more of [`EVENTS`], without duplicates, in the order given.
pub fn validate_events(events: &[String]) -> Result<Vec<String>, ApiError> {
    if events.is_empty() {
        return Err(ApiError::invalid_argument(format!(
            "events must name at least one of {}",
            EVENTS.join(", ")
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if !EVENTS.contains(&e.as_str()) {
            return Err(ApiError::invalid_argument(format!(
                "unknown event {e:?}: expected one of {}",
                EVENTS.join(", ")
            )));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(validate_url("https://example.com/hook").is_ok());
        assert!(validate_url("http://127.0.0.1:8080/x?y=1").is_ok());
        for bad in [
            "",
            "ftp://example.com",
            "example.com/hook",
            "https://u:p@example.com",
            "http://",
            "javascript:alert(1)",
        ] {
            let e = validate_url(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad}");
            assert!(
                e.message.starts_with("invalid webhook url"),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn events_are_checked() {
        assert!(validate_events(&[]).is_err());
        assert!(validate_events(&["session.started".into()]).is_err());
        assert_eq!(
            validate_events(&["session.failed".into(), "session.failed".into()]).unwrap(),
            vec!["session.failed".to_owned()]
        );
    }
}
