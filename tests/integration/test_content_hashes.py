"""Content hashes against Azurite: the job's hash is `sha256sum` of the disk's data area,
reads only the page ranges holding data, resumes after a kill or its time slice, is safe
to kill before each of its writes, flags duplicates both ways, and finds by content."""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobClient, BlobServiceClient

from devtools.upload import upload_page_blob
from shared.adapters import resumable_sha256
from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.disk_hashing import block_hashes, data_ranges
from shared.adapters.hash_store import HashStore
from shared.domain.content_hash import BLOCK_SIZE, HashJobStatus
from shared.domain.images import Image
from shared.domain.vhd import build_footer
from shared.services.content_hashes import (
    HashDeps,
    _new_job,
    by_content,
    hash_request,
    progress,
    request_missing,
    run_hash_job,
    unindex,
)
from tests.integration.test_catalog_table import Killed

MIB = 1024 * 1024
SIZE = 40 * MIB  # the data area: 10 blocks
# Data here and there: a block's start, a few sectors, across the 16 MiB block boundary,
# the last sector of the data area. Everything else is a hole.
EXTENTS = [(0, MIB), (5 * MIB + 512, 4096), (16 * MIB - 3000, 6000), (SIZE - 512, 512)]


def sparse_vhd(path: Path, seed: int = 1) -> Path:
    """A fixed VHD with data only in EXTENTS (the rest never written: holes)."""
    rnd = __import__("random").Random(seed)
    with open(path, "wb") as f:
        f.truncate(SIZE)
        for offset, length in EXTENTS:
            f.seek(offset)
            f.write(rnd.randbytes(length))
        f.seek(SIZE)
        f.write(build_footer(SIZE))
    return path


def sha256sum_of_data_area(path: Path) -> str:
    """What the issue asks to compare with: `head -c <size> disk.vhd | sha256sum`."""
    out = subprocess.run(
        f"head -c {SIZE} '{path}' | sha256sum", shell=True, check=True, capture_output=True
    )
    return out.stdout.decode().split()[0]


@dataclass
class World:
    catalog: ImageCatalog
    store: HashStore
    blobs: BlobServiceClient
    container: str
    sent: list[tuple[dict[str, Any], float]] = field(default_factory=list)

    def disk(self, local: Path, exact: bool = True) -> BlobClient:
        """The local disk as a page blob; `exact`: only the sectors of EXTENTS (and the
        footer) are written, as a careful uploader would, else the CLI's 4 MiB chunks."""
        client = self.blobs.get_blob_client(self.container, f"{uuid.uuid4().hex[:8]}.vhd")
        if not exact:
            upload_page_blob(client, local)
            return client
        size = local.stat().st_size
        client.create_page_blob(size)
        with open(local, "rb") as f:
            for offset, length in [*EXTENTS, (size - 512, 512)]:
                start, end = offset // 512 * 512, -(-(offset + length) // 512) * 512
                f.seek(start)
                client.upload_page(f.read(end - start), offset=start, length=end - start)
        return client

    def deps(self, **kw: Any) -> HashDeps:
        return HashDeps(
            catalog=self.catalog,
            store=self.store,
            blobs=self.blobs,
            send=lambda doc, delay: self.sent.append((doc, delay)),
            **kw,
        )

    def register(self, name: str, *disks: BlobClient) -> Image:
        os_disk, *data = disks
        image = Image(
            ImageName=name,
            ImageType="VMImage" if data else "OSImage",
            Label=name,
            OS="Linux",
            PublishedDate=datetime(2024, 1, 1, tzinfo=UTC),
            LogicalSizeInGB=1,
            OSDiskConfiguration={
                "OS": "Linux",
                "LogicalDiskSizeInGB": 1,
                "SourceBlob": f"{self.container}/{os_disk.blob_name}",
            },
            DataDiskConfigurations=[
                {
                    "Lun": i,
                    "LogicalDiskSizeInGB": 1,
                    "SourceBlob": f"{self.container}/{d.blob_name}",
                }
                for i, d in enumerate(data)
            ],
        )
        return self.catalog.add(image)

    def run(self, image: Image, deps: HashDeps | None = None, most: int = 1000) -> list[str]:
        """Deliver the image's request, then every message the job sends, until none."""
        self.sent.append(hash_request(image, committed=True))
        outcomes = []
        while self.sent and len(outcomes) < most:
            doc, _ = self.sent.pop(0)
            outcomes.append(run_hash_job(doc, deps or self.deps()))
        return outcomes


@pytest.fixture
def world(azurite_connection: str) -> World:
    suffix = uuid.uuid4().hex[:10]
    blobs = BlobServiceClient.from_connection_string(azurite_connection)
    blobs.create_container(f"hashdisks{suffix}")
    hashes = blobs.create_container(f"hashes{suffix}")
    table = TableServiceClient.from_connection_string(azurite_connection).create_table(
        f"hs{suffix}"
    )
    return World(ImageCatalog(table), HashStore(table, hashes), blobs, f"hashdisks{suffix}")


@pytest.fixture(scope="module")
def local_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sparse_vhd(tmp_path_factory.mktemp("hash-disks") / "sparse.vhd")


def data_bytes(client: BlobClient) -> int:
    return sum(e - s for s, e in data_ranges(client, 0, SIZE))


def test_the_content_hash_is_sha256sum_of_the_data_area(world: World, local_disk: Path) -> None:
    disk = world.disk(local_disk)
    image = world.register("hashed", disk)
    assert progress(world.store, image) == {"Status": "Queued", "BytesHashed": 0, "Percent": 0.0}
    assert world.run(image) == ["done"]
    image = world.catalog.get("hashed")
    expected = sha256sum_of_data_area(local_disk)
    assert image.ContentHash == expected
    assert image.OSDiskConfiguration is not None
    assert image.OSDiskConfiguration.ContentHash == expected
    assert progress(world.store, image) is None  # ready: nothing more to show
    # Every 4 MiB block's hash, from the document the image points at.
    doc = world.store.read_document(image.OSDiskConfiguration.BlockHashes.split("/", 1)[1])
    raw = local_disk.read_bytes()[:SIZE]
    blocks = [raw[i : i + BLOCK_SIZE] for i in range(0, SIZE, BLOCK_SIZE)]
    assert [doc.digest(i) for i in range(doc.blocks)] == [
        hashlib.sha256(b).hexdigest() for b in blocks
    ]
    # Only the ranges holding data were read (the uploader skipped the holes).
    job, _ = world.store.job("hashed")
    assert job is not None and job.Status == HashJobStatus.DONE
    assert job.Disks[0].BytesRead == data_bytes(disk) < MIB + 16 * 1024
    assert world.run(image) == ["done already"]


def test_a_job_killed_mid_disk_resumes_from_its_checkpoint(world: World, local_disk: Path) -> None:
    disk = world.disk(local_disk)
    image = world.register("resumed", disk)
    seen: Counter[str] = Counter()

    def kill(step: str) -> None:
        seen[step] += 1
        if step == "checkpoint" and seen[step] == 4:
            raise Killed(step)

    with pytest.raises(Killed):
        world.run(image, world.deps(before_step=kill, checkpoint_seconds=0))
    job, _ = world.store.job("resumed")
    assert job is not None and 0 < job.Disks[0].NextBlock < 10
    assert job.Disks[0].StreamState is not None  # OpenSSL's state, saved
    world.sent.clear()  # the dead worker's message comes back: the queue redelivers it
    assert world.run(image, world.deps(stale_after=timedelta(0))) == ["done"]
    assert world.catalog.get("resumed").ContentHash == sha256sum_of_data_area(local_disk)
    job, _ = world.store.job("resumed")
    assert job is not None and job.Disks[0].BytesRead == data_bytes(disk)  # nothing read twice


def test_a_job_goes_on_in_slices_one_message_each(world: World, local_disk: Path) -> None:
    image = world.register("sliced", world.disk(local_disk))
    world.sent.append(hash_request(image, committed=True))
    outcomes = []
    while world.sent:  # each message to another instance (another worker id)
        doc, _ = world.sent.pop(0)
        outcomes.append(run_hash_job(doc, world.deps(slice_seconds=0)))
    assert outcomes[-1] == "done" and len(outcomes) > 3
    assert all(o.startswith("continues at os block") for o in outcomes[:-1])
    assert world.catalog.get("sliced").ContentHash == sha256sum_of_data_area(local_disk)


def test_where_the_state_cant_be_saved_a_disk_is_hashed_in_one_go(
    world: World, local_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resumable_sha256, "_libcrypto", lambda: None)
    image = world.register("plain", world.disk(local_disk))
    assert world.run(image, world.deps(slice_seconds=0)) == ["done"]
    assert world.catalog.get("plain").ContentHash == sha256sum_of_data_area(local_disk)


STEPS = ["checkpoint", "document", "disk", "index", "duplicates", "publish", "done"]


@pytest.mark.parametrize("step", STEPS)
def test_a_job_killed_before_any_write_is_finished_by_the_next_delivery(
    world: World, local_disk: Path, step: str
) -> None:
    twin = world.register("twin", world.disk(local_disk))
    assert world.run(twin) == ["done"]
    image = world.register("killed", world.disk(local_disk))
    with pytest.raises(Killed):
        world.run(image, world.deps(before_step=killer(step), checkpoint_seconds=0))
    world.sent.clear()
    assert world.run(image, world.deps(stale_after=timedelta(0)))[-1] in ("done", "done already")
    expected = sha256sum_of_data_area(local_disk)
    image = world.catalog.get("killed")
    assert image.ContentHash == expected
    found = by_content(world.catalog, world.store, expected, 10, None)
    assert sorted(i.ImageName for i in found.items) == ["killed", "twin"]
    assert any("'twin'" in w for w in image.Warnings)
    assert any("'killed'" in w for w in world.catalog.get("twin").Warnings)


def killer(step: str) -> Callable[[str], None]:
    def hook(at: str) -> None:
        if at == step:
            raise Killed(at)

    return hook


def test_identical_disks_are_flagged_both_ways_and_found_by_content(
    world: World, local_disk: Path, tmp_path: Path
) -> None:
    first = world.register("first", world.disk(local_disk))
    other_disk = sparse_vhd(tmp_path / "other.vhd", seed=2)
    vm = world.register("vm", world.disk(other_disk), world.disk(local_disk))  # LUN 0 = same
    world.run(first)
    world.run(vm)
    sha = sha256sum_of_data_area(local_disk)
    warning = (
        "Duplicate content: its OS disk is identical to the data disk at LUN 0 of the image "
        f"'vm' (SHA-256 {sha})."
    )
    assert world.catalog.get("first").Warnings == [warning]
    assert world.catalog.get("vm").Warnings == [
        "Duplicate content: its data disk at LUN 0 is identical to the OS disk of the image "
        f"'first' (SHA-256 {sha})."
    ]
    assert world.catalog.get("vm").ContentHash == sha256sum_of_data_area(other_disk)
    page = by_content(world.catalog, world.store, sha, 1, None)
    assert [i.ImageName for i in page.items] == ["first"] and page.last_row == "first"
    rest = by_content(world.catalog, world.store, sha, 1, page.last_row)
    assert [i.ImageName for i in rest.items] == ["vm"] and rest.last_row is None
    # Removed: its index rows go, and it is not found any more.
    removed = world.catalog.remove("first")
    unindex(world.store, removed)
    assert [i.ImageName for i in by_content(world.catalog, world.store, sha, 10, None).items] == [
        "vm"
    ]


def test_block_hashes_of_a_disk_read_only_its_data(world: World, local_disk: Path) -> None:
    disk = world.disk(local_disk)
    doc, read = block_hashes(disk, SIZE)
    assert read == data_bytes(disk)
    assert doc.ContentHash is None  # block hashes only: no zeros fed
    whole, _ = block_hashes(disk, SIZE, whole=True)
    assert whole.ContentHash == sha256sum_of_data_area(local_disk)
    assert doc.differences(whole) == []


def test_an_announcement_before_the_commit_waits_for_its_image(world: World) -> None:
    image = Image(
        ImageName="later",
        Label="later",
        OS="Linux",
        PublishedDate=datetime(2024, 1, 1, tzinfo=UTC),
        LogicalSizeInGB=1,
    )
    doc, delay = hash_request(image, committed=False)
    assert delay > 0 and "Until" in doc
    assert run_hash_job(doc, world.deps()) == "waiting for the image"
    assert world.sent and world.sent[0][0] == doc  # it looks again later
    late = {**doc, "Until": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}
    assert run_hash_job(late, world.deps()) == "no such image (any more)"


def test_the_catalog_announces_an_image_before_its_commit_and_once_published(
    world: World, local_disk: Path
) -> None:
    told: list[tuple[str, bool]] = []
    catalog = ImageCatalog(
        world.catalog.table, announce=lambda image, done: told.append((image.ImageName, done))
    )
    world.catalog = catalog
    world.register("told", world.disk(local_disk))
    assert told == [("told", False), ("told", True)]
    dying = ImageCatalog(
        world.catalog.table,
        before_commit=killer("commit"),
        announce=lambda image, done: told.append((image.ImageName, done)),
    )
    world.catalog = dying
    with pytest.raises(Killed):
        world.register("dies", world.disk(local_disk))
    assert told[-1] == ("dies", False)  # the job is on its way anyway


def test_os_urandom_disk_hash_matches_hashlib(world: World, tmp_path: Path) -> None:
    """A dense disk: every block read, the same hash as hashlib over the file."""
    path = tmp_path / "dense.vhd"
    data = os.urandom(8 * MIB)
    path.write_bytes(data + build_footer(8 * MIB))
    disk = world.disk(path, exact=False)
    image = world.register("dense", disk)
    world.run(image)
    assert world.catalog.get("dense").ContentHash == hashlib.sha256(data).hexdigest()


def test_images_registered_before_content_hashes_get_them_on_request(
    world: World, local_disk: Path
) -> None:
    """POST /api/admin/hashes: a job for each image with no hash and none under way."""
    world.register("old", world.disk(local_disk))  # this catalog announces nothing
    sent: list[tuple[dict[str, Any], float]] = []
    counts = request_missing(world.catalog, world.store, lambda d, s: sent.append((d, s)))
    assert counts == {"ImagesWithoutHash": 1, "Requested": 1}
    assert sent[0][0]["ImageName"] == "old"
    assert run_hash_job(sent[0][0], world.deps()) == "done"
    assert world.catalog.get("old").ContentHash == sha256sum_of_data_area(local_disk)
    assert request_missing(world.catalog, world.store, lambda d, s: sent.append((d, s))) == {
        "ImagesWithoutHash": 0,
        "Requested": 0,
    }
    # A job that failed (its disk was gone for a while) starts over when asked.
    image = world.register("failed", world.disk(local_disk))
    job, etag = _new_job(world.deps(), image, None)
    job.Status, job.Error = HashJobStatus.FAILED, "the disk was gone"
    world.store.save_job(job, etag)
    assert run_hash_job(hash_request(image, True)[0], world.deps()).startswith("failed")
    sent.clear()
    assert (
        request_missing(world.catalog, world.store, lambda d, s: sent.append((d, s)))["Requested"]
        == 1
    )
    assert run_hash_job(sent[0][0], world.deps()) == "done"


def test_a_job_another_worker_holds_is_looked_at_again_once_it_would_be_stale(
    world: World, local_disk: Path
) -> None:
    image = world.register("held", world.disk(local_disk))
    job, etag = _new_job(world.deps(), image, None)
    job.Status, job.Owner, job.Heartbeat = HashJobStatus.RUNNING, "elsewhere", datetime.now(UTC)
    world.store.save_job(job, etag)
    request = hash_request(image, True)[0]
    assert run_hash_job(request, world.deps()) == "running elsewhere"
    assert world.sent == [(request, 90.0)]  # in case that worker died
    world.sent.clear()
    assert run_hash_job(request, world.deps(stale_after=timedelta(0))) == "done"
