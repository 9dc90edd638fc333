"""The completeness rule and idempotency of `examine_upload`, against real Azurite blobs
and tables, with a controlled clock (the e2e tests cover the running app)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.uploads_table import UploadOutcomes
from shared.domain.vhd import build_footer
from shared.services.uploads import UploadDeps, UploadPolicy, examine_upload
from tests.vhd_corpus import Corpus, CorpusToolMissing

MIB = 1024 * 1024


class Rechecks:
    def __init__(self) -> None:
        self.scheduled: list[tuple[str, float]] = []

    def schedule(self, blob_name: str, delay_seconds: float) -> None:
        self.scheduled.append((blob_name, delay_seconds))


class Steps:
    def __init__(self) -> None:
        self.scheduled: list[tuple[str, str]] = []

    def schedule(self, blob_name: str, etag: str, delay_seconds: float = 0) -> None:
        self.scheduled.append((blob_name, etag))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2000, 1, 1)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def env(azurite_connection: str):  # type: ignore[no-untyped-def]
    suffix = uuid.uuid4().hex[:10]
    blobs = BlobServiceClient.from_connection_string(azurite_connection)
    container = blobs.create_container(f"up{suffix}")
    tables = TableServiceClient.from_connection_string(azurite_connection)
    clock, rechecks = Clock(), Rechecks()
    deps = UploadDeps(
        uploads=container,
        outcomes=UploadOutcomes(tables.create_table(f"u{suffix}")),
        catalog=ImageCatalog(tables.create_table(f"c{suffix}")),
        rechecks=rechecks,
        policy=UploadPolicy(settle_seconds=15, timeout_seconds=600),
        clock=clock,
        images=blobs.create_container(f"img{suffix}"),
        conversions=Steps(),
    )
    return container, deps, clock, rechecks


@pytest.fixture(scope="module")
def linux_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return Corpus(tmp_path_factory.mktemp("settle"))["linux_ext4_mbr"]
    except CorpusToolMissing as e:
        pytest.fail(str(e))


def test_a_blob_still_changing_is_pending_then_registered_once_settled(env, linux_disk) -> None:
    container, deps, clock, rechecks = env
    client = container.get_blob_client("disk.vhd")
    data = linux_disk.read_bytes()
    client.create_page_blob(len(data))
    # Half written: the footer and the first pages only.
    client.upload_page(data[-512:], offset=len(data) - 512, length=512)
    client.upload_page(data[: 4 * MIB], offset=0, length=4 * MIB)
    modified = client.get_blob_properties().last_modified
    clock.now = modified + timedelta(seconds=2)
    first = examine_upload(client, deps)
    assert first.Status == "Pending" and "upload in progress" in first.Reason
    assert rechecks.scheduled == [("disk.vhd", 14)]
    # Another trigger (the scanner sees every write) doesn't start a second re-check chain.
    examine_upload(client, deps)
    assert len(rechecks.scheduled) == 1
    # The rest of the upload, then quiet for the settle window.
    for off in range(4 * MIB, len(data) - 512, 4 * MIB):
        chunk = data[off : min(off + 4 * MIB, len(data) - 512)]
        if chunk.strip(b"\0"):
            client.upload_page(chunk, offset=off, length=len(chunk))
    clock.now = client.get_blob_properties().last_modified + timedelta(seconds=16)
    done = examine_upload(client, deps)
    assert done.Status == "Registered", done
    image = deps.catalog.get("disk")
    # The same version delivered again is a no-op with the same answer.
    again = examine_upload(client, deps)
    assert again == done
    assert deps.catalog.get("disk") == image


def test_declared_completion_skips_the_settle_window(env, linux_disk) -> None:
    container, deps, clock, rechecks = env
    client = container.get_blob_client("quick.vhd")
    from devtools.upload import upload_page_blob

    upload_page_blob(client, linux_disk, {"uploadstate": "complete"})
    clock.now = client.get_blob_properties().last_modified
    assert examine_upload(client, deps).Status == "Registered"
    assert rechecks.scheduled == []


def test_an_upload_that_never_finishes_is_rejected_after_the_time_limit(env) -> None:
    container, deps, clock, _rechecks = env
    client = container.get_blob_client("stalled.vhd")
    client.create_page_blob(64 * MIB + 512)
    client.upload_page(b"\x01" * 512, offset=0, length=512)
    created = client.get_blob_properties().creation_time
    clock.now = created + timedelta(seconds=60)  # settled, but the footer never came
    pending = examine_upload(client, deps)
    assert pending.Status == "Pending" and "no VHD footer yet" in pending.Reason
    clock.now = created + timedelta(seconds=601)
    final = examine_upload(client, deps)
    assert final.Status == "Rejected"
    assert final.Error.Code == "UploadIncomplete"


def test_a_raw_disk_is_converted_at_once_not_left_pending(env) -> None:
    container, deps, clock, _rechecks = env
    client = container.get_blob_client("raw.vhd")
    client.create_page_blob(64 * MIB)  # whole MiB: it can never become a fixed VHD
    sector = bytearray(512)
    sector[510:512] = b"\x55\xaa"
    client.upload_page(bytes(sector), offset=0, length=512)
    clock.now = client.get_blob_properties().last_modified + timedelta(seconds=30)
    result = examine_upload(client, deps)
    assert (result.Status, result.SourceFormat) == ("Converting", "raw")
    assert deps.conversions.scheduled == [("raw.vhd", result.ETag)]


def test_a_footer_written_first_does_not_fool_the_rule(env) -> None:
    # Upload tools write pages in any order: a valid footer alone is not completeness.
    container, deps, clock, _rechecks = env
    client = container.get_blob_client("footer-first.vhd")
    size = 64 * MIB
    client.create_page_blob(size + 512)
    client.upload_page(build_footer(size), offset=size, length=512)
    clock.now = client.get_blob_properties().last_modified + timedelta(seconds=1)
    assert examine_upload(client, deps).Status == "Pending"


def test_an_uploader_that_says_uploading_is_waited_for_whatever_the_pause(env, linux_disk) -> None:
    container, deps, clock, _rechecks = env
    client = container.get_blob_client("cooperative.vhd")
    data = linux_disk.read_bytes()
    client.create_page_blob(len(data), metadata={"uploadstate": "uploading"})
    client.upload_page(data[-512:], offset=len(data) - 512, length=512)
    clock.now = client.get_blob_properties().last_modified + timedelta(seconds=300)
    assert examine_upload(client, deps).Status == "Pending"


def test_an_abandoned_upload_is_rechecked_less_and_less_then_rejected_on_time(env) -> None:
    container, deps, clock, rechecks = env
    deps.policy = replace(deps.policy, timeout_seconds=3600)
    client = container.get_blob_client("abandoned.vhd")
    client.create_page_blob(64 * MIB + 512, metadata={"uploadstate": "uploading"})
    created = client.get_blob_properties().creation_time
    clock.now = created
    result = examine_upload(client, deps)
    # No write, so no new trigger: only the re-check messages come, each when it is due.
    for _ in range(100):
        if result.final:
            break
        clock.now += timedelta(seconds=rechecks.scheduled[-1][1])
        result = examine_upload(client, deps)
    assert result.Error.Code == "UploadIncomplete"
    delays = [delay for _, delay in rechecks.scheduled]
    assert len(delays) < 30, delays  # one per settle window was 240 an hour
    assert delays[:4] == [15, 15, 30, 60] and max(delays) == 300
    assert 3600 < (clock.now - created).total_seconds() <= 3602  # on time


def test_a_recheck_arriving_a_little_early_carries_the_chain_on(env) -> None:
    container, deps, clock, rechecks = env
    client = container.get_blob_client("early.vhd")
    client.create_page_blob(64 * MIB + 512, metadata={"uploadstate": "uploading"})
    clock.now = client.get_blob_properties().last_modified
    examine_upload(client, deps)
    assert len(rechecks.scheduled) == 1
    due = deps.outcomes.get("early.vhd").NextCheck
    clock.now = due - timedelta(milliseconds=500)  # the message came half a second early
    examine_upload(client, deps)
    assert len(rechecks.scheduled) == 2
