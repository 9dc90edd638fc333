"""What every classic call shares: the version header, the subscription, error codes, request ids.

Pure: no I/O (the subscription comes from the environment).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from datetime import date

from shared.domain.errors import CatalogError, InvalidParameter
from shared.settings import DEFAULTS

SUBSCRIPTION_SETTING = "CLASSIC_SUBSCRIPTION_ID"


class MissingOrIncorrectVersionHeader(InvalidParameter):
    code = "MissingOrIncorrectVersionHeader"


class SubscriptionForbidden(CatalogError):
    code = "ForbiddenError"
    status = 403


_CLASSIC_CODES = frozenset(
    {
        "BadRequest",
        "ResourceNotFound",
        "ConflictError",
        "ForbiddenError",
        "InternalError",
        "MissingOrIncorrectVersionHeader",
    }
)
_CODE_BY_STATUS = {
    400: "BadRequest",
    401: "AuthenticationFailed",
    403: "ForbiddenError",
    404: "ResourceNotFound",
    409: "ConflictError",
    503: "ServiceUnavailable",
}


def classic_code(code: str, status: int) -> str:
    """The classic API's error code for a domain error (`ImageNotFound` -> `ResourceNotFound`)."""
    if code in _CLASSIC_CODES:
        return code
    if status in _CODE_BY_STATUS:
        return _CODE_BY_STATUS[status]
    return "InternalError" if status >= 500 else "BadRequest"


# -- Request checks ----------------------------------------------------------------


def check_version(header: str | None, since: str) -> str:
    """The `x-ms-version` header: a date-shaped version, no older than the operation."""
    value = (header or "").strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        date.fromisoformat(value)
    except ValueError:
        raise MissingOrIncorrectVersionHeader(
            "The versioning header is not specified or was specified incorrectly."
        ) from None
    if value < since:
        raise MissingOrIncorrectVersionHeader(
            f"The versioning header {value} is older than this operation supports "
            f"(use {since} or later)."
        )
    return value


def configured_subscription(env: Mapping[str, str] | None = None) -> str:
    e = os.environ if env is None else env
    return e.get(SUBSCRIPTION_SETTING) or DEFAULTS[SUBSCRIPTION_SETTING]


def check_subscription(given: str, configured: str) -> None:
    # Azure answers a subscription the credential does not belong to with 403 ForbiddenError.
    if given.strip().lower() != configured.strip().lower():
        raise SubscriptionForbidden(
            "The server failed to authenticate the request. Verify that the certificate "
            "or function key is valid and is associated with this subscription."
        )


def new_request_id() -> str:
    return uuid.uuid4().hex


def comp_media(params: Mapping[str, str]) -> bool:
    """`?comp=media` on a delete: also delete the disk blobs."""
    comp = params.get("comp")
    if comp is None:
        return False
    if comp.strip().lower() != "media":
        raise InvalidParameter(f"comp may only be 'media', not '{comp[:64]}'")
    return True
