//! Random envelopes against a live router: never a panic or a 5xx, always a 4xx-class code for
//! anything malformed, and success for anything well-formed.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use mpc_proto::pb::mpc::router::v1::MpcMessage;
use mpc_store::testing::TestDb;

use crate::common::*;

const LIMIT: usize = 512;

/// One envelope field: either a valid value or some kind of garbage, and which it is.
fn field(
    valid: BoxedStrategy<String>,
    invalid: BoxedStrategy<String>,
) -> BoxedStrategy<(String, bool)> {
    prop_oneof![
        valid.prop_map(|v| (v, true)),
        invalid.prop_map(|v| (v, false)),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
struct Case {
    message_id: (String, bool),
    session_ok: bool,
    from: (String, bool),
    to: (String, bool),
    round: u32,
    payload_len: usize,
}

fn cases() -> impl Strategy<Value = Case> {
    let uuid = any::<u128>()
        .prop_map(|n| uuid::Uuid::from_u128(n).to_string())
        .boxed();
    let not_uuid = "\\PC{0,40}".prop_filter("a valid uuid", |s| uuid::Uuid::parse_str(s).is_err());
    let message_id = field(uuid, not_uuid.boxed());
    let from = field(
        Just("a".to_owned()).boxed(),
        prop_oneof![Just("b".to_owned()), "\\PC{0,12}"]
            .prop_filter("the sender itself", |s| s != "a")
            .boxed(),
    );
    let to = field(
        prop_oneof![
            Just(String::new()),
            Just("b".to_owned()),
            Just("c".to_owned())
        ]
        .boxed(),
        prop_oneof![
            Just("a".to_owned()),
            Just("mallory".to_owned()),
            "[a-z ]{1,8}",
            "\\PC{1,200}"
        ]
        .prop_filter("a valid recipient", |s| {
            !["", "b", "c"].contains(&s.as_str())
        })
        .boxed(),
    );
    (
        message_id,
        any::<bool>(),
        from,
        to,
        any::<u32>(),
        prop_oneof![Just(0usize), 1..=LIMIT, LIMIT + 1..LIMIT * 4],
    )
        .prop_map(
            |(message_id, session_ok, from, to, round, payload_len)| Case {
                message_id,
                session_ok,
                from,
                to,
                round,
                payload_len,
            },
        )
}

async fn random_envelopes_get_client_errors_or_succeed(t: TestDb) {
    let f = Fixture::start_with(t, |c| c.max_payload_bytes = LIMIT).await;
    let s = f.coordinator.session(&["a", "b", "c"]);
    let token = s.token("a");
    let mut client = f.client().await;
    let handle = tokio::runtime::Handle::current();

    let mut runner = TestRunner::new(Config {
        cases: 96,
        ..Config::default()
    });
    // The runner is synchronous; each case runs its gRPC call on this test's runtime from a
    // blocking thread.
    let result = tokio::task::block_in_place(|| {
        runner
            .run(&cases(), |case| {
                let envelope = MpcMessage {
                    message_id: case.message_id.0.clone(),
                    session_id: if case.session_ok {
                        s.id.to_string()
                    } else {
                        "0000-not-a-session".to_owned()
                    },
                    from_party: case.from.0.clone(),
                    to_party: case.to.0.clone(),
                    round: case.round,
                    payload: vec![0xA5; case.payload_len],
                    seq: 0,
                    created_at: String::new(),
                };
                let well_formed = case.message_id.1
                    && case.session_ok
                    && case.from.1
                    && case.to.1
                    && (1..=LIMIT).contains(&case.payload_len);
                let mut client = client.clone();
                let outcome = handle.block_on(route(&mut client, &token, envelope));
                match outcome {
                    Ok(reply) => prop_assert!(
                        well_formed,
                        "accepted a malformed envelope: {case:?} -> {reply:?}"
                    ),
                    Err(e) => {
                        prop_assert!(
                            e.code.http_status().is_client_error(),
                            "not a client error: {case:?} -> {e:?}"
                        );
                        // A well-formed envelope may only fail as a duplicate id (random uuids
                        // can repeat across cases).
                        prop_assert!(
                            !well_formed || e.code == mpc_proto::ErrorCode::AlreadyExists,
                            "refused a well-formed envelope: {case:?} -> {e:?}"
                        );
                    }
                }
                Ok(())
            })
            .map_err(|e| e.to_string())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The router is still healthy after all that.
    fetch(&mut client, &s, "b", 0, 0, 0).await.unwrap();
    f.stop().await;
}
mpc_store::backend_tests!(
    random_envelopes,
    random_envelopes_get_client_errors_or_succeed
);
