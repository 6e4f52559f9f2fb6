"""The independent verifier of the tests: coincurve (libsecp256k1), not the code under test."""

from __future__ import annotations

from coincurve import PublicKey

# secp256k1's group order.
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def check_signature(public_key_hex: str, message_hash_hex: str, r: str, s: str, v: int, der: str) -> None:
    """``ecrecover(hash, r, s, v)`` is the key, ``s`` is low, the DER form verifies."""
    digest = bytes.fromhex(message_hash_hex.removeprefix("0x"))
    key = bytes.fromhex(public_key_hex)
    assert len(digest) == 32 and len(key) == 65
    assert int(s, 16) <= N // 2, "high s"
    assert v in (0, 1)
    recoverable = bytes.fromhex(r) + bytes.fromhex(s) + bytes([v])
    recovered = PublicKey.from_signature_and_message(recoverable, digest, hasher=None)
    assert recovered.format(compressed=False) == key, "ecrecover returned another key"
    assert PublicKey(key).verify(bytes.fromhex(der), digest, hasher=None)
