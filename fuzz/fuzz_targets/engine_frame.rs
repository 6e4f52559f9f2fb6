//! The engine's frame decoder: what a participant of a session (holding genuine channel keys)
//! can make another party's `Session::handle` decode. The first byte picks the protocol (keygen
//! 2-of-2 or a 2-of-3 signature) and how the rest arrives: as a raw payload (the AEAD must
//! refuse it), as a sealed arbitrary plaintext (the postcard frame decoder), or as a sealed
//! well-formed frame whose broadcast and private parts are the input (the protocol decoders).
//! Whatever is refused must be refused with an error that blames the sender, never a panic.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mpc_protocol::{KeyShare, Message, MessageHash, Parameters, PartyIndex, ProtocolError};

fn idx(i: u16) -> PartyIndex {
    PartyIndex::new(i).unwrap()
}

/// postcard of `Frame { broadcast, p2p, echo: None }` (serde_bytes options: tag, varint, bytes).
fn frame(broadcast: &[u8], p2p: &[u8]) -> Vec<u8> {
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.push(1);
        let mut n = b.len();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.extend_from_slice(b);
    }
    let mut out = Vec::new();
    bytes(&mut out, broadcast);
    bytes(&mut out, p2p);
    out.push(0);
    out
}

fn check(result: Result<Vec<Message>, ProtocolError>) {
    if let Err(e) = result {
        // Anything the victim refuses is the sender's fault (or an input error), not ours.
        assert!(
            e.blamed_party() == Some(idx(0)) || !matches!(e, ProtocolError::Internal(_)),
            "{e}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (mode, round, rest) = (data[0], u16::from(data[1] % 6), &data[3..]);
    let (evil, victim) = mpc_fuzz::channel_pair();
    let payload = match mode & 3 {
        0 => rest.to_vec(),
        1 => evil.seal_for_fuzzing(idx(1), round, rest).unwrap(),
        _ => {
            let split = usize::from(data[2]).min(rest.len());
            let plain = frame(&rest[..split], &rest[split..]);
            evil.seal_for_fuzzing(idx(1), round, &plain).unwrap()
        }
    };
    let message = Message {
        from: idx(0),
        to: idx(1),
        round,
        payload,
    };
    if mode & 4 == 0 {
        let mut s = mpc_protocol::keygen(Parameters::new(2, 2).unwrap(), victim).unwrap();
        check(s.start());
        check(s.handle(message));
    } else {
        let share = Arc::new(KeyShare::from_bytes(mpc_fuzz::FIXTURE_SHARE_P1).unwrap());
        let mut s = mpc_protocol::sign(share, MessageHash::new([0x42; 32]), victim).unwrap();
        check(s.start());
        check(s.handle(message));
    }
});
