"""The SDK against a live `mpc up` (see conftest.py), through the Account Service only. Every
signature is checked with coincurve (verify.py)."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from mpc_client import (
    AsyncMPCClient,
    AuthenticationError,
    BadRequestError,
    MPCClient,
    NotFoundError,
    PermissionDeniedError,
)

from verify import check_signature


def random_hash() -> str:
    return os.urandom(32).hex()


def guide_participants(device: str) -> list[dict]:
    return [
        {"party_id": device, "device_type": "ios"},
        {"party_id": "server_party_1", "device_type": "server"},
        {"party_id": "server_party_2", "device_type": "server"},
    ]


@pytest.fixture(scope="module")
def client(system):
    with MPCClient(base_url=system["url"], api_key=system["api_key"], timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def wallet(client):
    """The guide's §5.4 keygen: a device and two server parties."""
    keygen = client.create_keygen(threshold_n=3, threshold_t=2, participants=guide_participants("user_device"))
    share = client.generate_user_share(
        session_id=keygen.session_id, party_id="user_device", join_token=keygen.join_tokens["user_device"]
    )
    done = client.wait_for_session(keygen.session_id, timeout=60)
    assert done.status == "completed"
    return keygen, share


def test_keygen_gives_the_device_its_share_and_the_account_its_key(client, wallet):
    keygen, share = wallet
    assert keygen.session_type == "keygen" and keygen.status == "created"
    assert set(keygen.join_tokens) == {"user_device", "server_party_1", "server_party_2"}
    assert share.party_index == 0 and share.share_data
    assert share.public_key.startswith("04") and len(share.public_key) == 130
    account = client.get_account(keygen.account_id)
    assert account.status == "active"
    assert account.public_key == share.public_key
    # Two implementations agree: the SDK's Keccak and the service's.
    assert share.address == account.ethereum_address == account.address
    assert [s.party_id for s in account.shares] == ["user_device", "server_party_1", "server_party_2"]
    assert "share_data" not in repr(share) or share.share_data not in repr(share)
    assert keygen.join_tokens["user_device"] not in repr(keygen)


def test_sign_transaction_in_one_call_with_the_device_share(client, wallet):
    keygen, share = wallet
    digest = random_hash()
    sig = client.sign_transaction(
        account_id=keygen.account_id,
        message_hash=digest,
        participants=[
            {"party_id": "user_device", "share_data": share.share_data},
            {"party_id": "server_party_1"},
        ],
    )
    check_signature(share.public_key, digest, sig.r, sig.s, sig.v, sig.signature)
    session = client.get_session(sig.session_id)
    assert session.status == "completed" and session.r == sig.r


def test_sign_transaction_with_servers_only_waits_for_the_session(client, wallet):
    keygen, share = wallet
    digest = "0x" + random_hash()
    sig = client.sign_transaction(
        keygen.account_id, digest, [{"party_id": "server_party_1"}, {"party_id": "server_party_2"}]
    )
    check_signature(share.public_key, digest, sig.r, sig.s, sig.v, sig.signature)


def test_create_sign_then_the_device_with_an_access_token(system, client, wallet):
    keygen, share = wallet
    digest = random_hash()
    created = client.create_sign(keygen.account_id, digest, [{"party_id": "user_device"}, {"party_id": "server_party_2"}])
    assert created.status == "created" and created.signature is None
    token = client.create_access_token(keygen.account_id)
    assert token.scope == "party-api" and token.access_token not in repr(token)
    with MPCClient(system["url"], access_token=token.access_token) as device:
        answer = device.sign_with_user_share(
            created.session_id, "user_device", created.join_tokens["user_device"], share.share_data, digest
        )
        check_signature(share.public_key, digest, answer.r, answer.s, answer.v, answer.signature)
        with pytest.raises(AuthenticationError) as e:
            device.list_accounts()
        assert e.value.status == 401 and e.value.code == "invalid_api_key"
    final = client.wait_for_session(created.session_id, timeout=30)
    assert final.status == "completed" and final.signature == answer.signature


def test_refresh_renews_the_device_share(client, wallet):
    keygen, share = wallet
    refresh = client.refresh_account(keygen.account_id)
    renewed = client.refresh_with_user_share(
        refresh.session_id, "user_device", refresh.join_tokens["user_device"], share.share_data
    )
    assert renewed.public_key == share.public_key and renewed.share_data != share.share_data
    assert client.wait_for_session(refresh.session_id, timeout=60).status == "completed"
    digest = random_hash()
    sig = client.sign_transaction(
        keygen.account_id,
        digest,
        [{"party_id": "user_device", "share_data": renewed.share_data}, {"party_id": "server_party_2"}],
    )
    check_signature(share.public_key, digest, sig.r, sig.s, sig.v, sig.signature)


def test_suspend_activate_and_typed_errors(client, wallet):
    keygen, _ = wallet
    assert client.suspend_account(keygen.account_id).status == "suspended"
    with pytest.raises(PermissionDeniedError) as e:
        client.create_sign(keygen.account_id, random_hash(), [{"party_id": "server_party_1"}, {"party_id": "server_party_2"}])
    assert (e.value.status, e.value.code) == (403, "account_suspended")
    assert client.activate_account(keygen.account_id).status == "active"
    with pytest.raises(NotFoundError) as e:
        client.get_session(str(uuid.uuid4()))
    assert (e.value.status, e.value.code, e.value.message) == (404, "session_not_found", "session not found")
    with pytest.raises(BadRequestError) as e:
        client.create_sign(keygen.account_id, "abc", [])
    assert e.value.code == "invalid_message_hash"
    with pytest.raises(BadRequestError) as e:
        client.create_keygen(threshold_n=3, threshold_t=2, participants=[{"party_id": "server_party_1"}])
    assert e.value.status == 400 and e.value.code == "insufficient_participants"
    listed = client.list_accounts(status="active", limit=100)
    assert keygen.account_id in [a.account_id for a in listed.accounts]


def test_the_async_client_does_the_same(system):
    async def flow():
        async with AsyncMPCClient(system["url"], system["api_key"], timeout=120) as c:
            keygen = await c.create_keygen(3, 2, guide_participants("async_device"))
            share = await c.generate_user_share(keygen.session_id, "async_device", keygen.join_tokens["async_device"])
            await c.wait_for_session(keygen.session_id, timeout=60)
            digests = [random_hash() for _ in range(3)]
            sigs = await asyncio.gather(
                *(
                    c.sign_transaction(
                        keygen.account_id,
                        d,
                        [{"party_id": "async_device", "share_data": share.share_data}, {"party_id": "server_party_1"}],
                    )
                    for d in digests
                )
            )
            for d, sig in zip(digests, sigs):
                check_signature(share.public_key, d, sig.r, sig.s, sig.v, sig.signature)
            account = await c.get_account(keygen.account_id)
            assert account.ethereum_address == share.address

    asyncio.run(flow())
