//! Identity pinning (DESIGN.md §5): which identity keys this party accepts from its peers.
//!
//! The coordinator relays every party's identity key, but a coordinator (or anyone who took it
//! over) could relay its own key for a server party and sit in the middle of the session. So:
//! - a party whose id is **pinned** must present exactly the pinned key, and the pinned key (not
//!   the relayed one) is what the channel verifies its session key against;
//! - a pinned key presented under another party id is refused (one operator must not hold two
//!   shares of a key by joining twice);
//! - a party the session declares a **server** (`device_type: server`) must be pinned: a
//!   delegate acts only for devices, so a made-up "server party" joined by the Server Party API
//!   (or by anyone else) is refused, and nobody can pass off a share they hold as a server's;
//! - any other party must present a **delegate** key (e.g. the Server Party API, which joins
//!   for many device party ids), unless `allow_unpinned` is set (clients that bring their own
//!   keys, such as a wallet app with a join token).

use std::collections::BTreeMap;
use std::fmt;

use mpc_proto::PartyId;
use mpc_protocol::IdentityPublicKey;
use subtle::ConstantTimeEq;

/// The identity keys a party trusts.
#[derive(Clone, Default)]
pub struct TrustPolicy {
    pinned: BTreeMap<PartyId, IdentityPublicKey>,
    delegates: Vec<IdentityPublicKey>,
    allow_unpinned: bool,
}

impl fmt::Debug for TrustPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustPolicy")
            .field("pinned", &self.pinned)
            .field("delegates", &self.delegates)
            .field("allow_unpinned", &self.allow_unpinned)
            .finish()
    }
}

/// Why a roster entry is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustViolation {
    #[error("its identity key differs from the pinned key")]
    NotThePinnedKey,
    #[error("it presents the pinned identity key of party {owner}")]
    KeyOfAnotherParty { owner: PartyId },
    #[error("its identity key is neither pinned nor a trusted delegate")]
    Unknown,
    #[error(
        "it is declared a server party, but no identity key is pinned for it (a delegate acts only for device parties)"
    )]
    UnpinnedServer,
}

fn same_key(a: &IdentityPublicKey, b: &IdentityPublicKey) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl TrustPolicy {
    /// Trusts nobody: pin parties and add delegates, or allow unpinned parties.
    pub fn new() -> Self {
        Self::default()
    }

    /// `party` must present `key`.
    pub fn pin(mut self, party: PartyId, key: IdentityPublicKey) -> Self {
        self.pinned.insert(party, key);
        self
    }

    /// `key` may join under any party id that is not pinned.
    pub fn delegate(mut self, key: IdentityPublicKey) -> Self {
        if !self.delegates.iter().any(|d| same_key(d, &key)) {
            self.delegates.push(key);
        }
        self
    }

    /// Whether parties that are neither pinned nor delegates are accepted with whatever key they
    /// present.
    pub fn allow_unpinned(mut self, allow: bool) -> Self {
        self.allow_unpinned = allow;
        self
    }

    pub fn pinned(&self) -> &BTreeMap<PartyId, IdentityPublicKey> {
        &self.pinned
    }

    pub fn delegates(&self) -> &[IdentityPublicKey] {
        &self.delegates
    }

    pub fn allows_unpinned(&self) -> bool {
        self.allow_unpinned
    }

    /// The key to trust for `party`, which presented `presented` through the coordinator;
    /// `declared_server`: the session lists it with `device_type: server`.
    pub fn check(
        &self,
        party: &PartyId,
        presented: &IdentityPublicKey,
        declared_server: bool,
    ) -> Result<IdentityPublicKey, TrustViolation> {
        if let Some(pinned) = self.pinned.get(party) {
            return if same_key(pinned, presented) {
                Ok(*pinned)
            } else {
                Err(TrustViolation::NotThePinnedKey)
            };
        }
        if declared_server {
            return Err(TrustViolation::UnpinnedServer);
        }
        // Every pinned key is compared (no early exit), so timing says nothing about which.
        let owner = self
            .pinned
            .iter()
            .filter(|(_, key)| same_key(key, presented))
            .map(|(owner, _)| owner.clone())
            .next_back();
        if let Some(owner) = owner {
            return Err(TrustViolation::KeyOfAnotherParty { owner });
        }
        let delegate = self
            .delegates
            .iter()
            .fold(false, |found, d| found | same_key(d, presented));
        if delegate || self.allow_unpinned {
            Ok(*presented)
        } else {
            Err(TrustViolation::Unknown)
        }
    }
}

#[cfg(test)]
mod tests {
    use mpc_protocol::IdentityKey;
    use proptest::prelude::*;

    use super::*;

    fn pid(s: &str) -> PartyId {
        PartyId::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn key(seed: u8) -> IdentityPublicKey {
        IdentityKey::from_seed(&[seed; 32]).public_key()
    }

    #[test]
    fn pinned_parties_must_present_their_key() {
        let policy = TrustPolicy::new().pin(pid("server_party_1"), key(1));
        assert_eq!(
            policy.check(&pid("server_party_1"), &key(1), false),
            Ok(key(1))
        );
        assert_eq!(
            policy.check(&pid("server_party_1"), &key(2), false),
            Err(TrustViolation::NotThePinnedKey)
        );
        // Even when unpinned parties are allowed.
        let open = policy.clone().allow_unpinned(true);
        assert_eq!(
            open.check(&pid("server_party_1"), &key(2), false),
            Err(TrustViolation::NotThePinnedKey)
        );
    }

    #[test]
    fn a_pinned_key_cannot_join_under_another_id() {
        let policy = TrustPolicy::new()
            .pin(pid("server_party_1"), key(1))
            .allow_unpinned(true)
            .delegate(key(1));
        assert_eq!(
            policy.check(&pid("user_device"), &key(1), false),
            Err(TrustViolation::KeyOfAnotherParty {
                owner: pid("server_party_1")
            })
        );
    }

    #[test]
    fn unpinned_parties_need_a_delegate_key_unless_allowed() {
        let policy = TrustPolicy::new()
            .pin(pid("server_party_1"), key(1))
            .delegate(key(9));
        assert_eq!(
            policy.check(&pid("user_device"), &key(9), false),
            Ok(key(9))
        );
        assert_eq!(
            policy.check(&pid("user_device"), &key(3), false),
            Err(TrustViolation::Unknown)
        );
        let open = policy.allow_unpinned(true);
        assert_eq!(open.check(&pid("user_device"), &key(3), false), Ok(key(3)));
    }

    #[test]
    fn a_declared_server_must_be_pinned() {
        // The Server Party API's delegate key, used under a made-up "server" party id: refused,
        // even where unpinned devices are allowed.
        let policy = TrustPolicy::new()
            .pin(pid("server_party_1"), key(1))
            .delegate(key(9))
            .allow_unpinned(true);
        for presented in [key(9), key(3)] {
            assert_eq!(
                policy.check(&pid("server_party_9"), &presented, true),
                Err(TrustViolation::UnpinnedServer)
            );
        }
        assert_eq!(
            policy.check(&pid("server_party_1"), &key(1), true),
            Ok(key(1))
        );
        assert_eq!(
            policy.check(&pid("server_party_9"), &key(9), false),
            Ok(key(9))
        );
    }

    proptest! {
        /// Whatever the policy, a key that is accepted for a pinned party is its pinned key, and
        /// an unpinned party is accepted only with a delegate key or when allowed.
        #[test]
        fn decisions_follow_the_rules(
            pins in prop::collection::btree_map(0u8..6, 0u8..8, 0..4),
            delegates in prop::collection::vec(0u8..8, 0..3),
            allow in any::<bool>(),
            party in 0u8..8,
            presented in 0u8..8,
            server in any::<bool>(),
        ) {
            let name = |i: u8| pid(&format!("p{i}"));
            let mut policy = TrustPolicy::new().allow_unpinned(allow);
            for (p, k) in &pins {
                policy = policy.pin(name(*p), key(*k));
            }
            for d in &delegates {
                policy = policy.delegate(key(*d));
            }
            let result = policy.check(&name(party), &key(presented), server);
            match pins.get(&party) {
                Some(k) => prop_assert_eq!(result.is_ok(), *k == presented),
                None if server => prop_assert_eq!(result.clone(), Err(TrustViolation::UnpinnedServer)),
                None => {
                    let pinned_elsewhere = pins.values().any(|k| *k == presented);
                    let expected = !pinned_elsewhere && (allow || delegates.contains(&presented));
                    prop_assert_eq!(result.is_ok(), expected);
                }
            }
            if let Ok(k) = result {
                prop_assert_eq!(k, key(presented));
            }
        }
    }
}
