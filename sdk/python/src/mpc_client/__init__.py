"""Python SDK of MPC-System (integration guide §5.4): a wallet back end's client of the
Account Service, the one base URL it needs.

    from mpc_client import MPCClient

    client = MPCClient(base_url="http://mpc-account-service:4000", api_key="your_api_key")
"""

from ._client import MAX_WAIT_SECONDS, AsyncMPCClient, MPCClient
from ._errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ConnectionError,
    MPCError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitError,
    ServiceUnavailableError,
    SessionExpiredError,
    SessionFailedError,
    TimeoutError,
)
from ._keccak import eth_address, keccak256
from ._webhooks import WebhookVerificationError, verify_webhook
from ._types import (
    AccessToken,
    Account,
    AccountList,
    DeviceSignature,
    KeygenResponse,
    Session,
    SessionCreated,
    SessionParticipant,
    ShareInfo,
    SignatureResult,
    SignSession,
    UserShare,
)

__version__ = "0.1.0"

__all__ = [
    "WebhookVerificationError",
    "verify_webhook",
    "MAX_WAIT_SECONDS",
    "AccessToken",
    "Account",
    "AccountList",
    "AsyncMPCClient",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "ConnectionError",
    "DeviceSignature",
    "KeygenResponse",
    "MPCClient",
    "MPCError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitError",
    "ServiceUnavailableError",
    "Session",
    "SessionCreated",
    "SessionExpiredError",
    "SessionFailedError",
    "SessionParticipant",
    "ShareInfo",
    "SignSession",
    "SignatureResult",
    "TimeoutError",
    "UserShare",
    "eth_address",
    "keccak256",
]
