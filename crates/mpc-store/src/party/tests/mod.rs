//! The party store suite, run on SQLite and on PostgreSQL (`backend_tests!`).

use std::sync::Arc;

use chrono::Utc;
use mpc_proto::{PartyId, SessionId, SessionType, Threshold};
use uuid::Uuid;

use super::*;
use crate::backend_tests;
use crate::testing::TestDb;

mod model;

pub(super) fn pid(s: &str) -> PartyId {
    PartyId::parse(s).unwrap()
}

pub(super) async fn setup(t: &TestDb) -> Arc<dyn PartyStore> {
    open(&t.db).await.unwrap()
}

pub(super) fn new_share(key_id: &str, session: SessionId, sealed: &[u8]) -> NewShare {
    NewShare {
        id: Uuid::new_v4(),
        key_id: key_id.to_owned(),
        party_id: pid("server_party_1"),
        party_index: 1,
        threshold: Threshold { t: 2, n: 3 },
        public_key: format!("04{}", "ab".repeat(64)),
        session_id: session,
        sealed_share: sealed.to_vec(),
        kek_id: "kek-1".to_owned(),
        created_at: Utc::now(),
    }
}

/// The share a session made, if any.
pub(super) async fn share_of(
    store: &dyn PartyStore,
    key_id: &str,
    session: SessionId,
) -> Option<ShareRecord> {
    let shares = store.shares(key_id).await.unwrap();
    shares.into_iter().find(|s| s.session_id == session)
}

pub(super) async fn statuses(
    store: &dyn PartyStore,
    key_id: &str,
) -> Vec<(SessionId, ShareStatus)> {
    store
        .shares(key_id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.session_id, s.status))
        .collect()
}

async fn identity_is_created_once_and_resealed_by_compare_and_set(t: TestDb) {
    let store = setup(&t).await;
    assert_eq!(store.identity().await.unwrap(), None);
    let now = crate_now();
    let first = StoredIdentity {
        party_id: pid("server_party_1"),
        public_key: "aa".repeat(32),
        sealed_key: b"sealed-1".to_vec(),
        kek_id: "kek-1".into(),
        created_at: now,
        updated_at: now,
    };
    assert_eq!(store.create_identity(&first).await.unwrap(), first);
    // A second process starting at the same time keeps the first key.
    let second = StoredIdentity {
        public_key: "bb".repeat(32),
        sealed_key: b"sealed-2".to_vec(),
        ..first.clone()
    };
    assert_eq!(store.create_identity(&second).await.unwrap(), first);
    assert_eq!(store.identity().await.unwrap(), Some(first.clone()));

    assert!(
        !store
            .reseal_identity("kek-0", b"x", "kek-2", now)
            .await
            .unwrap()
    );
    assert!(
        store
            .reseal_identity("kek-1", b"resealed", "kek-2", now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .reseal_identity("kek-1", b"again", "kek-3", now)
            .await
            .unwrap()
    );
    let stored = store.identity().await.unwrap().unwrap();
    assert_eq!(
        (stored.sealed_key.as_slice(), stored.kek_id.as_str()),
        (&b"resealed"[..], "kek-2")
    );
    assert_eq!(stored.public_key, first.public_key);
}

/// Millisecond precision, as both backends store it.
fn crate_now() -> chrono::DateTime<Utc> {
    let now = Utc::now();
    chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap()
}

async fn completion_activates_and_a_refresh_retires_and_erases_the_old_share(t: TestDb) {
    let store = setup(&t).await;
    let keygen = SessionId::new_random();
    let now = Utc::now();
    assert_eq!(
        store
            .put_pending_share(&new_share("acct", keygen, b"share-1"))
            .await
            .unwrap(),
        PendingOutcome::Pending
    );
    assert_eq!(
        store.active_share("acct").await.unwrap(),
        None,
        "pending is not usable"
    );
    let effect = store
        .record_outcome(
            keygen,
            SessionType::Keygen,
            "acct",
            SessionOutcome::Completed,
            now,
        )
        .await
        .unwrap();
    let first = store.active_share("acct").await.unwrap().unwrap();
    assert_eq!(effect.activated, Some(first.id));
    assert_eq!(effect.retired, None);
    assert_eq!(first.sealed_share.as_deref(), Some(&b"share-1"[..]));
    assert!(first.activated_at.is_some());

    // A refresh's share waits as pending beside the active one, then replaces it.
    let refresh = SessionId::new_random();
    store
        .put_pending_share(&new_share("acct", refresh, b"share-2"))
        .await
        .unwrap();
    assert_eq!(
        store.active_share("acct").await.unwrap().unwrap().id,
        first.id
    );
    let effect = store
        .record_outcome(
            refresh,
            SessionType::Refresh,
            "acct",
            SessionOutcome::Completed,
            now,
        )
        .await
        .unwrap();
    assert_eq!(effect.retired, Some(first.id));
    let active = store.active_share("acct").await.unwrap().unwrap();
    assert_eq!(active.sealed_share.as_deref(), Some(&b"share-2"[..]));
    let old = share_of(store.as_ref(), "acct", keygen).await.unwrap();
    assert_eq!(old.status, ShareStatus::Retired);
    assert_eq!(
        old.sealed_share, None,
        "a retired share's ciphertext is erased"
    );
    assert_eq!(old.kek_id, None);
    assert!(old.retired_at.is_some());
    assert_eq!(
        statuses(store.as_ref(), "acct").await,
        vec![
            (keygen, ShareStatus::Retired),
            (refresh, ShareStatus::Active)
        ]
    );
    // Idempotent: a redelivered completion changes nothing.
    let again = store
        .record_outcome(
            refresh,
            SessionType::Refresh,
            "acct",
            SessionOutcome::Completed,
            now,
        )
        .await
        .unwrap();
    assert_eq!((again.activated, again.retired), (None, None));
    assert_eq!(
        store.active_share("acct").await.unwrap().unwrap().id,
        active.id
    );
}

async fn a_failed_or_expired_session_leaves_no_share(t: TestDb) {
    let store = setup(&t).await;
    let now = Utc::now();
    for outcome in [SessionOutcome::Failed, SessionOutcome::Expired] {
        let key = format!("acct-{outcome}");
        let session = SessionId::new_random();
        store
            .put_pending_share(&new_share(&key, session, b"s"))
            .await
            .unwrap();
        let effect = store
            .record_outcome(session, SessionType::Keygen, &key, outcome, now)
            .await
            .unwrap();
        assert_eq!(effect.deleted, 1);
        assert_eq!(store.shares(&key).await.unwrap(), vec![]);
        // The first outcome stands.
        let later = store
            .record_outcome(
                session,
                SessionType::Keygen,
                &key,
                SessionOutcome::Completed,
                now,
            )
            .await
            .unwrap();
        assert_eq!(later.outcome, Some(outcome));
        assert_eq!(store.active_share(&key).await.unwrap(), None);
    }
}

async fn the_end_may_be_known_before_the_share_is_stored(t: TestDb) {
    let store = setup(&t).await;
    let now = Utc::now();
    let completed = SessionId::new_random();
    store
        .record_outcome(
            completed,
            SessionType::Keygen,
            "acct",
            SessionOutcome::Completed,
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .put_pending_share(&new_share("acct", completed, b"s1"))
            .await
            .unwrap(),
        PendingOutcome::Activated { retired: None }
    );
    let active = store.active_share("acct").await.unwrap().unwrap();
    assert_eq!(active.session_id, completed);

    let refreshed = SessionId::new_random();
    store
        .record_outcome(
            refreshed,
            SessionType::Refresh,
            "acct",
            SessionOutcome::Completed,
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .put_pending_share(&new_share("acct", refreshed, b"s2"))
            .await
            .unwrap(),
        PendingOutcome::Activated {
            retired: Some(active.id)
        }
    );

    let failed = SessionId::new_random();
    store
        .record_outcome(
            failed,
            SessionType::Refresh,
            "acct",
            SessionOutcome::Failed,
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .put_pending_share(&new_share("acct", failed, b"s3"))
            .await
            .unwrap(),
        PendingOutcome::Discarded(SessionOutcome::Failed)
    );
    assert_eq!(share_of(store.as_ref(), "acct", failed).await, None);
    assert_eq!(
        store
            .active_share("acct")
            .await
            .unwrap()
            .unwrap()
            .session_id,
        refreshed
    );
}

async fn sessions_are_handled_once(t: TestDb) {
    let store = setup(&t).await;
    let now = crate_now();
    let s = SessionId::new_random();
    assert_eq!(
        store
            .begin_session(s, SessionType::Sign, "acct", now)
            .await
            .unwrap(),
        None
    );
    let again = store
        .begin_session(s, SessionType::Sign, "acct", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.local_state, LocalState::Running);
    store.finish_session(s, now).await.unwrap();
    let done = crate::testing::party::handled_session(&t.db, s)
        .await
        .unwrap();
    assert_eq!(
        (
            done.local_state,
            done.outcome,
            done.created_at,
            done.updated_at
        ),
        (LocalState::Finished, None, now, now)
    );
    // Finishing again changes nothing.
    store
        .finish_session(s, now + chrono::TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        crate::testing::party::handled_session(&t.db, s).await,
        Some(done)
    );

    // A session whose end arrives first is not started afterwards.
    let ended = SessionId::new_random();
    store
        .record_outcome(
            ended,
            SessionType::Keygen,
            "acct-2",
            SessionOutcome::Expired,
            now,
        )
        .await
        .unwrap();
    let seen = store
        .begin_session(ended, SessionType::Keygen, "acct-2", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.local_state, LocalState::Unseen);
    assert_eq!(seen.outcome, Some(SessionOutcome::Expired));
    assert_eq!(seen.session_type, SessionType::Keygen);
    assert_eq!(seen.key_id, "acct-2");
}

async fn a_session_stores_one_share(t: TestDb) {
    let store = setup(&t).await;
    let s = SessionId::new_random();
    store
        .put_pending_share(&new_share("acct", s, b"a"))
        .await
        .unwrap();
    let err = store
        .put_pending_share(&new_share("acct", s, b"b"))
        .await
        .err();
    assert!(matches!(err, Some(StoreError::Conflict(_))), "{err:?}");
    assert_eq!(
        share_of(store.as_ref(), "acct", s)
            .await
            .unwrap()
            .sealed_share
            .as_deref(),
        Some(&b"a"[..])
    );
}

async fn rotation_reseals_by_compare_and_set(t: TestDb) {
    let store = setup(&t).await;
    let now = Utc::now();
    let (a, b, c) = (
        SessionId::new_random(),
        SessionId::new_random(),
        SessionId::new_random(),
    );
    store
        .put_pending_share(&new_share("k1", a, b"a"))
        .await
        .unwrap();
    store
        .record_outcome(a, SessionType::Keygen, "k1", SessionOutcome::Completed, now)
        .await
        .unwrap();
    store
        .put_pending_share(&new_share("k1", b, b"b"))
        .await
        .unwrap();
    store
        .record_outcome(
            b,
            SessionType::Refresh,
            "k1",
            SessionOutcome::Completed,
            now,
        )
        .await
        .unwrap();
    store
        .put_pending_share(&new_share("k2", c, b"c"))
        .await
        .unwrap();
    // a is retired (nothing to re-seal); b active and c pending are sealed under kek-1.
    let under: Vec<SessionId> = store
        .sealed_under("kek-1", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(under.len(), 2);
    assert!(under.contains(&b) && under.contains(&c));
    assert_eq!(store.sealed_under("kek-1", 1).await.unwrap().len(), 1);
    assert_eq!(
        crate::testing::party::kek_usage(&t.db).await,
        vec![("kek-1".to_owned(), 2)]
    );

    let share_b = share_of(store.as_ref(), "k1", b).await.unwrap();
    assert!(
        store
            .reseal_share(share_b.id, "kek-1", b"B", "kek-2", now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .reseal_share(share_b.id, "kek-1", b"B2", "kek-3", now)
            .await
            .unwrap()
    );
    let share_a = share_of(store.as_ref(), "k1", a).await.unwrap();
    assert!(
        !store
            .reseal_share(share_a.id, "kek-1", b"A", "kek-2", now)
            .await
            .unwrap(),
        "a retired share stays erased"
    );
    let resealed = share_of(store.as_ref(), "k1", b).await.unwrap();
    assert_eq!(resealed.sealed_share.as_deref(), Some(&b"B"[..]));
    assert_eq!(resealed.kek_id.as_deref(), Some("kek-2"));
    assert_eq!(resealed.status, ShareStatus::Active);
    assert_eq!(
        crate::testing::party::kek_usage(&t.db).await,
        vec![("kek-1".to_owned(), 1), ("kek-2".to_owned(), 1)]
    );
}

async fn bans_freeze_a_key_for_a_party(t: TestDb) {
    let store = setup(&t).await;
    let ban = KeyBan {
        key_id: "acct".into(),
        party_id: pid("server_party_2"),
        reason: "failed a multiplication check".into(),
        session_id: SessionId::new_random(),
        created_at: crate_now(),
    };
    store.ban(&ban).await.unwrap();
    store
        .ban(&KeyBan {
            reason: "another".into(),
            ..ban.clone()
        })
        .await
        .unwrap();
    assert_eq!(store.bans("acct").await.unwrap(), vec![ban.clone()]);
    assert_eq!(store.bans("other").await.unwrap(), vec![]);
    assert!(
        store
            .clear_ban("acct", &pid("server_party_2"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .clear_ban("acct", &pid("server_party_2"))
            .await
            .unwrap()
    );
    assert_eq!(store.bans("acct").await.unwrap(), vec![]);
}

/// Storing a share and learning the session's end race; whichever comes first, the share ends
/// active (completed) or gone (failed).
async fn storing_and_ending_race_without_losing_a_share(t: TestDb) {
    let store = setup(&t).await;
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let store = store.clone();
        let key = format!("race-{i}");
        tasks.push(tokio::spawn(async move {
            let session = SessionId::new_random();
            let outcome = if i % 4 == 0 {
                SessionOutcome::Failed
            } else {
                SessionOutcome::Completed
            };
            let put = {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    store
                        .put_pending_share(&new_share(&key, session, b"x"))
                        .await
                })
            };
            let end = {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    store
                        .record_outcome(session, SessionType::Keygen, &key, outcome, Utc::now())
                        .await
                })
            };
            put.await.unwrap().unwrap();
            end.await.unwrap().unwrap();
            let share = share_of(store.as_ref(), &key, session).await;
            match outcome {
                SessionOutcome::Completed => {
                    assert_eq!(share.map(|s| s.status), Some(ShareStatus::Active), "{key}")
                }
                _ => assert_eq!(share, None, "{key}"),
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

backend_tests!(
    identity,
    identity_is_created_once_and_resealed_by_compare_and_set
);
backend_tests!(
    activation,
    completion_activates_and_a_refresh_retires_and_erases_the_old_share
);
backend_tests!(failure_cleanup, a_failed_or_expired_session_leaves_no_share);
backend_tests!(
    end_before_share,
    the_end_may_be_known_before_the_share_is_stored
);
backend_tests!(handled_sessions, sessions_are_handled_once);
backend_tests!(one_share_per_session, a_session_stores_one_share);
backend_tests!(rotation, rotation_reseals_by_compare_and_set);
backend_tests!(bans, bans_freeze_a_key_for_a_party);
backend_tests!(race, storing_and_ending_race_without_losing_a_share);

#[test]
fn debug_output_shows_no_sealed_bytes() {
    let share = new_share("acct", SessionId::new_random(), b"very secret sealed bytes");
    let shown = format!("{share:?}");
    assert!(
        !shown.contains("very secret") && !shown.contains("118, 101"),
        "{shown}"
    );
    assert!(shown.contains("sealed_share_len"), "{shown}");
}

#[test]
fn db_enums_round_trip() {
    for s in [
        ShareStatus::Pending,
        ShareStatus::Active,
        ShareStatus::Retired,
    ] {
        assert_eq!(s.as_str().parse::<ShareStatus>().unwrap(), s);
    }
    for o in [
        SessionOutcome::Completed,
        SessionOutcome::Failed,
        SessionOutcome::Expired,
    ] {
        assert_eq!(o.as_str().parse::<SessionOutcome>().unwrap(), o);
    }
    assert!("bogus".parse::<LocalState>().is_err());
}
