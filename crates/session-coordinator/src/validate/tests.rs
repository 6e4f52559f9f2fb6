use std::time::Duration;

use chrono::Utc;
use mpc_proto::{ErrorCode, SessionType};
use proptest::prelude::*;

use super::*;

const LIFETIMES: Lifetimes = Lifetimes {
    default: Duration::from_secs(600),
    max: Duration::from_secs(3600),
    join: Duration::from_secs(60),
};

/// A real curve point (the generator), so key checks pass.
fn public_key() -> Vec<u8> {
    hex::decode(
        "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798\
         483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8",
    )
    .unwrap()
}

fn party(id: &str, index: Option<u32>) -> ParticipantInput {
    ParticipantInput {
        party_id: id.into(),
        device_type: "server".into(),
        party_index: index,
    }
}

fn keygen() -> CreateRequest {
    CreateRequest {
        session_type: SessionType::Keygen,
        threshold_t: 2,
        threshold_n: 3,
        participants: vec![
            party("user_device", None),
            party("server_party_1", None),
            party("server_party_2", Some(0)),
        ],
        key_id: "account-1".into(),
        message_hash: vec![],
        public_key: vec![],
        recovery: None,
        lifetime_seconds: 0,
    }
}

fn sign() -> CreateRequest {
    CreateRequest {
        session_type: SessionType::Sign,
        participants: vec![
            party("user_device", Some(0)),
            party("server_party_2", Some(2)),
        ],
        message_hash: vec![0xab; 32],
        public_key: public_key(),
        ..keygen()
    }
}

fn code(req: &CreateRequest) -> Option<ErrorCode> {
    validate(req, LIFETIMES, Utc::now()).err().map(|e| e.code)
}

#[test]
fn keygen_assigns_indices_in_request_order() {
    let s = validate(&keygen(), LIFETIMES, Utc::now()).unwrap();
    let got: Vec<_> = s
        .participants
        .iter()
        .map(|p| (p.party_id.as_str(), p.party_index))
        .collect();
    assert_eq!(
        got,
        [
            ("user_device", 0),
            ("server_party_1", 1),
            ("server_party_2", 2)
        ]
    );
    assert_eq!(s.expires_at - s.created_at, chrono::Duration::seconds(600));
}

#[test]
fn sign_needs_exactly_t_signers_with_indices_and_a_32_byte_hash() {
    let s = validate(&sign(), LIFETIMES, Utc::now()).unwrap();
    assert_eq!(s.participants[1].party_index, 2);

    let mut one = sign();
    one.participants.pop();
    let err = validate(&one, LIFETIMES, Utc::now()).unwrap_err();
    assert_eq!(err.code, ErrorCode::InsufficientParticipants);
    assert!(
        err.message.starts_with("insufficient participants"),
        "{}",
        err.message
    );

    let mut three = sign();
    three.participants.push(party("server_party_1", Some(1)));
    let err = validate(&three, LIFETIMES, Utc::now()).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument);
    assert!(err.message.contains("exactly 2"), "{}", err.message);

    let mut short_hash = sign();
    short_hash.message_hash = vec![1; 31];
    assert_eq!(code(&short_hash), Some(ErrorCode::InvalidMessageHash));

    let mut no_index = sign();
    no_index.participants[0].party_index = None;
    assert_eq!(code(&no_index), Some(ErrorCode::InvalidArgument));
    let mut out_of_range = sign();
    out_of_range.participants[0].party_index = Some(3);
    assert_eq!(code(&out_of_range), Some(ErrorCode::InvalidArgument));
    let mut same_index = sign();
    same_index.participants[1].party_index = Some(0);
    assert_eq!(code(&same_index), Some(ErrorCode::InvalidArgument));
    let mut bad_key = sign();
    bad_key.public_key[64] ^= 1;
    assert_eq!(code(&bad_key), Some(ErrorCode::InvalidArgument));
}

#[test]
fn rejects_bad_thresholds_duplicates_and_fields_of_other_types() {
    for (t, n) in [(1, 3), (4, 3), (2, 17), (2, 70_000), (0, 0)] {
        let mut r = keygen();
        r.threshold_t = t;
        r.threshold_n = n;
        assert_eq!(code(&r), Some(ErrorCode::InvalidThreshold), "{t}-of-{n}");
    }
    let mut dup = keygen();
    dup.participants[2].party_id = "user_device".into();
    assert_eq!(code(&dup), Some(ErrorCode::DuplicatePartyId));
    let mut two = keygen();
    two.participants.pop();
    assert_eq!(code(&two), Some(ErrorCode::InsufficientParticipants));
    let mut hash = keygen();
    hash.message_hash = vec![0; 32];
    assert_eq!(code(&hash), Some(ErrorCode::InvalidArgument));
    let mut key = keygen();
    key.public_key = public_key();
    assert_eq!(code(&key), Some(ErrorCode::InvalidArgument));
    let mut no_key_id = keygen();
    no_key_id.key_id = String::new();
    assert_eq!(code(&no_key_id), Some(ErrorCode::InvalidArgument));
    let mut long = keygen();
    long.lifetime_seconds = 3601;
    assert_eq!(code(&long), Some(ErrorCode::InvalidArgument));
    let mut device = keygen();
    device.participants[0].device_type = "a b".into();
    assert_eq!(code(&device), Some(ErrorCode::InvalidArgument));
}

#[test]
fn recovery_helpers_are_t_distinct_participants_other_than_the_target() {
    let base = CreateRequest {
        session_type: SessionType::Recovery,
        participants: vec![
            party("new_device", Some(0)),
            party("server_party_1", Some(1)),
            party("server_party_2", Some(2)),
        ],
        public_key: public_key(),
        recovery: Some(RecoveryInput {
            target_party_id: "new_device".into(),
            helper_party_ids: vec!["server_party_1".into(), "server_party_2".into()],
        }),
        ..keygen()
    };
    let s = validate(&base, LIFETIMES, Utc::now()).unwrap();
    assert_eq!(s.recovery.as_ref().map(|r| r.helpers.len()), Some(2));

    let with = |target: &str, helpers: &[&str]| CreateRequest {
        recovery: Some(RecoveryInput {
            target_party_id: target.into(),
            helper_party_ids: helpers.iter().map(|h| (*h).to_owned()).collect(),
        }),
        ..base.clone()
    };
    assert_eq!(
        code(&with("new_device", &["server_party_1"])),
        Some(ErrorCode::InsufficientParticipants)
    );
    assert_eq!(
        code(&with("new_device", &["server_party_1", "server_party_1"])),
        Some(ErrorCode::DuplicatePartyId)
    );
    assert_eq!(
        code(&with("new_device", &["new_device", "server_party_1"])),
        Some(ErrorCode::InvalidArgument)
    );
    assert_eq!(
        code(&with("new_device", &["server_party_1", "stranger"])),
        Some(ErrorCode::InvalidArgument)
    );
    assert_eq!(
        code(&with("stranger", &["server_party_1", "server_party_2"])),
        Some(ErrorCode::InvalidArgument)
    );
    assert_eq!(
        code(&CreateRequest {
            recovery: None,
            ..base.clone()
        }),
        Some(ErrorCode::InvalidArgument)
    );
    assert_eq!(
        code(&CreateRequest {
            recovery: base.recovery.clone(),
            ..keygen()
        }),
        Some(ErrorCode::InvalidArgument)
    );
}

fn any_type() -> impl Strategy<Value = SessionType> {
    proptest::sample::select(SessionType::ALL.to_vec())
}

fn any_request() -> impl Strategy<Value = CreateRequest> {
    let participant = (
        "[a-c_]{0,3}|\\PC{0,8}",
        "server|ios|\\PC{0,4}",
        proptest::option::of(0u32..20),
    )
        .prop_map(|(party_id, device_type, party_index)| ParticipantInput {
            party_id,
            device_type,
            party_index,
        });
    let recovery = proptest::option::of(
        (
            "[a-c_]{0,3}",
            proptest::collection::vec("[a-c_]{0,3}", 0..5),
        )
            .prop_map(|(target_party_id, helper_party_ids)| RecoveryInput {
                target_party_id,
                helper_party_ids,
            }),
    );
    (
        any_type(),
        0u32..20,
        0u32..20,
        proptest::collection::vec(participant, 0..18),
        "[a-z0-9-]{0,6}|\\PC{0,6}",
        prop_oneof![
            Just(vec![0xab; 32]),
            proptest::collection::vec(any::<u8>(), 0..40)
        ],
        prop_oneof![
            Just(public_key()),
            proptest::collection::vec(any::<u8>(), 0..70)
        ],
        recovery,
        prop_oneof![Just(0u32), any::<u32>()],
    )
        .prop_map(
            |(
                session_type,
                threshold_t,
                threshold_n,
                participants,
                key_id,
                message_hash,
                public_key,
                recovery,
                lifetime_seconds,
            )| CreateRequest {
                session_type,
                threshold_t,
                threshold_n,
                participants,
                key_id,
                message_hash,
                public_key,
                recovery,
                lifetime_seconds,
            },
        )
}

proptest! {
    /// Any input is either a consistent session or a 4xx error, never a panic.
    #[test]
    fn never_panics_and_accepts_only_consistent_sessions(req in any_request()) {
        match validate(&req, LIFETIMES, Utc::now()) {
            Ok(s) => {
                let needed = if s.session_type == SessionType::Sign { s.threshold.t } else { s.threshold.n };
                prop_assert_eq!(s.participants.len(), usize::from(needed));
                let mut indices: Vec<_> = s.participants.iter().map(|p| p.party_index).collect();
                indices.sort_unstable();
                indices.dedup();
                prop_assert_eq!(indices.len(), s.participants.len());
                prop_assert!(indices.iter().all(|i| *i < s.threshold.n));
                prop_assert_eq!(s.message_hash.is_some(), s.session_type == SessionType::Sign);
                prop_assert!(s.expires_at > s.created_at);
            }
            Err(e) => prop_assert!(e.code.http_status().is_client_error(), "{:?}", e),
        }
    }
}
