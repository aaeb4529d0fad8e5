"""Webhook receiver: ``POST /fabric/_webhooks/{source}`` tells the fabric a source changed.

A call is accepted only when all of these hold, checked in this order:

* ``X-DataFlow-Timestamp`` (unix seconds) is within ``tolerance`` seconds of the clock;
* ``X-DataFlow-Signature`` is ``sha256=<hex HMAC-SHA256>`` of ``"{timestamp}.{nonce}." + body``
  under the secret in ``$<webhook_secret_env>`` (compared in constant time);
* ``X-DataFlow-Nonce`` was not accepted before for this source (remembered for twice the
  tolerance, longer than any timestamp it could come with stays acceptable).

The nonce is claimed only after the signature checks out, so unsigned calls cannot use up
nonces. Anything else is a 401 and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from collections.abc import Mapping
from typing import Protocol

from .errors import FabricConfigError, WebhookRejectedError

SIGNATURE_PREFIX = "sha256="
NONCE_PATTERN = re.compile(r"[A-Za-z0-9_\-.:]{8,128}")
MAX_BODY = 1 << 20


class NonceStore(Protocol):
    async def claim(self, key: str, ttl: float) -> bool:
        """Remember ``key`` for ``ttl`` seconds; False when it is already remembered."""
        ...


class MemoryNonces:
    """Nonces of one process (no coordination): a dict of expiry times, pruned as it grows."""

    def __init__(self) -> None:
        self._expires: dict[str, float] = {}
        self._next_prune = 0.0

    async def claim(self, key: str, ttl: float) -> bool:
        now = time.monotonic()
        if now >= self._next_prune:
            self._expires = {k: t for k, t in self._expires.items() if t > now}
            self._next_prune = now + min(ttl, 60.0)
        expires = self._expires.get(key)
        if expires is not None and expires > now:
            return False
        self._expires[key] = now + ttl
        return True


def sign(secret: str | bytes, timestamp: str, nonce: str, body: bytes) -> str:
    """The ``X-DataFlow-Signature`` value for a call (senders use this too)."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, f"{timestamp}.{nonce}.".encode() + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def secret_of(source: str, env: str) -> str:
    value = os.environ.get(env)
    if not value:
        raise FabricConfigError(f"source {source!r}: webhook secret variable {env} is not set.",
                                field="webhook_secret_env", fix=f"export {env}=... on every worker.")
    return value


async def verify(source: str, secret: str, headers: Mapping[str, str], body: bytes, *,
                 tolerance: float, nonces: NonceStore, now: float | None = None) -> None:
    """Raise :class:`WebhookRejectedError` (401) unless the call is authentic and new."""
    timestamp = headers.get("x-dataflow-timestamp", "")
    nonce = headers.get("x-dataflow-nonce", "")
    signature = headers.get("x-dataflow-signature", "")
    if not timestamp.isdigit():
        raise WebhookRejectedError("X-DataFlow-Timestamp must be unix seconds.",
                                   field="X-DataFlow-Timestamp")
    if not NONCE_PATTERN.fullmatch(nonce):
        raise WebhookRejectedError("X-DataFlow-Nonce must be 8-128 characters of [A-Za-z0-9_-.:].",
                                   field="X-DataFlow-Nonce")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        raise WebhookRejectedError(f"X-DataFlow-Timestamp is more than {tolerance:g}s from the "
                                   "server's clock.", field="X-DataFlow-Timestamp",
                                   fix="sign each call when it is sent; check the sender's clock.")
    expected = sign(secret, timestamp, nonce, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise WebhookRejectedError("X-DataFlow-Signature does not match.", field="X-DataFlow-Signature",
                                   fix='send "sha256=" + hex HMAC-SHA256 of "{timestamp}.{nonce}." + body.')
    if not await nonces.claim(f"{source}:{nonce}", 2 * tolerance):
        raise WebhookRejectedError("X-DataFlow-Nonce was already used.", field="X-DataFlow-Nonce",
                                   fix="use a new random nonce for every call.")
