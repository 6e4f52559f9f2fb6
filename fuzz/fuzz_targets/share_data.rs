//! `share_data`, the user share blob a device sends back to sign, refresh or recover: the hex,
//! the wrapping (`MPCSEAL` header, key id, AES-256-GCM), and inside it the share format
//! (`KeyShare::from_bytes`, reached directly too, since the AEAD keeps random bytes from it).
//! Every input is refused with a `ShareDataError` / `ProtocolError`, never a panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mpc_protocol::KeyShare;
use server_party_api::ShareKeys;
use server_party_api::share::{ShareOwner, open};

static KEYS: LazyLock<ShareKeys> = LazyLock::new(mpc_fuzz::share_keys);

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(share) = KeyShare::from_bytes(rest) {
            // A share that loads is usable: its accessors must not panic either.
            let _ = (share.public_key(), share.parameters(), share.eth_address());
        }
        return;
    }
    let party = mpc_fuzz::party("user_device_1");
    let owner = ShareOwner {
        key_id: mpc_fuzz::KEY_ID,
        party_id: &party,
        party_index: 0,
    };
    let text = String::from_utf8_lossy(rest);
    let _ = open(&KEYS, &owner, &text, None);
});
