//! `mpc demo` end to end: the JSON it prints is checked with k256 ecrecover, independently of the
//! binary's own verification.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use k256::ecdsa::{RecoveryId, VerifyingKey};

fn hex32(v: &serde_json::Value) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(v.as_str().unwrap(), &mut out).unwrap();
    out
}

#[test]
fn demo_json_signature_recovers_to_the_printed_key() {
    let out = Command::cargo_bin("mpc")
        .unwrap()
        .args([
            "demo",
            "--in-process",
            "--threshold",
            "2",
            "--parties",
            "3",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "public_key",
        "address",
        "message_hash",
        "r",
        "s",
        "v",
        "signature",
        "keygen_ms",
        "sign_ms",
    ] {
        assert!(!v[field].is_null(), "missing {field}");
    }
    let pk = hex::decode(v["public_key"].as_str().unwrap()).unwrap();
    assert_eq!((pk.len(), pk[0]), (65, 4));
    let vk = VerifyingKey::from_sec1_bytes(&pk).unwrap();
    let (r, s, hash) = (hex32(&v["r"]), hex32(&v["s"]), hex32(&v["message_hash"]));
    let sig = k256::ecdsa::Signature::from_scalars(r, s).unwrap();
    assert_eq!(sig.normalize_s(), sig, "low-s");
    let rec = RecoveryId::from_byte(v["v"].as_u64().unwrap() as u8).unwrap();
    assert_eq!(
        VerifyingKey::recover_from_prehash(&hash, &sig, rec).unwrap(),
        vk
    );
    let der = hex::decode(v["signature"].as_str().unwrap()).unwrap();
    assert_eq!(k256::ecdsa::Signature::from_der(&der).unwrap(), sig);
    // The default message is "hello from mpc-system", hashed with Keccak-256.
    use sha3::Digest;
    assert_eq!(
        hash,
        <[u8; 32]>::from(sha3::Keccak256::digest(b"hello from mpc-system"))
    );
    let addr = v["address"].as_str().unwrap();
    assert!(addr.starts_with("0x") && addr.len() == 42);
}

#[test]
fn bad_arguments_fail_with_a_message_not_a_panic() {
    for args in [
        &["demo", "-t", "3", "-n", "2"][..],
        &["demo", "--signers", "0,9"],
        &["demo", "--hash", "xyz"],
        &["bench"],
    ] {
        let out = Command::cargo_bin("mpc")
            .unwrap()
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error: ") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}
