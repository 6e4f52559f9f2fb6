//! How the driver fails: trust-policy violations stop the session before any message is sent
//! and name the party; a party that never joins, or goes silent mid-session, is named at the
//! deadline; a session that is not what the party was asked to sign is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mpc_client::clients::MailboxRef;
use mpc_client::{PartyContext, PartyError, PartyWork, SignExpectation, run_session};
use mpc_proto::SessionId;
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_protocol::{IdentityKey, PartyIndex, SessionKeys};

const NAMES: [&str; 3] = ["server_party_1", "server_party_2", "server_party_3"];

/// The session as the coordinator ends it.
async fn final_state(services: &Services, created: &pb::CreateSessionResponse) -> pb::SessionInfo {
    let id = SessionId::parse(&created.session_id).unwrap();
    let admin = services.admin();
    tokio::time::timeout(DEADLINE, async {
        loop {
            let info = admin.get_session(id).await.unwrap();
            if matches!(
                pb::SessionStatus::try_from(info.status),
                Ok(pb::SessionStatus::Failed
                    | pb::SessionStatus::Expired
                    | pb::SessionStatus::Completed)
            ) {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the session did not end")
}

/// Whatever is in `party`'s mailbox (what the others sent it).
async fn mailbox_len(
    ctx: &PartyContext,
    created: &pb::CreateSessionResponse,
    party: &str,
) -> usize {
    let id = SessionId::parse(&created.session_id).unwrap();
    let me = pid(party);
    let mailbox = MailboxRef {
        join_token: &created.join_tokens[party],
        session_id: id,
        party_id: &me,
    };
    ctx.router
        .fetch(mailbox, 0, 1000, Duration::ZERO)
        .await
        .unwrap()
        .messages
        .len()
}

fn untrusted(result: Result<mpc_client::PartyOutcome, PartyError>) -> String {
    match result {
        Err(PartyError::Untrusted { party, .. }) => party.to_string(),
        other => panic!("expected a trust violation, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_of_a_pinned_party_stops_the_session_before_any_message() {
    let services = Services::start().await;
    let (ids, trust) = identities(&NAMES);
    // server_party_2 joins with another identity key than the one the others pinned.
    let impostor = Arc::new(IdentityKey::generate().unwrap());
    let keys = [ids[0].clone(), impostor, ids[2].clone()];
    let parties: Vec<_> = keys
        .iter()
        .map(|k| services.party(k.clone(), trust.clone()))
        .collect();
    let created = services.create(keygen_request(&NAMES, 2, "acct-x")).await;
    let runs = parties.iter().zip(NAMES).map(|(ctx, name)| {
        let token = created.join_tokens[name].clone();
        async move { run_session(ctx, &token, PartyWork::Keygen).await }
    });
    let mut results = tokio::time::timeout(DEADLINE, futures::future::join_all(runs))
        .await
        .unwrap();
    let impostor_result = results.remove(1);
    // Whichever honest party checks the roster first fails the session; the other either finds
    // the violation too or learns that the session already failed for it.
    let mut found = 0;
    for r in results {
        match r {
            Err(PartyError::SessionEnded { reason, .. }) => {
                assert!(
                    reason.contains("party server_party_2 is not trusted"),
                    "{reason}"
                );
            }
            other => {
                assert_eq!(untrusted(other), "server_party_2");
                found += 1;
            }
        }
    }
    assert!(found >= 1, "an honest party must find the impostor");
    assert!(
        matches!(impostor_result, Err(PartyError::SessionEnded { .. })),
        "{impostor_result:?}"
    );
    let info = final_state(&services, &created).await;
    assert_eq!(info.status, i32::from(pb::SessionStatus::Failed));
    assert_eq!(
        info.failure_reason,
        "keygen failed: party server_party_2 is not trusted: its identity key differs from the pinned key"
    );
    assert_eq!(info.blamed_party_id, "server_party_2");
    assert_eq!(
        mailbox_len(&parties[0], &created, "server_party_2").await,
        0,
        "the honest parties sent nothing"
    );
    services.stop().await;
}

/// A device signs with server_party_3; `delegate` says whether the server trusts the device's
/// key as a delegate (it is not pinned, and unpinned keys are not allowed).
async fn device_sign(
    delegate: bool,
) -> (
    Services,
    pb::CreateSessionResponse,
    Vec<Result<mpc_client::PartyOutcome, PartyError>>,
    PartyContext,
) {
    let services = Services::start().await;
    let names = ["user_device_1", "server_party_3"];
    let server_id = Arc::new(IdentityKey::generate().unwrap());
    let device_id = Arc::new(IdentityKey::generate().unwrap());
    let mut server_trust =
        mpc_client::TrustPolicy::new().pin(pid(names[1]), server_id.public_key());
    if delegate {
        server_trust = server_trust.delegate(device_id.public_key());
    }
    let device_trust = mpc_client::TrustPolicy::new()
        .pin(pid(names[1]), server_id.public_key())
        .allow_unpinned(true);
    let server = services.party(server_id, server_trust);
    let device = services.party(device_id, device_trust);
    let shares = fixture_shares();
    let pk = shares[0].public_key().to_uncompressed();
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
            run_session(&device, &created.join_tokens[names[0]], work(0)),
            run_session(&server, &created.join_tokens[names[1]], work(2)),
        )
    })
    .await
    .unwrap();
    if let (Ok(a), Ok(_)) = (&a, &b) {
        match &a.output {
            mpc_client::PartyOutput::Signature(sig) => assert_valid(&pk, &hash, sig),
            other => panic!("{other:?}"),
        }
    }
    (services, created, vec![a, b], server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpinned_device_needs_a_delegate_key() {
    let (services, created, mut results, server) = device_sign(false).await;
    assert_eq!(untrusted(results.remove(1)), "user_device_1");
    let info = final_state(&services, &created).await;
    assert_eq!(
        info.failure_reason,
        "sign failed: party user_device_1 is not trusted: its identity key is neither pinned nor a trusted delegate"
    );
    assert_eq!(info.blamed_party_id, "user_device_1");
    assert_eq!(mailbox_len(&server, &created, "user_device_1").await, 0);
    services.stop().await;

    let (services, _, results, _) = device_sign(true).await;
    for r in results {
        r.expect("a delegate key is trusted");
    }
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_that_never_joins_is_named_at_the_deadline() {
    let services = Services::start().await;
    let (ids, trust) = identities(&NAMES);
    let mut request = keygen_request(&NAMES, 2, "acct-late");
    request.lifetime_seconds = 5;
    let created = services.create(request).await;
    // server_party_3 never joins.
    let runs = ids.iter().zip(NAMES).take(2).map(|(id, name)| {
        let ctx = services.party(id.clone(), trust.clone());
        let token = created.join_tokens[name].clone();
        async move { run_session(&ctx, &token, PartyWork::Keygen).await }
    });
    for r in tokio::time::timeout(DEADLINE, futures::future::join_all(runs))
        .await
        .unwrap()
    {
        match r {
            Err(PartyError::Timeout { waiting_for, round }) => {
                assert_eq!(waiting_for, vec![pid("server_party_3")]);
                assert_eq!(round, None);
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    let info = final_state(&services, &created).await;
    assert_eq!(info.status, i32::from(pb::SessionStatus::Failed));
    assert_eq!(
        info.failure_reason,
        "keygen failed: timeout waiting for party server_party_3 to join"
    );
    assert_eq!(info.blamed_party_id, "server_party_3");
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_that_goes_silent_is_named_with_its_round() {
    let services = Services::start().await;
    let names = ["server_party_1", "server_party_3"];
    let (ids, trust) = identities(&names);
    let shares = fixture_shares();
    let pk = shares[0].public_key().to_uncompressed();
    let mut request = sign_request(
        &[(names[0], 0), (names[1], 2)],
        2,
        3,
        "fixture",
        &pk,
        &random_hash(),
    );
    request.lifetime_seconds = 5;
    let created = services.create(request).await;
    // server_party_3 joins with a valid signed session key, then never sends anything.
    let sid = SessionId::parse(&created.session_id).unwrap();
    let engine_sid = mpc_protocol::SessionId::new(sid.as_uuid().as_bytes().to_vec()).unwrap();
    let silent_keys =
        SessionKeys::generate(&ids[1], &engine_sid, PartyIndex::new(2).unwrap()).unwrap();
    services
        .admin()
        .join_session(
            &created.join_tokens[names[1]],
            ids[1].public_key().as_bytes(),
            silent_keys.announcement(),
            None,
        )
        .await
        .unwrap();
    let ctx = services.party(ids[0].clone(), trust);
    let work = PartyWork::Sign {
        share: shares[0].clone(),
        expected: SignExpectation::default(),
    };
    let result = tokio::time::timeout(
        DEADLINE,
        run_session(&ctx, &created.join_tokens[names[0]], work),
    )
    .await
    .unwrap();
    match result {
        Err(PartyError::Timeout { waiting_for, round }) => {
            assert_eq!(waiting_for, vec![pid("server_party_3")]);
            assert_eq!(round, Some(1));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let info = final_state(&services, &created).await;
    assert_eq!(
        info.failure_reason,
        "sign failed: timeout waiting for party server_party_3 in round 1"
    );
    assert_eq!(info.blamed_party_id, "server_party_3");
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_refuses_to_sign_another_hash_than_it_was_asked_to() {
    let services = Services::start().await;
    let names = ["server_party_1", "server_party_3"];
    let (ids, trust) = identities(&names);
    let shares = fixture_shares();
    let pk = shares[0].public_key().to_uncompressed();
    let created = services
        .create(sign_request(
            &[(names[0], 0), (names[1], 2)],
            2,
            3,
            "fixture",
            &pk,
            &random_hash(),
        ))
        .await;
    let careful = services.party(ids[0].clone(), trust.clone());
    let other = services.party(ids[1].clone(), trust);
    let (a, b) = tokio::time::timeout(DEADLINE, async {
        tokio::join!(
            run_session(
                &careful,
                &created.join_tokens[names[0]],
                PartyWork::Sign {
                    share: shares[0].clone(),
                    expected: SignExpectation {
                        key_id: Some("fixture".into()),
                        message_hash: Some(random_hash()),
                    },
                },
            ),
            run_session(
                &other,
                &created.join_tokens[names[1]],
                PartyWork::Sign {
                    share: shares[2].clone(),
                    expected: SignExpectation::default(),
                },
            ),
        )
    })
    .await
    .unwrap();
    assert!(matches!(a, Err(PartyError::Mismatch(_))), "{a:?}");
    assert!(matches!(b, Err(PartyError::SessionEnded { .. })), "{b:?}");
    let info = final_state(&services, &created).await;
    assert_eq!(
        info.failure_reason,
        "sign failed: the session's message hash is not the one this party was asked to sign"
    );
    assert_eq!(info.blamed_party_id, "");
    assert_eq!(
        mailbox_len(&careful, &created, names[1]).await,
        0,
        "nothing was signed"
    );
    services.stop().await;
}
