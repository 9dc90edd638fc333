"""Content hashes: the queue-triggered job that hashes a registered image's disks, and
POST /api/admin/hashes, which sends one for every image still without a content hash."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from functions._http import json_errors, json_response
from shared.services.content_hashes import request_missing, run_hash_job
from shared.services.context import hash_deps, hash_queue, hash_store, image_catalog

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.queue_trigger(arg_name="msg", queue_name="%HASH_QUEUE%", connection="AzureWebJobsStorage")
def hash_image(msg: func.QueueMessage) -> None:
    try:
        doc = json.loads(msg.get_body())
    except ValueError as e:
        # Our own message, malformed: let it go to the poison queue, where it is kept.
        raise ValueError(f"hash request {msg.id} is not JSON: {e}") from e
    log.info("hash request %s: %s", msg.id, run_hash_job(doc, hash_deps()))


@bp.route(route="api/admin/hashes", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@json_errors
def hash_missing(req: func.HttpRequest) -> func.HttpResponse:
    sent = request_missing(image_catalog(), hash_store(), hash_queue().send)
    return json_response(sent, 202)
