"""The queue listener's message handling (funcrunner.queues), against an in-memory fake queue."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from funcrunner.config import QueueOptions
from funcrunner.queues import QueueListener, decode_body


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
