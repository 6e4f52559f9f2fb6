//! `mpc keys` and `mpc party` as an operator uses them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn mpc(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mpc"));
    c.args(args);
    for k in [
        "MPC_CONFIG",
        "MPC_PARTY_MASTER_KEY_FILE",
        "MPC_PARTY_DATABASE_URL",
        "MPC_PARTY_DATABASE_SCHEMA",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap().trim().to_owned(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn keys_are_generated_and_public_keys_derived_consistently() {
    let (ok, seed, _) = mpc(&["keys", "generate"], &[]);
    assert!(ok && seed.len() == 44, "{seed}");
    let (_, other, _) = mpc(&["keys", "generate"], &[]);
    assert_ne!(seed, other);
    let (ok, a, _) = mpc(
        &["keys", "join-token-public-key"],
        &[("MPC_JOIN_TOKEN_SEED", &seed)],
    );
    let (_, b, _) = mpc(
        &["keys", "join-token-public-key"],
        &[("MPC_JOIN_TOKEN_SEED", &seed)],
    );
    assert!(ok && a == b && a.len() == 64);
    let (ok, _, err) = mpc(
        &["keys", "party-api-identity"],
        &[("MPC_PARTY_API_IDENTITY_SEED", "bad")],
    );
    assert!(!ok && err.contains("MPC_PARTY_API_IDENTITY_SEED"), "{err}");
}

#[test]
fn party_identity_survives_master_key_rotation_and_refuses_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("party.db").display());
    let (_, key1, _) = mpc(&["keys", "generate"], &[]);
    let (_, key2, _) = mpc(&["keys", "generate"], &[]);
    let env1 = [
        ("MPC_PARTY_ID", "server_party_1"),
        ("MPC_PARTY_MASTER_KEY", key1.as_str()),
        ("DATABASE_URL", db.as_str()),
    ];
    let (ok, id, err) = mpc(&["party", "identity"], &env1);
    assert!(ok && id.len() == 64, "{err}");
    assert_eq!(
        mpc(&["party", "identity"], &env1).1,
        id,
        "stable across runs"
    );

    let wrong = [
        ("MPC_PARTY_ID", "server_party_1"),
        ("MPC_PARTY_MASTER_KEY", key2.as_str()),
        ("DATABASE_URL", db.as_str()),
    ];
    let (ok, _, err) = mpc(&["party", "identity"], &wrong);
    assert!(!ok && err.contains("wrong master key"), "{err}");

    let rotate = [
        ("MPC_PARTY_ID", "server_party_1"),
        ("MPC_PARTY_MASTER_KEY", key1.as_str()),
        ("MPC_PARTY_NEW_MASTER_KEY", key2.as_str()),
        ("DATABASE_URL", db.as_str()),
    ];
    let (ok, _, err) = mpc(
        &["party", "rotate-master-key", "--new-key-id", "kek-2"],
        &rotate,
    );
    assert!(ok, "{err}");
    let env2 = [
        ("MPC_PARTY_ID", "server_party_1"),
        ("MPC_PARTY_MASTER_KEY", key2.as_str()),
        ("MPC_PARTY_MASTER_KEY_ID", "kek-2"),
        ("DATABASE_URL", db.as_str()),
    ];
    assert_eq!(
        mpc(&["party", "identity"], &env2).1,
        id,
        "same identity under the new key"
    );
    let (ok, _, _) = mpc(&["party", "identity"], &env1);
    assert!(!ok, "the old key no longer opens the identity");
}
