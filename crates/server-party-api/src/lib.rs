//! The Server Party API (integration guide §2.5, §5.1 step 2, §5.2 step 3; DESIGN.md §1, §4,
//! §6): a stateless service that joins sessions on behalf of a user device, with the same party
//! driver every party runs (`mpc_client`), and hands the device's share back instead of storing
//! it.
//!
//! - [`share`]: the `share_data` format — the share wrapped with AES-256-GCM under the API's own
//!   key (bound to key id, party id and index), optionally sealed to the device with HPKE
//!   ([`hpke`], RFC 9180) so that the back end relaying it cannot read it.
#![forbid(unsafe_code)]

pub mod hpke;
pub mod share;
