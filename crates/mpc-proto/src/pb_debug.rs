//! `Debug` for the generated messages that carry secrets: join tokens are shown as `[REDACTED]`
//! and ciphertext payloads as their length. `build.rs` lists these types in `skip_debug`.

use std::fmt;

use crate::pb::mpc::coordinator::v1 as coordinator;
use crate::pb::mpc::router::v1 as router;

const REDACTED: &str = "[REDACTED]";

/// Writes `Type { safe.. , secret: [REDACTED] .. }`.
macro_rules! redacted_debug {
    ($ty:ty, $name:literal, show: [$($safe:ident),*], hide: [$($secret:ident),*]) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut d = f.debug_struct($name);
                $(d.field(stringify!($safe), &self.$safe);)*
                $(d.field(stringify!($secret), &REDACTED);)*
                d.finish()
            }
        }
    };
}

redacted_debug!(coordinator::JoinSessionRequest, "JoinSessionRequest", show: [identity_public_key, session_key], hide: [join_token]);
redacted_debug!(coordinator::GetRosterRequest, "GetRosterRequest", show: [], hide: [join_token]);
redacted_debug!(coordinator::WatchSessionRequest, "WatchSessionRequest", show: [session_id], hide: [join_token]);
redacted_debug!(coordinator::ReportCompletionRequest, "ReportCompletionRequest", show: [result], hide: [join_token]);
redacted_debug!(coordinator::ReportFailureRequest, "ReportFailureRequest", show: [reason, blamed_party_id], hide: [join_token]);
redacted_debug!(router::SubscribeMessagesRequest, "SubscribeMessagesRequest", show: [session_id, party_id, after_seq], hide: [join_token]);
redacted_debug!(router::FetchMessagesRequest, "FetchMessagesRequest", show: [session_id, party_id, after_seq, limit, wait_ms], hide: [join_token]);
redacted_debug!(router::RouteMessageRequest, "RouteMessageRequest", show: [envelope], hide: [join_token]);

// `skip_debug` on a message also skips its oneof.
impl fmt::Debug for coordinator::report_completion_request::Result {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(k) => f.debug_tuple("Key").field(k).finish(),
            Self::Signature(s) => f.debug_tuple("Signature").field(s).finish(),
        }
    }
}

impl fmt::Debug for coordinator::CreateSessionResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parties: Vec<&String> = self.join_tokens.keys().collect();
        f.debug_struct("CreateSessionResponse")
            .field("session_id", &self.session_id)
            .field("status", &self.status)
            .field("expires_at_ms", &self.expires_at_ms)
            .field(
                "join_tokens",
                &format_args!("{{{} tokens for {parties:?}: {REDACTED}}}", parties.len()),
            )
            .field("session", &self.session)
            .finish()
    }
}

impl fmt::Debug for router::MpcMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MPCMessage")
            .field("message_id", &self.message_id)
            .field("session_id", &self.session_id)
            .field("from_party", &self.from_party)
            .field("to_party", &self.to_party)
            .field("round", &self.round)
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .field("seq", &self.seq)
            .field("created_at", &self.created_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let token = "eyJhbGciOiJFZERTQSJ9.secret-claims.signature";
        let payload = vec![0xAB; 64];
        let outputs = [
            format!(
                "{:?}",
                coordinator::JoinSessionRequest {
                    join_token: token.into(),
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                coordinator::ReportFailureRequest {
                    join_token: token.into(),
                    reason: "x".into(),
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                coordinator::CreateSessionResponse {
                    join_tokens: [("p1".to_string(), token.to_string())].into(),
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                router::RouteMessageRequest {
                    join_token: token.into(),
                    envelope: Some(router::MpcMessage {
                        payload: payload.clone(),
                        ..Default::default()
                    }),
                }
            ),
            format!(
                "{:?}",
                router::FetchMessagesRequest {
                    join_token: token.into(),
                    ..Default::default()
                }
            ),
        ];
        for out in outputs {
            assert!(!out.contains("secret-claims"), "token leaked: {out}");
            assert!(!out.contains("171, 171"), "payload leaked: {out}");
            assert!(out.contains(REDACTED) || out.contains("64 bytes"), "{out}");
        }
    }
}
