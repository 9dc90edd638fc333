"""The classic Service Management XML API over the catalog, for unmodified classic clients.

Routes (no `api/` prefix: host.json's routePrefix is ""), all at function
auth level; the function key (`x-functions-key` or `?code=`) is the classic
client's credential, where Azure used a management certificate:

    GET    /{subscriptionId}/services/images               List OS Images
    POST   /{subscriptionId}/services/images               Add OS Image
    GET    /{subscriptionId}/services/images/{name}        Get OS Image
    PUT    /{subscriptionId}/services/images/{name}        Update OS Image
    DELETE /{subscriptionId}/services/images/{name}        Delete OS Image (?comp=media: + VHD)
    GET    /{subscriptionId}/services/vmimages             List VM Images (?location, publisher,
                                                           category)
    DELETE /{subscriptionId}/services/vmimages/{name}      Delete VM Image (?comp=media)
    GET    /{subscriptionId}/operations/{requestId}        Get Operation Status
    POST   /{subscriptionId}/services/hostedservices/{svc}/deployments/{dep}
               /roleinstances/{role}/Operations            Capture Role (PostCaptureAction=Delete)
                                                           and Capture VM Image (queued; 202)

Every answer carries `x-ms-request-id`. Add, Update and Delete complete before
they answer and record an operation under that id (Succeeded, or Failed with
the error), so Get Operation Status works on it. Errors are
`<Error><Code/><Message/></Error>` with Azure's classic codes: 400 BadRequest,
403 ForbiddenError (a platform image can't be changed or deleted), 404
ResourceNotFound, 409 ConflictError; a missing, malformed or too old
`x-ms-version` is 400 MissingOrIncorrectVersionHeader. The one subscription
served is the app setting CLASSIC_SUBSCRIPTION_ID; any other is answered
403 ForbiddenError, as Azure answers a subscription the credential is not
associated with (it says nothing about whether that subscription exists).

Deviations from Azure: Add and Update answer 200 with the image, Delete OS
Image 200 and Delete VM Image 202, all already complete; MediaLink must be a
blob in the catalog's own storage account; Update cannot change
PublishedDate or the icon/privacy URIs (the catalog keeps them), only repeat
them; Language is accepted and not kept; AffinityGroup, IOType and the
capture source (ServiceName, DeploymentName, RoleName) are never sent. There
is no Get VM Image in the classic API, so none here. A request that matches
no route, or a missing key, gets the host's empty 404 or 401.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.functions as func
from pydantic import ValidationError

from functions._http import retry_after
from shared.adapters.storage import account, answering_http, storage_unavailable
from shared.domain.errors import CatalogError, describe_validation_error
from shared.domain.images import ImageKind
from shared.services import classic_xml as classic
from shared.services.captures import submit_capture
from shared.services.classic_xml import ClassicCall
from shared.services.context import (
    capture_deps,
    capture_queue,
    image_catalog,
    image_remover,
    operations,
)

bp = func.Blueprint()
log = logging.getLogger(__name__)

Handler = Callable[[func.HttpRequest, ClassicCall], func.HttpResponse]
SUB = "{subscriptionId}"


def xml_response(body: bytes | None = None, status: int = 200) -> func.HttpResponse:
    if body is None:
        return func.HttpResponse(b"", status_code=status)
    return func.HttpResponse(body, status_code=status, mimetype="application/xml", charset="utf-8")


def error_response(
    code: str, message: str, status: int, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    body = classic.error_xml(classic.classic_code(code, status), message)
    response = xml_response(body, status)
    response.headers.update(headers or {})
    return response


def classic_api(
    since: str, operation: str | None = None
) -> Callable[[Handler], Callable[[func.HttpRequest], func.HttpResponse]]:
    """Check `x-ms-version` (at least `since`) and the subscription, give the handler its
    call (request id; recorded as an `operation` when one is named), map errors to
    `<Error>`, and stamp `x-ms-request-id` on every answer."""

    def decorate(handler: Handler) -> Callable[[func.HttpRequest], func.HttpResponse]:
        # Not functools.wraps: the worker must see this function's own (req) signature.
        def entry(req: func.HttpRequest) -> func.HttpResponse:
            call = ClassicCall(classic.new_request_id(), operation, req.route_params.get("name"))
            try:
                with answering_http():  # a caller waits: the fail-fast storage clients
                    classic.check_version(req.headers.get("x-ms-version"), since)
                    classic.check_subscription(
                        req.route_params.get("subscriptionId", ""),
                        classic.configured_subscription(),
                    )
                    if operation is None:
                        response = handler(req, call)
                    else:
                        with classic.recorded(operations(), call):
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


@bp.route(route=f"{SUB}/services/images", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@classic_api(since="2012-08-01")
def classic_list_os_images(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    return xml_response(
        classic.images_xml(classic.list_images_of_kind(image_catalog(), ImageKind.OS))
    )


@bp.route(route=f"{SUB}/services/images", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@classic_api(since="2012-08-01", operation=classic.ADD_OS_IMAGE)
def classic_add_os_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    request = classic.parse_add_os_image(req.get_body())
    call.image_name = request.name
    image = classic.add_os_image(image_catalog(), account().blobs, request)
    return xml_response(classic.os_image_xml(image))


@bp.route(
    route=f"{SUB}/services/images/{{name}}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION
)
@classic_api(since="2012-08-01")
def classic_get_os_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    image = classic.get_image_of_kind(image_catalog(), req.route_params["name"], ImageKind.OS)
    return xml_response(classic.os_image_xml(image))


@bp.route(
    route=f"{SUB}/services/images/{{name}}/details",
    methods=["GET"],
    auth_level=func.AuthLevel.FUNCTION,
)
@classic_api(since="2013-03-01")
def classic_get_os_image_details(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    image = classic.get_image_of_kind(image_catalog(), req.route_params["name"], ImageKind.OS)
    return xml_response(classic.os_image_details_xml(image))


@bp.route(
    route=f"{SUB}/services/images/{{name}}", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION
)
@classic_api(since="2012-08-01", operation=classic.UPDATE_OS_IMAGE)
def classic_update_os_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    fields = classic.parse_update_os_image(req.get_body())
    image = classic.update_os_image(image_catalog(), req.route_params["name"], fields)
    return xml_response(classic.os_image_xml(image))


@bp.route(
    route=f"{SUB}/services/images/{{name}}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION
)
@classic_api(since="2012-08-01", operation=classic.DELETE_OS_IMAGE)
def classic_delete_os_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    delete_vhd = call.details["DeleteVhd"] = classic.comp_media(req.params)
    classic.delete_image(
        image_catalog(), image_remover(), req.route_params["name"], ImageKind.OS, delete_vhd
    )
    return xml_response(status=200)


@bp.route(route=f"{SUB}/services/vmimages", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@classic_api(since="2014-02-01")
def classic_list_vm_images(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    wanted = classic.VmImageFilter.from_params(req.params)
    return xml_response(classic.vm_images_xml(classic.list_vm_images(image_catalog(), wanted)))


@bp.route(route=f"{SUB}/services/vmimages", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@classic_api(since="2014-05-01", operation=classic.CREATE_VM_IMAGE)
def classic_create_vm_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    request = classic.parse_create_vm_image(req.get_body())
    call.image_name = request.name
    classic.create_vm_image(image_catalog(), account().blobs, request)
    return xml_response(status=202)


@bp.route(
    route=f"{SUB}/services/vmimages/{{name}}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION
)
@classic_api(since="2014-02-01")
def classic_get_vm_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    """One VM image, as List VM Images shows it (the classic client has no call for it)."""
    image = classic.get_image_of_kind(image_catalog(), req.route_params["name"], ImageKind.VM)
    return xml_response(classic.vm_image_xml(image))


@bp.route(
    route=f"{SUB}/services/vmimages/{{name}}", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION
)
@classic_api(since="2014-02-01", operation=classic.UPDATE_VM_IMAGE)
def classic_update_vm_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    update = classic.parse_update_vm_image(req.get_body())
    classic.update_vm_image(image_catalog(), req.route_params["name"], update)
    return xml_response(status=200)


@bp.route(
    route=f"{SUB}/services/vmimages/{{name}}",
    methods=["DELETE"],
    auth_level=func.AuthLevel.FUNCTION,
)
@classic_api(since="2014-02-01", operation=classic.DELETE_VM_IMAGE)
def classic_delete_vm_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    delete_vhd = call.details["DeleteVhd"] = classic.comp_media(req.params)
    classic.delete_image(
        image_catalog(), image_remover(), req.route_params["name"], ImageKind.VM, delete_vhd
    )
    return xml_response(status=202)


@bp.route(
    route=f"{SUB}/operations/{{requestId}}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION
)
@classic_api(since="2009-10-01")
def classic_get_operation_status(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    return xml_response(classic.operation_xml(operations().get(req.route_params["requestId"])))


@bp.route(
    route=f"{SUB}/services/hostedservices/{{service}}/deployments/{{deployment}}"
    "/roleinstances/{role}/Operations",
    methods=["POST"],
    auth_level=func.AuthLevel.FUNCTION,
)
@classic_api(since="2012-03-01")
def classic_capture_role(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    """Capture Role / Capture VM Image: queued; the request id is the operation to poll."""
    doc = classic.parse_capture_operation(
        req.get_body(), req.route_params["service"], req.route_params["role"], call.request_id
    )
    submit_capture(doc, capture_deps(), lambda m: capture_queue().send(m))
    return xml_response(status=202)
