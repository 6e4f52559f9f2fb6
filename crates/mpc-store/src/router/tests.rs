//! The router store suite, run on SQLite and on PostgreSQL (`backend_tests!`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mpc_proto::{MessageId, PartyId, SessionId};

use super::*;
use crate::backend_tests;
use crate::testing::TestDb;

const NO_BYTE_LIMIT: u64 = u64::MAX;

fn pid(s: &str) -> PartyId {
    PartyId::parse(s).unwrap()
}

async fn setup(t: &TestDb) -> Arc<dyn RouterStore> {
    migrate(&t.db).await.unwrap();
    store(&t.db)
}

fn envelope(
    session: SessionId,
    from: &str,
    to: Option<&str>,
    all: &[&str],
    round: u32,
    payload: &[u8],
) -> NewEnvelope {
    let recipients = match to {
        Some(to) => vec![pid(to)],
        None => all.iter().filter(|p| **p != from).map(|p| pid(p)).collect(),
    };
    NewEnvelope {
        message_id: MessageId::new_random(),
        session_id: session,
        from_party: pid(from),
        to_party: to.map(pid),
        recipients,
        round,
        payload: payload.to_vec(),
        session_deadline: Utc::now() + TimeDelta::minutes(10),
        created_at: Utc::now(),
    }
}

async fn fetch_all(store: &dyn RouterStore, session: SessionId, who: &str) -> Vec<StoredEnvelope> {
    match store
        .fetch(&Mailbox::new(session, pid(who)), 0, 1000, NO_BYTE_LIMIT)
        .await
        .unwrap()
    {
        FetchOutcome::Envelopes { envelopes, .. } => envelopes,
        FetchOutcome::SessionPurged => panic!("session purged"),
    }
}

fn seqs(envelopes: &[StoredEnvelope]) -> Vec<u64> {
    envelopes.iter().map(|e| e.seq).collect()
}

async fn point_to_point_round_trip(t: TestDb) {
    let store = setup(&t).await;
    let session = SessionId::new_random();
    let env = envelope(
        session,
        "a",
        Some("b"),
        &["a", "b", "c"],
        7,
        &[0, 1, 2, 255],
    );
    let outcome = store.route(&env).await.unwrap();
    assert_eq!(
        outcome,
        RouteOutcome::Stored {
            deliveries: vec![(pid("b"), 1)]
        }
    );

    let got = fetch_all(&*store, session, "b").await;
    assert_eq!(got.len(), 1);
    let got = &got[0];
    assert_eq!(got.seq, 1);
    assert_eq!(got.message_id, env.message_id);
    assert_eq!(got.session_id, session);
    assert_eq!(got.from_party, pid("a"));
    assert_eq!(got.to_party, Some(pid("b")));
    assert_eq!(got.round, 7);
    assert_eq!(got.payload, vec![0, 1, 2, 255]);
    // Stored to the millisecond on SQLite, the microsecond on PostgreSQL.
    assert!((got.created_at - env.created_at).abs() < TimeDelta::milliseconds(1));

    assert!(fetch_all(&*store, session, "c").await.is_empty());
    assert!(fetch_all(&*store, session, "a").await.is_empty());
    // Another session's mailbox of the same name is separate.
    assert!(
        fetch_all(&*store, SessionId::new_random(), "b")
            .await
            .is_empty()
    );
}
backend_tests!(point_to_point, point_to_point_round_trip);

async fn broadcast_fans_out(t: TestDb) {
    let store = setup(&t).await;
    let session = SessionId::new_random();
    let all = ["a", "b", "c", "d"];
    // Give "c" an earlier message so that the broadcast gets different seqs per recipient.
    store
        .route(&envelope(session, "b", Some("c"), &all, 1, b"x"))
        .await
        .unwrap();
    let bcast = envelope(session, "a", None, &all, 2, b"hello all");
    let outcome = store.route(&bcast).await.unwrap();
    assert_eq!(
        outcome,
        RouteOutcome::Stored {
            deliveries: vec![(pid("b"), 1), (pid("c"), 2), (pid("d"), 1)]
        }
    );
    for (who, seq) in [("b", 1), ("c", 2), ("d", 1)] {
        let got = fetch_all(&*store, session, who).await;
        let last = got.last().unwrap();
        assert_eq!(
            (last.seq, last.message_id, last.to_party.clone()),
            (seq, bcast.message_id, None)
        );
        assert_eq!(last.payload, b"hello all");
    }
    assert!(fetch_all(&*store, session, "a").await.is_empty());
}
backend_tests!(broadcast, broadcast_fans_out);

async fn duplicates_and_conflicts(t: TestDb) {
    let store = setup(&t).await;
    let session = SessionId::new_random();
    let all = ["a", "b", "c"];
    let bcast = envelope(session, "a", None, &all, 1, b"payload");
    assert!(matches!(
        store.route(&bcast).await.unwrap(),
        RouteOutcome::Stored { .. }
    ));
    assert_eq!(
        store.route(&bcast).await.unwrap(),
        RouteOutcome::Duplicate { recipients: 2 }
    );
    // A retry carries a new timestamp and deadline: still the same envelope.
    let mut retry = bcast.clone();
    retry.created_at += TimeDelta::seconds(3);
    retry.session_deadline += TimeDelta::seconds(3);
    assert_eq!(
        store.route(&retry).await.unwrap(),
        RouteOutcome::Duplicate { recipients: 2 }
    );

    let variants: [fn(&mut NewEnvelope); 5] = [
        |e| e.payload.push(0),
        |e| e.round += 1,
        |e| {
            e.to_party = Some(pid("b"));
            e.recipients = vec![pid("b")];
        },
        |e| {
            e.from_party = pid("b");
            e.recipients = vec![pid("a"), pid("c")];
        },
        |e| e.session_id = SessionId::new_random(),
    ];
    for change in variants {
        let mut other = bcast.clone();
        change(&mut other);
        assert_eq!(store.route(&other).await.unwrap(), RouteOutcome::Conflict);
    }

    for who in ["b", "c"] {
        let got = fetch_all(&*store, session, who).await;
        assert_eq!(seqs(&got), vec![1], "{who}");
        assert_eq!(got[0].payload, b"payload");
    }
    // The refused copies consumed no seq: the next envelope gets 2.
    let next = store
        .route(&envelope(session, "a", Some("b"), &all, 2, b"n"))
        .await
        .unwrap();
    assert_eq!(
        next,
        RouteOutcome::Stored {
            deliveries: vec![(pid("b"), 2)]
        }
    );
}
backend_tests!(dedup, duplicates_and_conflicts);

/// Concurrent senders, through `replicas` separate pools on one database (two router
/// instances), into overlapping mailboxes: every mailbox sees 1..=n exactly once.
async fn concurrent_senders(t: TestDb) {
    let first = setup(&t).await;
    let second_db = crate::Db::connect(&t.config).await.unwrap();
    let second = store(&second_db);
    let stores = [first.clone(), second];
    let session = SessionId::new_random();
    let all = ["p0", "p1", "p2", "p3"];
    let per_sender = 15u32;

    let mut tasks = tokio::task::JoinSet::new();
    for (i, from) in all.into_iter().enumerate() {
        let store = stores[i % 2].clone();
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for round in 0..per_sender {
                // Alternate point-to-point (to the next party) and broadcast.
                let to = (round % 2 == 0).then(|| all[(i + 1) % all.len()]);
                let env = envelope(session, from, to, &all, round, &round.to_be_bytes());
                match store.route(&env).await.unwrap() {
                    RouteOutcome::Stored { .. } => ids.push((env.message_id, env.recipients)),
                    other => panic!("unexpected {other:?}"),
                }
            }
            ids
        });
    }
    let mut expected: std::collections::HashMap<PartyId, BTreeSet<MessageId>> = Default::default();
    while let Some(sent) = tasks.join_next().await {
        for (id, recipients) in sent.unwrap() {
            for r in recipients {
                expected.entry(r).or_default().insert(id);
            }
        }
    }

    for who in all {
        let got = fetch_all(&*first, session, who).await;
        let want = &expected[&pid(who)];
        assert_eq!(
            seqs(&got),
            (1..=want.len() as u64).collect::<Vec<_>>(),
            "{who}"
        );
        let ids: BTreeSet<MessageId> = got.iter().map(|e| e.message_id).collect();
        assert_eq!(&ids, want, "{who}");
        // Per sender, the order the sender routed in is kept.
        for from in all {
            let rounds: Vec<u32> = got
                .iter()
                .filter(|e| e.from_party == pid(from))
                .map(|e| e.round)
                .collect();
            let mut sorted = rounds.clone();
            sorted.sort();
            assert_eq!(rounds, sorted, "{who} from {from}");
        }
    }
    second_db.close().await;
}
backend_tests!(concurrency, concurrent_senders);

async fn paging_by_seq_count_and_bytes(t: TestDb) {
    let store = setup(&t).await;
    let session = SessionId::new_random();
    let all = ["a", "b"];
    for round in 1..=10u32 {
        store
            .route(&envelope(
                session,
                "a",
                Some("b"),
                &all,
                round,
                &[round as u8; 100],
            ))
            .await
            .unwrap();
    }
    let mailbox = Mailbox::new(session, pid("b"));
    let page = |after, limit, bytes| {
        let store = store.clone();
        let mailbox = mailbox.clone();
        async move {
            match store.fetch(&mailbox, after, limit, bytes).await.unwrap() {
                FetchOutcome::Envelopes {
                    envelopes,
                    has_more,
                } => (seqs(&envelopes), has_more),
                FetchOutcome::SessionPurged => panic!("purged"),
            }
        }
    };
    assert_eq!(page(0, 3, NO_BYTE_LIMIT).await, (vec![1, 2, 3], true));
    assert_eq!(page(3, 3, NO_BYTE_LIMIT).await, (vec![4, 5, 6], true));
    assert_eq!(page(7, 3, NO_BYTE_LIMIT).await, (vec![8, 9, 10], false));
    assert_eq!(page(10, 3, NO_BYTE_LIMIT).await, (vec![], false));
    assert_eq!(page(u64::MAX, 3, NO_BYTE_LIMIT).await, (vec![], false));
    // 250 bytes hold two 100-byte payloads; a budget smaller than one payload still gets one.
    assert_eq!(page(0, 100, 250).await, (vec![1, 2], true));
    assert_eq!(page(0, 100, 10).await, (vec![1], true));
    assert_eq!(page(0, 0, NO_BYTE_LIMIT).await, (vec![], true));
    let (got, more) = page(0, 1000, NO_BYTE_LIMIT).await;
    assert_eq!((got.len(), more), (10, false));
}
backend_tests!(paging, paging_by_seq_count_and_bytes);

/// Pages of payloads of different sizes, for every start, limit and several byte budgets, are
/// what the paging rule (`page_len`) says.
async fn paging_matches_the_model(t: TestDb) {
    let store = setup(&t).await;
    let session = SessionId::new_random();
    let all = ["a", "b"];
    let sizes: Vec<usize> = (1..=8).map(|i| (i * 37) % 150 + 1).collect();
    for (i, size) in sizes.iter().enumerate() {
        let round = u32::try_from(i + 1).unwrap();
        let payload = vec![7u8; *size];
        store
            .route(&envelope(session, "a", Some("b"), &all, round, &payload))
            .await
            .unwrap();
    }
    let mailbox = Mailbox::new(session, pid("b"));
    for after in 0..=sizes.len() {
        let rest: Vec<i64> = sizes[after..].iter().map(|s| *s as i64).collect();
        for limit in 0..=9u32 {
            for budget in [0u64, 1, 100, 150, 250, 400, NO_BYTE_LIMIT] {
                let FetchOutcome::Envelopes {
                    envelopes,
                    has_more,
                } = store
                    .fetch(&mailbox, after as u64, limit, budget)
                    .await
                    .unwrap()
                else {
                    panic!("purged")
                };
                let take = super::page_len(&rest, limit as usize, budget);
                let expected: Vec<u64> = (after as u64 + 1..).take(take).collect();
                let case = format!("after {after}, limit {limit}, budget {budget}");
                assert_eq!(seqs(&envelopes), expected, "{case}");
                assert_eq!(has_more, rest.len() > take, "{case}");
                for e in &envelopes {
                    assert_eq!(e.payload.len(), sizes[e.seq as usize - 1], "{case}");
                }
            }
        }
    }
}
backend_tests!(paging_model, paging_matches_the_model);

async fn retention_sweep(t: TestDb) {
    let store = setup(&t).await;
    let all = ["a", "b"];
    let grace = Duration::from_secs(600);
    let t0: DateTime<Utc> = Utc::now();

    // `ended` ends by event at t0 (deadline t0 + 1 h); `lapsed` never ends but has its
    // deadline at t0 + 60 s; `active` runs on (deadline t0 + 2 h).
    let ended = SessionId::new_random();
    let lapsed = SessionId::new_random();
    let active = SessionId::new_random();
    for session in [ended, lapsed, active] {
        let mut env = envelope(session, "a", Some("b"), &all, 1, b"secret");
        env.session_deadline = if session == lapsed {
            t0 + TimeDelta::seconds(60)
        } else if session == ended {
            t0 + TimeDelta::hours(1)
        } else {
            t0 + TimeDelta::hours(2)
        };
        store.route(&env).await.unwrap();
    }
    store
        .end_session(ended, t0 + TimeDelta::hours(1), t0)
        .await
        .unwrap();
    // A second end event (redelivery) does not move the end.
    store
        .end_session(
            ended,
            t0 + TimeDelta::hours(1),
            t0 + TimeDelta::seconds(500),
        )
        .await
        .unwrap();

    // Ended, not yet purged: readers still drain, senders are refused.
    assert_eq!(fetch_all(&*store, ended, "b").await.len(), 1);
    assert_eq!(
        store
            .route(&envelope(ended, "a", Some("b"), &all, 2, b"late"))
            .await
            .unwrap(),
        RouteOutcome::SessionEnded
    );

    let report = store
        .sweep(t0 + TimeDelta::seconds(599), grace)
        .await
        .unwrap();
    assert_eq!(report, SweepReport::default());

    let report = store
        .sweep(t0 + TimeDelta::seconds(600), grace)
        .await
        .unwrap();
    assert_eq!(report.purged_sessions, vec![ended]);
    assert_eq!(report.deleted_messages, 1);
    let b = |s| Mailbox::new(s, pid("b"));
    assert_eq!(
        store.fetch(&b(ended), 0, 10, NO_BYTE_LIMIT).await.unwrap(),
        FetchOutcome::SessionPurged
    );
    assert_eq!(fetch_all(&*store, lapsed, "b").await.len(), 1);

    let report = store
        .sweep(t0 + TimeDelta::seconds(660), grace)
        .await
        .unwrap();
    assert_eq!(report.purged_sessions, vec![lapsed]);
    assert_eq!(
        store.fetch(&b(lapsed), 0, 10, NO_BYTE_LIMIT).await.unwrap(),
        FetchOutcome::SessionPurged
    );
    assert_eq!(fetch_all(&*store, active, "b").await.len(), 1);
    // A purged session refuses envelopes (a sender with a still-valid token).
    assert_eq!(
        store
            .route(&envelope(lapsed, "a", Some("b"), &all, 2, b"late"))
            .await
            .unwrap(),
        RouteOutcome::SessionEnded
    );

    // Sweeping again changes nothing. Once `deadline + grace + TOMBSTONE_RETENTION` has passed
    // for the first two, their tombstones go, and the active session is purged by its deadline
    // (but keeps its tombstone).
    let report = store
        .sweep(t0 + TimeDelta::seconds(661), grace)
        .await
        .unwrap();
    assert_eq!(report, SweepReport::default());
    let much_later =
        t0 + TimeDelta::hours(1) + TimeDelta::from_std(grace + TOMBSTONE_RETENTION).unwrap();
    let report = store.sweep(much_later, grace).await.unwrap();
    assert_eq!(report.purged_sessions, vec![active]);
    assert_eq!(report.forgotten_sessions, 2, "{report:?}");
    // A forgotten session is unknown again: an empty mailbox, not an error.
    assert!(fetch_all(&*store, ended, "b").await.is_empty());
    assert_eq!(
        store.fetch(&b(active), 0, 10, NO_BYTE_LIMIT).await.unwrap(),
        FetchOutcome::SessionPurged
    );
}
backend_tests!(retention, retention_sweep);

async fn end_event_before_any_message(t: TestDb) {
    let store = setup(&t).await;
    let session = SessionId::new_random();
    let now = Utc::now();
    store
        .end_session(session, now + TimeDelta::minutes(10), now)
        .await
        .unwrap();
    assert_eq!(
        store
            .route(&envelope(session, "a", Some("b"), &["a", "b"], 1, b"x"))
            .await
            .unwrap(),
        RouteOutcome::SessionEnded
    );
    assert!(fetch_all(&*store, session, "b").await.is_empty());
}
backend_tests!(ended_before_start, end_event_before_any_message);

/// PostgreSQL announces committed deliveries to every listener (another replica included);
/// SQLite has no cross-process feed.
async fn change_feed_announces_commits(t: TestDb) {
    let store = setup(&t).await;
    let Some(mut feed) = store.change_feed().await.unwrap() else {
        assert_eq!(t.db.backend(), crate::Backend::Sqlite);
        return;
    };
    let session = SessionId::new_random();
    let all = ["a", "b", "c"];
    // A refused envelope (ended session) announces nothing; the session's next envelope does.
    let other = SessionId::new_random();
    store
        .end_session(other, Utc::now() + TimeDelta::minutes(1), Utc::now())
        .await
        .unwrap();
    store
        .route(&envelope(other, "a", Some("b"), &all, 1, b"x"))
        .await
        .unwrap();
    store
        .route(&envelope(session, "a", None, &all, 1, b"x"))
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    while seen.len() < 2 {
        let change = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("no notification within 10 s")
            .unwrap();
        match change {
            // Schemas share the database's notification channel: other tests' sessions may
            // show up here, never the refused one.
            Change::Mailbox(m) => {
                assert_ne!(m.session_id, other);
                if m.session_id == session {
                    seen.insert(m.recipient.to_string());
                }
            }
            Change::Reconnected => {}
        }
    }
    assert_eq!(seen, BTreeSet::from(["b".to_owned(), "c".to_owned()]));
}
backend_tests!(change_feed, change_feed_announces_commits);
