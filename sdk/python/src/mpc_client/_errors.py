"""Errors: every one is an :class:`MPCError` with the API's stable ``code``, the HTTP
``status`` and a ``message`` (the guide's wording where it has one)."""

from __future__ import annotations


class MPCError(Exception):
    """An error from the API or the client. ``code`` is stable (``session_not_found``, …)."""

    def __init__(
        self,
        message: str,
        code: str = "unknown",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{message} ({code}" + (f", HTTP {status})" if status else ")"))
        self.message = message
        self.code = code
        self.status = status
        self.retry_after = retry_after


class BadRequestError(MPCError):
    """400: invalid input (``insufficient_participants``, ``invalid_message_hash``, …)."""


class AuthenticationError(MPCError):
    """401: a missing or wrong API key or access token, or ``invalid_join_token``."""


class PermissionDeniedError(MPCError):
    """403: ``permission_denied``, ``account_suspended``."""


class NotFoundError(MPCError):
    """404: ``session_not_found``, ``account_not_found``."""


class ConflictError(MPCError):
    """409: the resource is in another state, or the value is taken."""


class SessionExpiredError(MPCError):
    """410, or a session that ended ``expired``."""


class ProtocolError(MPCError):
    """422 ``protocol_failed``: the MPC protocol failed (the message names the blamed party)."""


class RateLimitError(MPCError):
    """429 ``overloaded``: retry after ``retry_after`` seconds."""


class ServiceUnavailableError(MPCError):
    """503: a part of the system is unreachable."""


class TimeoutError(MPCError):  # noqa: A001 - the SDK's own, an MPCError
    """504, or the client's deadline passed."""


class SessionFailedError(MPCError):
    """A session ended ``failed``; ``blamed_party_id`` names the party blamed, if any."""

    def __init__(self, message: str, session_id: str, blamed_party_id: str | None = None) -> None:
        super().__init__(message, code="session_failed")
        self.session_id = session_id
        self.blamed_party_id = blamed_party_id


class ConnectionError(MPCError):  # noqa: A001
    """The request did not reach the API, or its answer did not come back."""


_BY_STATUS: dict[int, type[MPCError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    410: SessionExpiredError,
    422: ProtocolError,
    429: RateLimitError,
    503: ServiceUnavailableError,
    504: TimeoutError,
}


def from_response(status: int, body: object, retry_after: float | None) -> MPCError:
    error = body.get("error") if isinstance(body, dict) else None
    code = str(error.get("code", "unknown")) if isinstance(error, dict) else "unknown"
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    cls = _BY_STATUS.get(status, MPCError)
    return cls(message or f"HTTP {status}", code=code, status=status, retry_after=retry_after)
