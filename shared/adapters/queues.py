"""Queue messages the catalog sends (delayed upload re-checks, captures).

Messages are plain JSON text: host.json sets `messageEncoding: none` so that
capture requests from other systems are accepted whether they send plain
JSON or base64 (the capture function decodes either).
"""

from __future__ import annotations

import json
from typing import Any

from azure.storage.queue import QueueClient, QueueServiceClient

MAX_DELAY_SECONDS = 7 * 24 * 3600  # the longest visibility timeout storage allows


def queue_client(service: QueueServiceClient, name: str) -> QueueClient:
    return service.get_queue_client(name)


class DelayedQueue:
    def __init__(self, client: QueueClient) -> None:
        self.client = client

    def send(self, doc: dict[str, Any], delay_seconds: float = 0) -> None:
        delay = int(min(max(delay_seconds, 0), MAX_DELAY_SECONDS))
        # ensure_ascii: control characters go as \u escapes, so the text is XML-safe.
        text = json.dumps(doc, ensure_ascii=True)
        self.client.send_message(text, visibility_timeout=delay or None)


class UploadRechecks:
    """Delayed re-examination of an upload that is still being written."""

    def __init__(self, queue: DelayedQueue) -> None:
        self.queue = queue

    def schedule(self, blob_name: str, delay_seconds: float) -> None:
        self.queue.send({"BlobName": blob_name}, delay_seconds)


class ConversionSteps:
    """The steps of conversion jobs: one message per step of an upload version's job."""

    def __init__(self, queue: DelayedQueue) -> None:
        self.queue = queue

    def schedule(self, blob_name: str, etag: str, delay_seconds: float = 0) -> None:
        self.queue.send({"BlobName": blob_name, "ETag": etag}, delay_seconds)


def parse_conversion_step(body: bytes) -> tuple[str, str]:
    """(blob name, ETag) of a conversion step message; ValueError when it is not one."""
    doc = json.loads(body)
    if not isinstance(doc, dict):
        raise ValueError("a conversion step is a JSON object")
    name, etag = doc.get("BlobName"), doc.get("ETag")
    if not isinstance(name, str) or not name or not isinstance(etag, str) or not etag:
        raise ValueError("a conversion step needs a BlobName and an ETag")
    return name, etag
