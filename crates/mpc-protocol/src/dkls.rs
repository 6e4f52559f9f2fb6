//! Glue to the `dkls23` crate: type aliases, typed (de)serialisation of round messages, and the
//! mapping of the library's aborts to blame.

use dkls23::protocols::{Abort, AbortKind, AbortReason, PartiesMessage};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Misbehaviour, ProtocolError};
use crate::types::PartyIndex;

pub(crate) type Curve = k256::Secp256k1;
pub(crate) type Party = dkls23::protocols::Party<Curve>;
pub(crate) type Package = dkls23::protocols::PublicKeyPackage<Curve>;

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ProtocolError> {
    postcard::to_allocvec(value).map_err(ProtocolError::internal)
}

/// Decodes one part of a frame, blaming `from` when it is missing or invalid.
pub(crate) fn decode<T: DeserializeOwned>(
    from: PartyIndex,
    bytes: Option<&Vec<u8>>,
    what: &str,
) -> Result<T, ProtocolError> {
    let bytes = bytes.ok_or_else(|| ProtocolError::malformed(from, format!("missing {what}")))?;
    postcard::from_bytes(bytes)
        .map_err(|e| ProtocolError::malformed(from, format!("invalid {what}: {e}")))
}

/// A library message carries its own sender and receiver: they must be the authenticated ones.
pub(crate) fn check_route(
    parties: &PartiesMessage,
    from: PartyIndex,
    me: PartyIndex,
    what: &str,
) -> Result<(), ProtocolError> {
    if PartyIndex::from_dkls(parties.sender) != Some(from)
        || PartyIndex::from_dkls(parties.receiver) != Some(me)
    {
        return Err(ProtocolError::malformed(
            from,
            format!("{what} names the wrong sender or receiver"),
        ));
    }
    Ok(())
}

pub(crate) fn check_sender(
    index: dkls23::protocols::PartyIndex,
    from: PartyIndex,
    what: &str,
) -> Result<(), ProtocolError> {
    if PartyIndex::from_dkls(index) != Some(from) {
        return Err(ProtocolError::malformed(
            from,
            format!("{what} names the wrong sender"),
        ));
    }
    Ok(())
}

/// Turns a library abort into our error, naming the culprit when the abort identifies one.
pub(crate) fn abort_error(abort: Abort) -> ProtocolError {
    use AbortReason as R;
    let description = abort.reason.to_string();
    // Signers whose shares come from different epochs (one of them holds a share from before a
    // refresh or recovery), or messages of another signing session, look like this. It proves
    // nothing about who is at fault and harms nothing, so name no culprit.
    if let R::SessionBindingMismatch { counterparty } = &abort.reason {
        let from = PartyIndex::from_dkls(*counterparty)
            .map_or_else(|| "a party".to_owned(), |p| format!("party {p}"));
        return ProtocolError::Aborted(format!(
            "a message from {from} belongs to a different signing session: the signers' shares are from different key epochs (one of them is outdated, e.g. from before a refresh or recovery) or the session differs"
        ));
    }
    let culprit = match (&abort.kind, &abort.reason) {
        (AbortKind::BanCounterparty(p), _) => Some(*p),
        (
            _,
            R::UnexpectedSender { sender: p }
            | R::DuplicateSender { sender: p }
            | R::MissingMessageFromParty { party: p }
            | R::ProofVerificationFailed { counterparty: p }
            | R::CommitmentMismatch { counterparty: p }
            | R::TrivialInstancePoint { counterparty: p }
            | R::MissingCommittedPoint { party: p }
            | R::OtConsistencyCheckFailed { counterparty: p }
            | R::MultiplicationVerificationFailed {
                counterparty: p, ..
            }
            | R::GammaUInconsistency { counterparty: p }
            | R::ZeroShareDecommitFailed { counterparty: p }
            | R::ChainCodeCommitmentFailed { party: p },
        ) => Some(*p),
        (
            _,
            R::InvalidLocalState { .. }
            | R::PhaseCalledOutOfOrder { .. }
            | R::MissingMulState { .. },
        ) => {
            return ProtocolError::Internal(description);
        }
        _ => None,
    };
    let ban = matches!(abort.kind, AbortKind::BanCounterparty(_));
    match culprit.and_then(PartyIndex::from_dkls) {
        Some(party) => ProtocolError::blame(
            party,
            Misbehaviour::ProtocolAbort {
                reason: description,
                ban,
            },
        ),
        None => ProtocolError::Aborted(description),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dk(i: u8) -> dkls23::protocols::PartyIndex {
        dkls23::protocols::PartyIndex::new(i).unwrap()
    }

    #[test]
    fn ban_names_the_counterparty_not_the_reporter() {
        let e = abort_error(Abort::ban(
            dk(1),
            dk(3),
            AbortReason::OtConsistencyCheckFailed {
                counterparty: dk(3),
            },
        ));
        assert_eq!(e.blamed_party(), Some(PartyIndex::new(2).unwrap()));
        assert!(e.requires_ban());
    }

    #[test]
    fn reasons_without_culprit_are_plain_aborts() {
        let e = abort_error(Abort::recoverable(
            dk(1),
            AbortReason::SignatureVerificationFailed,
        ));
        assert!(matches!(e, ProtocolError::Aborted(_)));
        let e = abort_error(Abort::recoverable(
            dk(1),
            AbortReason::ProofVerificationFailed {
                counterparty: dk(2),
            },
        ));
        assert_eq!(e.blamed_party(), Some(PartyIndex::new(1).unwrap()));
        assert!(!e.requires_ban());
    }
}
