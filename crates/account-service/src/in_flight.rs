//! Backpressure at the public entrance: sessions this replica created and that have not ended
//! count against a budget (`mpc_service::Admission`: a bounded FIFO queue in front of it, a
//! quick `429 overloaded` with `Retry-After` beyond both). A keygen, sign, refresh or recovery
//! is admitted *before* anything is created, so a refusal leaves no account, no session and
//! no idempotency record behind.
//!
//! A session's slot is freed when its outcome arrives, or after `hold_max` at the latest: a
//! session whose device never comes costs the parties nothing while it waits (they hold no
//! slot for it), so it must not hold the entrance's budget for its whole lifetime either — or
//! anyone with an API key could shut the entrance with abandoned keygens.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use mpc_proto::{ApiError, SessionId};
use mpc_service::{Admission, Admitted};
use tokio::time::Instant;

/// Admission of new sessions, and the slots of those in flight.
pub struct InFlight {
    admission: Admission,
    hold_max: Duration,
    held: Mutex<HashMap<SessionId, (Admitted, Instant)>>,
}

/// A slot admitted for a session about to be created; freed if dropped before
/// [`InFlight::hold`].
pub struct Ticket(Admitted);

impl InFlight {
    pub fn new(admission: Admission, hold_max: Duration) -> Self {
        Self {
            admission,
            hold_max,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Waits in line for a slot for `operation`, or `429 overloaded`.
    pub async fn admit(&self, operation: &'static str) -> Result<Ticket, ApiError> {
        self.admission.admit(operation).await.map(Ticket)
    }

    /// The ticket's slot now belongs to `session` until it ends (or `hold_max` passes).
    pub fn hold(&self, ticket: Ticket, session: SessionId) {
        let until = Instant::now() + self.hold_max;
        self.lock().insert(session, (ticket.0, until));
    }

    /// `session` ended: its slot is free.
    pub fn release(&self, session: SessionId) {
        self.lock().remove(&session);
    }

    /// Frees the slots held longer than `hold_max`; returns how many.
    pub fn expire(&self) -> usize {
        let now = Instant::now();
        let mut held = self.lock();
        let before = held.len();
        held.retain(|_, (_, until)| *until > now);
        before - held.len()
    }

    pub fn held(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, (Admitted, Instant)>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Expires held slots every `every` until `stop`.
    pub async fn run_expiry(&self, every: Duration, stop: mpc_service::Shutdown) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let freed = self.expire();
            if freed > 0 {
                tracing::debug!(
                    freed,
                    "admission slots of sessions still running freed after hold_max"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use mpc_proto::ErrorCode;
    use mpc_service::{AdmissionConfig, Metrics};

    use super::*;

    fn in_flight(budget: usize, hold_ms: u64) -> InFlight {
        InFlight::new(
            Admission::new(
                AdmissionConfig {
                    budget,
                    queue_limit: 0,
                    max_wait: Duration::ZERO,
                },
                &Metrics::new("test"),
            ),
            Duration::from_millis(hold_ms),
        )
    }

    #[tokio::test]
    async fn slots_are_held_until_the_end_or_hold_max() {
        let f = in_flight(2, 60_000);
        let (a, b) = (SessionId::new_random(), SessionId::new_random());
        f.hold(f.admit("sign").await.unwrap_or_else(|e| panic!("{e}")), a);
        f.hold(f.admit("sign").await.unwrap_or_else(|e| panic!("{e}")), b);
        assert_eq!(
            f.admit("sign").await.err().map(|e| e.code),
            Some(ErrorCode::Overloaded)
        );
        f.release(a);
        let ticket = f.admit("keygen").await.unwrap_or_else(|e| panic!("{e}"));
        // A ticket dropped unused (creation failed) frees its slot.
        drop(ticket);
        assert!(f.admit("keygen").await.is_ok());

        let short = in_flight(1, 20);
        short.hold(
            short
                .admit("keygen")
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            SessionId::new_random(),
        );
        assert!(short.admit("sign").await.is_err());
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(short.expire(), 1);
        assert!(short.admit("sign").await.is_ok());
    }
}
