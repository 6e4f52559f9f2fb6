"""Typed answers with the guide's attribute names. Shares and join tokens never show in
``repr``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional, TypeVar

from ._keccak import eth_address

T = TypeVar("T")


def _build(cls: type[T], data: dict[str, Any]) -> T:
    """``cls`` from a JSON object, ignoring fields this SDK version does not know."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class KeygenResponse:
    """A keygen session just created and its (pending) account (guide §5.1 step 1)."""

    session_id: str
    session_type: str
    threshold_n: int
    threshold_t: int
    status: str
    account_id: str
    expires_at: str
    #: party id → join token. Secret: hand each to its party only.
    join_tokens: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class UserShare:
    """The device's share (keygen, refresh, recovery; guide §5.1 step 2)."""

    session_id: str
    party_id: str
    party_index: int
    #: The group key, uncompressed (``04…``), hex.
    public_key: str
    #: Hex. Secret: store it on the device.
    share_data: str = field(repr=False)
    success: bool = True

    @property
    def address(self) -> Optional[str]:
        """The EIP-55 Ethereum address of the group key."""
        return eth_address(self.public_key)


@dataclass(frozen=True)
class SignSession:
    """A sign session just created (guide §5.2 step 2); with a participant's ``share_data``,
    completed and signed."""

    session_id: str
    session_type: str
    account_id: str
    message_hash: str
    threshold_t: int
    status: str
    expires_at: str
    join_tokens: dict[str, str] = field(default_factory=dict, repr=False)
    signature: Optional[str] = None
    r: Optional[str] = None
    s: Optional[str] = None
    v: Optional[int] = None


@dataclass(frozen=True)
class SignatureResult:
    """A signature (guide §3.2): DER hex, ``r``/``s`` (32 bytes hex, low-s), ``v`` (0/1) such
    that ``ecrecover(hash, r, s, v)`` is the group key."""

    session_id: str
    signature: str
    r: str
    s: str
    v: int


@dataclass(frozen=True)
class SessionParticipant:
    party_id: str
    party_index: int
    status: str
    device_type: Optional[str] = None
    joined_at: Optional[str] = None


@dataclass(frozen=True)
class Session:
    """``GET /api/v1/mpc/sessions/{id}``."""

    session_id: str
    session_type: str
    status: str
    threshold_n: int
    threshold_t: int
    participants: list[SessionParticipant]
    account_id: Optional[str] = None
    message_hash: Optional[str] = None
    public_key: Optional[str] = None
    ethereum_address: Optional[str] = None
    signature: Optional[str] = None
    r: Optional[str] = None
    s: Optional[str] = None
    v: Optional[int] = None
    failure_reason: Optional[str] = None
    blamed_party_id: Optional[str] = None
    created_at: Optional[str] = None
    expires_at: Optional[str] = None
    completed_at: Optional[str] = None

    @property
    def is_final(self) -> bool:
        return self.status in ("completed", "failed", "expired")

    @property
    def address(self) -> Optional[str]:
        return self.ethereum_address

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Session":
        parts = [_build(SessionParticipant, p) for p in data.get("participants", [])]
        return _build(cls, {**data, "participants": parts})


@dataclass(frozen=True)
class ShareInfo:
    """Where a share lives; never the share."""

    party_id: str
    party_index: int
    share_type: str
    is_active: bool
    created_at: str
    device_type: Optional[str] = None
    storage_location: Optional[str] = None


@dataclass(frozen=True)
class Account:
    account_id: str
    status: str
    threshold_n: int
    threshold_t: int
    created_at: str
    updated_at: str
    username: Optional[str] = None
    email: Optional[str] = None
    public_key: Optional[str] = None
    ethereum_address: Optional[str] = None
    keygen_session_id: Optional[str] = None
    failure_reason: Optional[str] = None
    shares: Optional[list[ShareInfo]] = None

    @property
    def address(self) -> Optional[str]:
        return self.ethereum_address

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Account":
        shares = data.get("shares")
        if shares is not None:
            shares = [_build(ShareInfo, s) for s in shares]
        return _build(cls, {**data, "shares": shares})


@dataclass(frozen=True)
class AccountList:
    accounts: list[Account]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class SessionCreated:
    """A refresh or recovery session just created."""

    session_id: str
    session_type: str
    account_id: str
    threshold_n: int
    threshold_t: int
    status: str
    expires_at: str
    join_tokens: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class AccessToken:
    """A scoped token for one account's device operations (``Authorization: Bearer``)."""

    token_type: str
    scope: str
    account_id: str
    expires_at: str
    access_token: str = field(repr=False)


@dataclass(frozen=True)
class DeviceSignature:
    """The answer of ``sign/with-user-share``."""

    session_id: str
    party_id: str
    signature: str
    r: str
    s: str
    v: int
    success: bool = True
