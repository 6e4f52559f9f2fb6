//! Wire contracts shared by every MPC-System service: identifier types, the session and
//! participant state machines, and the one error-code type mapped to HTTP and gRPC.
#![forbid(unsafe_code)]

pub mod error;
pub mod ids;
pub mod status;

pub use error::{ApiError, ErrorBody, ErrorCode};
pub use ids::{AccountId, MAX_PARTIES, MessageId, PartyId, SessionId, Threshold};
pub use status::{IllegalTransition, ParticipantStatus, SessionStatus, SessionType};
