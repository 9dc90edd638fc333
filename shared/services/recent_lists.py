"""Newest-first lists of uploads and operations, paged with signed continuation tokens."""

from __future__ import annotations

import re
from typing import Any

from shared.adapters.operations_table import Operations
from shared.adapters.recent import is_position
from shared.adapters.uploads_table import UploadOutcomes
from shared.domain.errors import InvalidParameter
from shared.services.paging import invalid_token, open_token, sign_token

MAX_TOP = 1000
DEFAULT_TOP = 50


def parse_top(value: str | None) -> int:
    if value is None:
        return DEFAULT_TOP
    if not re.fullmatch(r"\d{1,4}", value) or not 1 <= int(value) <= MAX_TOP:
        raise InvalidParameter(f"top must be a whole number from 1 to {MAX_TOP}")
    return int(value)


def _after(scope: str, token: str | None) -> str | None:
    if token is None:
        return None
    position = open_token(scope, token)
    if not is_position(position):
        raise invalid_token()
    return position  # type: ignore[return-value]


def _page(scope: str, key: str, items: list[Any], nxt: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {key: items, "Count": len(items)}
    if nxt is not None:
        body["ContinuationToken"] = sign_token(scope, nxt)
    return body


def list_uploads(
    outcomes: UploadOutcomes, top: int, token: str | None, blob_name: str | None = None
) -> dict[str, Any]:
    """Newest first; or, with `blob_name`, that one upload if it has been seen (a list of
    none or one, so that a page waiting for a new upload reads 200s, never 404s; paging
    parameters don't apply then)."""
    if blob_name is not None:
        if not 1 <= len(blob_name) <= 1024:
            raise InvalidParameter("blobName must be 1-1024 characters")
        outcome = outcomes.get(blob_name)
        return _page("uploads", "Uploads", [outcome] if outcome else [], None)
    items, nxt = outcomes.recent(top, _after("uploads", token))
    return _page("uploads", "Uploads", items, nxt)


def list_operations(operations: Operations, top: int, token: str | None) -> dict[str, Any]:
    items, nxt = operations.recent(top, _after("operations", token))
    return _page("operations", "Operations", items, nxt)
