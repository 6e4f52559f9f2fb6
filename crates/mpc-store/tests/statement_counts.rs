//! How many SQL statements each store operation sends, on SQLite and on PostgreSQL. The stores
//! are on the path of every signature: a change that adds a statement (a round trip on
//! PostgreSQL) to an operation fails here, and one that saves a statement updates the table.
//!
//! Statements are counted from sqlx's statement log (target `sqlx::query`), so this file holds a
//! single test that installs the only subscriber of its process. sqlx logs neither backend's
//! `BEGIN`, nor SQLite's `COMMIT`/`ROLLBACK` (run inside its worker thread); PostgreSQL's
//! `COMMIT`/`ROLLBACK` are counted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mpc_proto::{
    MessageId, ParticipantStatus as P, PartyId, SessionId, SessionStatus as S, SessionType,
    Threshold,
};
use mpc_store::coordinator::{
    self, NewParticipant, NewSession, OutboxEvent, ParticipantUpdate, SessionUpdate,
};
use mpc_store::party::{self, KeyBan, NewShare, SessionOutcome, StoredIdentity};
use mpc_store::router::{self, Mailbox, NewEnvelope};
use mpc_store::testing::TestDb;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Statements per operation, in the order the test runs them: (operation, SQLite, PostgreSQL).
const EXPECTED: &[(&str, usize, usize)] = &[
    ("coordinator.create_session (3 parties)", 5, 7),
    ("coordinator.session", 1, 1),
    ("coordinator.update_participant", 1, 1),
    ("coordinator.update_session (1 move, event)", 3, 5),
    ("coordinator.update_session (conflict)", 1, 2),
    ("coordinator.expired_sessions", 1, 1),
    ("coordinator.count_active_sessions", 1, 1),
    ("coordinator.claim_outbox", 1, 1),
    ("coordinator.delete_outbox", 1, 1),
    ("coordinator.retry_outbox_at", 1, 1),
    ("router.route (broadcast to 2)", 7, 10),
    ("router.route (duplicate)", 4, 5),
    ("router.fetch (1 envelope)", 1, 1),
    ("router.fetch (empty)", 2, 2),
    ("router.end_session", 1, 1),
    ("router.route (ended)", 2, 3),
    ("router.sweep (1 session due)", 7, 8),
    ("router.fetch (purged)", 2, 2),
    ("party.create_identity", 2, 3),
    ("party.identity", 1, 1),
    ("party.reseal_identity", 1, 1),
    ("party.begin_session (new)", 1, 3),
    ("party.begin_session (seen)", 2, 4),
    ("party.put_pending_share", 3, 4),
    ("party.record_outcome (completed)", 6, 7),
    ("party.finish_session", 1, 1),
    ("party.begin_session (new)", 1, 3),
    ("party.begin_session (seen)", 2, 4),
    ("party.put_pending_share", 3, 4),
    ("party.record_outcome (completed, retires one)", 6, 7),
    ("party.finish_session", 1, 1),
    ("party.active_share", 1, 1),
    ("party.shares", 1, 1),
    ("party.sealed_under", 1, 1),
    ("party.reseal_share", 2, 1),
    ("party.ban", 1, 1),
    ("party.bans", 1, 1),
    ("party.clear_ban", 1, 1),
];

/// The statements logged since the last [`Log::take`].
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct Summary(String);

impl Visit for Summary {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            self.0 = value.to_owned();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for Log {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            let mut summary = Summary(String::new());
            event.record(&mut summary);
            // A new pooled SQLite connection sets itself up first: not the operation's doing.
            if summary.0.starts_with("PRAGMA journal_mode") {
                return;
            }
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(summary.0);
        }
    }
}

/// Runs one operation and records how many statements it sent.
struct Counter {
    log: Log,
    counts: Vec<(&'static str, usize)>,
}

impl Counter {
    async fn count<T>(&mut self, op: &'static str, f: impl std::future::Future<Output = T>) -> T {
        self.log.take();
        let out = f.await;
        let statements = self.log.take();
        eprintln!("{op}: {statements:?}");
        self.counts.push((op, statements.len()));
        out
    }
}

fn pid(s: &str) -> PartyId {
    PartyId::parse(s).unwrap_or_else(|e| panic!("{e:?}"))
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_else(|| panic!("now"))
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

async fn coordinator_ops(t: &TestDb, c: &mut Counter) {
    let store = ok(coordinator::open(&t.db).await);
    let id = SessionId::new_random();
    let session = NewSession {
        id,
        session_type: SessionType::Sign,
        threshold: Threshold { t: 2, n: 3 },
        key_id: "acct".into(),
        message_hash: Some(vec![1; 32]),
        public_key: Some(vec![4; 65]),
        recovery: None,
        participants: (1..=3)
            .map(|i| NewParticipant {
                party_id: pid(&format!("p{i}")),
                party_index: i,
                device_type: None,
            })
            .collect(),
        created_at: now(),
        expires_at: now() + TimeDelta::minutes(5),
    };
    let event = |kind: &str| OutboxEvent {
        event_id: uuid::Uuid::new_v4(),
        session_id: id,
        routing_key: kind.into(),
        payload: "{}".into(),
        claimed_until: now() - TimeDelta::seconds(1),
    };
    let outbox = ok(c
        .count(
            "coordinator.create_session (3 parties)",
            store.create_session(&session, &event("session.created")),
        )
        .await);
    ok(c.count("coordinator.session", store.session(id)).await);
    let mut join = ParticipantUpdate::new(id, pid("p1"), P::Invited, P::Joined, now());
    join.join_keys = Some((vec![1; 32], vec![2; 32]));
    ok(c.count(
        "coordinator.update_participant",
        store.update_participant(&join),
    )
    .await);
    let mut start = SessionUpdate::new(id, S::Created, S::InProgress, now());
    start.participants = vec![(P::Joined, P::Ready)];
    start.event = Some(event("session.started"));
    ok(c.count(
        "coordinator.update_session (1 move, event)",
        store.update_session(&start),
    )
    .await);
    let stale = SessionUpdate::new(id, S::Created, S::Failed, now());
    ok(c.count(
        "coordinator.update_session (conflict)",
        store.update_session(&stale),
    )
    .await);
    ok(c.count(
        "coordinator.expired_sessions",
        store.expired_sessions(now(), 10),
    )
    .await);
    ok(c.count(
        "coordinator.count_active_sessions",
        store.count_active_sessions(),
    )
    .await);
    ok(c.count(
        "coordinator.claim_outbox",
        store.claim_outbox(now(), now() + TimeDelta::seconds(30), 10),
    )
    .await);
    ok(
        c.count("coordinator.delete_outbox", store.delete_outbox(outbox))
            .await,
    );
    ok(c.count(
        "coordinator.retry_outbox_at",
        store.retry_outbox_at(outbox + 1, now()),
    )
    .await);
}

async fn router_ops(t: &TestDb, c: &mut Counter) {
    ok(router::migrate(&t.db).await);
    let store = router::store(&t.db);
    let session = SessionId::new_random();
    let envelope = NewEnvelope {
        message_id: MessageId::new_random(),
        session_id: session,
        from_party: pid("p1"),
        to_party: None,
        recipients: vec![pid("p2"), pid("p3")],
        round: 1,
        payload: vec![7; 100],
        session_deadline: now() + TimeDelta::minutes(5),
        created_at: now(),
    };
    ok(
        c.count("router.route (broadcast to 2)", store.route(&envelope))
            .await,
    );
    ok(c.count("router.route (duplicate)", store.route(&envelope))
        .await);
    let mailbox = Mailbox::new(session, pid("p2"));
    ok(c.count(
        "router.fetch (1 envelope)",
        store.fetch(&mailbox, 0, 10, u64::MAX),
    )
    .await);
    ok(c.count(
        "router.fetch (empty)",
        store.fetch(&mailbox, 1, 10, u64::MAX),
    )
    .await);
    ok(c.count(
        "router.end_session",
        store.end_session(session, now(), now() - TimeDelta::minutes(1)),
    )
    .await);
    let late = NewEnvelope {
        message_id: MessageId::new_random(),
        ..envelope.clone()
    };
    ok(c.count("router.route (ended)", store.route(&late)).await);
    ok(c.count(
        "router.sweep (1 session due)",
        store.sweep(now(), Duration::from_secs(1)),
    )
    .await);
    ok(c.count(
        "router.fetch (purged)",
        store.fetch(&mailbox, 0, 10, u64::MAX),
    )
    .await);
}

async fn party_ops(t: &TestDb, c: &mut Counter) {
    let store = ok(party::open(&t.db).await);
    let identity = StoredIdentity {
        party_id: pid("p1"),
        public_key: "aa".repeat(32),
        sealed_key: vec![1; 60],
        kek_id: "kek-1".into(),
        created_at: now(),
        updated_at: now(),
    };
    ok(
        c.count("party.create_identity", store.create_identity(&identity))
            .await,
    );
    ok(c.count("party.identity", store.identity()).await);
    ok(c.count(
        "party.reseal_identity",
        store.reseal_identity("kek-1", &[2; 60], "kek-2", now()),
    )
    .await);
    let share = |session: SessionId| NewShare {
        id: uuid::Uuid::new_v4(),
        key_id: "acct".into(),
        party_id: pid("p1"),
        party_index: 1,
        threshold: Threshold { t: 2, n: 3 },
        public_key: "04".repeat(65),
        session_id: session,
        sealed_share: vec![3; 500],
        kek_id: "kek-2".into(),
        created_at: now(),
    };
    for (i, session) in [SessionId::new_random(), SessionId::new_random()]
        .into_iter()
        .enumerate()
    {
        let ty = SessionType::Refresh;
        ok(c.count(
            "party.begin_session (new)",
            store.begin_session(session, ty, "acct", now()),
        )
        .await);
        ok(c.count(
            "party.begin_session (seen)",
            store.begin_session(session, ty, "acct", now()),
        )
        .await);
        ok(c.count(
            "party.put_pending_share",
            store.put_pending_share(&share(session)),
        )
        .await);
        let op = if i == 0 {
            "party.record_outcome (completed)"
        } else {
            "party.record_outcome (completed, retires one)"
        };
        ok(c.count(
            op,
            store.record_outcome(session, ty, "acct", SessionOutcome::Completed, now()),
        )
        .await);
        ok(
            c.count("party.finish_session", store.finish_session(session, now()))
                .await,
        );
    }
    let active = ok(c
        .count("party.active_share", store.active_share("acct"))
        .await)
    .unwrap_or_else(|| panic!("active share"));
    ok(c.count("party.shares", store.shares("acct")).await);
    ok(
        c.count("party.sealed_under", store.sealed_under("kek-2", 10))
            .await,
    );
    ok(c.count(
        "party.reseal_share",
        store.reseal_share(active.id, "kek-2", &[4; 500], "kek-3", now()),
    )
    .await);
    let ban = KeyBan {
        key_id: "acct".into(),
        party_id: pid("p3"),
        reason: "test".into(),
        session_id: SessionId::new_random(),
        created_at: now(),
    };
    ok(c.count("party.ban", store.ban(&ban)).await);
    ok(c.count("party.bans", store.bans("acct")).await);
    ok(
        c.count("party.clear_ban", store.clear_ban("acct", &pid("p3")))
            .await,
    );
}

async fn count_all(t: TestDb, log: &Log) -> Vec<(&'static str, usize)> {
    let mut counter = Counter {
        log: log.clone(),
        counts: Vec::new(),
    };
    coordinator_ops(&t, &mut counter).await;
    router_ops(&t, &mut counter).await;
    party_ops(&t, &mut counter).await;
    t.db.close().await;
    counter.counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_per_operation() {
    let log = Log::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(log.clone()))
        .unwrap_or_else(|e| panic!("{e}"));

    let sqlite = count_all(TestDb::sqlite().await, &log).await;
    let postgres = match TestDb::postgres().await {
        Some(t) => count_all(t, &log).await,
        None => Vec::new(),
    };
    for (i, (op, n)) in sqlite.iter().enumerate() {
        let pg = postgres
            .get(i)
            .map(|(_, n)| n.to_string())
            .unwrap_or_default();
        eprintln!("| {op} | {n} | {pg} |");
    }
    let expected_sqlite: Vec<_> = EXPECTED.iter().map(|(op, n, _)| (*op, *n)).collect();
    assert_eq!(sqlite, expected_sqlite, "SQLite statements per operation");
    if !postgres.is_empty() {
        let expected_postgres: Vec<_> = EXPECTED.iter().map(|(op, _, n)| (*op, *n)).collect();
        assert_eq!(
            postgres, expected_postgres,
            "PostgreSQL statements per operation"
        );
    }
}
