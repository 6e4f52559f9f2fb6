"""MPCClient and AsyncMPCClient: the Account Service's API over httpx.

Both clients describe each call as an :class:`_Op` (method, path, body, how to read the
answer) and run it with the same retry rules, so the two stay the same API:

- 429 and 503 are retried after ``Retry-After`` (or a short backoff), ``max_retries`` times;
- keygen and sign are also retried after a connection error, under one automatic
  ``Idempotency-Key`` for all attempts, so a retry never creates a second session.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import httpx

from . import _errors
from ._types import (
    AccessToken,
    Account,
    AccountList,
    DeviceSignature,
    KeygenResponse,
    Session,
    SessionCreated,
    SignatureResult,
    SignSession,
    UserShare,
    _build,
)

__all__ = ["MPCClient", "AsyncMPCClient"]

#: The longest long poll the API accepts (``?wait=``).
MAX_WAIT_SECONDS = 60
_FIRST_BACKOFF = 0.5
_MAX_BACKOFF = 10.0

Participant = Mapping[str, Any]


@dataclass
class _Op:
    method: str
    path: str
    parse: Callable[[Any], Any]
    body: Optional[dict[str, Any]] = None
    idempotent: bool = False
    timeout: Optional[float] = None


def _retry_after(response: httpx.Response) -> Optional[float]:
    value = response.headers.get("retry-after", "").strip()
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _backoff(attempt: int) -> float:
    return min(_FIRST_BACKOFF * (2 ** (attempt - 1)), _MAX_BACKOFF)


def _read(op: _Op, response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success:
        if body is None:
            raise _errors.MPCError(f"{op.method} {op.path}: not JSON", status=response.status_code)
        return op.parse(body)
    raise _errors.from_response(response.status_code, body, _retry_after(response))


def _check_hash(message_hash: str) -> str:
    h = message_hash.strip()
    bare = h[2:] if h.startswith("0x") else h
    try:
        ok = len(bare) == 64 and len(bytes.fromhex(bare)) == 32
    except ValueError:
        ok = False
    if not ok:
        raise _errors.BadRequestError(
            "message_hash must be 32 bytes as 64 hex characters", code="invalid_message_hash"
        )
    return h


def _participants(items: Iterable[Participant]) -> list[dict[str, Any]]:
    return [{k: v for k, v in dict(p).items() if v is not None} for p in items]


def _signature_of(session: Session) -> SignatureResult:
    if session.status == "completed" and session.signature and session.r and session.s:
        return SignatureResult(session.session_id, session.signature, session.r, session.s, int(session.v or 0))
    if session.status == "expired":
        raise _errors.SessionExpiredError(
            session.failure_reason or "session expired", code="session_expired"
        )
    raise _errors.SessionFailedError(
        session.failure_reason or f"session is {session.status}",
        session.session_id,
        session.blamed_party_id,
    )


class _Operations:
    """The API's operations as :class:`_Op` descriptions (no I/O here)."""

    @staticmethod
    def create_keygen(
        threshold_n: int,
        threshold_t: int,
        participants: Sequence[Participant],
        username: Optional[str] = None,
        email: Optional[str] = None,
    ) -> _Op:
        body: dict[str, Any] = {
            "threshold_n": threshold_n,
            "threshold_t": threshold_t,
            "participants": _participants(participants),
        }
        if username is not None:
            body["username"] = username
        if email is not None:
            body["email"] = email
        return _Op("POST", "/api/v1/mpc/keygen", lambda b: _build(KeygenResponse, b), body, idempotent=True)

    @staticmethod
    def generate_user_share(
        session_id: str, party_id: str, join_token: str, user_public_key: Optional[str] = None
    ) -> _Op:
        body = {"session_id": session_id, "party_id": party_id, "join_token": join_token}
        if user_public_key:
            body["user_public_key"] = user_public_key
        return _Op("POST", "/api/v1/keygen/generate-user-share", lambda b: _build(UserShare, b), body)

    @staticmethod
    def create_sign(account_id: str, message_hash: str, participants: Sequence[Participant]) -> _Op:
        body = {
            "account_id": account_id,
            "message_hash": _check_hash(message_hash),
            "participants": _participants(participants),
        }
        return _Op("POST", "/api/v1/mpc/sign", lambda b: _build(SignSession, b), body, idempotent=True)

    @staticmethod
    def get_session(session_id: str, wait: int = 0) -> _Op:
        path = f"/api/v1/mpc/sessions/{session_id}"
        if wait:
            path += f"?wait={wait}"
        return _Op("GET", path, Session.from_json, timeout=(wait + 30.0) if wait else None)

    @staticmethod
    def sign_with_user_share(
        session_id: str, party_id: str, join_token: str, share_data: str, message_hash: str
    ) -> _Op:
        body = {
            "session_id": session_id,
            "party_id": party_id,
            "join_token": join_token,
            "share_data": share_data,
            "message_hash": _check_hash(message_hash),
        }
        return _Op("POST", "/api/v1/sign/with-user-share", lambda b: _build(DeviceSignature, b), body)

    @staticmethod
    def refresh_with_user_share(
        session_id: str, party_id: str, join_token: str, share_data: str, user_public_key: Optional[str] = None
    ) -> _Op:
        body = {"session_id": session_id, "party_id": party_id, "join_token": join_token, "share_data": share_data}
        if user_public_key:
            body["user_public_key"] = user_public_key
        return _Op("POST", "/api/v1/refresh/with-user-share", lambda b: _build(UserShare, b), body)

    @staticmethod
    def recovery_new_user_share(
        session_id: str,
        party_id: str,
        join_token: str,
        share_data: Optional[str] = None,
        user_public_key: Optional[str] = None,
    ) -> _Op:
        body: dict[str, Any] = {"session_id": session_id, "party_id": party_id, "join_token": join_token}
        if share_data:
            body["share_data"] = share_data
        if user_public_key:
            body["user_public_key"] = user_public_key
        return _Op("POST", "/api/v1/recovery/new-user-share", lambda b: _build(UserShare, b), body)

    @staticmethod
    def get_account(account_id: str, include_inactive: bool = False) -> _Op:
        q = "?include_inactive=true" if include_inactive else ""
        return _Op("GET", f"/api/v1/accounts/{account_id}{q}", Account.from_json)

    @staticmethod
    def list_accounts(status: Optional[str] = None, limit: int = 50, offset: int = 0) -> _Op:
        path = f"/api/v1/accounts?limit={limit}&offset={offset}"
        if status:
            path += f"&status={status}"

        def parse(b: dict[str, Any]) -> AccountList:
            return AccountList(
                accounts=[Account.from_json(a) for a in b["accounts"]],
                total=b["total"],
                limit=b["limit"],
                offset=b["offset"],
            )

        return _Op("GET", path, parse)

    @staticmethod
    def account_action(account_id: str, action: str, parse: Callable[[Any], Any], body: Optional[dict] = None) -> _Op:
        return _Op("POST", f"/api/v1/accounts/{account_id}/{action}", parse, body if body is not None else {})


def _recover_body(
    lost_party_id: str, new_party_id: str, device_type: Optional[str], helpers: Optional[Sequence[str]]
) -> dict[str, Any]:
    body: dict[str, Any] = {"lost_party_id": lost_party_id, "new_party_id": new_party_id}
    if device_type:
        body["device_type"] = device_type
    if helpers is not None:
        body["helpers"] = list(helpers)
    return body


class _Base:
    def __init__(
        self,
        base_url: str,
        api_key: Optional[str] = None,
        timeout: float = 300.0,
        *,
        access_token: Optional[str] = None,
        max_retries: int = 3,
    ) -> None:
        if not api_key and not access_token:
            raise ValueError("give api_key (or a device's access_token)")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self._headers = {"Authorization": f"Bearer {access_token}"} if access_token else {"X-API-Key": api_key or ""}

    def _request_args(self, op: _Op, key: Optional[str]) -> dict[str, Any]:
        headers = dict(self._headers)
        if key:
            headers["Idempotency-Key"] = key
        args: dict[str, Any] = {"headers": headers}
        if op.body is not None:
            args["json"] = op.body
        if op.timeout is not None:
            args["timeout"] = op.timeout
        return args

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"


class MPCClient(_Base):
    """A client of the Account Service (guide §5.4)::

        client = MPCClient(base_url="http://mpc-account-service:4000", api_key="your_api_key")
    """

    def __init__(
        self,
        base_url: str,
        api_key: Optional[str] = None,
        timeout: float = 300.0,
        *,
        access_token: Optional[str] = None,
        max_retries: int = 3,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, access_token=access_token, max_retries=max_retries)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "MPCClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, op: _Op) -> Any:
        key = f"mpc-py-{secrets.token_hex(16)}" if op.idempotent else None
        attempt = 0
        while True:
            attempt += 1
            retries_left = attempt <= self.max_retries
            try:
                response = self._http.request(op.method, op.path, **self._request_args(op, key))
            except httpx.TimeoutException as e:
                raise _errors.TimeoutError(f"{op.method} {op.path}: {e}", code="timeout") from e
            except httpx.TransportError as e:
                if op.idempotent and retries_left:
                    time.sleep(_backoff(attempt))
                    continue
                raise _errors.ConnectionError(f"{op.method} {op.path}: {e}", code="connection_error") from e
            if response.status_code in (429, 503) and retries_left:
                time.sleep(_retry_after(response) or _backoff(attempt))
                continue
            return _read(op, response)

    # --- the guide's operations --------------------------------------------------------------

    def create_keygen(
        self,
        threshold_n: int,
        threshold_t: int,
        participants: Sequence[Participant],
        username: Optional[str] = None,
        email: Optional[str] = None,
    ) -> KeygenResponse:
        """A wallet account and its keygen session (guide §5.1 step 1)."""
        return self._run(_Operations.create_keygen(threshold_n, threshold_t, participants, username, email))

    def generate_user_share(
        self, session_id: str, party_id: str, join_token: str, user_public_key: Optional[str] = None
    ) -> UserShare:
        """The device's part of the keygen (§5.1 step 2): returns when the key exists."""
        return self._run(_Operations.generate_user_share(session_id, party_id, join_token, user_public_key))

    def create_sign(self, account_id: str, message_hash: str, participants: Sequence[Participant]) -> SignSession:
        """A sign session (§5.2 step 2); with a participant's ``share_data``, signed in one call."""
        return self._run(_Operations.create_sign(account_id, message_hash, participants))

    def sign_transaction(
        self, account_id: str, message_hash: str, participants: Sequence[Participant]
    ) -> SignatureResult:
        """Signs ``message_hash`` (§5.4): with a device's ``share_data`` in one call; with server
        parties only, by waiting for the session."""
        created = self.create_sign(account_id, message_hash, participants)
        if created.signature and created.r and created.s and created.v is not None:
            return SignatureResult(created.session_id, created.signature, created.r, created.s, created.v)
        return _signature_of(self.wait_for_session(created.session_id, self.timeout))

    def get_session(self, session_id: str, wait: int = 0) -> Session:
        """A session; with ``wait`` (≤ 60 s) as soon as it is final."""
        return self._run(_Operations.get_session(session_id, wait))

    def wait_for_session(self, session_id: str, timeout: Optional[float] = None) -> Session:
        """The session once final (long polls, no busy polling); ``TimeoutError`` after
        ``timeout`` seconds."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            session = self.get_session(session_id, wait=max(0, min(MAX_WAIT_SECONDS, int(left))))
            if session.is_final:
                return session
            if time.monotonic() >= deadline:
                raise _errors.TimeoutError(f"session {session_id} is still {session.status}", code="timeout")

    def sign_with_user_share(
        self, session_id: str, party_id: str, join_token: str, share_data: str, message_hash: str
    ) -> DeviceSignature:
        return self._run(_Operations.sign_with_user_share(session_id, party_id, join_token, share_data, message_hash))

    def refresh_with_user_share(
        self, session_id: str, party_id: str, join_token: str, share_data: str, user_public_key: Optional[str] = None
    ) -> UserShare:
        return self._run(
            _Operations.refresh_with_user_share(session_id, party_id, join_token, share_data, user_public_key)
        )

    def recovery_new_user_share(
        self,
        session_id: str,
        party_id: str,
        join_token: str,
        share_data: Optional[str] = None,
        user_public_key: Optional[str] = None,
    ) -> UserShare:
        return self._run(
            _Operations.recovery_new_user_share(session_id, party_id, join_token, share_data, user_public_key)
        )

    # --- accounts and access tokens ----------------------------------------------------------

    def get_account(self, account_id: str, include_inactive: bool = False) -> Account:
        return self._run(_Operations.get_account(account_id, include_inactive))

    def list_accounts(self, status: Optional[str] = None, limit: int = 50, offset: int = 0) -> AccountList:
        return self._run(_Operations.list_accounts(status, limit, offset))

    def suspend_account(self, account_id: str) -> Account:
        return self._run(_Operations.account_action(account_id, "suspend", Account.from_json))

    def activate_account(self, account_id: str) -> Account:
        return self._run(_Operations.account_action(account_id, "activate", Account.from_json))

    def refresh_account(self, account_id: str) -> SessionCreated:
        return self._run(_Operations.account_action(account_id, "refresh", lambda b: _build(SessionCreated, b)))

    def recover_account(
        self,
        account_id: str,
        lost_party_id: str,
        new_party_id: str,
        device_type: Optional[str] = None,
        helpers: Optional[Sequence[str]] = None,
    ) -> SessionCreated:
        body = _recover_body(lost_party_id, new_party_id, device_type, helpers)
        return self._run(_Operations.account_action(account_id, "recover", lambda b: _build(SessionCreated, b), body))

    def create_access_token(self, account_id: str) -> AccessToken:
        """A token with which a device may call the device operations for this account only."""
        return self._run(_Operations.account_action(account_id, "access-tokens", lambda b: _build(AccessToken, b)))


class AsyncMPCClient(_Base):
    """The asyncio twin of :class:`MPCClient` (same methods, awaitable)."""

    def __init__(
        self,
        base_url: str,
        api_key: Optional[str] = None,
        timeout: float = 300.0,
        *,
        access_token: Optional[str] = None,
        max_retries: int = 3,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, access_token=access_token, max_retries=max_retries)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncMPCClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self, op: _Op) -> Any:
        key = f"mpc-py-{secrets.token_hex(16)}" if op.idempotent else None
        attempt = 0
        while True:
            attempt += 1
            retries_left = attempt <= self.max_retries
            try:
                response = await self._http.request(op.method, op.path, **self._request_args(op, key))
            except httpx.TimeoutException as e:
                raise _errors.TimeoutError(f"{op.method} {op.path}: {e}", code="timeout") from e
            except httpx.TransportError as e:
                if op.idempotent and retries_left:
                    await asyncio.sleep(_backoff(attempt))
                    continue
                raise _errors.ConnectionError(f"{op.method} {op.path}: {e}", code="connection_error") from e
            if response.status_code in (429, 503) and retries_left:
                await asyncio.sleep(_retry_after(response) or _backoff(attempt))
                continue
            return _read(op, response)

    async def create_keygen(
        self,
        threshold_n: int,
        threshold_t: int,
        participants: Sequence[Participant],
        username: Optional[str] = None,
        email: Optional[str] = None,
    ) -> KeygenResponse:
        return await self._run(_Operations.create_keygen(threshold_n, threshold_t, participants, username, email))

    async def generate_user_share(
        self, session_id: str, party_id: str, join_token: str, user_public_key: Optional[str] = None
    ) -> UserShare:
        return await self._run(_Operations.generate_user_share(session_id, party_id, join_token, user_public_key))

    async def create_sign(
        self, account_id: str, message_hash: str, participants: Sequence[Participant]
    ) -> SignSession:
        return await self._run(_Operations.create_sign(account_id, message_hash, participants))

    async def sign_transaction(
        self, account_id: str, message_hash: str, participants: Sequence[Participant]
    ) -> SignatureResult:
        created = await self.create_sign(account_id, message_hash, participants)
        if created.signature and created.r and created.s and created.v is not None:
            return SignatureResult(created.session_id, created.signature, created.r, created.s, created.v)
        return _signature_of(await self.wait_for_session(created.session_id, self.timeout))

    async def get_session(self, session_id: str, wait: int = 0) -> Session:
        return await self._run(_Operations.get_session(session_id, wait))

    async def wait_for_session(self, session_id: str, timeout: Optional[float] = None) -> Session:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            session = await self.get_session(session_id, wait=max(0, min(MAX_WAIT_SECONDS, int(left))))
            if session.is_final:
                return session
            if time.monotonic() >= deadline:
                raise _errors.TimeoutError(f"session {session_id} is still {session.status}", code="timeout")

    async def sign_with_user_share(
        self, session_id: str, party_id: str, join_token: str, share_data: str, message_hash: str
    ) -> DeviceSignature:
        return await self._run(
            _Operations.sign_with_user_share(session_id, party_id, join_token, share_data, message_hash)
        )

    async def refresh_with_user_share(
        self, session_id: str, party_id: str, join_token: str, share_data: str, user_public_key: Optional[str] = None
    ) -> UserShare:
        return await self._run(
            _Operations.refresh_with_user_share(session_id, party_id, join_token, share_data, user_public_key)
        )

    async def recovery_new_user_share(
        self,
        session_id: str,
        party_id: str,
        join_token: str,
        share_data: Optional[str] = None,
        user_public_key: Optional[str] = None,
    ) -> UserShare:
        return await self._run(
            _Operations.recovery_new_user_share(session_id, party_id, join_token, share_data, user_public_key)
        )

    async def get_account(self, account_id: str, include_inactive: bool = False) -> Account:
        return await self._run(_Operations.get_account(account_id, include_inactive))

    async def list_accounts(self, status: Optional[str] = None, limit: int = 50, offset: int = 0) -> AccountList:
        return await self._run(_Operations.list_accounts(status, limit, offset))

    async def suspend_account(self, account_id: str) -> Account:
        return await self._run(_Operations.account_action(account_id, "suspend", Account.from_json))

    async def activate_account(self, account_id: str) -> Account:
        return await self._run(_Operations.account_action(account_id, "activate", Account.from_json))

    async def refresh_account(self, account_id: str) -> SessionCreated:
        return await self._run(_Operations.account_action(account_id, "refresh", lambda b: _build(SessionCreated, b)))

    async def recover_account(
        self,
        account_id: str,
        lost_party_id: str,
        new_party_id: str,
        device_type: Optional[str] = None,
        helpers: Optional[Sequence[str]] = None,
    ) -> SessionCreated:
        body = _recover_body(lost_party_id, new_party_id, device_type, helpers)
        return await self._run(
            _Operations.account_action(account_id, "recover", lambda b: _build(SessionCreated, b), body)
        )

    async def create_access_token(self, account_id: str) -> AccessToken:
        return await self._run(
            _Operations.account_action(account_id, "access-tokens", lambda b: _build(AccessToken, b))
        )


AnyClient = Union[MPCClient, AsyncMPCClient]
