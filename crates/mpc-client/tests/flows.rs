//! The driver end to end against a real coordinator and router: three bare parties (the driver
//! only, no server-party crate) run keygen 2-of-3, sign and refresh; a party whose router
//! connection breaks mid-session resumes without loss, and falls back to polling when the
//! stream keeps breaking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use mpc_client::party::{Progress, wait_until_ended};
use mpc_client::{MailboxTransport, PartyOutput, PartyWork, SignExpectation, run_session};
use mpc_proto::SessionId;
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_protocol::{KeyShare, Signature};

const NAMES: [&str; 3] = ["server_party_1", "server_party_2", "server_party_3"];

fn share(output: PartyOutput) -> KeyShare {
    match output {
        PartyOutput::Share(s) => s,
        other => panic!("expected a share, got {other:?}"),
    }
}

fn signature(output: PartyOutput) -> Signature {
    match output {
        PartyOutput::Signature(s) => s,
        other => panic!("expected a signature, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_sign_and_refresh_2_of_3() {
    let services = Services::start().await;
    let (ids, trust) = identities(&NAMES);
    let parties: Vec<_> = ids
        .iter()
        .map(|id| services.party(id.clone(), trust.clone()))
        .collect();

    // Keygen: every party ends with a share of the same key, and the coordinator completes.
    let created = services.create(keygen_request(&NAMES, 2, "acct-1")).await;
    let runs = parties.iter().zip(NAMES).map(|(ctx, name)| {
        let token = created.join_tokens[name].clone();
        async move { run_session(ctx, &token, PartyWork::Keygen).await }
    });
    let outcomes = tokio::time::timeout(DEADLINE, futures::future::join_all(runs))
        .await
        .expect("keygen did not finish");
    let shares: Vec<Arc<KeyShare>> = outcomes
        .into_iter()
        .map(|o| Arc::new(share(o.unwrap().output)))
        .collect();
    let public_key = shares[0].public_key();
    for (i, s) in shares.iter().enumerate() {
        assert_eq!(s.public_key(), public_key);
        assert_eq!(
            usize::from(s.index().get()),
            i,
            "index follows request order"
        );
    }
    let sid = SessionId::parse(&created.session_id).unwrap();
    let ended = wait_until_ended(&parties[0], sid, &created.join_tokens[NAMES[0]])
        .await
        .unwrap();
    assert_eq!(ended.status, i32::from(pb::SessionStatus::Completed));
    assert_eq!(ended.public_key, public_key.to_uncompressed().to_vec());

    // Sign with parties 1 and 3: both get the same signature, valid for the group key.
    let hash = random_hash();
    let pk = public_key.to_uncompressed();
    let created = services
        .create(sign_request(
            &[(NAMES[0], 0), (NAMES[2], 2)],
            2,
            3,
            "acct-1",
            &pk,
            &hash,
        ))
        .await;
    let sign = |i: usize, key: &Arc<KeyShare>| {
        let token = created.join_tokens[NAMES[i]].clone();
        let work = PartyWork::Sign {
            share: key.clone(),
            expected: SignExpectation {
                key_id: Some("acct-1".into()),
                message_hash: Some(hash),
            },
        };
        let ctx = &parties[i];
        async move { run_session(ctx, &token, work).await }
    };
    let (a, b) = tokio::join!(sign(0, &shares[0]), sign(2, &shares[2]));
    let (a, b) = (signature(a.unwrap().output), signature(b.unwrap().output));
    assert_eq!(a, b);
    assert_valid(&pk, &hash, &a);

    // Refresh: new shares, same key; the new shares of parties 2 and 3 sign.
    let created = services
        .create(pb::CreateSessionRequest {
            session_type: pb::SessionType::Refresh.into(),
            threshold_t: 2,
            threshold_n: 3,
            participants: (0..3)
                .map(|i| participant(NAMES[i], Some(i as u32)))
                .collect(),
            key_id: "acct-1".into(),
            public_key: pk.to_vec(),
            ..Default::default()
        })
        .await;
    let runs = parties
        .iter()
        .zip(NAMES)
        .zip(&shares)
        .map(|((ctx, name), s)| {
            let token = created.join_tokens[name].clone();
            let work = PartyWork::Refresh { share: s.clone() };
            async move { run_session(ctx, &token, work).await }
        });
    let refreshed: Vec<Arc<KeyShare>> =
        tokio::time::timeout(DEADLINE, futures::future::join_all(runs))
            .await
            .expect("refresh did not finish")
            .into_iter()
            .map(|o| Arc::new(share(o.unwrap().output)))
            .collect();
    for (old, new) in shares.iter().zip(&refreshed) {
        assert_eq!(new.public_key(), public_key);
        assert_ne!(
            old.to_bytes().unwrap().as_slice(),
            new.to_bytes().unwrap().as_slice(),
            "refresh must change the share"
        );
    }
    let hash = random_hash();
    let created = services
        .create(sign_request(
            &[(NAMES[1], 1), (NAMES[2], 2)],
            2,
            3,
            "acct-1",
            &pk,
            &hash,
        ))
        .await;
    let sign = |i: usize| {
        let token = created.join_tokens[NAMES[i]].clone();
        let work = PartyWork::Sign {
            share: refreshed[i].clone(),
            expected: SignExpectation::default(),
        };
        let ctx = &parties[i];
        async move { run_session(ctx, &token, work).await }
    };
    let (a, b) = tokio::join!(sign(1), sign(2));
    let sig = signature(a.unwrap().output);
    assert_eq!(sig, signature(b.unwrap().output));
    assert_valid(&pk, &hash, &sig);
    services.stop().await;
}

/// Sign with the test key where `victim`'s router connection is cut mid-session; with
/// `refuse_until_polling`, the router then stays unreachable for it until it falls back to
/// polling. `other` polls throughout.
async fn sign_through_a_broken_connection(refuse_until_polling: bool) -> Recorder {
    let services = Services::start().await;
    let names = ["device_1", "server_party_3"];
    let (ids, trust) = identities(&names);
    let shares = fixture_shares();
    let pk = shares[0].public_key().to_uncompressed();
    let proxy = Proxy::start(services.router_grpc).await;
    let recorder = Recorder::default();
    let cut_once = std::sync::Once::new();
    let p = proxy.clone();
    let hook = recorder.hook(move |event| match event {
        Progress::Received { .. } => cut_once.call_once(|| {
            p.refuse(refuse_until_polling);
            p.cut();
        }),
        Progress::FellBackToPolling { .. } => p.refuse(false),
        _ => {}
    });
    let victim = services.party_via(
        ids[0].clone(),
        trust.clone(),
        fast_options(),
        proxy.addr,
        Some(hook),
    );
    let mut polling = fast_options();
    polling.transport = MailboxTransport::Polling;
    let other = services.party_via(ids[1].clone(), trust, polling, services.router_grpc, None);

    let hash = random_hash();
    let created = services
        .create(sign_request(
            &[(names[0], 0), (names[1], 2)],
            2,
            3,
            "fixture",
            &pk,
            &hash,
        ))
        .await;
    let work = |i: usize| PartyWork::Sign {
        share: shares[i].clone(),
        expected: SignExpectation::default(),
    };
    let (a, b) = tokio::time::timeout(DEADLINE, async {
        tokio::join!(
            run_session(&victim, &created.join_tokens[names[0]], work(0)),
            run_session(&other, &created.join_tokens[names[1]], work(2)),
        )
    })
    .await
    .expect("sign did not finish");
    let sig = signature(a.unwrap().output);
    assert_eq!(sig, signature(b.unwrap().output));
    assert_valid(&pk, &hash, &sig);
    // Every envelope exactly once, in order, across the break.
    let seqs = recorder.received_seqs();
    assert!(!seqs.is_empty());
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    services.stop().await;
    recorder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_is_resumed_from_the_last_seq() {
    let recorder = sign_through_a_broken_connection(false).await;
    let events = recorder.events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Progress::StreamResumed { after_seq, .. } if *after_seq >= 1)),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Progress::FellBackToPolling { .. })),
        "one break must not give up on streaming: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_keeps_breaking_falls_back_to_polling() {
    let recorder = sign_through_a_broken_connection(true).await;
    let events = recorder.events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Progress::FellBackToPolling { after_seq, .. } if *after_seq >= 1)),
        "{events:?}"
    );
}
