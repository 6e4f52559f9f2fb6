//! What the operator console (`/admin`) needs besides the store: the services' own metrics,
//! scraped and summarised (signatures per minute, success rate, latency quantiles), and the
//! health of the parties (an interim registry: see [`parties`]).
//!
//! Nothing here runs in the background: figures are sampled when the console asks, at most
//! every [`figures::MIN_SAMPLE_INTERVAL`], so an idle console costs nothing.

pub mod config;
pub mod figures;
pub mod parties;
pub mod prom_text;

use std::sync::Arc;
use std::time::Duration;

pub use config::{ConsoleConfig, PartyEndpoint, PartyKind};

/// How long one scrape or probe may take; the console polls every few seconds.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The console's shared state.
pub struct Console {
    pub figures: figures::FigureSampler,
    pub parties: parties::PartyProbe,
}

impl Console {
    pub fn new(config: &ConsoleConfig) -> Result<Arc<Self>, String> {
        let client = reqwest::Client::builder()
            .timeout(PROBE_TIMEOUT)
            .connect_timeout(PROBE_TIMEOUT)
            .build()
            .map_err(|e| format!("console http client: {e}"))?;
        Ok(Arc::new(Self {
            figures: figures::FigureSampler::new(client.clone(), config.metrics_urls.clone()),
            parties: parties::PartyProbe::new(client, config.parties.clone()),
        }))
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
