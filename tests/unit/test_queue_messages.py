"""What the catalog puts on its queues is XML-safe text, whatever a field holds.

Azure refuses a message whose text holds a character XML forbids, and Azurite takes
it but can't return it; the capture and upload-check senders must never write one.
"""

from __future__ import annotations

import json
import re
from typing import Any

from shared.adapters.queues import DelayedQueue, UploadRechecks

XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


class Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_message(self, content: str, **_: Any) -> None:
        self.sent.append(content)


def test_a_control_character_in_a_field_is_escaped_in_the_text_sent() -> None:
    client = Recorder()
    doc = {"ServiceName": "svc\x01", "Name": "vm\x1f", "ImageLabel": "tab\there é \ud800"}
    DelayedQueue(client).send(doc)  # type: ignore[arg-type]
    (text,) = client.sent
    assert XML_ILLEGAL.search(text) is None
    assert "\\u0001" in text and "\\u001f" in text
    assert json.loads(text) == doc


def test_an_upload_check_for_a_strange_blob_name_is_xml_safe() -> None:
    client = Recorder()
    UploadRechecks(DelayedQueue(client)).schedule("disk\x07.vhd", 5)  # type: ignore[arg-type]
    (text,) = client.sent
    assert XML_ILLEGAL.search(text) is None
    assert json.loads(text) == {"BlobName": "disk\x07.vhd"}
