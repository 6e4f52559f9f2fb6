//! What the operator console (`/admin`) needs besides the store: the services' own metrics,
//! scraped and summarised (signatures per minute, success rate, latency quantiles). The parties'
//! health comes from the coordinator's party registry (`GET /api/v1/parties`).
//!
//! Nothing here runs in the background: figures are sampled when the console asks, at most
//! every [`figures::MIN_SAMPLE_INTERVAL`], so an idle console costs nothing.

pub mod config;
pub mod figures;
pub mod prom_text;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub use config::ConsoleConfig;

/// How long one scrape or probe may take; the console polls every few seconds.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A larger answer is not a metrics page or a health answer.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// The console's shared state.
pub struct Console {
    pub figures: figures::FigureSampler,
}

impl Console {
    pub fn new(config: &ConsoleConfig) -> Arc<Self> {
        let client = HttpGet::new();
        Arc::new(Self {
            figures: figures::FigureSampler::new(client, config.metrics_urls.clone()),
        })
    }
}

/// `GET` over plain HTTP within [`PROBE_TIMEOUT`], answering the status and the body.
#[derive(Clone)]
pub(crate) struct HttpGet {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl HttpGet {
    fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(PROBE_TIMEOUT));
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// The body of a 2xx answer; otherwise a short reason fit for an operator.
    pub(crate) async fn get(&self, url: &str) -> Result<String, String> {
        let uri: http::Uri = url.parse().map_err(|_| "invalid URL".to_owned())?;
        let fetch = async {
            let response = self
                .client
                .get(uri)
                .await
                .map_err(|_| "unreachable".to_owned())?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("HTTP {}", status.as_u16()));
            }
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|_| "unreadable response".to_owned())?
                .to_bytes();
            Ok(String::from_utf8_lossy(&body).into_owned())
        };
        tokio::time::timeout(PROBE_TIMEOUT, fetch)
            .await
            .map_err(|_| "timed out".to_owned())?
    }
}

/// A URL as operators may see it: without `user:password@`.
pub(crate) fn display_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_never_show_in_a_url() {
        assert_eq!(
            super::display_url("http://user:secret@coordinator:8081/metrics"),
            "http://coordinator:8081/metrics"
        );
        assert_eq!(
            super::display_url("http://coordinator:8081/metrics"),
            "http://coordinator:8081/metrics"
        );
        assert_eq!(super::display_url("https://h"), "https://h");
    }
}
