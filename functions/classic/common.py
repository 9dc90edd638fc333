"""What every classic entry point shares: the blueprint, XML answers, and the wrapper that
checks each call (credential, subscription, x-ms-version), maps errors to Azure's `<Error>`
and stamps `x-ms-request-id`."""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.functions as func
from pydantic import ValidationError

from functions._http import retry_after
from shared.adapters.host_keys import KEY_CHECK_ROUTE
from shared.adapters.storage import answering_http, storage_unavailable
from shared.domain.errors import CatalogError, describe_validation_error
from shared.services.classic import protocol, xmldoc
from shared.services.classic.certificates import Presented, authorize
from shared.services.classic.operations import ClassicCall, recorded
from shared.services.classic.snapshots import ListBody
from shared.services.context import host_key_check, management_certificates, operations

bp = func.Blueprint()
log = logging.getLogger(__name__)

# The classic routes are anonymous to the host: the function itself lets a caller in, with a
# management certificate or a function key (see shared/services/classic/certificates.py).
CLASSIC = func.AuthLevel.ANONYMOUS
Handler = Callable[[func.HttpRequest, ClassicCall], func.HttpResponse]
SUB = "{subscriptionId}"


def xml_response(body: bytes | None = None, status: int = 200) -> func.HttpResponse:
    if body is None:
        return func.HttpResponse(b"", status_code=status)
    return func.HttpResponse(body, status_code=status, mimetype="application/xml", charset="utf-8")


def list_response(req: func.HttpRequest, body: ListBody) -> func.HttpResponse:
    """A whole list, gzipped to a client that accepts it (see services.classic.snapshots)."""
    content, headers = body.as_accepted(req.headers.get("Accept-Encoding"))
    response = xml_response(content)
    response.headers.update(headers)
    return response


def error_response(
    code: str, message: str, status: int, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    body = xmldoc.error_xml(protocol.classic_code(code, status), message)
    response = xml_response(body, status)
    response.headers.update(headers or {})
    return response


def classic_api(
    since: str, operation: str | None = None
) -> Callable[[Handler], Callable[[func.HttpRequest], func.HttpResponse]]:
    """Check the subscription, the caller's credential (a registered management certificate
    or a function key the host accepts) and `x-ms-version` (at least `since`), give the
    handler its call (request id; recorded as an `operation` when one is named), map errors
    to `<Error>`, and stamp `x-ms-request-id` on every answer."""

    def decorate(handler: Handler) -> Callable[[func.HttpRequest], func.HttpResponse]:
        # Not functools.wraps: the worker must see this function's own (req) signature.
        def entry(req: func.HttpRequest) -> func.HttpResponse:
            call = ClassicCall(protocol.new_request_id(), operation, req.route_params.get("name"))
            try:
                with answering_http():  # a caller waits: the fail-fast storage clients
                    subscription = protocol.configured_subscription()
                    protocol.check_subscription(
                        req.route_params.get("subscriptionId", ""), subscription
                    )
                    authorize(
                        subscription,
                        Presented.of(req.headers, req.params),
                        management_certificates(),
                        host_key_check(),
                    )
                    protocol.check_version(req.headers.get("x-ms-version"), since)
                    if operation is None:
                        response = handler(req, call)
                    else:
                        with recorded(operations(), call):
                            response = handler(req, call)
            except CatalogError as e:
                response = error_response(e.code, e.message, e.status, retry_after(e))
            except ValidationError as e:
                response = error_response("BadRequest", describe_validation_error(e), 400)
            except Exception as e:
                if (down := storage_unavailable(e)) is not None:
                    log.warning(
                        "%s: storage unavailable: %s: %.300s", handler.__name__, type(e).__name__, e
                    )
                    response = error_response(
                        down.code, down.message, down.status, retry_after(down)
                    )
                else:
                    log.exception("unexpected error in %s", handler.__name__)
                    response = error_response(
                        "InternalError", "The server encountered an internal error; try again.", 500
                    )
            response.headers["x-ms-request-id"] = call.request_id
            return response

        entry.__name__ = entry.__qualname__ = handler.__name__
        entry.__doc__ = handler.__doc__
        return entry

    return decorate


@bp.route(route=KEY_CHECK_ROUTE, methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def classic_key_check(req: func.HttpRequest) -> func.HttpResponse:
    """204 when the host accepted the request's function key (it refuses others with 401):
    how the classic API checks a key (shared/adapters/host_keys.py). Async, so it never
    waits for a worker thread that a classic call asking it holds."""
    return func.HttpResponse(status_code=204)
