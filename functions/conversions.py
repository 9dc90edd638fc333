"""Conversions: the queue-triggered steps of the jobs that turn uploaded disk images into
fixed VHDs (shared/services/conversion.py)."""

from __future__ import annotations

import azure.functions as func

from shared.adapters.queues import parse_conversion_step
from shared.services.context import upload_deps
from shared.services.conversion import run_conversion_step

bp = func.Blueprint()


@bp.queue_trigger(
    arg_name="msg", queue_name="%UPLOAD_CONVERSIONS_QUEUE%", connection="AzureWebJobsStorage"
)
def convert_upload(msg: func.QueueMessage) -> None:
    try:
        name, etag = parse_conversion_step(msg.get_body())
    except ValueError as e:
        # Malformed internal message: let it go to the poison queue, where it is kept.
        raise ValueError(f"conversion step message {msg.id} is not valid: {e}") from e
    run_conversion_step(name, etag, upload_deps(), attempt=msg.dequeue_count or 1)
