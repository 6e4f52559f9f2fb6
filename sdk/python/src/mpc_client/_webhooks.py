"""Verification of webhook deliveries from the Account Service.

A delivery carries ``X-MPC-Timestamp`` (Unix seconds) and ``X-MPC-Signature``: ``v1=`` and the
lowercase hex HMAC-SHA256, under the webhook's secret, of the timestamp, ``.``, and the raw body.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Optional, Union

DEFAULT_TOLERANCE_SECONDS = 300


class WebhookVerificationError(Exception):
    """The delivery's signature or timestamp is not acceptable; do not act on it."""


def verify_webhook(
    secret: Union[str, bytes],
    body: bytes,
    timestamp: str,
    signature: str,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: Optional[int] = None,
) -> None:
    """Raises :class:`WebhookVerificationError` unless ``signature`` is the delivery's signature
    under ``secret`` and ``timestamp`` is within ``tolerance_seconds`` of ``now``.

    ``body`` must be the raw bytes received, before any JSON parsing.
    """
    key = secret.encode() if isinstance(secret, str) else secret
    try:
        ts = int(timestamp.strip())
    except (AttributeError, ValueError):
        raise WebhookVerificationError("X-MPC-Timestamp is not a Unix time") from None
    current = int(time.time()) if now is None else now
    if abs(current - ts) > tolerance_seconds:
        raise WebhookVerificationError("X-MPC-Timestamp is outside the tolerance")
    expected = "v1=" + hmac.new(key, str(ts).encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), (signature or "").strip().encode()):
        raise WebhookVerificationError("X-MPC-Signature does not match")
