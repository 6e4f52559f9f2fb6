//! Wake-ups for waiting subscribers and long-polls, per mailbox.
//!
//! A waiter registers its mailbox *before* it reads the database, so a delivery committed
//! between its read and its wait still wakes it. The sources of wake-ups are this process's own
//! commits (right after `route` returns) and, on PostgreSQL, the `LISTEN` feed, which carries
//! every replica's commits. Waiters also poll slowly, in case a notification is lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mpc_store::StoreError;
use mpc_store::router::{Change, Mailbox, RouterStore};
use tokio::sync::watch;

use crate::Shutdown;

#[derive(Clone, Debug, Default)]
pub struct Hub {
    waiters: Arc<Mutex<HashMap<Mailbox, watch::Sender<()>>>>,
}

impl Hub {
    /// Registers interest in `mailbox` until the returned watch is dropped.
    pub fn watch(&self, mailbox: &Mailbox) -> MailboxWatch {
        let receiver = self
            .lock()
            .entry(mailbox.clone())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe();
        MailboxWatch {
            hub: self.clone(),
            mailbox: mailbox.clone(),
            receiver: Some(receiver),
        }
    }

    /// Wakes everyone waiting on `mailbox`.
    pub fn wake(&self, mailbox: &Mailbox) {
        if let Some(sender) = self.lock().get(mailbox) {
            sender.send_replace(());
        }
    }

    /// Wakes every waiter (notifications may have been lost, or sessions were purged).
    pub fn wake_all(&self) {
        for sender in self.lock().values() {
            sender.send_replace(());
        }
    }

    /// How many mailboxes have waiters (for tests and debugging).
    pub fn watched_mailboxes(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Mailbox, watch::Sender<()>>> {
        // Nothing in the map can be left half-updated by a panic: use it as is.
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One waiter's registration.
#[derive(Debug)]
pub struct MailboxWatch {
    hub: Hub,
    mailbox: Mailbox,
    receiver: Option<watch::Receiver<()>>,
}

impl MailboxWatch {
    /// Completes when the mailbox was woken since the last call (or since registration).
    pub async fn changed(&mut self) {
        match self.receiver.as_mut() {
            // The hub keeps the sender while any receiver exists, so this does not fail.
            Some(receiver) => {
                let _ = receiver.changed().await;
            }
            None => std::future::pending().await,
        }
    }
}

impl Drop for MailboxWatch {
    fn drop(&mut self) {
        let mut waiters = self.hub.lock();
        drop(self.receiver.take());
        if waiters
            .get(&self.mailbox)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            waiters.remove(&self.mailbox);
        }
    }
}

/// Forwards the store's cross-process change feed (PostgreSQL `LISTEN`) to the hub until
/// `shutdown`. Without a feed (SQLite) there is nothing to do: this process's own commits wake
/// its waiters directly.
pub async fn pump_change_feed(store: Arc<dyn RouterStore>, hub: Hub, shutdown: Shutdown) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let feed = tokio::select! {
            () = shutdown.cancelled() => return,
            feed = store.change_feed() => feed,
        };
        match feed {
            Ok(None) => return,
            Ok(Some(mut feed)) => {
                // Anything committed while we were not listening must be looked at.
                hub.wake_all();
                loop {
                    let change: Result<Change, StoreError> = tokio::select! {
                        () = shutdown.cancelled() => return,
                        change = feed.next() => change,
                    };
                    match change {
                        Ok(Change::Mailbox(mailbox)) => hub.wake(&mailbox),
                        Ok(Change::Reconnected) => hub.wake_all(),
                        Err(e) => {
                            tracing::warn!(error = %e, "router notification feed failed; reconnecting");
                            break;
                        }
                    }
                    backoff = Duration::from_millis(100);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for router notifications; retrying");
            }
        }
        if crate::sleep_or_shutdown(backoff, &shutdown).await {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use mpc_proto::{PartyId, SessionId};

    use super::*;

    fn mailbox(party: &str) -> Mailbox {
        Mailbox::new(SessionId::new_random(), PartyId::parse(party).unwrap())
    }

    #[tokio::test]
    async fn wake_reaches_only_the_mailbox_and_is_not_lost_before_waiting() {
        let hub = Hub::default();
        let a = mailbox("a");
        let b = mailbox("b");
        let mut wa = hub.watch(&a);
        let mut wb = hub.watch(&b);
        // Woken before anyone waits: the next wait completes at once.
        hub.wake(&a);
        tokio::time::timeout(Duration::from_secs(5), wa.changed())
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), wb.changed())
                .await
                .is_err()
        );
        hub.wake_all();
        tokio::time::timeout(Duration::from_secs(5), wb.changed())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn registrations_are_removed_with_the_last_watch() {
        let hub = Hub::default();
        let a = mailbox("a");
        let w1 = hub.watch(&a);
        let w2 = hub.watch(&a);
        assert_eq!(hub.watched_mailboxes(), 1);
        drop(w1);
        assert_eq!(hub.watched_mailboxes(), 1);
        drop(w2);
        assert_eq!(hub.watched_mailboxes(), 0);
        hub.wake(&a); // nobody waits: a no-op
    }
}
