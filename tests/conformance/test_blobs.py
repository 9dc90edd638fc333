"""Blob triggers under the runner: delivery, binding data, SDK types, receipts, poison.

The `blobs` app's host.json sets poisonBlobThreshold 2; the runner scans every
0.3 s (FUNCRUNNER_BLOB_SCAN_SECONDS). The app prints a `conformance-probe:
download <container>/<blob>` line whenever a BlobClient downloads content.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from azure.storage.blob import ContainerClient

from .conftest import RunningApp, StartApp, Storage, unique, wait_for

pytestmark = pytest.mark.azurite

POISON_BLOB_THRESHOLD = 2
SETTLE = 1.0  # > 3 scans: long enough for a duplicate delivery to show up


def blob_settings() -> dict[str, str]:
    return {"BLOB_CONTAINER": unique("cf-blobs-"), "BLOB_TABLE": unique("cfblobrows")}


@pytest.fixture(scope="module")
def blobs(start_app: StartApp, storage_sdk: Storage) -> Iterator[RunningApp]:
    settings = blob_settings()
    storage_sdk.blobs.create_container(settings["BLOB_CONTAINER"])
    app = start_app("blobs", settings)
    yield app
    app.stop()


def container(storage: Storage, app: RunningApp) -> ContainerClient:
    return storage.blobs.get_container_client(app.settings["BLOB_CONTAINER"])


def rows(storage: Storage, app: RunningApp, name: str) -> list[dict[str, Any]]:
    """Table rows the functions wrote for the blob whose `{name}` is `name`."""
    return storage.entities(app.settings["BLOB_TABLE"], name)


def downloads(app: RunningApp, blob_path: str) -> int:
    probe = f"conformance-probe: download {app.settings['BLOB_CONTAINER']}/{blob_path}"
    return sum(1 for line in app.log_text().splitlines() if line == probe)


# -- a new blob ---------------------------------------------------------------------------


@dataclass
class Delivered:
    name: str
    rows: list[dict[str, Any]]


@pytest.fixture(scope="module")
def streamed(blobs: RunningApp, storage_sdk: Storage) -> Delivered:
    name = f"{uuid.uuid4().hex[:8]}.txt"
    container(storage_sdk, blobs).upload_blob(f"stream/{name}", b"hello blob")
    wait_for(lambda: rows(storage_sdk, blobs, name), "the stream function's row")
    time.sleep(SETTLE)
    return Delivered(name, rows(storage_sdk, blobs, name))


def test_new_blob_triggers_once(streamed: Delivered, blobs: RunningApp) -> None:
    assert len(streamed.rows) == 1
    reasons = [e.reason for e in blobs.executions("on_stream") if streamed.name in e.reason]
    assert len(reasons) == 1
    assert reasons[0] == (
        f"New blob detected(BlockBlob): {blobs.settings['BLOB_CONTAINER']}/stream/{streamed.name}"
    )


def test_input_stream_has_name_length_and_content(streamed: Delivered, blobs: RunningApp) -> None:
    (row,) = streamed.rows
    assert row["Kind"] == "stream"
    assert row["Name"] == f"{blobs.settings['BLOB_CONTAINER']}/stream/{streamed.name}"
    assert row["Length"] == len(b"hello blob")
    assert row["Content"] == "hello blob"


def test_path_name_feeds_the_output_binding_expression(streamed: Delivered) -> None:
    (row,) = streamed.rows
    assert row["PartitionKey"] == streamed.name  # partitionKey="{name}"
    assert str(uuid.UUID(row["RowKey"])) == row["RowKey"]  # rowKey="{rand-guid}"


def test_input_stream_downloads_the_content(streamed: Delivered, blobs: RunningApp) -> None:
    # The control for the SDK-type test below: the probe does see downloads.
    assert downloads(blobs, f"stream/{streamed.name}") == 1


def test_sdk_blob_client_parameter_gets_a_client_and_no_content(
    blobs: RunningApp, storage_sdk: Storage
) -> None:
    name = f"{uuid.uuid4().hex[:8]}.vhd"
    size = 64 * 1024 * 1024
    container(storage_sdk, blobs).get_blob_client(f"sdk/{name}").create_page_blob(size)
    (row,) = wait_for(lambda: rows(storage_sdk, blobs, name), "the sdk function's row")
    assert row["Kind"] == "sdk"
    assert row["Type"] == "BlobClient"
    assert row["Module"].startswith("azure.storage.blob")
    assert row["Size"] == str(size)
    assert downloads(blobs, f"sdk/{name}") == 0


def test_metadata_write_triggers_again(blobs: RunningApp, storage_sdk: Storage) -> None:
    name = f"{uuid.uuid4().hex[:8]}.txt"
    client = container(storage_sdk, blobs).get_blob_client(f"stream/{name}")
    client.upload_blob(b"v1")
    wait_for(lambda: rows(storage_sdk, blobs, name), "the first delivery")
    client.set_blob_metadata({"touched": "yes"})  # same content, new ETag
    wait_for(lambda: len(rows(storage_sdk, blobs, name)) == 2, "a second delivery")


def test_receipts_live_in_azure_webjobs_hosts(
    streamed: Delivered, blobs: RunningApp, storage_sdk: Storage
) -> None:
    hosts = storage_sdk.blobs.get_container_client("azure-webjobs-hosts")
    prefix = f"blobreceipts/{blobs.host_id}/on_stream/"
    suffix = f"/{blobs.settings['BLOB_CONTAINER']}/stream/{streamed.name}"
    receipts = [
        b
        for b in hosts.list_blobs(name_starts_with=prefix, include=["metadata"])
        if b.name.endswith(suffix)
    ]
    assert len(receipts) == 1
    assert "CompletedAt" in receipts[0].metadata


def poison_messages(storage: Storage) -> list[dict[str, Any]]:
    """Every message in webjobs-blobtrigger-poison (received for 1 s, peek stops at 32)."""
    queue = storage.queue("webjobs-blobtrigger-poison")
    found = []
    try:
        for m in queue.receive_messages(messages_per_page=32, visibility_timeout=1):
            found.append(json.loads(m.content))
    except Exception:  # the queue does not exist yet
        return []
    return found


def test_failing_blob_function_goes_to_poison_after_threshold(
    blobs: RunningApp, storage_sdk: Storage
) -> None:
    name = f"{uuid.uuid4().hex[:8]}.txt"
    container(storage_sdk, blobs).upload_blob(f"fail/{name}", b"bad")
    (poisoned,) = wait_for(
        lambda: [m for m in poison_messages(storage_sdk) if m.get("BlobName") == f"fail/{name}"],
        "the poison message",
    )
    assert poisoned["ContainerName"] == blobs.settings["BLOB_CONTAINER"]
    assert poisoned["FunctionId"] == "on_fail"
    tries = [e for e in blobs.finished("on_fail") if name in e.reason]
    assert [e.outcome for e in tries] == ["Failed"] * POISON_BLOB_THRESHOLD
    time.sleep(SETTLE)
    assert len([e for e in blobs.executions("on_fail") if name in e.reason]) == 2


# -- a restart ----------------------------------------------------------------------------


@dataclass
class Restart:
    before: RunningApp
    after: RunningApp
    untouched: str
    reuploaded: str


@pytest.fixture(scope="module")
def restart(start_app: StartApp, storage_sdk: Storage) -> Iterator[Restart]:
    """Two blobs delivered; the runner stopped; one re-uploaded; a new runner, same host id."""
    settings = blob_settings()
    host_id = f"cf-restart-{uuid.uuid4().hex[:8]}"
    client = storage_sdk.blobs.create_container(settings["BLOB_CONTAINER"])
    untouched, reuploaded = f"u{uuid.uuid4().hex[:8]}.txt", f"r{uuid.uuid4().hex[:8]}.txt"
    before = start_app("blobs", settings, host_id=host_id)
    client.upload_blob(f"stream/{untouched}", b"same")
    client.upload_blob(f"stream/{reuploaded}", b"first")
    for name in (untouched, reuploaded):
        wait_for(lambda n=name: rows(storage_sdk, before, n), f"the first delivery of {name}")
    before.stop()
    client.upload_blob(f"stream/{reuploaded}", b"second", overwrite=True)
    after = start_app("blobs", settings, host_id=host_id)
    wait_for(
        lambda: len(rows(storage_sdk, after, reuploaded)) == 2, "the re-uploaded blob's delivery"
    )
    time.sleep(SETTLE)
    yield Restart(before, after, untouched, reuploaded)
    after.stop()


def test_after_restart_untouched_blob_does_not_trigger(
    restart: Restart, storage_sdk: Storage
) -> None:
    assert len(rows(storage_sdk, restart.after, restart.untouched)) == 1
    assert [e for e in restart.after.executions() if restart.untouched in e.reason] == []


def test_after_restart_reuploaded_blob_triggers(restart: Restart, storage_sdk: Storage) -> None:
    contents = sorted(r["Content"] for r in rows(storage_sdk, restart.after, restart.reuploaded))
    assert contents == ["first", "second"]
    assert len([e for e in restart.after.executions() if restart.reuploaded in e.reason]) == 1
