"""Sign and verify webhook payloads (the Standard Webhooks scheme).

The signed content is ``{webhook-id}.{webhook-timestamp}.{raw body}``, the signature
``v1,`` + base64 of its HMAC-SHA-256 under the endpoint's secret, sent in three headers::

    headers = signature_headers(secret, msg_id=delivery.event_id, body=body)
    # {"webhook-id": ..., "webhook-timestamp": "1767225600", "webhook-signature": "v1,..."}

    verify_signature(secret, headers=request.headers, body=await request.body())

Rules the receiver side enforces (:func:`verify_signature`):

- the signature is checked over the **raw bytes** of the body, before any parsing;
- every comparison uses :func:`hmac.compare_digest`;
- a timestamp more than ``tolerance`` (300 s) away from now is refused, so a captured
  request cannot be replayed later; within the window, record ``webhook-id`` under a
  unique constraint (``INSERT … ON CONFLICT DO NOTHING``) so a replay is a no-op;
- during a secret rotation the sender signs with both secrets (space-separated
  signatures) and the receiver accepts a match with any of the secrets it holds.

Secrets are ``whsec_`` + base64 of random bytes (:func:`generate_webhook_secret`); any
other string is used as its UTF-8 bytes.  Errors never quote a secret or a signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Final

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "SECRET_PREFIX",
    "WebhookVerificationError",
    "generate_webhook_secret",
    "sign_payload",
    "signature_headers",
    "verify_signature",
]

DEFAULT_TOLERANCE_SECONDS: Final = 300
"""How far a ``webhook-timestamp`` may be from the receiver's clock (either way)."""

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 — a marker, not a secret
"""Marks a secret whose remainder is base64 of the HMAC key."""

_VERSION: Final = "v1"
_MAX_SIGNATURES: Final = 16
_MAX_ID_LENGTH: Final = 256


class WebhookVerificationError(ValueError):
    """A webhook request failed verification (the message says which check, no secrets)."""


def generate_webhook_secret() -> str:
    """A new signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise WebhookVerificationError("a whsec_ secret is not valid base64") from None
    return secret.encode()


def _secrets(secret: str | bytes | Sequence[str | bytes]) -> list[bytes]:
    items = [secret] if isinstance(secret, str | bytes) else list(secret)
    if not items:
        raise WebhookVerificationError("no signing secret given")
    keys = [_key(item) for item in items]
    if any(not key for key in keys):
        raise WebhookVerificationError("an empty signing secret was given")
    return keys


def _body(body: bytes | bytearray | memoryview) -> bytes:
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("sign and verify the raw body bytes, not a parsed or decoded body")
    return bytes(body)


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode("ascii")


def _check_id(msg_id: object) -> str:
    if not isinstance(msg_id, str) or not msg_id or len(msg_id) > _MAX_ID_LENGTH:
        raise WebhookVerificationError("webhook-id must be non-empty text")
    return msg_id


def sign_payload(
    secret: str | bytes | Sequence[str | bytes],
    *,
    msg_id: str,
    timestamp: int,
    body: bytes | bytearray | memoryview,
) -> str:
    """The ``webhook-signature`` header value for one message.

    Args:
        secret: The endpoint's secret, or several (during a rotation): one ``v1,``
            signature per secret, space-separated.
        msg_id: The message id (``webhook-id``); stable across retries of one event.
        timestamp: Unix time of this attempt (``webhook-timestamp``).
        body: The exact bytes sent as the request body.
    """
    raw = _body(body)
    ident = _check_id(msg_id)
    return " ".join(
        f"{_VERSION},{_digest(key, ident, int(timestamp), raw)}" for key in _secrets(secret)
    )


def signature_headers(
    secret: str | bytes | Sequence[str | bytes],
    *,
    msg_id: str,
    body: bytes | bytearray | memoryview,
    timestamp: int | None = None,
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for one attempt."""
    moment = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(moment),
        "webhook-signature": sign_payload(secret, msg_id=msg_id, timestamp=moment, body=body),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"missing {name} header")


def verify_signature(
    secret: str | bytes | Sequence[str | bytes],
    *,
    body: bytes | bytearray | memoryview,
    headers: Mapping[str, str] | None = None,
    msg_id: str | None = None,
    timestamp: str | int | None = None,
    signature: str | None = None,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check one webhook request; return quietly, or raise.

    Give either ``headers`` (the request's headers, any case) or ``msg_id``,
    ``timestamp`` and ``signature`` separately.

    Args:
        secret: The secret(s) currently accepted (several during a rotation).
        body: The raw request body, exactly as received.
        headers: The request headers.
        msg_id: ``webhook-id``.
        timestamp: ``webhook-timestamp`` (Unix seconds).
        signature: ``webhook-signature`` (one or more space-separated ``v1,<base64>``).
        tolerance: Largest accepted distance between the timestamp and ``now``, seconds.
        now: The receiver's clock (Unix seconds); ``time.time()`` when omitted.

    Raises:
        WebhookVerificationError: Missing header, timestamp outside the tolerance, or no
            signature matching any of the secrets.
    """
    raw = _body(body)
    if headers is not None:
        msg_id = _header(headers, "webhook-id")
        timestamp = _header(headers, "webhook-timestamp")
        signature = _header(headers, "webhook-signature")
    if msg_id is None or timestamp is None or signature is None:
        raise WebhookVerificationError("webhook-id, webhook-timestamp and webhook-signature")
    ident = _check_id(msg_id)
    try:
        moment = int(timestamp)
    except (TypeError, ValueError):
        raise WebhookVerificationError("webhook-timestamp is not a Unix time") from None
    current = time.time() if now is None else now
    if abs(current - moment) > tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is more than {tolerance} s away from now (replay or clock skew)"
        )
    offered = [
        part.partition(",")[2]
        for part in signature.split()[:_MAX_SIGNATURES]
        if part.partition(",")[0] == _VERSION
    ]
    keys = _secrets(secret)
    matched = False
    for key in keys:
        expected = _digest(key, ident, moment, raw).encode()
        for candidate in offered:
            # Every pair is compared (no early exit): the time taken does not depend on
            # which signature or secret matched.
            matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise WebhookVerificationError("no valid webhook signature")
