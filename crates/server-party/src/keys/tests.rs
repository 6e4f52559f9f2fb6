//! Sealing at rest, on SQLite and PostgreSQL: the identity key, shares bound to their owner, and
//! master-key rotation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mpc_proto::{SessionType, Threshold};
use mpc_store::backend_tests;
use mpc_store::party::SessionOutcome;
use mpc_store::testing::TestDb;

use super::*;

fn pid(s: &str) -> PartyId {
    PartyId::parse(s).unwrap()
}

fn fixture(index: usize) -> KeyShare {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../mpc-protocol/tests/fixtures/share_v1_2of3_p{index}.bin"
    ));
    KeyShare::from_bytes(&std::fs::read(path).unwrap()).unwrap()
}

/// Stores `share` as `party`'s active share of `key_id`, sealed under `kek`.
async fn store_active(
    store: &dyn PartyStore,
    kek: &SealingKey,
    key_id: &str,
    party: &PartyId,
    share: &KeyShare,
) {
    let ctx = SealContext {
        key_id,
        party_id: party.as_str(),
        party_index: share.index().get(),
    };
    let session = SessionId::new_random();
    store
        .put_pending_share(&NewShare {
            id: uuid::Uuid::new_v4(),
            key_id: key_id.into(),
            party_id: party.clone(),
            party_index: share.index().get(),
            threshold: Threshold { t: 2, n: 3 },
            public_key: share.public_key().to_hex(),
            session_id: session,
            sealed_share: seal::seal_share(kek, &ctx, share).unwrap(),
            kek_id: kek.id().into(),
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    store
        .record_outcome(
            session,
            SessionType::Keygen,
            key_id,
            SessionOutcome::Completed,
            Utc::now(),
        )
        .await
        .unwrap();
}

fn local_error(e: PartyError) -> String {
    match e {
        PartyError::Local(why) => why,
        other => panic!("expected a local error, got {other:?}"),
    }
}

async fn identity_survives_restarts_and_refuses_a_wrong_master_key(t: TestDb) {
    let store = mpc_store::party::open(&t.db).await.unwrap();
    let me = pid("server_party_1");
    let kek = SealingKey::generate("kek-1").unwrap();
    let first = load_or_create_identity(store.as_ref(), &me, &kek)
        .await
        .unwrap();
    let again = load_or_create_identity(store.as_ref(), &me, &kek)
        .await
        .unwrap();
    assert_eq!(first.public_key(), again.public_key());

    let wrong = SealingKey::generate("kek-1").unwrap();
    let err = load_or_create_identity(store.as_ref(), &me, &wrong)
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "cannot open the identity key: wrong master key"
    );
    let other_id = SealingKey::generate("kek-9").unwrap();
    let err = load_or_create_identity(store.as_ref(), &me, &other_id)
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("sealed under master key \"kek-1\""),
        "{err}"
    );
    let err = load_or_create_identity(store.as_ref(), &pid("server_party_2"), &kek)
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "this database belongs to party server_party_1, not server_party_2"
    );
}

async fn a_share_opens_only_for_its_owner_and_master_key(t: TestDb) {
    let store = mpc_store::party::open(&t.db).await.unwrap();
    let kek = SealingKey::generate("kek-1").unwrap();
    let share = fixture(1);
    store_active(store.as_ref(), &kek, "acct", &pid("server_party_2"), &share).await;
    let opened = open_active_share(store.as_ref(), &kek, "acct", &pid("server_party_2"))
        .await
        .unwrap();
    assert_eq!(opened.public_key(), share.public_key());
    assert_eq!(opened.index(), share.index());

    // The same bytes in another party's store: that party's id is not in the associated data.
    let err = open_active_share(store.as_ref(), &kek, "acct", &pid("server_party_3"))
        .await
        .err()
        .unwrap();
    assert_eq!(
        local_error(err),
        "cannot use its share: share for key acct does not decrypt: wrong master key"
    );
    let wrong = SealingKey::generate("kek-1").unwrap();
    let err = open_active_share(store.as_ref(), &wrong, "acct", &pid("server_party_2"))
        .await
        .err()
        .unwrap();
    assert_eq!(
        local_error(err),
        "cannot use its share: share for key acct does not decrypt: wrong master key"
    );
    let err = open_active_share(store.as_ref(), &kek, "other", &pid("server_party_2"))
        .await
        .err()
        .unwrap();
    assert_eq!(local_error(err), "holds no share for key other");
}

async fn rotation_reseals_everything_once_and_resumes(t: TestDb) {
    let store = mpc_store::party::open(&t.db).await.unwrap();
    let me = pid("server_party_1");
    let old = SealingKey::generate("kek-1").unwrap();
    let new = SealingKey::generate("kek-2").unwrap();
    let identity = load_or_create_identity(store.as_ref(), &me, &old)
        .await
        .unwrap();
    for key in ["a", "b", "c"] {
        store_active(store.as_ref(), &old, key, &me, &fixture(0)).await;
    }
    // An interrupted earlier run got as far as one share.
    let first = store.sealed_under("kek-1", 1).await.unwrap().remove(0);
    let plain = seal::open(
        &old,
        &share_context(&first),
        first.sealed_share.as_deref().unwrap(),
    )
    .unwrap();
    let resealed = seal::seal(&new, &share_context(&first), &plain).unwrap();
    assert!(
        store
            .reseal_share(first.id, "kek-1", &resealed, "kek-2", Utc::now())
            .await
            .unwrap()
    );

    assert!(
        rotate_master_key(store.as_ref(), &old, &old).await.is_err(),
        "same key id"
    );
    assert_eq!(
        rotate_master_key(store.as_ref(), &old, &new).await.unwrap(),
        3,
        "identity + 2 shares"
    );
    assert_eq!(
        rotate_master_key(store.as_ref(), &old, &new).await.unwrap(),
        0,
        "nothing left"
    );
    assert_eq!(
        mpc_store::testing::party::kek_usage(&t.db).await,
        vec![("kek-2".to_owned(), 4)]
    );

    let reopened = load_or_create_identity(store.as_ref(), &me, &new)
        .await
        .unwrap();
    assert_eq!(reopened.public_key(), identity.public_key());
    assert!(
        load_or_create_identity(store.as_ref(), &me, &old)
            .await
            .is_err()
    );
    for key in ["a", "b", "c"] {
        let share = open_active_share(store.as_ref(), &new, key, &me)
            .await
            .unwrap();
        assert_eq!(share.public_key(), fixture(0).public_key());
        assert!(
            open_active_share(store.as_ref(), &old, key, &me)
                .await
                .is_err()
        );
    }
}

backend_tests!(
    identity,
    identity_survives_restarts_and_refuses_a_wrong_master_key
);
backend_tests!(
    owner_binding,
    a_share_opens_only_for_its_owner_and_master_key
);
backend_tests!(rotation, rotation_reseals_everything_once_and_resumes);
