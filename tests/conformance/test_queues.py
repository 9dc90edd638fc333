"""Queue triggers under the runner: message shape, outputs, retries, poison, lease, concurrency.

The `queues` app's host.json: batchSize 2, newBatchThreshold 1, maxPollingInterval
1 s, visibilityTimeout 2 s, maxDequeueCount 3, messageEncoding base64; the
runner runs it with FUNCRUNNER_QUEUE_LEASE_SECONDS=2.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from azure.core.rest import HttpRequest

from .conftest import Execution, RunningApp, StartApp, Storage, log_time, unique, wait_for

pytestmark = pytest.mark.azurite

MAX_DEQUEUE_COUNT = 3
VISIBILITY_TIMEOUT = 2.0


def queue_names() -> dict[str, str]:
    """Fresh names for every queue and table setting of the `queues` app."""
    return {
        "Q_RECORD": unique("cf-record-"),
        "Q_RECORD_OUT": unique("cf-recout-"),
        "Q_TABLE": unique("cfqueue"),
        "Q_FAIL": unique("cf-fail-"),
        "Q_FAIL_OUT": unique("cf-failout-"),
        "Q_NEVER": unique("cf-never-"),
        "Q_LEASE": unique("cf-lease-"),
        "Q_SLOW": unique("cf-slow-"),
        "Q_RETURNS": unique("cf-returns-"),
        "Q_TEXT": unique("cf-text-"),
        "Q_TEXT_OUT": unique("cf-textout-"),
        "Q_STALL": unique("cf-stall-"),
    }


@pytest.fixture(scope="module")
def queues(start_app: StartApp, storage_sdk: Storage) -> Iterator[RunningApp]:
    names = queue_names()
    # The listeners create their queues only once the host answers: create them first
    # so that a test's first send cannot race them.
    create_trigger_queues(storage_sdk, names)
    app = start_app("queues", {**names, "FUNCRUNNER_QUEUE_LEASE_SECONDS": "2"})
    yield app
    app.stop()


@pytest.fixture(scope="module")
def plain(start_app: StartApp, storage_sdk: Storage) -> Iterator[RunningApp]:
    names = {"Q_PLAIN": unique("cf-plain-"), "Q_PLAIN_OUT": unique("cf-po-")}
    create_trigger_queues(storage_sdk, names)
    app = start_app("queues_plain", names)
    yield app
    app.stop()


def create_trigger_queues(storage: Storage, names: dict[str, str]) -> None:
    """Create the queues the app listens to (not its output queues: the runner makes those)."""
    for setting, name in names.items():
        if setting.startswith("Q_") and not setting.endswith(("_OUT", "_TABLE")):
            storage.queue(name).create_queue()


def send(storage: Storage, app: RunningApp, setting: str, text: str, base64: bool = True) -> str:
    """Enqueue `text` on the queue named by `setting`; returns the message id."""
    return storage.queue(app.settings[setting], base64=base64).send_message(text).id


# -- a processed message ------------------------------------------------------------


@dataclass
class Recorded:
    sent: Any  # the SDK's QueueMessage from send_message
    row: dict[str, Any]
    out: list[str]


@pytest.fixture(scope="module")
def recorded(queues: RunningApp, storage_sdk: Storage) -> Recorded:
    """One message through `record`: what the SDK said at send, and both outputs."""
    client = storage_sdk.queue(queues.settings["Q_RECORD"], base64=True)
    sent = client.send_message("hello, queue")
    rows = wait_for(
        lambda: storage_sdk.entities(queues.settings["Q_TABLE"], "record"), "the record row"
    )
    out = wait_for(
        lambda: storage_sdk.peek(queues.settings["Q_RECORD_OUT"], base64=True),
        "the record output message",
    )
    assert len(rows) == 1 and len(out) == 1, (rows, out)
    return Recorded(sent, rows[0], out)


def test_message_reaches_function_as_queue_message(recorded: Recorded) -> None:
    row, sent = recorded.row, recorded.sent
    assert row["Id"] == sent.id
    assert row["Body"] == "hello, queue"
    assert row["DequeueCount"] == 1
    assert row["InsertionTime"] and row["ExpirationTime"]
    inserted = datetime.fromisoformat(row["InsertionTime"])
    expires = datetime.fromisoformat(row["ExpirationTime"])
    assert abs(inserted - sent.inserted_on) < timedelta(seconds=1)
    assert abs(expires - sent.expires_on) < timedelta(seconds=1)


def test_table_output_row_key_from_trigger_metadata(recorded: Recorded) -> None:
    assert recorded.row["PartitionKey"] == "record"
    assert recorded.row["RowKey"] == recorded.sent.id


def test_queue_output_is_written_base64(
    recorded: Recorded, queues: RunningApp, storage_sdk: Storage
) -> None:
    (out,) = recorded.out
    assert json.loads(out)["Body"] == "hello, queue"
    (raw,) = storage_sdk.peek(queues.settings["Q_RECORD_OUT"])
    assert base64.b64decode(raw).decode() == out


def test_message_is_deleted_after_success(
    recorded: Recorded, queues: RunningApp, storage_sdk: Storage
) -> None:
    client = storage_sdk.queue(queues.settings["Q_RECORD"])
    wait_for(
        lambda: client.get_queue_properties().approximate_message_count == 0,
        "the processed message to be deleted",
    )


def test_str_parameter_receives_the_text(queues: RunningApp, storage_sdk: Storage) -> None:
    send(storage_sdk, queues, "Q_TEXT", "plain words é")
    (out,) = wait_for(
        lambda: storage_sdk.peek(queues.settings["Q_TEXT_OUT"], base64=True), "the text output"
    )
    assert out == "str:plain words é"


# -- a failing message --------------------------------------------------------------


@dataclass
class Failure:
    message_id: str
    poison: list[str]
    tries: list[Execution]


@pytest.fixture(scope="module")
def failure(queues: RunningApp, storage_sdk: Storage) -> Failure:
    """One message through `fail` until it lands in the poison queue."""
    message_id = send(storage_sdk, queues, "Q_FAIL", "doomed message")
    poison = wait_for(
        lambda: storage_sdk.peek(queues.settings["Q_FAIL"] + "-poison", base64=True),
        "the failing message in the poison queue",
        timeout=30,
    )
    return Failure(message_id, poison, queues.finished("fail"))


def test_failing_function_is_tried_max_dequeue_count_times(failure: Failure) -> None:
    assert [e.outcome for e in failure.tries] == ["Failed"] * MAX_DEQUEUE_COUNT


def test_failed_message_moves_to_poison_with_original_content(
    failure: Failure, queues: RunningApp, storage_sdk: Storage
) -> None:
    assert failure.poison == ["doomed message"]
    assert storage_sdk.peek(queues.settings["Q_FAIL"]) == []


def test_message_moves_to_poison_right_after_the_last_try(
    failure: Failure, queues: RunningApp
) -> None:
    # Not after one more visibilityTimeout and a fourth dequeue.
    moved = [
        log_time(line[:23])
        for line in queues.log_text().splitlines()
        if f"Message {failure.message_id} on queue" in line and "-poison" in line
    ]
    assert len(moved) == 1
    last = failure.tries[-1].ended
    assert last is not None
    assert (moved[0] - last).total_seconds() < VISIBILITY_TIMEOUT / 2


def test_outputs_are_not_written_when_function_fails(
    failure: Failure, queues: RunningApp, storage_sdk: Storage
) -> None:
    assert storage_sdk.peek(queues.settings["Q_FAIL_OUT"]) == []
    assert storage_sdk.entities(queues.settings["Q_TABLE"], "fail") == []


def test_visibility_timeout_delays_the_retry(failure: Failure) -> None:
    first, second = failure.tries[0], failure.tries[1]
    assert first.ended is not None
    gap = (second.started - first.ended).total_seconds()
    # visibilityTimeout is 2 s; without it the retry comes within the 1 s polling interval.
    assert VISIBILITY_TIMEOUT - 0.3 <= gap <= VISIBILITY_TIMEOUT + 3, gap


def test_non_base64_message_goes_straight_to_poison(
    queues: RunningApp, storage_sdk: Storage
) -> None:
    text = "not base64 at all!"
    send(storage_sdk, queues, "Q_NEVER", text, base64=False)
    poison = wait_for(
        lambda: storage_sdk.peek(queues.settings["Q_NEVER"] + "-poison"), "the poisoned message"
    )
    assert poison == [text]
    assert queues.executions("never") == []
    assert "never was invoked" not in queues.log_text()


def test_returning_a_value_without_return_binding_fails(
    queues: RunningApp, storage_sdk: Storage
) -> None:
    send(storage_sdk, queues, "Q_RETURNS", "anything")
    failed = wait_for(lambda: queues.finished("returns_value"), "the returns_value invocation")
    assert failed[0].outcome == "Failed"
    assert "without a $return binding returned a non-None value" in queues.log_text()


def test_a_message_that_cannot_be_read_does_not_stall_the_queue(
    start_app: StartApp, storage_sdk: Storage
) -> None:
    # All four wait before the app starts, so that its first batch holds the bad one.
    names = queue_names()
    create_trigger_queues(storage_sdk, names)
    stall = storage_sdk.queue(names["Q_STALL"])
    encoded = storage_sdk.queue(names["Q_STALL"], base64=True)
    encoded.send_message("first")
    stall.send_message("a control \x01 character")  # Azurite takes it, and can't return it
    # Bytes that are not UTF-8, which only a raw request can send: Azurite stores U+FFFD.
    not_utf8 = b"<QueueMessage><MessageText>not \xff\xfe UTF-8</MessageText></QueueMessage>"
    sent = stall._client._client.send_request(
        HttpRequest("POST", f"{stall.url}/messages", content=not_utf8)
    )
    assert sent.status_code == 201
    encoded.send_message("second")
    app = start_app("queues", {**names, "FUNCRUNNER_QUEUE_LEASE_SECONDS": "2"})
    try:
        rows = wait_for(
            lambda: (r := storage_sdk.entities(names["Q_TABLE"], "stall")) and len(r) == 2 and r,
            "both valid messages to run",
            timeout=60,
        )
        poison = wait_for(
            lambda: (p := storage_sdk.peek(names["Q_STALL"] + "-poison")) and len(p) == 2 and p,
            "the two bad messages in the poison queue",
            timeout=60,
        )
    finally:
        app.stop()
    # Each ran at its first delivery: none was dequeued along with the bad one and lost.
    assert sorted((r["Body"], r["DequeueCount"]) for r in rows) == [("first", 1), ("second", 1)]
    notes, kept = [], []
    for text in poison:
        try:
            notes.append(json.loads(base64.b64decode(text, validate=True)))
        except (binascii.Error, ValueError):
            kept.append(text)
    assert kept == ["not \ufffd\ufffd UTF-8"]  # not base64: moved as it is
    (note,) = notes
    assert note["UnreadableMessage"]["Queue"] == names["Q_STALL"]
    # Azurite never returns the bad one, so it stays, hidden; nothing else is left.
    assert stall.peek_messages(max_messages=32, retry_total=0) == []
    assert stall.get_queue_properties().approximate_message_count == 1
    assert f"A message on queue '{names['Q_STALL']}' can't be read" in app.log_text()
    assert [e.outcome for e in app.executions("behind_bad")] == ["Succeeded"] * 2


# -- lease and concurrency ----------------------------------------------------------------


def test_function_outliving_the_lease_runs_once_and_message_is_deleted(
    queues: RunningApp, storage_sdk: Storage
) -> None:
    send(storage_sdk, queues, "Q_LEASE", "take your time")
    done = wait_for(lambda: queues.finished("outlives_lease"), "the slow invocation", timeout=30)
    assert done[0].outcome == "Succeeded"
    assert done[0].duration_ms is not None and done[0].duration_ms >= 5000
    client = storage_sdk.queue(queues.settings["Q_LEASE"])
    wait_for(
        lambda: client.get_queue_properties().approximate_message_count == 0,
        "the message to be deleted",
        timeout=5,
    )
    # Past the original 2 s lease twice over: a second delivery would have started by now.
    assert len(queues.executions("outlives_lease")) == 1
    assert storage_sdk.peek(queues.settings["Q_LEASE"] + "-poison") == []


def max_overlap(executions: list[Execution]) -> int:
    events = []
    for e in executions:
        assert e.ended is not None
        events += [(e.started, 1), (e.ended, -1)]
    # An end and a start in the same millisecond: the end came first (it freed the slot).
    events.sort(key=lambda ev: (ev[0], ev[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def test_concurrency_bounded_by_batch_size_plus_threshold(
    queues: RunningApp, storage_sdk: Storage
) -> None:
    client = storage_sdk.queue(queues.settings["Q_SLOW"], base64=True)
    for i in range(8):
        client.send_message(f"slow {i}")
    done = wait_for(
        lambda: (x := queues.finished("slow")) and len(x) == 8 and x,
        "8 slow invocations",
        timeout=30,
    )
    assert all(e.outcome == "Succeeded" for e in done)
    peak = max_overlap(done)
    assert 1 < peak <= 2 + 1, peak  # batchSize 2 + newBatchThreshold 1


# -- messageEncoding none -------------------------------------------------------------------


def test_message_encoding_none_delivers_plain_text(plain: RunningApp, storage_sdk: Storage) -> None:
    # Valid base64 on purpose: under "none" it must arrive as written, not decoded.
    for text in ("aGVsbG8=", "plain text, not base64 ~!"):
        send(storage_sdk, plain, "Q_PLAIN", text, base64=False)
    out = wait_for(
        lambda: (x := storage_sdk.peek(plain.settings["Q_PLAIN_OUT"])) and len(x) == 2 and x,
        "two plain outputs",
    )
    assert sorted(out) == ["got:aGVsbG8=", "got:plain text, not base64 ~!"]
    assert storage_sdk.peek(plain.settings["Q_PLAIN"] + "-poison") == []
