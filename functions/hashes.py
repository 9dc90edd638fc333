"""Content hashes: the queue-triggered job that hashes a registered image's disks."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared.services.content_hashes import run_hash_job
from shared.services.context import hash_deps

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
