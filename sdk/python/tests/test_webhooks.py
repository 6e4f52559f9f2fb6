"""The webhook verification helper: a good delivery passes, a tampered body or an old timestamp
fails. The expected signature is computed here with hashlib/hmac, not by the helper."""

import hashlib
import hmac

import pytest

from mpc_client import WebhookVerificationError, verify_webhook

SECRET = "whsec_test"
BODY = b'{"event_id":"e","event":"session.completed"}'
NOW = 1_700_000_000


def sign(ts: int, body: bytes) -> str:
    return "v1=" + hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()


def test_good_delivery_passes():
    verify_webhook(SECRET, BODY, str(NOW), sign(NOW, BODY), now=NOW + 10)


def test_tampered_body_fails():
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, BODY + b" ", str(NOW), sign(NOW, BODY), now=NOW)


def test_old_timestamp_fails():
    old = NOW - 301
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, BODY, str(old), sign(old, BODY), now=NOW)


def test_wrong_secret_and_garbage_fail():
    with pytest.raises(WebhookVerificationError):
        verify_webhook("other", BODY, str(NOW), sign(NOW, BODY), now=NOW)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, BODY, "soon", sign(NOW, BODY), now=NOW)
