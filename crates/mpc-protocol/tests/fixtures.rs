//! Stored key shares of every released format version must keep loading and signing.
//!
//! `tests/fixtures/share_v<version>_2of3_p<index>.bin` are the three shares of one 2-of-3 test key
//! (secret material of a throwaway key, generated for this test), and `…_2of3.json` its public
//! key and address. To add the fixtures of a new format version, bump `SHARE_FORMAT_VERSION`,
//! then run `MPC_WRITE_FIXTURES=1 cargo test -p mpc-protocol --test fixtures -- --ignored`, and keep
//! the older files: they are the compatibility promise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use mpc_protocol::{KeyShare, SHARE_FORMAT_VERSION};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load(version: u16) -> (Vec<Arc<KeyShare>>, serde_json::Value) {
    let dir = fixture_dir();
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("share_v{version}_2of3.json"))).unwrap(),
    )
    .unwrap();
    let shares = (0..3)
        .map(|i| {
            let bytes = std::fs::read(dir.join(format!("share_v{version}_2of3_p{i}.bin"))).unwrap();
            Arc::new(
                KeyShare::from_bytes(&bytes)
                    .unwrap_or_else(|e| panic!("v{version} share {i} no longer loads: {e}")),
            )
        })
        .collect();
    (shares, meta)
}

#[test]
fn every_released_format_loads_and_signs() {
    let mut r = rng("every_released_format_loads_and_signs");
    for version in 1..=SHARE_FORMAT_VERSION {
        let (shares, meta) = load(version);
        let pk = shares[0].public_key();
        assert_eq!(pk.to_hex(), meta["public_key"].as_str().unwrap());
        assert_eq!(pk.eth_address(), meta["address"].as_str().unwrap());
        for (i, s) in shares.iter().enumerate() {
            assert_eq!(s.index().get() as usize, i);
            assert_eq!(
                (s.parameters().threshold(), s.parameters().parties()),
                (2, 3)
            );
            // Re-serialising in the current format loads back to the same key.
            let again = KeyShare::from_bytes(&s.to_bytes().unwrap()).unwrap();
            assert_eq!(again.public_key(), pk);
        }
        for pair in subsets(3, 2) {
            let hash = random_hash(&mut r);
            let sigs = sign(
                &mut r,
                &[
                    shares[pair[0] as usize].clone(),
                    shares[pair[1] as usize].clone(),
                ],
                hash,
            );
            assert_valid(&pk.to_uncompressed(), &hash, &sigs[0]);
        }
    }
}

#[test]
fn corrupt_shares_are_rejected_with_a_reason() {
    let (shares, _) = load(1);
    let good = shares[0].to_bytes().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("wrong magic", b"NOTASHARE-----".to_vec()),
        (
            "future version",
            [&b"MPCSHARE"[..], &[0xff, 0xff], &good[10..]].concat(),
        ),
        ("truncated", good[..good.len() / 2].to_vec()),
    ];
    for (name, bytes) in cases {
        let err = KeyShare::from_bytes(&bytes).expect_err(name);
        assert!(err.to_string().contains("not a key share"), "{name}: {err}");
    }
    // A share whose secret was altered no longer matches its public verifying share.
    let mut altered = good.to_vec();
    let mid = 10 + 40;
    altered[mid] ^= 0x55;
    assert!(
        KeyShare::from_bytes(&altered).is_err(),
        "altered share accepted"
    );
}

#[test]
#[ignore = "writes fixture files; run with MPC_WRITE_FIXTURES=1 when adding a format version"]
fn write_fixtures_for_the_current_version() {
    if std::env::var("MPC_WRITE_FIXTURES").as_deref() != Ok("1") {
        return;
    }
    let mut r = rng("write_fixtures_for_the_current_version");
    let shares = keygen(&mut r, 2, 3);
    let dir = fixture_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let v = SHARE_FORMAT_VERSION;
    for s in &shares {
        std::fs::write(
            dir.join(format!("share_v{v}_2of3_p{}.bin", s.index())),
            &*s.to_bytes().unwrap(),
        )
        .unwrap();
    }
    let meta = serde_json::json!({
        "format_version": v,
        "threshold": 2,
        "parties": 3,
        "public_key": shares[0].public_key().to_hex(),
        "address": shares[0].eth_address(),
        "note": "test-only key; its shares are committed on purpose",
    });
    std::fs::write(
        dir.join(format!("share_v{v}_2of3.json")),
        serde_json::to_string_pretty(&meta).unwrap(),
    )
    .unwrap();
}
