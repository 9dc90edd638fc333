"""The queue listener's message handling (funcrunner.queues), against an in-memory fake queue."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import DecodeError, HttpResponseError

from funcrunner.bindings import queue_text
from funcrunner.config import QueueOptions
from funcrunner.queues import QueueListener, decode_body
from funcrunner.rawqueue import decode_text, parse_messages, unreadable


class FakeQueue:
    """Pop receipts as the service keeps them: each update replaces the receipt at once."""

    def __init__(self, update_latency: float = 0.0) -> None:
        self.receipt = "r0"
        self.update_latency = update_latency
        self.updates: list[int] = []  # visibility timeouts asked for
        self.deleted: list[str] = []

    async def update_message(
        self, message_id: str, pop_receipt: str, visibility_timeout: int, **_: Any
    ) -> Any:
        if pop_receipt != self.receipt:
            raise RuntimeError("PopReceiptMismatch")
        self.updates.append(visibility_timeout)
        self.receipt = f"r{len(self.updates)}"  # the service has changed it...
        new = self.receipt
        await asyncio.sleep(self.update_latency)  # ...before the answer arrives
        return SimpleNamespace(pop_receipt=new)

    async def delete_message(self, message_id: str, pop_receipt: str) -> None:
        if pop_receipt != self.receipt:
            raise RuntimeError("PopReceiptMismatch")
        self.deleted.append(message_id)


def listener(handler: Any, lease_seconds: float, **options: Any) -> QueueListener:
    return QueueListener(
        queue_name="q",
        connection=None,
        clients=None,  # type: ignore[arg-type]  # not used by _process_one
        options=QueueOptions(**options),
        handler=handler,
        lease_seconds=lease_seconds,
    )


def message(text: str = "hi", dequeue_count: int = 1) -> Any:
    return SimpleNamespace(
        id="m1",
        pop_receipt="r0",
        dequeue_count=dequeue_count,
        content=base64.b64encode(text.encode()).decode(),
    )


def test_success_deletes_the_message() -> None:
    queue, seen = FakeQueue(), []

    async def handler(msg: Any, body: bytes) -> None:
        seen.append(body)

    asyncio.run(listener(handler, 60)._process_one(queue, message("hello")))
    assert seen == [b"hello"]
    assert queue.deleted == ["m1"]


def test_failure_makes_the_message_visible_after_visibility_timeout() -> None:
    queue = FakeQueue()

    async def handler(msg: Any, body: bytes) -> None:
        raise RuntimeError("boom")

    options = {"visibility_timeout": timedelta(seconds=7), "max_dequeue_count": 5}
    asyncio.run(listener(handler, 60, **options)._process_one(queue, message()))
    assert queue.deleted == []
    assert queue.updates == [7]


def test_renewals_keep_the_message_and_its_latest_receipt() -> None:
    queue = FakeQueue()

    async def handler(msg: Any, body: bytes) -> None:
        await asyncio.sleep(0.35)  # three renewals at half of a 0.2 s lease

    asyncio.run(listener(handler, 0.2)._process_one(queue, message()))
    assert len(queue.updates) >= 2
    assert queue.deleted == ["m1"]


def test_function_ending_during_a_renewal_keeps_the_new_receipt() -> None:
    # The renewal's request has reached the service when the function returns:
    # its new pop receipt must still be used for the delete.
    queue = FakeQueue(update_latency=0.2)

    async def handler(msg: Any, body: bytes) -> None:
        await asyncio.sleep(0.15)  # the renewal starts at 0.1 s and answers at 0.3 s

    asyncio.run(listener(handler, 0.2)._process_one(queue, message()))
    assert queue.updates and queue.deleted == ["m1"]


@pytest.mark.parametrize(
    ("text", "encoding", "expected"),
    [
        ("aGVsbG8=", "base64", b"hello"),
        ("aGVsbG8=", "none", b"aGVsbG8="),
        ("not base64!", "base64", None),
        ("not base64!", "none", b"not base64!"),
        ("é", "base64", None),
    ],
)
def test_decode_body(text: str, encoding: str, expected: bytes | None) -> None:
    assert decode_body(text, encoding) == expected


# -- messages the SDK can't read ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"plain words", "plain words"),
        (b"a &lt;b&gt; &amp; &quot;&apos; &#233;&#xE9; \xc3\xa9", "a <b> & \"' \xe9\xe9 \xe9"),
        (b"tab\tnewline\n", "tab\tnewline\n"),
        (b"bad\x01text", None),  # a control character, as Azurite takes it
        (b"bad&#x1;text", None),  # the same, escaped
        (b"bad&#1;text", None),
        (b"not \xff\xfe UTF-8", None),
        (b"a & b", None),  # not escaped
        (b"&nbsp;", None),  # not an XML entity
        (b"&#x110000;", None),  # not a character
    ],
)
def test_decode_text(raw: bytes, text: str | None) -> None:
    assert decode_text(raw) == text


def answer(*messages: tuple[str, bytes]) -> bytes:
    """A Get Messages answer, written as a service that doesn't check the text would."""
    items = b"".join(
        b"<QueueMessage><MessageId>%s</MessageId>"
        b"<InsertionTime>Fri, 27 Nov 2026 15:11:16 GMT</InsertionTime>"
        b"<ExpirationTime>Fri, 04 Dec 2026 15:11:16 GMT</ExpirationTime>"
        b"<PopReceipt>receipt-%s</PopReceipt>"
        b"<TimeNextVisible>Fri, 27 Nov 2026 15:11:46 GMT</TimeNextVisible>"
        b"<DequeueCount>1</DequeueCount><MessageText>%s</MessageText></QueueMessage>"
        % (message_id.encode(), message_id.encode(), text)
        for message_id, text in messages
    )
    return (
        b'<?xml version="1.0" encoding="utf-8"?><QueueMessagesList>%s</QueueMessagesList>' % items
    )


def test_parse_messages_reads_each_message_on_its_own() -> None:
    good, bad = parse_messages(answer(("m1", b"aGk="), ("m2", b"x\x01y")))
    assert (good.id, good.pop_receipt, good.dequeue_count, good.content) == (
        "m1",
        "receipt-m1",
        1,
        "aGk=",
    )
    assert good.inserted_on is not None and good.inserted_on.isoformat() == (
        "2026-11-27T15:11:16+00:00"
    )
    assert (bad.id, bad.content, bad.raw_text) == ("m2", None, b"x\x01y")


def test_unreadable_tells_a_bad_message_from_a_failing_service() -> None:
    bare = HttpResponseError("Internal Server Error")
    bare.status_code = 500  # Azurite, failing to write a text out
    coded = HttpResponseError("Internal Server Error")
    coded.status_code, coded.error_code = 500, "InternalError"  # the real service
    busy = HttpResponseError("busy")
    busy.status_code, busy.error_code = 503, "ServerBusy"
    assert unreadable(bare) and unreadable(DecodeError("XML is invalid"))
    assert unreadable(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"))
    assert not unreadable(coded) and not unreadable(busy) and not unreadable(OSError("down"))


class RawQueue:
    """A queue that answers with text the SDK can't decode (a 200 the SDK raises on)."""

    url = "http://127.0.0.1:1/acct/q"
    api_version = "2021-02-12"

    def __init__(self, *messages: tuple[str, bytes]) -> None:
        self.messages = list(messages)
        self.taken: set[str] = set()
        self.deleted: list[tuple[str, str]] = []
        self._client = self  # the generated client, whose send_request the runner uses

    async def send_request(self, request: Any, **_: Any) -> Any:
        query = parse_qs(urlsplit(request.url).query)
        visible = [m for m in self.messages if m[0] not in self.taken]
        batch = visible[: int(query["numofmessages"][0])]
        if "peekonly" not in query:
            self.taken.update(m[0] for m in batch)
        return SimpleNamespace(status_code=200, content=answer(*batch), headers={})

    def receive_messages(self, **_: Any) -> Any:
        raise DecodeError("XML is invalid")  # what the SDK does with such an answer

    async def delete_message(self, message_id: str, pop_receipt: str) -> None:
        self.deleted.append((message_id, pop_receipt))
        self.messages = [m for m in self.messages if m[0] != message_id]


class Clients:
    def __init__(self) -> None:
        self.poison = SimpleNamespace(sent=[])

        async def send_message(text: str) -> None:
            self.poison.sent.append(text)

        self.poison.send_message = send_message
        self.names: list[str] = []

    async def queue(self, connection: str | None, name: str) -> Any:
        self.names.append(name)
        return self.poison


def test_an_undecodable_message_goes_to_poison_and_the_others_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = RawQueue(("m1", b"Zmlyc3Q="), ("m2", b"x\x01\xffy"), ("m3", b"c2Vjb25k"))
    clients = Clients()
    listen = QueueListener(
        queue_name="q",
        connection=None,
        clients=clients,  # type: ignore[arg-type]
        options=QueueOptions(batch_size=16, message_encoding="base64"),
        handler=None,  # type: ignore[arg-type]  # _receive only reads
        lease_seconds=60,
    )
    with caplog.at_level(logging.WARNING, "funcrunner.queues"):
        taken = asyncio.run(listen._receive(queue))
    assert [(m.id, m.content, m.pop_receipt) for m in taken] == [
        ("m1", "Zmlyc3Q=", "receipt-m1"),
        ("m3", "c2Vjb25k", "receipt-m3"),
    ]
    assert queue.deleted == [("m2", "receipt-m2")]
    assert clients.names == ["q-poison"]
    (note,) = clients.poison.sent
    kept = json.loads(base64.b64decode(note))["UndecodableMessage"]
    assert (kept["Queue"], kept["MessageId"]) == ("q", "m2")
    assert base64.b64decode(kept["MessageTextBase64"]) == b"x\x01\xffy"
    assert "Message m2 on queue 'q' moved to 'q-poison'" in caplog.text


@pytest.mark.parametrize(
    ("payload", "encoding", "text"),
    [
        (b"a\tb", "none", "a\tb"),
        ("é".encode(), "none", "é"),
        (b"bad\x01", "base64", "YmFkAQ=="),
        (b"bad\x01", "none", None),
    ],
)
def test_queue_output_text_must_be_xml_safe(
    payload: bytes, encoding: str, text: str | None
) -> None:
    # Azure refuses such a message, so the invocation fails there as it does here.
    if text is None:
        with pytest.raises(ValueError, match="U\\+0001"):
            queue_text(payload, encoding)
    else:
        assert queue_text(payload, encoding) == text
