"""JSON responses and the one mapping from domain errors to HTTP statuses."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared.adapters.storage import answering_http, storage_unavailable
from shared.domain.errors import CatalogError, InvalidParameter, describe_validation_error

log = logging.getLogger(__name__)
# A lone surrogate (an echo of a request's "\ud800", say) is not Unicode: strict JSON
# parsers refuse the whole answer, so it goes out as U+FFFD.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _default(o: Any) -> Any:
    if isinstance(o, BaseModel):
        return o.model_dump(mode="json", exclude_none=True)
    if isinstance(o, datetime):
        return o.isoformat().replace("+00:00", "Z")
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    text = json.dumps(body, default=_default, ensure_ascii=False)
    return func.HttpResponse(
        _LONE_SURROGATE.sub("\ufffd", text),
        status_code=status,
        headers=headers,
        mimetype="application/json",
        charset="utf-8",
    )


def error_response(
    code: str, message: str, status: int, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return json_response({"Code": code, "Message": message}, status, headers)


def retry_after(e: CatalogError) -> dict[str, str] | None:
    """The Retry-After header an error's answer carries, if it says when to come back."""
    seconds = getattr(e, "retry_after", None)
    return {"Retry-After": str(seconds)} if seconds else None


def json_body(req: func.HttpRequest) -> Any:
    """The request's JSON body (null when empty); InvalidParameter when it isn't JSON."""
    try:
        return json.loads(req.get_body() or b"null")
    except ValueError as e:
        raise InvalidParameter(f"the body is not JSON: {e}") from e
    except RecursionError as e:  # arrays or objects nested thousands deep
        raise InvalidParameter("the body is not JSON this catalog reads: nested too deep") from e


def json_errors(fn: Callable[..., func.HttpResponse]) -> Callable[..., func.HttpResponse]:
    """Turn domain errors into JSON {Code, Message} with their status, storage being down
    into 503 StorageUnavailable with Retry-After; log the unexpected. Storage is reached
    through the fail-fast clients meanwhile: a caller is waiting."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> func.HttpResponse:
        try:
            with answering_http():
                return fn(*args, **kwargs)
        except CatalogError as e:
            return error_response(e.code, e.message, e.status, retry_after(e))
        except ValidationError as e:
            return error_response("InvalidParameter", describe_validation_error(e), 400)
        except Exception as e:
            if (down := storage_unavailable(e)) is not None:
                log.warning("%s: storage unavailable: %s: %.300s", fn.__name__, type(e).__name__, e)
                return error_response(down.code, down.message, down.status, retry_after(down))
            log.exception("unexpected error in %s", fn.__name__)
            return error_response("InternalError", "The server could not answer; try again.", 500)

    return wrapper
