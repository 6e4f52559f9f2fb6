//! Rust SDK of MPC-System: a wallet back end's client of the Account Service, which is the one
//! base URL it needs (the device operations are relayed from there to the Server Party API).
//!
//! ```no_run
//! # async fn run() -> mpc_sdk::Result<()> {
//! use std::time::Duration;
//! use mpc_sdk::{Client, Config, KeygenRequest, Participant, SignParticipant};
//!
//! let client = Client::new(Config {
//!     base_url: "http://mpc-account-service:4000".into(),
//!     api_key: "your_api_key".into(),
//!     timeout: Duration::from_secs(300),
//!     ..Config::default()
//! })?;
//! let keygen = client
//!     .create_keygen(&KeygenRequest {
//!         threshold_n: 3,
//!         threshold_t: 2,
//!         participants: vec![
//!             Participant::new("user_device", "android"),
//!             Participant::new("server_party_1", "server"),
//!             Participant::new("server_party_2", "server"),
//!         ],
//!         ..KeygenRequest::default()
//!     })
//!     .await?;
//! let share = client
//!     .generate_user_share(&keygen.session_id, "user_device", &keygen.join_tokens["user_device"], None)
//!     .await?;
//! let signature = client
//!     .sign_transaction(
//!         &keygen.account_id,
//!         "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
//!         vec![
//!             SignParticipant::with_share("user_device", share.share_data),
//!             SignParticipant::server("server_party_1"),
//!         ],
//!     )
//!     .await?;
//! println!("r = {}, s = {}, v = {}", signature.r, signature.s, signature.v);
//! # Ok(()) }
//! ```
//!
//! Errors are [`Error`]: the API's stable `code`, HTTP status and message, or the client's own
//! failure. Requests answered 429 or 503 are retried after `Retry-After` (up to
//! [`Config::max_retries`] times); keygen and sign are also retried after a connection error,
//! under an automatic `Idempotency-Key`, so that a retry never creates a second session.
#![forbid(unsafe_code)]

mod error;
pub mod eth;
mod types;
pub mod webhooks;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::{Error, Result};
pub use types::*;
pub use webhooks::{DEFAULT_WEBHOOK_TOLERANCE, WebhookVerificationError, verify_webhook};

/// The longest long poll the API accepts on a session (`?wait=`).
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Waits between retries when the API gives no `Retry-After`: 0.5 s, 1 s, 2 s, … at most 10 s.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How to reach the Account Service.
#[derive(Clone)]
pub struct Config {
    /// `http://mpc-account-service:4000`.
    pub base_url: String,
    /// Sent as `X-API-Key`.
    pub api_key: String,
    /// A device's scoped access token, sent as `Authorization: Bearer` instead of the key
    /// (good only for the device operations of its account).
    pub access_token: Option<String>,
    /// The deadline of each call (a keygen's device share waits for the whole keygen).
    pub timeout: Duration,
    /// Retries after 429/503 (and connection errors for keygen and sign); 0 turns them off.
    pub max_retries: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:4000".into(),
            api_key: String::new(),
            access_token: None,
            timeout: Duration::from_secs(300),
            max_retries: 3,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("base_url", &self.base_url)
            .field("api_key", &"[REDACTED]")
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

/// A client of the Account Service. Cheap to clone (one connection pool).
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    config: Config,
}

/// Whether a request may be retried after a connection error (it carries an Idempotency-Key).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    OnThrottle,
    AlsoOnConnectionError,
}

fn parse_retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn idempotency_key() -> String {
    let mut b = [0u8; 16];
    // A clock-derived fallback keeps the key unique enough if the OS RNG is unavailable.
    if getrandom::fill(&mut b).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b = now.to_le_bytes();
    }
    format!("mpc-sdk-{}", hex::encode(b))
}

fn check_hash(message_hash: &str) -> Result<()> {
    let h = message_hash.trim().trim_start_matches("0x");
    if h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(
            "message_hash must be 32 bytes as 64 hex characters".into(),
        ))
    }
}

impl Client {
    pub fn new(config: Config) -> Result<Self> {
        // reqwest's rustls has no built-in provider here; use ring unless one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| Error::InvalidArgument(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            config: Config {
                base_url: config.base_url.trim_end_matches('/').to_owned(),
                ..config
            },
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        retry: Retry,
        timeout: Option<Duration>,
    ) -> Result<T> {
        let url = format!("{}{path}", self.config.base_url);
        let key = (retry == Retry::AlsoOnConnectionError).then(idempotency_key);
        let mut attempt = 0;
        loop {
            let mut request = self.http.request(method.clone(), &url);
            request = match &self.config.access_token {
                Some(token) => request.bearer_auth(token),
                None => request.header("X-API-Key", &self.config.api_key),
            };
            if let Some(key) = &key {
                request = request.header("Idempotency-Key", key);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            if let Some(t) = timeout {
                request = request.timeout(t);
            }
            let retries_left = attempt < self.config.max_retries;
            attempt += 1;
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) if e.is_timeout() => return Err(Error::Timeout(format!("{method} {url}"))),
                Err(e)
                    if retries_left
                        && retry == Retry::AlsoOnConnectionError
                        && (e.is_connect() || e.is_request()) =>
                {
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(source) => return Err(Error::Transport { url, source }),
            };
            let status = response.status();
            let retry_after = parse_retry_after(response.headers());
            let bytes = match response.bytes().await {
                Ok(b) => b,
                Err(e) if e.is_timeout() => return Err(Error::Timeout(format!("{method} {url}"))),
                Err(source) => return Err(Error::Transport { url, source }),
            };
            if status.is_success() {
                return serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Decode(format!("{method} {path}: {e}")));
            }
            let throttled = matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            );
            if throttled && retries_left {
                tokio::time::sleep(retry_after.unwrap_or_else(|| backoff(attempt))).await;
                continue;
            }
            return Err(api_error(status, retry_after, &bytes));
        }
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
        retry: Retry,
    ) -> Result<T> {
        self.call(Method::POST, path, Some(body), retry, None).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, timeout: Option<Duration>) -> Result<T> {
        self.call(Method::GET, path, None::<&()>, Retry::OnThrottle, timeout)
            .await
    }

    /// Creates a wallet account and its keygen session (guide §5.1 step 1).
    pub async fn create_keygen(&self, request: &KeygenRequest) -> Result<KeygenResponse> {
        self.post("/api/v1/mpc/keygen", request, Retry::AlsoOnConnectionError)
            .await
    }

    /// The device's part of the keygen (guide §5.1 step 2): answers when the key exists, with
    /// the device's share. `user_public_key` (P-256, SEC1 hex) seals the share to the device.
    pub async fn generate_user_share(
        &self,
        session_id: &str,
        party_id: &str,
        join_token: &str,
        user_public_key: Option<&str>,
    ) -> Result<UserShare> {
        let request = GenerateUserShareRequest {
            session_id: session_id.into(),
            party_id: party_id.into(),
            join_token: join_token.into(),
            user_public_key: user_public_key.map(Into::into),
        };
        self.post(
            "/api/v1/keygen/generate-user-share",
            &request,
            Retry::OnThrottle,
        )
        .await
    }

    /// Creates a sign session (guide §5.2 step 2). With a participant's `share_data` the
    /// Account Service signs in one call: the answer is completed and carries the signature.
    pub async fn create_sign(&self, request: &SignRequest) -> Result<SignSession> {
        check_hash(&request.message_hash)?;
        self.post("/api/v1/mpc/sign", request, Retry::AlsoOnConnectionError)
            .await
    }

    /// Signs `message_hash` (guide §5.4): with a device's `share_data` in one call; with
    /// server parties only, by waiting for the session. Errors if the session fails.
    pub async fn sign_transaction(
        &self,
        account_id: &str,
        message_hash: &str,
        participants: Vec<SignParticipant>,
    ) -> Result<Signature> {
        let session = self
            .create_sign(&SignRequest {
                account_id: account_id.into(),
                message_hash: message_hash.into(),
                participants,
            })
            .await?;
        if let (Some(signature), Some(r), Some(s), Some(v)) =
            (session.signature, session.r, session.s, session.v)
        {
            return Ok(Signature {
                session_id: session.session_id,
                signature,
                r,
                s,
                v,
            });
        }
        let done = self
            .wait_for_session(&session.session_id, self.config.timeout)
            .await?;
        done.signature().ok_or_else(|| Error::Session {
            session_id: done.session_id.clone(),
            status: done.status.clone(),
            reason: done.failure_reason.clone(),
            blamed_party_id: done.blamed_party_id.clone(),
        })
    }

    /// A session's current state.
    pub async fn get_session(&self, session_id: &str) -> Result<Session> {
        self.get(&format!("/api/v1/mpc/sessions/{session_id}"), None)
            .await
    }

    /// The session once it is final (long polls of at most 60 s each, no busy polling); a
    /// session still running after `timeout` is [`Error::Timeout`]. A failed or expired session
    /// is returned as it is: look at `status` and `failure_reason`.
    pub async fn wait_for_session(&self, session_id: &str, timeout: Duration) -> Result<Session> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.min(MAX_WAIT);
            let path = format!("/api/v1/mpc/sessions/{session_id}?wait={}", wait.as_secs());
            // The request may take the whole wait; give it room beyond that.
            let session: Session = self
                .get(&path, Some(wait + Duration::from_secs(30)))
                .await?;
            if session.is_final() {
                return Ok(session);
            }
            if left.is_zero() || Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "session {session_id} is still {} after {timeout:?}",
                    session.status
                )));
            }
        }
    }

    /// The device's part of a sign session (guide §5.2 step 3), through the Account Service.
    pub async fn sign_with_user_share(
        &self,
        request: &SignWithUserShareRequest,
    ) -> Result<DeviceSignature> {
        check_hash(&request.message_hash)?;
        self.post("/api/v1/sign/with-user-share", request, Retry::OnThrottle)
            .await
    }

    /// The device's part of a refresh: its new share for the same key.
    pub async fn refresh_with_user_share(
        &self,
        request: &RefreshWithUserShareRequest,
    ) -> Result<UserShare> {
        self.post(
            "/api/v1/refresh/with-user-share",
            request,
            Retry::OnThrottle,
        )
        .await
    }

    /// The device's part of a recovery.
    pub async fn recovery_new_user_share(
        &self,
        request: &RecoveryNewUserShareRequest,
    ) -> Result<UserShare> {
        self.post(
            "/api/v1/recovery/new-user-share",
            request,
            Retry::OnThrottle,
        )
        .await
    }

    pub async fn get_account(&self, account_id: &str) -> Result<Account> {
        self.get(&format!("/api/v1/accounts/{account_id}"), None)
            .await
    }

    /// Accounts, oldest first; `status` filters (`pending`, `active`, `suspended`, `failed`).
    pub async fn list_accounts(
        &self,
        status: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<AccountList> {
        let mut path = format!("/api/v1/accounts?limit={limit}&offset={offset}");
        if let Some(s) = status {
            path.push_str(&format!("&status={s}"));
        }
        self.get(&path, None).await
    }

    pub async fn suspend_account(&self, account_id: &str) -> Result<Account> {
        self.post(
            &format!("/api/v1/accounts/{account_id}/suspend"),
            &serde_json::json!({}),
            Retry::OnThrottle,
        )
        .await
    }

    pub async fn activate_account(&self, account_id: &str) -> Result<Account> {
        self.post(
            &format!("/api/v1/accounts/{account_id}/activate"),
            &serde_json::json!({}),
            Retry::OnThrottle,
        )
        .await
    }

    /// A refresh session: every party gets a new share of the same key.
    pub async fn refresh_account(&self, account_id: &str) -> Result<SessionCreated> {
        self.post(
            &format!("/api/v1/accounts/{account_id}/refresh"),
            &serde_json::json!({}),
            Retry::OnThrottle,
        )
        .await
    }

    /// A recovery session: the lost party's share rebuilt for `new_party_id`, same key.
    pub async fn recover_account(
        &self,
        account_id: &str,
        request: &RecoverRequest,
    ) -> Result<SessionCreated> {
        self.post(
            &format!("/api/v1/accounts/{account_id}/recover"),
            request,
            Retry::OnThrottle,
        )
        .await
    }

    /// A scoped access token with which a device may call the device operations for this
    /// account only ([`Config::access_token`]).
    pub async fn create_access_token(&self, account_id: &str) -> Result<AccessToken> {
        self.post(
            &format!("/api/v1/accounts/{account_id}/access-tokens"),
            &serde_json::json!({}),
            Retry::OnThrottle,
        )
        .await
    }
}

fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(5))
        .min(MAX_BACKOFF)
}

fn api_error(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> Error {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v["error"][name].as_str())
            .map(str::to_owned)
    };
    Error::Api {
        status: status.as_u16(),
        code: field("code").unwrap_or_else(|| "unknown".into()),
        message: field("message").unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("unexpected status")
                .to_lowercase()
        }),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_apis_code() {
        let e = api_error(
            StatusCode::NOT_FOUND,
            None,
            br#"{"error":{"code":"session_not_found","message":"session not found"}}"#,
        );
        assert_eq!(e.code(), Some("session_not_found"));
        assert_eq!(e.status(), Some(404));
        assert_eq!(
            e.to_string(),
            "session not found (session_not_found, HTTP 404)"
        );
        let e = api_error(StatusCode::BAD_GATEWAY, None, b"<html>");
        assert_eq!((e.code(), e.status()), (Some("unknown"), Some(502)));
    }

    #[test]
    fn hashes_are_checked_before_any_request() {
        assert!(
            check_hash("0xa1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90")
                .is_ok()
        );
        assert!(check_hash("a1b2").is_err());
        assert!(check_hash(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
