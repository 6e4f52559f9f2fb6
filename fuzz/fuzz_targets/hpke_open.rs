//! Opening an HPKE-sealed share (`MPCHPKE` header, the sender's P-256 encapsulated key,
//! AES-256-GCM) as a device does with the API's answer, from raw bytes and from `share_data`
//! hex. Anything but a blob sealed to the device's key is an `HpkeError`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use server_party_api::hpke;
use server_party_api::share::{hpke_info, open_sealed_share_data};

fuzz_target!(|data: &[u8]| {
    let party = mpc_fuzz::party("user_device_1");
    let info = hpke_info(mpc_fuzz::KEY_ID, &party);
    let _ = hpke::open(&mpc_fuzz::DEVICE_SECRET, &info, data);
    // The device's key itself comes from storage: a wrong-length or invalid scalar is an error.
    let _ = hpke::open(data.get(..32).unwrap_or(data), &info, data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = open_sealed_share_data(&mpc_fuzz::DEVICE_SECRET, mpc_fuzz::KEY_ID, &party, text);
    }
});
