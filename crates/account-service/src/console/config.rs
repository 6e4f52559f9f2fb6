//! Where the console finds the services' metrics and the parties.
//!
//! | variable | example | |
//! |---|---|---|
//! | `MPC_CONSOLE_METRICS_URLS` | `http://coordinator:8081/metrics` | comma-separated; every coordinator replica (their counters are summed) |
//! | `MPC_CONSOLE_PARTIES` | `server_party_1=http://server-party-1:8091,…` | each server party's HTTP base URL |
//! | `MPC_CONSOLE_PARTY_API` | `http://server-party-api:8083` | the Server Party API's HTTP base URL |
//!
//! All optional: without them the console shows what the Account Service knows by itself.

use mpc_proto::PartyId;
use serde::Serialize;

use crate::error::AccountError;

/// What kind of party an endpoint is (the party registry's `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyKind {
    Server,
    PartyApi,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartyEndpoint {
    pub party_id: String,
    pub kind: PartyKind,
    /// HTTP base URL, without a trailing `/`.
    pub url: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// `/metrics` URLs with the coordinator's session metrics.
    pub metrics_urls: Vec<String>,
    /// The parties whose health the console shows.
    pub parties: Vec<PartyEndpoint>,
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
    /// From `MPC_CONSOLE_METRICS_URLS`, `MPC_CONSOLE_PARTIES` and `MPC_CONSOLE_PARTY_API`.
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
        let mut parties = Vec::new();
        for entry in list("MPC_CONSOLE_PARTIES") {
            let (id, url) = entry.split_once('=').ok_or_else(|| {
                AccountError::Config("MPC_CONSOLE_PARTIES: expected party_id=url, …".into())
            })?;
            let id = PartyId::parse(id.trim())
                .map_err(|e| AccountError::Config(format!("MPC_CONSOLE_PARTIES: {}", e.message)))?;
            parties.push(PartyEndpoint {
                party_id: id.to_string(),
                kind: PartyKind::Server,
                url: http_url("MPC_CONSOLE_PARTIES", url)?,
            });
        }
        if let Some(url) = var("MPC_CONSOLE_PARTY_API").filter(|u| !u.trim().is_empty()) {
            parties.push(PartyEndpoint {
                party_id: "party_api".into(),
                kind: PartyKind::PartyApi,
                url: http_url("MPC_CONSOLE_PARTY_API", &url)?,
            });
        }
        Ok(Self {
            metrics_urls,
            parties,
        })
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
        let c = from(&[
            (
                "MPC_CONSOLE_METRICS_URLS",
                "http://c1:8081/metrics, http://c2:8081/metrics",
            ),
            (
                "MPC_CONSOLE_PARTIES",
                "server_party_1=http://p1:8091/,server_party_2=http://p2:8091",
            ),
            ("MPC_CONSOLE_PARTY_API", "http://api:8083"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.metrics_urls.len(), 2);
        assert_eq!(c.parties.len(), 3);
        assert_eq!(c.parties[0].url, "http://p1:8091");
        assert_eq!(c.parties[2].kind, PartyKind::PartyApi);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("MPC_CONSOLE_METRICS_URLS", "coordinator:8081"),
            ("MPC_CONSOLE_PARTIES", "http://p1:8091"),
            ("MPC_CONSOLE_PARTIES", "bad id=http://p1:8091"),
            ("MPC_CONSOLE_PARTY_API", "ftp://x"),
            ("MPC_CONSOLE_PARTY_API", "https://api:8083"),
        ] {
            let err = from(&[(name, value)]).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}
