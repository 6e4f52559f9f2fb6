//! The Rust side of every MPC-System party: the party driver ([`party`]) that takes a join token
//! through a whole session, and typed clients for the coordinator and router gRPC APIs
//! ([`clients`]). The server parties, the Server Party API and any Rust client run the same code
//! (DESIGN.md §1.4).
#![forbid(unsafe_code)]

pub mod announce;
pub mod clients;
pub mod compute;
pub mod party;

pub use announce::{Announcer, HostInstance, Registered};
pub use clients::{ClientOptions, CoordinatorClient, MailboxRef, RouterClient};
pub use compute::{ComputePermit, ComputePool, Priority};
pub use party::{
    DriverOptions, MailboxTransport, PartyContext, PartyError, PartyOutcome, PartyOutput,
    PartyWork, Progress, Roster, SessionHooks, SignExpectation, TrustPolicy, run_session,
    run_session_with,
};
