"""Content hashes of every registered disk: one resumable background job per image.

The catalog announces every new image with disks just before its commit and again
once it is published (`hash_request`: two messages, so a crash in between loses
none; the first waits for the image a while). The `image-hashes` queue then runs
`run_hash_job`, whose steps are each safe to kill and to run twice:

1. take the job (its row `hashjob|<image>`); an owner that is alive elsewhere keeps it;
2. hash each disk not done yet (shared/adapters/disk_hashing.py: only the ranges that
   hold data are read), checkpointing every few seconds: the block hashes found are
   appended to a part blob, then the job row takes the next block and the saved
   SHA-256 state. Past its time slice it checkpoints and sends the next message;
3. a finished disk gets its BlockHashes document, then the job row its hash;
4. each disk's hash is indexed (`hash|<sha>` rows), then the image row takes the hashes,
   conditional on still being the same image (its CreatedTime and its disks);
5. images with a disk of the same content get a warning each, naming the other;
6. the job is Done.

The image row is the truth: the index may hold rows of an image that is gone or not
yet published, and readers check them against it.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from shared.adapters.catalog_table import ImageCatalog, Page, from_entity
from shared.adapters.disk_hashing import Checkpoint, DiskHasher, data_size_of
from shared.adapters.hash_store import HashStore, JobConflict, blob_prefix
from shared.domain.content_hash import (
    BlockHashes,
    DiskHashJob,
    HashJob,
    HashJobStatus,
    zero_block_hash,
)
from shared.domain.images import DataDisk, Image, ImageNotFound, OSDisk, image_key
from shared.domain.lifecycle import instant, iso
from shared.telemetry import log_event

log = logging.getLogger(__name__)
WAIT_FOR_IMAGE = timedelta(minutes=10)  # how long an announcement waits for its image


class ImageReplaced(Exception):
    """The image of this name is not the one the job hashed (removed, or made again)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class HashDeps:
    catalog: ImageCatalog
    store: HashStore
    blobs: BlobServiceClient
    send: Callable[[dict[str, Any], float], None]  # a message on the hash queue, delayed
    slice_seconds: float = 240.0  # then the next message goes on (functionTimeout is 10 min)
    checkpoint_seconds: float = 5.0
    stale_after: timedelta = timedelta(seconds=90)  # an owner silent this long is dead
    workers: int = 4
    before_step: Callable[[str], None] | None = None  # tests: "kill" the job at a step
    worker: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    clock: Callable[[], datetime] = utcnow

    def step(self, name: str) -> None:
        if self.before_step is not None:
            self.before_step(name)


def hash_request(image: Image, committed: bool) -> tuple[dict[str, Any], float]:
    """The message announcing an image (and its delay): before its commit it waits a
    little, and for a while for the image to appear."""
    doc = {"ImageName": image.ImageName, "Created": iso(image.CreatedTime)}
    if committed:
        return doc, 0.0
    return {**doc, "Until": iso(utcnow() + WAIT_FOR_IMAGE)}, 15.0


def parse_request(doc: Any) -> tuple[str, datetime, datetime | None]:
    """(image name, its CreatedTime, wait for it until); ValueError for a bad message."""
    if not isinstance(doc, dict) or not isinstance(doc.get("ImageName"), str):
        raise ValueError("a hash request needs ImageName and Created")
    until = doc.get("Until")
    return doc["ImageName"], instant(str(doc["Created"])), instant(until) if until else None


# -- disks of an image, by role ---------------------------------------------------------


def disks_of(image: Image) -> Iterator[tuple[str, OSDisk | DataDisk]]:
    """(role, disk) of every disk the catalog holds: "os", then "lun<n>"."""
    if image.OSDiskConfiguration is not None and image.OSDiskConfiguration.SourceBlob:
        yield "os", image.OSDiskConfiguration
    for d in image.DataDiskConfigurations:
        if d.SourceBlob:
            yield f"lun{d.Lun}", d


def role_text(role: str) -> str:
    return "OS disk" if role == "os" else f"data disk at LUN {role[3:]}"


def hashed(image: Image) -> bool:
    disks = list(disks_of(image))
    return bool(disks) and all(d.ContentHash for _, d in disks)


# -- the job ----------------------------------------------------------------------------


def run_hash_job(doc: Any, deps: HashDeps) -> str:
    """One delivery of a hash request; returns what happened (for the log)."""
    name, created, until = parse_request(doc)
    image = deps.catalog.find(name)
    if image is None or image.CreatedTime != created:
        if image is None and until is not None and deps.clock() < until:
            deps.send(doc, 30.0)  # announced before its commit: look again later
            return "waiting for the image"
        return "no such image (any more)"
    try:
        return _run(deps, image)
    except JobConflict:
        return "taken over by another worker"
    except ImageReplaced:
        _drop_job(deps.store, name, created)
        return "the image changed meanwhile"


def _run(deps: HashDeps, image: Image) -> str:
    name, created = image.ImageName, image.CreatedTime
    job, etag = deps.store.job(name)
    if job is None or job.Created != created:
        job, etag = _new_job(deps, image, etag)
    if job.Status == HashJobStatus.DONE and hashed(image):
        return "done already"
    if job.Status == HashJobStatus.FAILED:
        return f"failed: {job.Error}"
    now = deps.clock()
    alive = job.Heartbeat is not None and now - job.Heartbeat < deps.stale_after
    if job.Status == HashJobStatus.RUNNING and job.Owner != deps.worker and alive:
        # Look again once it would be stale: if its worker died, this takes it on.
        deps.send({"ImageName": name, "Created": iso(created)}, deps.stale_after.total_seconds())
        return "running elsewhere"
    job.Status, job.Owner, job.Heartbeat, job.Updated = HashJobStatus.RUNNING, deps.worker, now, now
    job.Started = job.Started or now
    etag = deps.store.save_job(job, etag)
    deadline = time.monotonic() + deps.slice_seconds
    for disk in job.Disks:
        if disk.done:
            continue
        try:
            etag, finished = _hash_disk(deps, job, disk, etag, deadline)
        except ResourceNotFoundError:
            job.Status, job.Error = HashJobStatus.FAILED, f"the disk {disk.Path} is gone"
            deps.store.save_job(job, etag)
            return "failed: a disk is gone"
        if not finished:
            # Let go of it: the next message may reach another instance, which takes it on.
            job.Owner, job.Heartbeat = None, None
            etag = deps.store.save_job(job, etag)
            deps.send({"ImageName": name, "Created": iso(created)}, 0.0)
            return f"continues at {disk.Role} block {disk.NextBlock}"
    _publish(deps, job)
    deps.step("done")
    job.Status, job.Finished, job.Updated = HashJobStatus.DONE, deps.clock(), deps.clock()
    job.Heartbeat = None
    try:
        deps.store.save_job(job, etag)
    except JobConflict:
        return "published; another worker finished the job"
    log_event(log, "content hash of %s: %s", name, job.Disks[0].ContentHash, image_name=name)
    return "done"


def _new_job(deps: HashDeps, image: Image, etag: str | None) -> tuple[HashJob, str]:
    """A job for this image (replacing one of an earlier image of that name)."""
    prefix = blob_prefix(image.ImageName, image.CreatedTime)
    disks = []
    for role, disk in disks_of(image):
        container, _, blob = (disk.SourceBlob or "").partition("/")
        props = deps.blobs.get_blob_client(container, blob).get_blob_properties()
        disks.append(
            DiskHashJob(
                Role=role,
                Path=disk.SourceBlob or "",
                DataSize=data_size_of(props.size),
                Part=f"{prefix}{role}.part",
            )
        )
    job = HashJob(ImageName=image.ImageName, Created=image.CreatedTime, Disks=disks)
    return job, deps.store.save_job(job, etag)


def _b64(state: bytes | None) -> str | None:
    return None if state is None else base64.b64encode(state).decode()


def _hash_disk(
    deps: HashDeps, job: HashJob, disk: DiskHashJob, etag: str, deadline: float
) -> tuple[str, bool]:
    """Hash one disk from its checkpoint until done or `deadline`; (ETag, finished)."""
    container, _, blob = disk.Path.partition("/")
    client = deps.blobs.get_blob_client(container, blob)
    part = disk.Part or f"{blob_prefix(job.ImageName, job.Created)}{disk.Role}.part"
    disk.Part = part
    state = base64.b64decode(disk.StreamState) if disk.StreamState else None
    if disk.NextBlock and state is None:  # saved where it can't be resumed: start over
        disk.NextBlock, disk.BytesRead = 0, 0
    if disk.NextBlock == 0:
        deps.store.drop_part(part)
    appended: set[int] = set()
    current = {"etag": etag}

    def checkpoint(cp: Checkpoint) -> None:
        deps.step("checkpoint")
        deps.store.append_part(part, cp.digests)
        appended.update(cp.digests)
        disk.NextBlock, disk.StreamState = cp.next_block, _b64(cp.stream_state)
        disk.BytesRead = cp.bytes_read
        job.Heartbeat = job.Updated = deps.clock()
        current["etag"] = deps.store.save_job(job, current["etag"])

    hasher = DiskHasher(client, disk.DataSize, workers=deps.workers)
    result = hasher.run(
        disk.NextBlock,
        state,
        disk.BytesRead,
        deadline=deadline,
        checkpoint=checkpoint,
        every=deps.checkpoint_seconds,
    )
    rest = {i: d for i, d in result.digests.items() if i not in appended}
    if not result.finished:
        checkpoint(Checkpoint(result.next_block, result.stream_state, result.bytes_read, rest))
        return current["etag"], False
    digests = {**deps.store.read_part(part, below=result.next_block), **rest}
    doc = BlockHashes(
        DataSize=disk.DataSize,
        ContentHash=result.content_hash,
        ZeroBlockHash=zero_block_hash(),
        DataBlocks=digests,
    )
    path = f"{blob_prefix(job.ImageName, job.Created)}{disk.Role}.json"
    deps.step("document")
    deps.store.write_document(path, doc)
    disk.ContentHash = result.content_hash
    disk.BlockHashes = f"{deps.store.container.container_name}/{path}"
    disk.NextBlock, disk.BytesRead, disk.StreamState = result.next_block, result.bytes_read, None
    job.Heartbeat = job.Updated = deps.clock()
    deps.step("disk")
    etag = deps.store.save_job(job, current["etag"])
    deps.store.drop_part(part)
    return etag, True


def _publish(deps: HashDeps, job: HashJob) -> None:
    """Steps 4 and 5: index the hashes, put them on the image row, flag duplicates."""
    for disk in job.Disks:
        deps.step("index")
        deps.store.index(disk.ContentHash or "", job.ImageName, disk.Role, job.Created, disk.Path)
    by_role = {d.Role: d for d in job.Disks}

    def with_hashes(image: Image) -> dict[str, Any] | None:
        if image.CreatedTime != job.Created:
            raise ImageReplaced(job.ImageName)
        changes: dict[str, Any] = {}
        os_disk = image.OSDiskConfiguration
        if os_disk is not None and "os" in by_role:
            changes["OSDiskConfiguration"] = _hashed_disk(os_disk, by_role["os"])
        data = [_hashed_disk(d, by_role.get(f"lun{d.Lun}")) for d in image.DataDiskConfigurations]
        changes["DataDiskConfigurations"] = data
        first = by_role.get("os") or job.Disks[0]
        changes["ContentHash"] = first.ContentHash
        before = image.model_dump()
        after = Image.model_validate({**before, **changes}).model_dump()
        return None if after == before else changes

    # Duplicates first: once an image shows its hash, it shows what it duplicates too.
    deps.step("duplicates")
    image = deps.catalog.find(job.ImageName)
    if image is None or image.CreatedTime != job.Created:
        raise ImageReplaced(job.ImageName)
    hashes = [(d.Role, d.ContentHash or "") for d in job.Disks]
    flag_duplicates(deps.catalog, deps.store, image, hashes)
    deps.step("publish")
    try:
        deps.catalog.amend(job.ImageName, with_hashes)
    except ImageNotFound as e:
        raise ImageReplaced(job.ImageName) from e


def _hashed_disk(disk: Any, job: DiskHashJob | None) -> Any:
    if job is None or not disk.SourceBlob:
        return disk
    if disk.SourceBlob != job.Path:
        raise ImageReplaced(f"its disk is {disk.SourceBlob} now, not {job.Path}")
    return disk.model_copy(update={"ContentHash": job.ContentHash, "BlockHashes": job.BlockHashes})


# -- duplicates and the index -------------------------------------------------------


def _disk_at(image: Image, role: str) -> OSDisk | DataDisk | None:
    return dict(disks_of(image)).get(role)


def _is_live(image: Image | None, row: dict[str, Any]) -> bool:
    """Does the index row describe this image's disk (not an earlier image of its name)?"""
    if image is None or image.CreatedTime != datetime.fromisoformat(row["Created"]):
        return False
    disk = _disk_at(image, row["Role"])
    return disk is not None and disk.SourceBlob == row["Disk"]


def duplicate_warning(role: str, other: str, other_role: str, sha: str) -> str:
    return (
        f"Duplicate content: its {role_text(role)} is identical to the {role_text(other_role)} "
        f"of the image '{other}' (SHA-256 {sha})."
    )


def flag_duplicates(
    catalog: ImageCatalog, store: HashStore, image: Image, hashes: list[tuple[str, str]]
) -> None:
    """Warn this image (whose disks, by role, have these hashes) and every other with a
    disk of the same content, each naming the other. An image whose row does not show its
    hash yet counts when its index row is its own: of two images finishing together, the
    later reader sees the earlier (each writes its index rows before it reads)."""
    for role, sha in hashes:
        for row in store.indexed(sha):
            if image_key(row["ImageName"]) == image.key:
                continue
            other = catalog.find(row["ImageName"])
            if other is None or not _is_live(other, row):
                continue
            mine = duplicate_warning(role, other.ImageName, row["Role"], sha)
            _warn(catalog, image.ImageName, mine)
            theirs = duplicate_warning(row["Role"], image.ImageName, role, sha)
            _warn(catalog, other.ImageName, theirs)


def _warn(catalog: ImageCatalog, name: str, warning: str) -> None:
    def add(image: Image) -> dict[str, Any] | None:
        if warning in image.Warnings:
            return None
        return {"Warnings": [*image.Warnings, warning]}

    with contextlib.suppress(ImageNotFound):
        catalog.amend(name, add)


def by_content(
    catalog: ImageCatalog,
    store: HashStore,
    sha: str,
    top: int,
    after: str | None,
    where: Callable[[Image], bool] | None = None,
) -> Page:
    """Images with a disk of this content, by name, `top` at a time (the image row decides:
    an index row of an image gone, or not yet showing its hash, is passed over)."""
    items: list[Image] = []
    seen: set[str] = set()
    last: str | None = None
    for row in store.indexed(sha, after):
        key = image_key(row["ImageName"])
        if key in seen:
            continue
        seen.add(key)
        image = catalog.find(row["ImageName"])
        if image is None or not any(d.ContentHash == sha for _, d in disks_of(image)):
            continue
        if where is not None and not where(image):
            continue
        if len(items) == top:
            return Page(items, last)
        items.append(image)
        last = key
    return Page(items, None)


def unindex(store: HashStore, image: Image) -> None:
    """Drop a removed image's index rows, job and block hashes (each idempotent; never
    those of a later image of the same name)."""
    for role, disk in disks_of(image):
        if disk.ContentHash:
            store.unindex(disk.ContentHash, image.ImageName, role)
    _drop_job(store, image.ImageName, image.CreatedTime)


def _drop_job(store: HashStore, name: str, created: datetime) -> None:
    job, _ = store.job(name)
    if job is not None and job.Created == created:
        store.delete_job(name)
    store.delete_blobs(blob_prefix(name, created))


def request_missing(
    catalog: ImageCatalog, store: HashStore, send: Callable[[dict[str, Any], float], None]
) -> dict[str, int]:
    """Send a hash job for every image with disks of ours and no content hash, whose job
    is not under way (images registered before content hashes, or whose job failed:
    it starts over). Reads the whole catalog: for operators, not a request path."""
    checked = requested = 0
    for row in catalog.image_rows():
        image = from_entity(row)
        if not list(disks_of(image)) or hashed(image):
            continue
        checked += 1
        job, _ = store.job(image.ImageName)
        if job is not None and job.Created == image.CreatedTime:
            if job.Status != HashJobStatus.FAILED:
                continue  # queued or running: its messages carry it on
            store.delete_job(image.ImageName)
        send(*hash_request(image, committed=True))
        requested += 1
    return {"ImagesWithoutHash": checked, "Requested": requested}


def progress(store: HashStore, image: Image) -> dict[str, Any] | None:
    """How far the content hash of an image is, while it is not ready (None: ready, or the
    image has no disk of ours)."""
    if not list(disks_of(image)) or hashed(image):
        return None
    job, _ = store.job(image.ImageName)
    if job is None or job.Created != image.CreatedTime:
        return {"Status": HashJobStatus.QUEUED.value, "BytesHashed": 0, "Percent": 0.0}
    return job.progress()
