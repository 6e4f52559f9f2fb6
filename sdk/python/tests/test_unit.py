"""The SDK's own rules without a server: Keccak, errors, retries (httpx's MockTransport plays
the API's overload answers)."""

from __future__ import annotations

import httpx
import pytest

from mpc_client import (
    MPCClient,
    MPCError,
    NotFoundError,
    RateLimitError,
    eth_address,
    keccak256,
)


def test_keccak256_known_answers():
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"abc").hex() == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    # Longer than one block (136 bytes).
    assert keccak256(b"a" * 200).hex() == keccak256(b"a" * 200).hex()


def test_address_of_the_generator():
    g = (
        "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
        "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
    )
    assert eth_address(g) == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    assert eth_address("02ab") is None


KEYGEN_ANSWER = {
    "session_id": "s",
    "session_type": "keygen",
    "threshold_n": 2,
    "threshold_t": 2,
    "join_tokens": {"d": "t"},
    "status": "created",
    "account_id": "a",
    "expires_at": "2030-01-01T00:00:00Z",
}


def test_429_is_retried_after_retry_after_with_one_idempotency_key():
    keys = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("idempotency-key"))
        if len(keys) < 3:
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"error": {"code": "overloaded", "message": "too many requests"}})
        return httpx.Response(201, json=KEYGEN_ANSWER)

    client = MPCClient("http://mpc.test", "k", transport=httpx.MockTransport(handler))
    answer = client.create_keygen(2, 2, [{"party_id": "d"}, {"party_id": "server_party_1"}])
    assert answer.account_id == "a" and len(keys) == 3
    assert keys[0] and all(k == keys[0] for k in keys)


def test_connection_errors_are_retried_for_keygen_only():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(201, json=KEYGEN_ANSWER)

    client = MPCClient("http://mpc.test", "k", transport=httpx.MockTransport(handler))
    client.create_keygen(2, 2, [{"party_id": "d"}, {"party_id": "server_party_1"}])
    assert calls == ["/api/v1/mpc/keygen"] * 2

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.ConnectError("refused")

    calls.clear()
    client = MPCClient("http://mpc.test", "k", transport=httpx.MockTransport(refuse))
    with pytest.raises(MPCError) as e:
        client.generate_user_share("s", "d", "t")
    assert e.value.code == "connection_error" and len(calls) == 1


def test_errors_carry_code_status_message():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("busy"):
            return httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {"code": "overloaded", "message": "too many requests"}})
        return httpx.Response(404, json={"error": {"code": "session_not_found", "message": "session not found"}})

    client = MPCClient("http://mpc.test", "k", max_retries=0, transport=httpx.MockTransport(handler))
    with pytest.raises(NotFoundError) as e:
        client.get_session("x")
    assert (e.value.code, e.value.status, e.value.message) == ("session_not_found", 404, "session not found")
    with pytest.raises(RateLimitError) as e:
        client.get_session("busy")
    assert e.value.retry_after == 7.0 and isinstance(e.value, MPCError)
