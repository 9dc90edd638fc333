"""Uploads: the blob trigger on the drop zone, delayed re-checks, and the outcome over HTTP."""

from __future__ import annotations

import logging

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

from functions._http import error_response, json_body, json_errors, json_response
from shared.services.context import (
    image_catalog,
    sas_signer,
    upload_deps,
    upload_outcomes,
    uploads_container,
    uploads_container_blob,
)
from shared.services.recent_lists import list_uploads as recent_uploads
from shared.services.recent_lists import parse_top
from shared.services.upload_tickets import issue_ticket
from shared.services.uploads import examine_upload, parse_recheck

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.blob_trigger(
    arg_name="client",
    path="%UPLOADS_CONTAINER%/{name}",
    connection="AzureWebJobsStorage",
    source=func.BlobSource.EVENT_GRID,
)
def register_upload(client: blob.BlobClient) -> None:
    # An SDK-type BlobClient: no disk bytes move except the ranged reads we make.
    examine_upload(client, upload_deps())


@bp.queue_trigger(
    arg_name="msg", queue_name="%UPLOAD_CHECKS_QUEUE%", connection="AzureWebJobsStorage"
)
def recheck_upload(msg: func.QueueMessage) -> None:
    try:
        name = parse_recheck(msg.get_body())
    except ValueError as e:
        # Malformed internal message: let it go to the poison queue, where it is kept.
        raise ValueError(f"re-check message {msg.id} is not valid: {e}") from e
    examine_upload(uploads_container_blob(name), upload_deps())


@bp.route(route="api/uploads/{*blobName}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
def get_upload(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params.get("blobName", "")
    if not name or len(name) > 1024:
        return error_response(
            "InvalidParameter", "give the blob name: /api/uploads/{blobName}", 400
        )
    outcome = upload_outcomes().get(name)
    if outcome is None:
        return error_response(
            "UploadNotFound",
            f"no upload named '{name[:256]}' has been seen in the uploads container (yet)",
            404,
        )
    return json_response(outcome)


@bp.route(route="api/uploads", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
def list_uploads(req: func.HttpRequest) -> func.HttpResponse:
    top = parse_top(req.params.get("top"))
    token = req.params.get("continuationToken")
    blob = req.params.get("blobName")
    return json_response(recent_uploads(upload_outcomes(), top, token, blob))


@bp.route(route="api/uploads", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@json_errors
def request_upload(req: func.HttpRequest) -> func.HttpResponse:
    # A SAS to upload one disk straight to storage (the portal's browser upload).
    ticket = issue_ticket(json_body(req), sas_signer(), uploads_container(), image_catalog())
    return json_response(ticket, 201)
