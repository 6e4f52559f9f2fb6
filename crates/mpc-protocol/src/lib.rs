//! The MPC engine of MPC-System: DKLs23 threshold ECDSA on secp256k1 behind a transport-free,
//! round-by-round interface.
//!
//! A protocol run is a [`Session`]: feed it the [`Message`]s addressed to this party, send what it
//! returns, and take the output when it is finished. Messages are opaque sealed bytes with
//! explicit `from`, `to` and `round`; whoever carries them (the Message Router, or an in-memory
//! queue in tests) cannot read, forge, replay or split them unnoticed (see [`channel`]). Nothing
//! here knows about tokio, gRPC or databases.
//!
//! ```text
//! identity ──► SessionKeys::generate ──► announcement ──► (coordinator roster)
//!                                                              │
//! roster ──► SecureChannel::establish ──► keygen / sign / refresh / recover ──► Session
//! ```
//!
//! - [`keygen`]: t-of-n distributed key generation (2 ≤ t ≤ n ≤ 16);
//! - [`sign`]: exactly t signers, 32-byte prehash → low-s `r`, `s`, recovery id `v`;
//! - [`refresh`]: all n parties, new shares, same public key;
//! - [`recover`]: a lost share rebuilt at its index for a new holder, then refreshed;
//! - [`KeyShare`] (versioned serialisation) and [`seal`] (AES-256-GCM at rest).
#![forbid(unsafe_code)]

pub mod channel;
#[cfg(test)]
mod decoder_tests;
mod dkls;
pub mod ecdsa;
pub mod error;
pub mod hd;
mod keygen;
mod recovery;
mod refresh;
mod round;
pub mod seal;
mod share;
mod sign;
mod types;

pub use channel::{IdentityKey, IdentityPublicKey, RosterEntry, SecureChannel, SessionKeys};
pub use ecdsa::{PublicKey, Signature};
pub use error::{Misbehaviour, ProtocolError};
pub use hd::{ChainCode, DerivationPath, MAX_DERIVATION_DEPTH, derive_public_key, xpub};
pub use keygen::{Keygen, keygen};
pub use recovery::{Recovery, RecoveryRole, recover};
pub use refresh::{Refresh, refresh};
pub use round::{Message, RoundProtocol, Session};
pub use seal::{SealContext, SealError, SealingKey};
pub use share::{KeyShare, SHARE_FORMAT_VERSION};
pub use sign::{MAX_BATCH, Sign, sign, sign_batch};
pub use types::{DEGENERATE_HASH, MAX_PARTIES, MessageHash, Parameters, PartyIndex, SessionId};
