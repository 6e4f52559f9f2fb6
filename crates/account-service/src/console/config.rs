//! Where the console finds the services' metrics.
//!
//! | variable | example | |
//! |---|---|---|
//! | `MPC_CONSOLE_METRICS_URLS` | `http://coordinator:8081/metrics` | comma-separated; every coordinator replica (their counters are summed) |
//!
//! Optional: without them the console shows what the Account Service knows by itself.

use crate::error::AccountError;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// `/metrics` URLs with the coordinator's session metrics.
    pub metrics_urls: Vec<String>,
}

/// Plain HTTP on the internal network, as the services serve their ops routes.
fn http_url(name: &str, raw: &str) -> Result<String, AccountError> {
    let url = raw.trim().trim_end_matches('/');
    let valid = url
        .strip_prefix("http://")
        .is_some_and(|rest| !rest.is_empty() && url.parse::<http::Uri>().is_ok());
    if valid {
        Ok(url.to_owned())
    } else {
        Err(AccountError::Config(format!(
            "{name}: expected http:// URLs"
        )))
    }
}

impl ConsoleConfig {
    /// From `MPC_CONSOLE_METRICS_URLS`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, AccountError> {
        let list = |name: &str| -> Vec<String> {
            var(name)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let metrics_urls = list("MPC_CONSOLE_METRICS_URLS")
            .iter()
            .map(|u| http_url("MPC_CONSOLE_METRICS_URLS", u))
            .collect::<Result<_, _>>()?;
        Ok(Self { metrics_urls })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<ConsoleConfig, AccountError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ConsoleConfig::from_vars(move |k| m.get(k).cloned())
    }

    #[test]
    fn reads_the_documented_variables() {
        assert_eq!(from(&[]).unwrap_or_default(), ConsoleConfig::default());
        let c = from(&[(
            "MPC_CONSOLE_METRICS_URLS",
            "http://c1:8081/metrics, http://c2:8081/metrics",
        )])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.metrics_urls.len(), 2);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("MPC_CONSOLE_METRICS_URLS", "coordinator:8081"),
            ("MPC_CONSOLE_METRICS_URLS", "ftp://x"),
            ("MPC_CONSOLE_METRICS_URLS", "https://c:8081/metrics"),
        ] {
            let err = from(&[(name, value)]).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}
