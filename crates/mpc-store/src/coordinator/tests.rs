//! The coordinator store suite, run on SQLite and PostgreSQL (`backend_tests!`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mpc_proto::{ParticipantStatus as P, PartyId, SessionId, SessionStatus as S, SessionType};

use super::*;
use crate::testing::TestDb;

fn pid(s: &str) -> PartyId {
    PartyId::parse(s).unwrap()
}

/// Millisecond precision: what both backends keep.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

fn new_session(n: u16, expires_in: TimeDelta) -> NewSession {
    let created_at = now();
    NewSession {
        id: SessionId::new_random(),
        session_type: SessionType::Keygen,
        threshold: Threshold::new(2, n).unwrap(),
        key_id: "account-1".into(),
        message_hash: None,
        public_key: None,
        recovery: None,
        participants: (0..n)
            .map(|i| NewParticipant {
                party_id: pid(&format!("party_{i}")),
                party_index: i,
                device_type: Some(if i == 0 { "android" } else { "server" }.into()),
            })
            .collect(),
        created_at,
        expires_at: created_at + expires_in,
    }
}

fn event(id: SessionId, kind: &str) -> OutboxEvent {
    OutboxEvent {
        event_id: uuid::Uuid::new_v4(),
        session_id: id,
        routing_key: kind.into(),
        payload: format!("{{\"kind\":\"{kind}\"}}"),
        claimed_until: now() + TimeDelta::seconds(30),
    }
}

async fn open_store(t: &TestDb) -> Arc<dyn CoordinatorStore> {
    open(&t.db).await.unwrap()
}

/// A second replica: its own pool on the same database (or schema).
async fn open_replica(t: &TestDb) -> Arc<dyn CoordinatorStore> {
    let db = crate::Db::connect(&t.config).await.unwrap();
    open(&db).await.unwrap()
}

fn join(id: SessionId, party: &str, keys: (&[u8], &[u8])) -> ParticipantUpdate {
    let mut u = ParticipantUpdate::new(id, pid(party), P::Invited, P::Joined, now());
    u.join_keys = Some((keys.0.to_vec(), keys.1.to_vec()));
    u
}

async fn create_and_read_back(t: TestDb) {
    let store = open_store(&t).await;
    let mut s = new_session(3, TimeDelta::minutes(10));
    s.session_type = SessionType::Recovery;
    s.public_key = Some(vec![4; 65]);
    s.recovery = Some(RecoverySpec {
        target: pid("party_0"),
        helpers: vec![pid("party_1"), pid("party_2")],
    });
    store
        .create_session(&s, &event(s.id, "session.created"))
        .await
        .unwrap();

    let got = store.session(s.id).await.unwrap().unwrap();
    assert_eq!(got.id, s.id);
    assert_eq!(got.session_type, SessionType::Recovery);
    assert_eq!(got.status, S::Created);
    assert_eq!(got.threshold, s.threshold);
    assert_eq!(got.key_id, "account-1");
    assert_eq!(got.public_key, s.public_key);
    assert_eq!(got.recovery, s.recovery);
    assert_eq!(got.created_at, s.created_at);
    assert_eq!(got.expires_at, s.expires_at);
    assert_eq!(got.completed_at, None);
    let parties: Vec<_> = got
        .participants
        .iter()
        .map(|p| (p.party_id.as_str(), p.party_index, p.status))
        .collect();
    assert_eq!(
        parties,
        [
            ("party_0", 0, P::Invited),
            ("party_1", 1, P::Invited),
            ("party_2", 2, P::Invited)
        ]
    );
    assert_eq!(got.participants[0].device_type.as_deref(), Some("android"));

    assert!(
        store
            .session(SessionId::new_random())
            .await
            .unwrap()
            .is_none()
    );
    // The same id twice is a unique violation, and leaves the first session alone.
    let err = store
        .create_session(&s, &event(s.id, "session.created"))
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    assert_eq!(store.session(s.id).await.unwrap().unwrap(), got);
}

crate::backend_tests!(create_and_read_back, create_and_read_back);

async fn participant_cas_and_join_idempotency(t: TestDb) {
    let store = open_store(&t).await;
    let s = new_session(2, TimeDelta::minutes(10));
    store
        .create_session(&s, &event(s.id, "session.created"))
        .await
        .unwrap();

    assert!(
        store
            .update_participant(&join(s.id, "party_0", (&[1; 32], b"key-a")))
            .await
            .unwrap()
    );
    // A second join (same or other keys) finds the party no longer `invited` and changes nothing.
    assert!(
        !store
            .update_participant(&join(s.id, "party_0", (&[2; 32], b"key-b")))
            .await
            .unwrap()
    );
    // Unknown party or session: nothing to update.
    assert!(
        !store
            .update_participant(&join(s.id, "nobody", (&[1; 32], b"k")))
            .await
            .unwrap()
    );
    assert!(
        !store
            .update_participant(&join(SessionId::new_random(), "party_0", (&[1; 32], b"k")))
            .await
            .unwrap()
    );

    let got = store.session(s.id).await.unwrap().unwrap();
    let p0 = got.participant(&pid("party_0")).unwrap();
    assert_eq!(p0.status, P::Joined);
    assert_eq!(p0.identity_public_key.as_deref(), Some(&[1u8; 32][..]));
    assert_eq!(p0.session_key.as_deref(), Some(&b"key-a"[..]));
    assert!(p0.joined_at.is_some());
    let p1 = got.participant(&pid("party_1")).unwrap();
    assert_eq!(p1.status, P::Invited);
    assert_eq!(p1.joined_at, None);

    // Reports are kept with the participant.
    let mut to_ready = ParticipantUpdate::new(s.id, pid("party_0"), P::Joined, P::Ready, now());
    assert!(store.update_participant(&to_ready).await.unwrap());
    to_ready.from = P::Ready;
    to_ready.to = P::Computing;
    assert!(store.update_participant(&to_ready).await.unwrap());
    let mut report =
        ParticipantUpdate::new(s.id, pid("party_0"), P::Computing, P::Completed, now());
    let sig = PartyReport::Signature {
        r: [7; 32],
        s: [8; 32],
        v: 1,
    };
    report.report = Some(sig.clone());
    assert!(store.update_participant(&report).await.unwrap());
    let got = store.session(s.id).await.unwrap().unwrap();
    let p0 = got.participant(&pid("party_0")).unwrap();
    assert_eq!(p0.status, P::Completed);
    assert_eq!(p0.report, Some(sig));
    // Joining did not touch the keys afterwards.
    assert_eq!(p0.session_key.as_deref(), Some(&b"key-a"[..]));
}

crate::backend_tests!(
    participant_cas_and_join_idempotency,
    participant_cas_and_join_idempotency
);

async fn session_cas_conflicts_between_replicas(t: TestDb) {
    let a = open_store(&t).await;
    let b = open_replica(&t).await;
    let s = new_session(3, TimeDelta::minutes(10));
    a.create_session(&s, &event(s.id, "session.created"))
        .await
        .unwrap();

    // Both replicas try to fail the session at once: exactly one wins, and only it queues an event.
    let mut tasks = Vec::new();
    for (i, store) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        let id = s.id;
        tasks.push(tokio::spawn(async move {
            let mut u = SessionUpdate::new(id, S::Created, S::Failed, now());
            u.failure_reason = Some(format!("keygen failed: attempt {i}"));
            u.event = Some(event(id, "session.failed"));
            store.update_session(&u).await.unwrap()
        }));
    }
    let mut applied = 0;
    for task in tasks {
        match task.await.unwrap() {
            Cas::Applied { outbox_id } => {
                applied += 1;
                assert!(outbox_id.is_some());
            }
            Cas::Conflict => {}
        }
    }
    assert_eq!(applied, 1);

    let got = b.session(s.id).await.unwrap().unwrap();
    assert_eq!(got.status, S::Failed);
    assert!(
        got.failure_reason
            .as_deref()
            .unwrap()
            .starts_with("keygen failed: attempt ")
    );
    // A transition from a state the session is no longer in conflicts.
    let again = SessionUpdate::new(s.id, S::Created, S::Waiting, now());
    assert_eq!(a.update_session(&again).await.unwrap(), Cas::Conflict);
    // The created event and the one failed event are queued (lease lapsed: claim from the past on).
    let later = now() + TimeDelta::minutes(5);
    let rows = a
        .claim_outbox(later, later + TimeDelta::seconds(30), 10)
        .await
        .unwrap();
    let keys: Vec<_> = rows.iter().map(|r| r.routing_key.as_str()).collect();
    assert_eq!(keys, ["session.created", "session.failed"]);
}

crate::backend_tests!(
    session_cas_conflicts_between_replicas,
    session_cas_conflicts_between_replicas
);

async fn session_update_moves_participants(t: TestDb) {
    let store = open_store(&t).await;
    let s = new_session(3, TimeDelta::minutes(10));
    store
        .create_session(&s, &event(s.id, "session.created"))
        .await
        .unwrap();
    for party in ["party_0", "party_1", "party_2"] {
        assert!(
            store
                .update_participant(&join(s.id, party, (&[0; 32], b"k")))
                .await
                .unwrap()
        );
    }
    let mut start = SessionUpdate::new(s.id, S::Created, S::InProgress, now());
    start.participants = vec![(P::Joined, P::Ready)];
    assert!(store.update_session(&start).await.unwrap().applied());
    let got = store.session(s.id).await.unwrap().unwrap();
    assert_eq!(got.status, S::InProgress);
    assert!(got.participants.iter().all(|p| p.status == P::Ready));

    // party_0 finishes; then the session fails: the others fail, party_0 stays completed.
    for (from, to) in [(P::Ready, P::Computing), (P::Computing, P::Completed)] {
        let u = ParticipantUpdate::new(s.id, pid("party_0"), from, to, now());
        assert!(store.update_participant(&u).await.unwrap());
    }
    let mut fail = SessionUpdate::new(s.id, S::InProgress, S::Failed, now());
    fail.participants = [P::Invited, P::Joined, P::Ready, P::Computing]
        .into_iter()
        .map(|from| (from, P::Failed))
        .collect();
    fail.failure_reason = Some("sign failed: party party_2 sent an invalid message".into());
    fail.blamed_party = Some(pid("party_2"));
    assert!(store.update_session(&fail).await.unwrap().applied());
    let got = store.session(s.id).await.unwrap().unwrap();
    assert_eq!(got.status, S::Failed);
    assert_eq!(got.blamed_party, Some(pid("party_2")));
    let statuses: Vec<_> = got.participants.iter().map(|p| p.status).collect();
    assert_eq!(statuses, [P::Completed, P::Failed, P::Failed]);
    assert_eq!(got.completed_at, None);

    // Completion stores the key and signature.
    let s2 = new_session(2, TimeDelta::minutes(10));
    store
        .create_session(&s2, &event(s2.id, "session.created"))
        .await
        .unwrap();
    let mut done = SessionUpdate::new(s2.id, S::Created, S::InProgress, now());
    assert!(store.update_session(&done).await.unwrap().applied());
    done.from = S::InProgress;
    done.to = S::Completed;
    done.completed = true;
    done.public_key = Some(vec![4; 65]);
    done.signature = Some(StoredSignature {
        r: [1; 32],
        s: [2; 32],
        v: 0,
        der: vec![0x30, 0x44],
    });
    assert!(store.update_session(&done).await.unwrap().applied());
    let got = store.session(s2.id).await.unwrap().unwrap();
    assert_eq!(got.status, S::Completed);
    assert_eq!(got.public_key, Some(vec![4; 65]));
    assert_eq!(got.signature, done.signature);
    assert_eq!(got.completed_at, Some(done.at));
}

crate::backend_tests!(
    session_update_moves_participants,
    session_update_moves_participants
);

async fn expiry_selection(t: TestDb) {
    let store = open_store(&t).await;
    let base = now();
    let mut ids = Vec::new();
    // Deadlines 3, 2, 1 minutes ago and one in the future.
    for minutes in [-3, -2, -1, 5] {
        let mut s = new_session(2, TimeDelta::zero());
        s.expires_at = base + TimeDelta::minutes(minutes);
        store
            .create_session(&s, &event(s.id, "session.created"))
            .await
            .unwrap();
        ids.push(s.id);
    }
    // A terminal session past its deadline is not selected.
    let mut done = SessionUpdate::new(ids[1], S::Created, S::Failed, base);
    done.failure_reason = Some("keygen failed: x".into());
    assert!(store.update_session(&done).await.unwrap().applied());
    // A session in progress is.
    let start = SessionUpdate::new(ids[2], S::Created, S::InProgress, base);
    assert!(store.update_session(&start).await.unwrap().applied());

    let due = store.expired_sessions(base, 10).await.unwrap();
    assert_eq!(due, [ids[0], ids[2]], "oldest deadline first");
    assert_eq!(store.expired_sessions(base, 1).await.unwrap(), [ids[0]]);
    // The deadline itself counts as expired.
    assert_eq!(
        store
            .expired_sessions(base - TimeDelta::minutes(3), 10)
            .await
            .unwrap(),
        [ids[0]]
    );
    assert_eq!(store.count_active_sessions().await.unwrap(), 3);
}

crate::backend_tests!(expiry_selection, expiry_selection);

async fn concurrent_joins(t: TestDb) {
    let a = open_store(&t).await;
    let b = open_replica(&t).await;
    let s = new_session(16, TimeDelta::minutes(10));
    a.create_session(&s, &event(s.id, "session.created"))
        .await
        .unwrap();
    // Every party joins twice at once, through both replicas: each joins exactly once.
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        for store in [a.clone(), b.clone()] {
            let id = s.id;
            tasks.push(tokio::spawn(async move {
                let party = format!("party_{i}");
                store
                    .update_participant(&join(id, &party, (&[i; 32], b"k")))
                    .await
                    .unwrap()
            }));
        }
    }
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 16);
    let got = a.session(s.id).await.unwrap().unwrap();
    assert!(got.participants.iter().all(|p| p.status == P::Joined));
    for p in &got.participants {
        let index = u8::try_from(p.party_index).unwrap();
        assert_eq!(p.identity_public_key.as_deref(), Some(&[index; 32][..]));
    }
}

crate::backend_tests!(concurrent_joins, concurrent_joins);

async fn outbox_claims_are_exclusive(t: TestDb) {
    let a = open_store(&t).await;
    let b = open_replica(&t).await;
    let base = now();
    let mut queued = Vec::new();
    for _ in 0..6 {
        let s = new_session(2, TimeDelta::minutes(10));
        let mut e = event(s.id, "session.created");
        // Already past its lease: the writer "crashed" before publishing.
        e.claimed_until = base - TimeDelta::seconds(1);
        queued.push(a.create_session(&s, &e).await.unwrap());
    }
    // One row still leased by its writer: nobody else may take it yet.
    let s = new_session(2, TimeDelta::minutes(10));
    let leased = a
        .create_session(&s, &event(s.id, "session.created"))
        .await
        .unwrap();

    let until = base + TimeDelta::seconds(30);
    let (ra, rb) = tokio::join!(
        a.claim_outbox(base, until, 4),
        b.claim_outbox(base, until, 4)
    );
    let mut claimed: Vec<i64> = ra
        .unwrap()
        .iter()
        .chain(&rb.unwrap())
        .map(|r| r.id)
        .collect();
    claimed.sort_unstable();
    assert_eq!(
        claimed, queued,
        "every row claimed once, the leased one not at all"
    );
    assert!(
        a.claim_outbox(base, until, 10).await.unwrap().is_empty(),
        "claimed rows are leased"
    );

    // A failed publish comes back at its retry time; a published one is gone.
    a.retry_outbox_at(queued[0], base).await.unwrap();
    a.delete_outbox(queued[1]).await.unwrap();
    let again = b.claim_outbox(base, until, 10).await.unwrap();
    assert_eq!(again.iter().map(|r| r.id).collect::<Vec<_>>(), [queued[0]]);
    assert_eq!(again[0].attempts, 2);
    let after_lease = b
        .claim_outbox(
            until + TimeDelta::seconds(1),
            until + TimeDelta::minutes(1),
            10,
        )
        .await
        .unwrap();
    let ids: Vec<_> = after_lease.iter().map(|r| r.id).collect();
    assert!(
        ids.contains(&leased) && !ids.contains(&queued[1]),
        "{ids:?}"
    );
}

crate::backend_tests!(outbox_claims_are_exclusive, outbox_claims_are_exclusive);

async fn changes_are_announced(t: TestDb) {
    let a = open_store(&t).await;
    let mut on_a = a.subscribe_changes();
    let s = new_session(2, TimeDelta::minutes(10));
    a.create_session(&s, &event(s.id, "session.created"))
        .await
        .unwrap();
    assert_eq!(next(&mut on_a).await, s.id);
    assert!(
        a.update_participant(&join(s.id, "party_0", (&[0; 32], b"k")))
            .await
            .unwrap()
    );
    assert_eq!(next(&mut on_a).await, s.id);
    // A failed compare-and-set announces nothing: the next announcement is the next real change.
    assert_eq!(
        a.update_session(&SessionUpdate::new(s.id, S::Waiting, S::InProgress, now()))
            .await
            .unwrap(),
        Cas::Conflict
    );
    assert!(
        a.update_session(&SessionUpdate::new(s.id, S::Created, S::Waiting, now()))
            .await
            .unwrap()
            .applied()
    );
    assert_eq!(next(&mut on_a).await, s.id);
    assert!(on_a.try_recv().is_err());

    // PostgreSQL: a change made through another replica reaches this one.
    if t.db.backend() == crate::Backend::Postgres {
        let b = open_replica(&t).await;
        let mut on_b = b.subscribe_changes();
        assert!(
            a.update_session(&SessionUpdate::new(s.id, S::Waiting, S::Failed, now()))
                .await
                .unwrap()
                .applied()
        );
        assert_eq!(next(&mut on_b).await, s.id);
    }
}

crate::backend_tests!(changes_are_announced, changes_are_announced);

async fn next(rx: &mut broadcast::Receiver<SessionChanged>) -> SessionId {
    let changed = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no change notification")
        .unwrap();
    assert!(changed.noticed <= std::time::Instant::now());
    changed.id
}
