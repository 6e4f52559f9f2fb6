//! The join-token parser and verifier (`mpc_proto::TokenVerifier`): any string a client puts
//! where a join token goes. Only tokens signed by the coordinator's key verify; everything else
//! is `invalid_join_token`, never a panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mpc_proto::{ErrorCode, TokenVerifier};

static VERIFIER: LazyLock<TokenVerifier> = LazyLock::new(|| mpc_fuzz::token_signer().verifier());

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    match VERIFIER.verify(token) {
        Ok(claims) => assert_eq!(claims.iss, "mpc-session-coordinator"),
        Err(e) => assert_eq!(e.code, ErrorCode::InvalidJoinToken),
    }
    let _ = VERIFIER.verify_for_session(token, mpc_fuzz::session_id());
});
