//! Wire contracts shared by every MPC-System service: identifier types, the session and
//! participant state machines, join tokens, the one error-code type mapped to HTTP and gRPC, and
//! the generated gRPC code.
#![forbid(unsafe_code)]

pub mod access_token;
pub mod error;
pub mod hash;
pub mod ids;
pub mod pb;
mod pb_debug;
pub mod registry;
pub mod status;
pub mod token;

pub use access_token::{AccessClaims, AccessTokenSigner, AccessTokenVerifier};
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use hash::{MESSAGE_HASH_LEN, check_message_hash, parse_message_hash};
pub use ids::{
    AccountId, MAX_PARTIES, MessageId, PartyId, SERVER_DEVICE_TYPE, SessionId, Threshold,
    is_server_device_type,
};
pub use status::{IllegalTransition, ParticipantStatus, SessionStatus, SessionType};
pub use token::{JoinClaims, TokenSigner, TokenVerifier};
