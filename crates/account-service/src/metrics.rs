//! The Account Service's own metrics, besides the request metrics of `mpc_service`:
//! `mpc_accounts_total{status}`, the number of accounts in each status.

use mpc_service::Metrics;
use mpc_store::account::{AccountStatus, AccountStore};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug)]
pub struct AccountMetrics {
    accounts: Family<StatusLabel, Gauge>,
}

impl AccountMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let this = Self {
            accounts: Family::default(),
        };
        metrics.register(
            "mpc_accounts_total",
            "Accounts by status (pending, active, suspended, failed)",
            this.accounts.clone(),
        );
        this
    }

    /// Re-reads the counts; a failure leaves the previous values (and is logged).
    pub async fn refresh(&self, store: &dyn AccountStore) {
        match store.count_accounts_by_status().await {
            Ok(counts) => {
                for status in AccountStatus::ALL {
                    let n = counts
                        .iter()
                        .find(|(s, _)| s == status)
                        .map_or(0, |(_, n)| *n);
                    self.accounts
                        .get_or_create(&StatusLabel {
                            status: status.as_str(),
                        })
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not count accounts"),
        }
    }
}
