//! Routing over real gRPC: point-to-point and broadcast, ordering, de-duplication, resumption,
//! offline fetches, long polls, slow subscribers.

use std::collections::HashMap;
use std::time::Duration;

use mpc_proto::ErrorCode;
use mpc_store::testing::TestDb;

use crate::common::*;

async fn p2p_and_broadcast_among_three_parties(t: TestDb) {
    let f = Fixture::start(t).await;
    let s = f.coordinator.session(&["a", "b", "c"]);
    let mut client = f.client().await;
    let mut b_stream = subscribe(&mut client, &s, "b", 0).await.unwrap();

    let to_b = s.envelope("a", "b", 1, &[0, 159, 146, 150, 255]);
    let reply = route(&mut client, &s.token("a"), to_b.clone())
        .await
        .unwrap();
    assert_eq!(
        (reply.message_id.as_str(), reply.duplicate, reply.recipients),
        (to_b.message_id.as_str(), false, 1)
    );
    let got = next(&mut b_stream).await;
    assert_eq!(got.message_id, to_b.message_id);
    assert_eq!(got.session_id, s.id.to_string());
    assert_eq!((got.from_party.as_str(), got.to_party.as_str()), ("a", "b"));
    assert_eq!((got.round, got.seq), (1, 1));
    assert_eq!(got.payload, to_b.payload);
    assert!(
        chrono::DateTime::parse_from_rfc3339(&got.created_at).is_ok(),
        "{}",
        got.created_at
    );

    let bcast = s.envelope("c", "", 2, b"to everyone");
    let reply = route(&mut client, &s.token("c"), bcast.clone())
        .await
        .unwrap();
    assert_eq!(reply.recipients, 2);
    let got = next(&mut b_stream).await;
    assert_eq!(
        (got.message_id.as_str(), got.to_party.as_str(), got.seq),
        (bcast.message_id.as_str(), "", 2)
    );

    // a was offline: it finds the broadcast only; c gets nothing of its own.
    let a_box = fetch(&mut client, &s, "a", 0, 0, 0).await.unwrap();
    let ids: Vec<_> = a_box
        .messages
        .iter()
        .map(|m| m.message_id.as_str())
        .collect();
    assert_eq!(ids, [bcast.message_id.as_str()]);
    assert_eq!((a_box.last_seq, a_box.has_more), (1, false));
    let c_box = fetch(&mut client, &s, "c", 0, 0, 0).await.unwrap();
    assert!(c_box.messages.is_empty());
    assert_eq!(c_box.last_seq, 0);
    f.stop().await;
}
mpc_store::backend_tests!(p2p_and_broadcast, p2p_and_broadcast_among_three_parties);

async fn ordering_under_concurrent_senders(t: TestDb) {
    let f = Fixture::start(t).await;
    let parties = ["p1", "p2", "p3", "sink"];
    let s = std::sync::Arc::new(f.coordinator.session(&parties));
    let mut client = f.client().await;
    let mut sink = subscribe(&mut client, &s, "sink", 0).await.unwrap();
    let per_sender = 20u32;

    let mut senders = tokio::task::JoinSet::new();
    for from in &parties[..3] {
        let (s, from) = (s.clone(), from.to_string());
        let mut client = f.client().await;
        senders.spawn(async move {
            for round in 0..per_sender {
                // Alternate point-to-point and broadcast: both land in the sink's mailbox.
                let to = if round % 2 == 0 { "sink" } else { "" };
                let env = s.envelope(&from, to, round, format!("{from}/{round}").as_bytes());
                route(&mut client, &s.token(&from), env).await.unwrap();
            }
        });
    }
    while let Some(done) = senders.join_next().await {
        done.unwrap();
    }

    let total = 3 * per_sender as u64;
    let mut last_round: HashMap<String, u32> = HashMap::new();
    for expected_seq in 1..=total {
        let m = next(&mut sink).await;
        assert_eq!(m.seq, expected_seq, "gap or reordering");
        assert_eq!(
            m.payload,
            format!("{}/{}", m.from_party, m.round).as_bytes()
        );
        // Each sender's envelopes arrive in the order it sent them.
        if let Some(prev) = last_round.insert(m.from_party.clone(), m.round) {
            assert!(
                m.round > prev,
                "{} sent {} after {}",
                m.from_party,
                m.round,
                prev
            );
        }
    }
    // Nothing beyond: the next envelope gets the next seq.
    route(
        &mut client,
        &s.token("p1"),
        s.envelope("p1", "sink", 99, b"last"),
    )
    .await
    .unwrap();
    let m = next(&mut sink).await;
    assert_eq!((m.seq, m.round), (total + 1, 99));
    f.stop().await;
}
mpc_store::backend_tests!(concurrent_senders, ordering_under_concurrent_senders);

async fn duplicates_are_idempotent_and_conflicts_refused(t: TestDb) {
    let f = Fixture::start(t).await;
    let s = f.coordinator.session(&["a", "b", "c"]);
    let mut client = f.client().await;
    let env = s.envelope("a", "", 3, b"round three");
    let first = route(&mut client, &s.token("a"), env.clone())
        .await
        .unwrap();
    assert!(!first.duplicate);
    let again = route(&mut client, &s.token("a"), env.clone())
        .await
        .unwrap();
    assert_eq!(
        (again.message_id.as_str(), again.duplicate, again.recipients),
        (env.message_id.as_str(), true, 2)
    );

    let mut other = env.clone();
    other.payload = b"something else".to_vec();
    let err = route(&mut client, &s.token("a"), other).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AlreadyExists);
    let mut other = env.clone();
    other.to_party = "b".into();
    assert_eq!(
        code(route(&mut client, &s.token("a"), other).await),
        ErrorCode::AlreadyExists
    );

    for who in ["b", "c"] {
        let got = fetch(&mut client, &s, who, 0, 0, 0).await.unwrap();
        assert_eq!(got.messages.len(), 1, "{who}");
        assert_eq!(got.messages[0].payload, b"round three");
    }
    f.stop().await;
}
mpc_store::backend_tests!(dedup, duplicates_are_idempotent_and_conflicts_refused);

async fn resubscribing_from_the_last_seq_resumes_exactly(t: TestDb) {
    let f = Fixture::start(t).await;
    let s = f.coordinator.session(&["a", "b"]);
    let mut client = f.client().await;
    for round in 1..=10 {
        route(
            &mut client,
            &s.token("a"),
            s.envelope("a", "b", round, &[round as u8]),
        )
        .await
        .unwrap();
    }
    let mut stream = subscribe(&mut client, &s, "b", 0).await.unwrap();
    let k = 4;
    for seq in 1..=k {
        assert_eq!(next(&mut stream).await.seq, seq);
    }
    drop(stream);
    for round in 11..=13 {
        route(
            &mut client,
            &s.token("a"),
            s.envelope("a", "b", round, &[round as u8]),
        )
        .await
        .unwrap();
    }
    let mut stream = subscribe(&mut client, &s, "b", k).await.unwrap();
    for seq in k + 1..=13 {
        let m = next(&mut stream).await;
        assert_eq!(
            (m.seq, m.round, m.payload.clone()),
            (seq, seq as u32, vec![seq as u8])
        );
    }
    // Live after the backlog, and no repeats: the very next item is the new envelope.
    route(
        &mut client,
        &s.token("a"),
        s.envelope("a", "b", 14, b"live"),
    )
    .await
    .unwrap();
    let m = next(&mut stream).await;
    assert_eq!((m.seq, m.payload.as_slice()), (14, b"live".as_slice()));
    f.stop().await;
}
mpc_store::backend_tests!(resumption, resubscribing_from_the_last_seq_resumes_exactly);

async fn offline_party_fetches_later_in_pages(t: TestDb) {
    let f = Fixture::start(t).await;
    let s = f.coordinator.session(&["a", "b", "c"]);
    let mut client = f.client().await;
    for round in 1..=5 {
        route(
            &mut client,
            &s.token("a"),
            s.envelope("a", "c", round, b"x"),
        )
        .await
        .unwrap();
    }
    let page = fetch(&mut client, &s, "c", 0, 2, 0).await.unwrap();
    let seqs: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
    assert_eq!((seqs, page.last_seq, page.has_more), (vec![1, 2], 2, true));
    let page = fetch(&mut client, &s, "c", page.last_seq, 2, 0)
        .await
        .unwrap();
    assert_eq!(
        (page.messages.len(), page.last_seq, page.has_more),
        (2, 4, true)
    );
    let page = fetch(&mut client, &s, "c", page.last_seq, 2, 0)
        .await
        .unwrap();
    assert_eq!(
        (page.messages.len(), page.last_seq, page.has_more),
        (1, 5, false)
    );
    let page = fetch(&mut client, &s, "c", 5, 2, 0).await.unwrap();
    assert_eq!(
        (page.messages.len(), page.last_seq, page.has_more),
        (0, 5, false)
    );
    // A limit above the maximum is capped, not refused.
    let page = fetch(&mut client, &s, "c", 0, 1_000_000, 0).await.unwrap();
    assert_eq!(page.messages.len(), 5);
    f.stop().await;
}
mpc_store::backend_tests!(offline_fetch, offline_party_fetches_later_in_pages);

/// A long poll returns as soon as an envelope arrives. The router's safety-net poll is off and
/// the wait is far longer than the test deadline, so only the wake-up can answer it.
async fn long_poll_is_woken_by_a_new_envelope(t: TestDb) {
    let f = Fixture::start_with(t, |c| c.max_fetch_wait = 10 * DEADLINE).await;
    let s = std::sync::Arc::new(f.coordinator.session(&["a", "b"]));
    let mut poller = f.client().await;
    let waiting = {
        let s = s.clone();
        tokio::spawn(async move {
            let wait_ms = (10 * DEADLINE).as_millis() as u32;
            fetch(&mut poller, &s, "b", 0, 0, wait_ms).await
        })
    };
    let mut client = f.client().await;
    route(
        &mut client,
        &s.token("a"),
        s.envelope("a", "b", 1, b"wake up"),
    )
    .await
    .unwrap();
    let got = tokio::time::timeout(DEADLINE, waiting)
        .await
        .expect("long poll was not woken")
        .unwrap()
        .unwrap();
    assert_eq!(got.messages.len(), 1);
    assert_eq!(got.messages[0].payload, b"wake up");
    f.stop().await;
}
mpc_store::backend_tests!(long_poll, long_poll_is_woken_by_a_new_envelope);

/// A subscriber that stops reading (its HTTP/2 window and the router's buffer fill up) does not
/// hold up senders or other subscribers, nor the router's shutdown for longer than its grace.
async fn slow_subscriber_does_not_block_others(t: TestDb) {
    let f = Fixture::start_with(t, |c| c.shutdown_grace = Duration::from_millis(500)).await;
    let s = f.coordinator.session(&["a", "slow", "fast"]);
    let mut client = f.client().await;
    // On its own connection: a stream the client never reads also holds up the connection's
    // flow-control window on the client side, which is not what this test is about.
    let mut slow_client = f.client().await;
    let _stalled = subscribe(&mut slow_client, &s, "slow", 0).await.unwrap();
    let mut fast = subscribe(&mut client, &s, "fast", 0).await.unwrap();
    let chunk = vec![7u8; 256 * 1024];
    // 40 × 256 KiB broadcast: far more than the stalled stream's windows and buffer hold.
    for round in 0..40 {
        route(
            &mut client,
            &s.token("a"),
            s.envelope("a", "", round, &chunk),
        )
        .await
        .unwrap();
    }
    for seq in 1..=40 {
        let m = next(&mut fast).await;
        assert_eq!((m.seq, m.payload.len()), (seq, chunk.len()));
    }
    // `stop` checks that serve returns (Ok) although the stalled stream is still open.
    f.stop().await;
}
mpc_store::backend_tests!(slow_subscriber, slow_subscriber_does_not_block_others);

async fn shutdown_ends_open_subscriptions(t: TestDb) {
    let f = Fixture::start(t).await;
    let s = f.coordinator.session(&["a", "b"]);
    let mut client = f.client().await;
    let mut stream = subscribe(&mut client, &s, "b", 0).await.unwrap();
    route(&mut client, &s.token("a"), s.envelope("a", "b", 1, b"x"))
        .await
        .unwrap();
    next(&mut stream).await;
    f.router.shutdown.cancel();
    let err = stream_error(&mut stream).await;
    assert_eq!(err.code, ErrorCode::Unavailable);
    // `stop` checks that serve returned Ok.
    f.stop().await;
}
mpc_store::backend_tests!(shutdown, shutdown_ends_open_subscriptions);
