"""Continuation tokens, the one signer every paged list uses.

A token is the position where a page stopped, HMAC-signed together with the
scope of the query it continues (the query's fingerprint), so a client can
neither forge a position nor re-aim a token at another query or another list.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os

from shared.domain.errors import InvalidParameter

MAX_TOKEN = 2048
_MAC_BYTES = 16


class InvalidContinuationToken(InvalidParameter):
    code = "InvalidContinuationToken"


def _secret() -> bytes:
    secret = os.environ.get("PAGING_TOKEN_SECRET") or os.environ.get("AzureWebJobsStorage", "")
    return hashlib.sha256(b"vm-image-catalog/paging/" + secret.encode()).digest()


def invalid_token() -> InvalidContinuationToken:
    return InvalidContinuationToken(
        "the continuation token is not valid for this query; start again without it"
    )


def sign_token(scope: str, position: object) -> str:
    """A token for `position` (any JSON value) that only `open_token(scope, ...)` accepts."""
    payload = json.dumps({"q": scope, "r": position}, separators=(",", ":")).encode()
    mac = hmac.new(_secret(), payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")


def open_token(scope: str, token: str) -> object:
    """The position a token of ours holds for this scope; InvalidContinuationToken otherwise."""
    if len(token) > MAX_TOKEN:
        raise invalid_token()
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        expected = hmac.new(_secret(), payload, hashlib.sha256).digest()[:_MAC_BYTES]
        if not hmac.compare_digest(mac, expected):
            raise invalid_token()
        doc = json.loads(payload)
    except (ValueError, TypeError) as e:
        raise invalid_token() from e
    if not isinstance(doc, dict) or doc.get("q") != scope or "r" not in doc:
        raise invalid_token()
    return doc["r"]
