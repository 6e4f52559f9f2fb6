//! The Message Router's envelope decoder: a `RouteMessage` request as protobuf bytes off the
//! wire, then the router's checks of the envelope against its sender's join-token claims
//! (`message_router::relay::check_envelope`). Every input must be refused or accepted with an
//! `ApiError`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use message_router::relay::{DirtyEnvelope, check_envelope};
use mpc_proto::pb::mpc::router::v1::RouteMessageRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = RouteMessageRequest::decode(data) else {
        return;
    };
    let Some(envelope) = request.envelope else {
        return;
    };
    let dirty = DirtyEnvelope {
        message_id: envelope.message_id,
        session_id: envelope.session_id,
        from_party: envelope.from_party,
        to_party: envelope.to_party,
        round: envelope.round,
        payload: envelope.payload,
    };
    let claims = mpc_fuzz::claims();
    if let Ok(checked) = check_envelope(&claims, dirty, 1 << 20) {
        assert_eq!(checked.from_party, claims.pid);
        assert!(!checked.recipients.is_empty());
        assert!(!checked.recipients.contains(&claims.pid));
    }
});
