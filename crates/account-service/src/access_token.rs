//! Scoped access tokens: short-lived EdDSA JWTs that a wallet back end mints for one account
//! (`POST /api/v1/accounts/{id}/access-tokens`), so that a device can call the Server Party API
//! for that account only.
//!
//! The format, the signer and the verifier live in `mpc_proto::access_token`, so that the
//! Server Party API can verify tokens without linking this crate; they are re-exported here.

pub use mpc_proto::access_token::*;
