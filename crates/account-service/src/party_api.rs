//! The Account Service's client of the Server Party API (integration guide §2.6: "Account
//! Service → Server Party API"): the device operations are relayed to it over the internal
//! network, and one-call signatures run the device's part through it.
//!
//! Every call carries a scoped access token (`Authorization: Bearer …`) for the session's
//! account: the Account Service has already authenticated the caller, and the Server Party API
//! needs no copy of the API keys — the token it gets is good for this one account and expires
//! (see `http::relay` for why the caller's own key is not forwarded).

use std::fmt;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use mpc_proto::{ApiError, ErrorBody, ErrorCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How the Account Service reaches the Server Party API.
#[derive(Clone)]
pub struct PartyApiClient {
    http: reqwest::Client,
    base_url: String,
}

impl fmt::Debug for PartyApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartyApiClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// The Server Party API's answer, as it came: status, the headers a client needs
/// (`Content-Type`, `Retry-After`), and the body.
#[derive(Debug)]
pub struct Relayed {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Relayed {
    /// The body as `T` on success, else the Server Party API's own error.
    pub fn into_result<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        if self.status.is_success() {
            return serde_json::from_slice(&self.body).map_err(|e| {
                ApiError::internal(&format_args!(
                    "the server party API answered an unexpected body: {e}"
                ))
            });
        }
        match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(ErrorBody { error }) => Err(error),
            Err(_) => Err(unexpected(self.status)),
        }
    }
}

fn unexpected(status: StatusCode) -> ApiError {
    tracing::warn!(%status, "the server party API answered without an error body");
    ApiError::new(
        ErrorCode::Unavailable,
        "the server party API answered unexpectedly",
    )
}

impl PartyApiClient {
    pub fn new(
        base_url: &str,
        timeout: Duration,
        tls: &mpc_service::TlsConfig,
    ) -> Result<Self, ApiError> {
        // reqwest's rustls has no built-in provider (no aws-lc build); the `mpc` binary installs
        // ring's at start, and so does this when nothing did (a test, another embedder).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = tls
            .reqwest_builder(reqwest::Client::builder())
            .map_err(|e| ApiError::invalid_argument(format!("TLS: {e}")))?;
        let http = builder
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ApiError::internal(&e))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// POSTs `body` (JSON) to `path` with the access token; the answer as it came.
    pub async fn post(
        &self,
        path: &str,
        token: &SecretString,
        body: &impl Serialize,
    ) -> Result<Relayed, ApiError> {
        let body = serde_json::to_vec(body).map_err(|e| ApiError::internal(&e))?;
        let url = format!("{}{path}", self.base_url);
        let response = self
            .http
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .bearer_auth(token.expose_secret())
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status();
        let mut headers = HeaderMap::new();
        for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
            if let Some(v) = response.headers().get(&name)
                && let Ok(v) = HeaderValue::from_bytes(v.as_bytes())
            {
                headers.insert(name, v);
            }
        }
        let body = response.bytes().await.map_err(|e| transport_error(&e))?;
        Ok(Relayed {
            status,
            headers,
            body,
        })
    }
}

/// Transport failures carry no internal detail to the client.
fn transport_error(e: &reqwest::Error) -> ApiError {
    if e.is_timeout() {
        tracing::warn!(error = %e, "the server party API did not answer in time");
        ApiError::new(
            ErrorCode::Timeout,
            "the server party API did not answer in time",
        )
    } else {
        tracing::warn!(error = %e, "the server party API is unreachable");
        ApiError::new(
            ErrorCode::Unavailable,
            "the server party API is unavailable",
        )
    }
}

/// The error when no Server Party API is configured.
pub fn not_configured() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "the server party API is not configured (MPC_PARTY_API_URL)",
    )
}
