//! HPKE without services: the independent reference implementation (`common::hpke_ref`,
//! RustCrypto primitives, RFC 9180 pseudocode) reproduces the RFC's Appendix A.3 vector, and it
//! opens what the service's `hpke` module seals for a device — with AES-256-GCM, the suite the
//! API uses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::hpke_ref;
use p256::elliptic_curve::sec1::ToSec1Point;
use server_party_api::hpke::{self, DevicePublicKey};
use server_party_api::share::hpke_info;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// RFC 9180 Appendix A.3.1: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode.
#[test]
fn reference_implementation_matches_rfc9180_a3() {
    let info = unhex("4f6465206f6e2061204772656369616e2055726e");
    let sk_rm = unhex("f3ce7fdae57e1a310d87f1ebbde6f328be0a99cdbcadf4d6589cf29de4b8ffd2");
    let enc = unhex(
        "04a92719c6195d5085104f469a8b9814d5838ff72b60501e2c4466e5e67b325ac98536d7b61a1af4b78e5b7f951c0900be863c403ce65c9bfcb9382657222d18c4",
    );
    let ctx = hpke_ref::setup_receiver(&sk_rm, &enc, &info, 1);
    assert_eq!(
        hex::encode(&ctx.shared_secret),
        "c0d26aeab536609a572b07695d933b589dcf363ff9d93c93adea537aeabb8cb8"
    );
    assert_eq!(hex::encode(&ctx.key), "868c066ef58aae6dc589b6cfdd18f97e");
    assert_eq!(hex::encode(&ctx.base_nonce), "4e0bc5018beba4bf004cca59");
    let ct = unhex(
        "5ad590bb8baa577f8619db35a36311226a896e7342a6d836d8b7bcd2f20b6c7f9076ac232e3ab2523f39513434",
    );
    let pt = hpke_ref::open_first(&ctx, &unhex("436f756e742d30"), &ct).unwrap();
    assert_eq!(
        hex::encode(pt),
        "4265617574792069732074727574682c20747275746820626561757479"
    );
}

#[test]
fn what_the_api_seals_the_reference_opens() {
    let sk = p256::SecretKey::from_slice(&[0x42; 32]).unwrap();
    for compressed in [false, true] {
        let pk = sk.public_key().to_sec1_point(compressed);
        let device = DevicePublicKey::from_sec1(pk.as_bytes()).unwrap();
        let party = common::device();
        let info = hpke_info("acct-1", &party);
        let sealed = hpke::seal(&device, &info, b"a wrapped share").unwrap();
        let opened = hpke_ref::open_share_data(
            &sk.to_bytes(),
            "acct-1",
            party.as_str(),
            &hex::encode(&sealed),
        )
        .unwrap();
        assert_eq!(opened, hex::encode(b"a wrapped share"));
        // Bound to the key id and party: another account's info does not open it.
        assert_eq!(
            hpke_ref::open_share_data(
                &sk.to_bytes(),
                "acct-2",
                party.as_str(),
                &hex::encode(&sealed)
            ),
            None
        );
    }
}
