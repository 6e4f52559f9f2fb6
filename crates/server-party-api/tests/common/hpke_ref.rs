//! An independent HPKE (RFC 9180) base-mode *open* for DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256
//! and AES-128-GCM or AES-256-GCM, written from the RFC's pseudocode with the RustCrypto
//! primitives (not the `hpke` crate the service uses): what a device would run. Checked against
//! the RFC's Appendix A.3 vector in `tests/hpke.rs`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

const KEM_ID: u16 = 0x0010;
const KDF_ID: u16 = 0x0001;

/// The intermediate values the RFC's vectors list, for checking.
#[derive(Debug)]
pub struct Context {
    pub shared_secret: Vec<u8>,
    pub key: Vec<u8>,
    pub base_nonce: Vec<u8>,
}

fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Vec<u8> {
    let labeled_ikm = [b"HPKE-v1".as_slice(), suite_id, label, ikm].concat();
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), &labeled_ikm);
    prk.to_vec()
}

fn labeled_expand(suite_id: &[u8], prk: &[u8], label: &[u8], info: &[u8], len: u16) -> Vec<u8> {
    let labeled_info = [
        len.to_be_bytes().as_slice(),
        b"HPKE-v1",
        suite_id,
        label,
        info,
    ]
    .concat();
    let mut out = vec![0u8; usize::from(len)];
    Hkdf::<Sha256>::from_prk(prk)
        .unwrap()
        .expand(&labeled_info, &mut out)
        .unwrap();
    out
}

/// `Decap` and `KeyScheduleR` for base mode; `aead_id` 1 (AES-128-GCM) or 2 (AES-256-GCM).
pub fn setup_receiver(sk_r: &[u8], enc: &[u8], info: &[u8], aead_id: u16) -> Context {
    // Decap (RFC 9180 §4.1): dh = x-coordinate of skR·pkE; kem_context = enc || pkRm.
    let sk = p256::SecretKey::from_slice(sk_r).unwrap();
    let pk_e = p256::PublicKey::from_sec1_bytes(enc).unwrap();
    let dh = p256::ecdh::diffie_hellman(sk.to_nonzero_scalar(), pk_e.as_affine());
    let pk_rm = p256::elliptic_curve::sec1::ToSec1Point::to_sec1_point(&sk.public_key(), false);
    let kem_context = [enc, pk_rm.as_bytes()].concat();
    let kem_suite = [b"KEM".as_slice(), &KEM_ID.to_be_bytes()].concat();
    let eae_prk = labeled_extract(&kem_suite, b"", b"eae_prk", dh.raw_secret_bytes());
    let shared_secret = labeled_expand(&kem_suite, &eae_prk, b"shared_secret", &kem_context, 32);

    // KeySchedule (§5.1), mode_base = 0, no PSK.
    let suite = [
        b"HPKE".as_slice(),
        &KEM_ID.to_be_bytes(),
        &KDF_ID.to_be_bytes(),
        &aead_id.to_be_bytes(),
    ]
    .concat();
    let psk_id_hash = labeled_extract(&suite, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(&suite, b"", b"info_hash", info);
    let context = [[0u8].as_slice(), &psk_id_hash, &info_hash].concat();
    let secret = labeled_extract(&suite, &shared_secret, b"secret", b"");
    let nk = if aead_id == 1 { 16 } else { 32 };
    Context {
        key: labeled_expand(&suite, &secret, b"key", &context, nk),
        base_nonce: labeled_expand(&suite, &secret, b"base_nonce", &context, 12),
        shared_secret,
    }
}

/// The first message's `Open` (sequence number 0: the nonce is the base nonce).
pub fn open_first(ctx: &Context, aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    let nonce = Nonce::try_from(ctx.base_nonce.as_slice()).ok()?;
    let payload = Payload { msg: ct, aad };
    match ctx.key.len() {
        16 => Aes128Gcm::new_from_slice(&ctx.key)
            .ok()?
            .decrypt(&nonce, payload)
            .ok(),
        32 => Aes256Gcm::new_from_slice(&ctx.key)
            .ok()?
            .decrypt(&nonce, payload)
            .ok(),
        _ => None,
    }
}

/// Opens a `share_data` sealed by the API (`MPCHPKE || 0x01 || enc || ct`) with the device's
/// private key: returns the inner wrapped share (hex).
pub fn open_share_data(
    sk: &[u8],
    key_id: &str,
    party_id: &str,
    share_data: &str,
) -> Option<String> {
    let blob = hex::decode(share_data).ok()?;
    let rest = blob.strip_prefix(b"MPCHPKE\x01".as_slice())?;
    if rest.len() < 65 {
        return None;
    }
    let (enc, ct) = rest.split_at(65);
    let info = [
        b"mpc-system/user-share/v1".as_slice(),
        key_id.as_bytes(),
        party_id.as_bytes(),
    ]
    .concat();
    let ctx = setup_receiver(sk, enc, &info, 2);
    open_first(&ctx, b"", ct).map(hex::encode)
}
