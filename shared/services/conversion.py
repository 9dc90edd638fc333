"""Convert an uploaded disk image into fixed VHD page blobs, as a resumable job.

`start_conversion` (called while judging an upload) opens the image by its bytes, checks
what can be checked before any data moves (sizes, the declared metadata, the name), and
makes the upload `Converting` with a job in its outcome row. The job then runs in steps,
one queue message each (`upload-conversions`): a step copies the source's extents into
the targets (`images/converted/...`, Put Page of the non-zero pages only) for at most
`step_seconds` or `step_bytes` read, checkpointing as it goes, then queues the next
step. The step that finishes writes each target's footer (last: a target cut short is
no VHD), validates and probes the targets like any upload, and registers the image over
them through `registration.publish`.

Every write of the outcome row is ETag-guarded: of two deliveries of one step, one
checkpoints and the other stops. A worker killed anywhere, a timeout or a redelivered
message resume from the last checkpoint; a page written twice gets the same bytes (the
source version is fixed). A rejected job deletes its targets (never a leased one). The
upload itself is only ever read.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient

from shared.adapters.blobs import BlobFacts, BlobRangeReader, delete_protected, facts
from shared.adapters.page_copy import PageWriter, copy_extents
from shared.domain.conversion import (
    ConversionJob,
    ConvertedDisk,
    fixed_size,
    new_job,
    progress,
    target_blob,
)
from shared.domain.disk_probe import check_partitions_fit, probe_disk
from shared.domain.errors import CatalogError, UploadRejected
from shared.domain.formats import DiskImage, open_disks
from shared.domain.ranged import RangeReader
from shared.domain.uploads import (
    ErrorInfo,
    UploadKind,
    UploadOutcome,
    UploadStatus,
)
from shared.domain.vhd import (
    DEFAULT_MIN_SIZE_BYTES,
    FOOTER_SIZE,
    DiskTooLarge,
    DiskTooSmall,
    build_footer,
    validate_vhd,
)
from shared.telemetry import log_event

log = logging.getLogger(__name__)
GIB = 1024**3
MIB = 1024**2


class ConversionFailed(UploadRejected):
    code = "ConversionFailed"


class UploadChanged(UploadRejected):
    code = "UploadChanged"


class OvaInVmImageFolder(UploadRejected):
    code = "OvaInVmImageFolder"


@dataclass(frozen=True)
class ConversionPolicy:
    step_bytes: int = 8 * GIB  # source bytes a step reads before it hands over
    step_seconds: float = 60.0  # and the time it may take (well within functionTimeout)
    checkpoint_seconds: float = 5.0  # how much work a killed worker may lose
    workers: int = 4  # reads and page writes in flight
    max_attempts: int = 5  # deliveries of a failing step (host.json maxDequeueCount)
    stall_seconds: float = 180.0  # a job not checkpointed for this long is started again

    @classmethod
    def from_env(cls, env: Any = None) -> ConversionPolicy:
        import os

        e = os.environ if env is None else env
        return cls(
            step_bytes=int(float(e.get("CONVERSION_STEP_MIB", 8192)) * MIB),
            step_seconds=float(e.get("CONVERSION_STEP_SECONDS", cls.step_seconds)),
            max_attempts=int(e.get("CAPTURE_MAX_ATTEMPTS", cls.max_attempts)),
        )


class _Superseded(Exception):
    """Another delivery of this job wrote the outcome row first: it carries on, not us."""


class _SourceGone(Exception):
    """The upload was deleted or rewritten while it was being converted."""


class SourceReader:
    """The upload's ranged reads for a job: counted (from several threads), and a source
    that changed or went away is told apart from any other failure."""

    def __init__(self, inner: BlobRangeReader) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.bytes_read = 0

    @property
    def size(self) -> int:
        return self._inner.size

    def read(self, offset: int, length: int) -> bytes:
        try:
            data = self._inner.read(offset, length)
        except (ResourceModifiedError, ResourceNotFoundError) as e:
            raise _SourceGone(str(e).splitlines()[0] if str(e) else type(e).__name__) from e
        with self._lock:
            self.bytes_read += len(data)
        return data


# -- starting ------------------------------------------------------------------------------


def open_source(reader: RangeReader, name: str, max_bytes: int) -> list[tuple[str, DiskImage]]:
    """The disks of an upload (an OVA's in OVF order), refused with a typed error."""
    try:
        return open_disks(reader, name, max_virtual_size=max_bytes)
    except (RecursionError, MemoryError) as e:  # hostile nesting: still a typed refusal
        raise ConversionFailed(f"'{name}' could not be read as a disk image: {e!r}") from e


def plan(
    blob: BlobFacts,
    kind: str,
    disks: list[tuple[str, DiskImage]],
    max_os_bytes: int,
    max_data_bytes: int,
) -> list[ConvertedDisk]:
    """Each disk's target, or why the upload can't become an image (before any data moves)."""
    if kind == UploadKind.VM_DISK and len(disks) > 1:
        raise OvaInVmImageFolder(
            f"'{blob.name}' holds {len(disks)} disks (an OVA is a whole VM), but a disk in a "
            "'<name>.image/' folder is one disk of a manifest's VM image. Upload the OVA "
            "outside such a folder: it becomes a VM image with its data disks by itself."
        )
    planned = []
    for i, (member, image) in enumerate(disks):
        size = fixed_size(image.virtual_size)
        limit = max_os_bytes if i == 0 and kind != UploadKind.VM_DISK else max_data_bytes
        what = f"disk {member or blob.name}"
        if size > limit:
            raise DiskTooLarge(
                f"The {what} has a virtual size of {image.virtual_size} bytes "
                f"({size / GIB:.2f} GiB once rounded up to a whole MiB), above the maximum of "
                f"{limit} bytes ({limit / GIB:.2f} GiB) for this upload. Shrink the partitions "
                "and the disk (e.g. `qemu-img resize --shrink`) and upload it again."
            )
        if size < DEFAULT_MIN_SIZE_BYTES:
            raise DiskTooSmall(
                f"The {what} has a virtual size of {image.virtual_size} bytes, below the "
                f"minimum of {DEFAULT_MIN_SIZE_BYTES} bytes ({DEFAULT_MIN_SIZE_BYTES // MIB} "
                f"MiB) Azure takes. Grow it (e.g. `qemu-img resize DISK "
                f"{DEFAULT_MIN_SIZE_BYTES // MIB}M`) and upload it again."
            )
        index = i if len(disks) > 1 else None
        planned.append(
            ConvertedDisk(
                Member=member if len(disks) > 1 else "",
                Format=image.format,
                VirtualSize=image.virtual_size,
                Target=target_blob(blob.name, blob.etag, index),
            )
        )
    return planned


def start_conversion(
    outcome: UploadOutcome,
    blob: BlobFacts,
    reader: RangeReader,
    *,
    max_os_bytes: int,
    max_data_bytes: int,
    now: datetime,
    bytes_read: int = 0,
) -> None:
    """Make `outcome` a Converting upload with its job (the caller writes and schedules it)."""
    disks = open_source(reader, blob.name, max(max_os_bytes, max_data_bytes))
    planned = plan(blob, outcome.Kind, disks, max_os_bytes, max_data_bytes)
    formats = list(dict.fromkeys(d.Format for d in planned))
    outcome.SourceFormat = "ova" if len(disks) > 1 or planned[0].Member else formats[0]
    if outcome.SourceFormat == "ova":
        outcome.SourceFormat = "ova (" + ", ".join(formats) + ")"
    outcome.Status = UploadStatus.CONVERTING
    outcome.Reason = "converting to a fixed VHD"
    outcome.Conversion = new_job(planned, now, bytes_read)
    outcome.BytesRead = bytes_read
    outcome.BytesWritten = 0
    outcome.BytesTotal = blob.size
    outcome.BytesDone, outcome.SecondsLeft = progress(outcome.Conversion, blob.size, now)


# -- the job -------------------------------------------------------------------------------


@dataclass
class _Run:
    """One step's view of the job: the outcome as read, under the row's ETag."""

    outcome: UploadOutcome
    row_etag: str
    blob: BlobFacts
    client: BlobClient

    @property
    def job(self) -> ConversionJob:
        assert self.outcome.Conversion is not None
        return self.outcome.Conversion


def run_conversion_step(
    blob_name: str, etag: str, deps: Any, attempt: int = 1
) -> UploadOutcome | None:
    """Carry the conversion of that upload version on from its checkpoint.

    `deps` is the uploads service's UploadDeps. Returns the outcome as this step left it
    (None when another delivery of the job carries on).
    """
    from shared.services.uploads import examine_upload

    outcome, row_etag = deps.outcomes.get_versioned(blob_name)
    client = deps.uploads.get_blob_client(blob_name)
    if outcome is None or outcome.ETag != etag:
        # Not started (the row is written after this message is queued), or a newer version
        # of the upload replaced it: judge the upload as it is now.
        blob = facts(client)
        if blob is not None and blob.etag == etag:
            return examine_upload(client, deps)
        _discard_targets(deps, blob_name, etag, None)
        return outcome
    if outcome.Status != UploadStatus.CONVERTING or outcome.Conversion is None:
        return outcome  # finished, or failed, already
    assert row_etag is not None
    run = _Run(outcome, row_etag, None, client)  # type: ignore[arg-type]
    try:
        blob = facts(client)
        if blob is None or blob.etag != etag:
            raise _SourceGone("the blob was deleted or uploaded again")
        run.blob = blob
        return _step(run, deps)
    except _Superseded:
        log.info("conversion of %s (%s): another delivery carries on", blob_name, etag)
        return None
    except _SourceGone as e:
        return _fail(
            run,
            deps,
            UploadChanged(
                f"'{blob_name}' was deleted or uploaded again while it was being converted "
                f"({e}); the new version, if any, is judged on its own."
            ),
        )
    except CatalogError as e:
        return _fail(run, deps, e)
    except Exception as e:
        if attempt < deps.conversion.max_attempts:
            raise  # the queue delivers the step again (a storage blip, a timeout)
        log.exception("conversion of %s failed for good", blob_name)
        return _fail(
            run,
            deps,
            ConversionFailed(
                f"the conversion of '{blob_name}' failed {attempt} times, last with "
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. Upload it "
                "again; if it fails again, check it with `qemu-img check`."
            ),
        )


def _hook(deps: Any, step: str) -> None:
    if deps.before_step is not None:
        deps.before_step(step)


def _checkpoint(run: _Run, deps: Any, source: SourceReader | None, counted: list[int]) -> None:
    """Save the job's position under the row's ETag (`_Superseded` if someone else did)."""
    _hook(deps, "Checkpoint")
    job = run.job
    now = deps.clock()
    if source is not None:
        job.BytesRead += source.bytes_read - counted[0]
        counted[0] = source.bytes_read
    job.Updated = now
    _show_progress(run.outcome, job, now)
    _save(run, deps)


def _show_progress(outcome: UploadOutcome, job: ConversionJob, now: datetime) -> None:
    outcome.BytesRead = job.BytesRead
    outcome.BytesWritten = job.BytesWritten
    total = outcome.BytesTotal or outcome.SizeInBytes or 0
    outcome.BytesDone, outcome.SecondsLeft = progress(job, total, now)
    outcome.LastChecked = now


def _save(run: _Run, deps: Any) -> None:
    new = deps.outcomes.put_if(run.outcome, run.row_etag)
    if new is None:
        raise _Superseded()
    run.row_etag = new


def _step(run: _Run, deps: Any) -> UploadOutcome:
    policy: ConversionPolicy = deps.conversion
    job = run.job
    source = SourceReader(BlobRangeReader(run.client, run.blob.size, run.blob.etag))
    counted = [0]
    disks = open_source(
        source, run.blob.name, max(deps.policy.max_os_disk_bytes, deps.policy.max_data_disk_bytes)
    )
    if [d.format for _, d in disks] != [d.Format for d in job.Disks]:
        raise ConversionFailed(f"'{run.blob.name}' no longer reads as it did when it was judged")
    began = time.monotonic()

    def spent() -> bool:
        return time.monotonic() - began >= policy.step_seconds

    saved = [began]  # when the last checkpoint was written
    for (_, image), disk in zip(disks, job.Disks, strict=True):
        if not disk.copied and not _copy_disk(
            run, deps, image, disk, source, counted, spent, saved
        ):
            break
    job.Steps += 1
    _checkpoint(run, deps, source, counted)
    if not job.copied:
        _hook(deps, "NextStep")
        deps.conversions.schedule(run.blob.name, run.blob.etag, 0)
        return run.outcome
    return _finish(run, deps)


def _copy_disk(
    run: _Run,
    deps: Any,
    image: DiskImage,
    disk: ConvertedDisk,
    source: SourceReader,
    counted: list[int],
    spent: Callable[[], bool],
    saved: list[float],
) -> bool:
    """Copy one disk from its checkpoint until done or the step's budget is spent; True
    when the disk is all written."""
    policy: ConversionPolicy = deps.conversion
    job = run.job
    target = deps.images.get_blob_client(disk.Target)
    _ensure_target(target, disk, deps)
    writer = PageWriter(target)
    reported = [0]

    def account() -> None:
        job.BytesWritten += writer.written - reported[0]
        reported[0] = writer.written

    def tick(done: int) -> None:
        if time.monotonic() - saved[0] < policy.checkpoint_seconds:
            return
        disk.Done = done
        account()
        _checkpoint(run, deps, source, counted)
        saved[0] = time.monotonic()

    _hook(deps, "Copy")
    result = copy_extents(
        image.extents(disk.Done),
        writer.write,
        start=disk.Done,
        workers=policy.workers,
        # The step's read budget left (the disks before this one are read to the end).
        budget=max(1, policy.step_bytes - source.bytes_read),
        stop=spent,
        tick=tick,
    )
    disk.Done = disk.VirtualSize if result.finished else result.done
    account()
    return result.finished


def _ensure_target(target: BlobClient, disk: ConvertedDisk, deps: Any) -> None:
    """The target page blob, created once: a repeat finds it (and rewrites the same pages)."""
    try:
        props = target.get_blob_properties()
    except ResourceNotFoundError:
        props = None
    if props is not None:
        if props.size != disk.size + FOOTER_SIZE:
            raise ConversionFailed(f"{disk.Target} is not the size this conversion made it")
        return
    if disk.Done > 0:
        raise ConversionFailed(
            f"the converted disk {deps.images.container_name}/{disk.Target} was deleted while "
            "the conversion was under way; upload the disk again"
        )
    _hook(deps, "CreateTarget")
    with contextlib.suppress(ResourceExistsError):  # a twin delivery made it: the same blob
        target.create_page_blob(
            disk.size + FOOTER_SIZE,
            metadata={"convertedfrom": _ascii(disk.Member or "upload")},
            match_condition=MatchConditions.IfMissing,
        )


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode()[:256]


def _target_path(deps: Any, disk: ConvertedDisk) -> str:
    return f"{deps.images.container_name}/{disk.Target}"


def _finish(run: _Run, deps: Any) -> UploadOutcome:
    """Footers, then the usual validation and probe of each target, then registration."""
    from shared.services.uploads import image_from_converted, register_image

    job, outcome = run.job, run.outcome
    _hook(deps, "Footer")
    for i, disk in enumerate(job.Disks):
        # The default creator ("qem2") makes qemu and others read the exact size, not CHS.
        footer = build_footer(disk.size, timestamp=job.FooterTime, unique_id=job.footer_id(i))
        target = deps.images.get_blob_client(disk.Target)
        try:
            target.upload_page(footer, offset=disk.size, length=FOOTER_SIZE)
        except HttpResponseError as e:
            # Leased: an earlier delivery got as far as registering it; its footer is there.
            if getattr(e, "error_code", None) not in ("LeaseIdMissing", "LeaseNotPresent"):
                raise
    _hook(deps, "Validate")
    checked = []
    for i, disk in enumerate(job.Disks):
        target = deps.images.get_blob_client(disk.Target)
        reader = BlobRangeReader(target, disk.size + FOOTER_SIZE)
        limit = deps.policy.max_os_disk_bytes if i == 0 else deps.policy.max_data_disk_bytes
        if outcome.Kind == UploadKind.VM_DISK:
            limit = deps.policy.max_data_disk_bytes
        footer = validate_vhd(reader, max_size_bytes=limit)
        probe = probe_disk(reader, disk_size=footer.current_size)
        check_partitions_fit(probe)
        checked.append((disk, footer, probe))
    outcome.ConvertedBlobs = [_target_path(deps, d) for d in job.Disks]
    _, os_footer, os_probe = checked[0]
    outcome.VirtualSizeInBytes = os_footer.current_size
    outcome.Detected = _detected(os_probe)
    outcome.Warnings = list(os_probe.warnings)
    now = deps.clock()
    if outcome.Kind == UploadKind.VM_DISK:
        outcome.Status = UploadStatus.PENDING
        outcome.Reason = (
            "converted and validated; it becomes part of a VM image when its manifest is registered"
        )
        outcome.SecondsLeft = 0.0
        _save(run, deps)
        _log(outcome)
        return outcome
    image = image_from_converted(run.client, run.blob, outcome, checked, deps)
    _hook(deps, "Register")
    register_image(image, deps)
    _hook(deps, "Complete")
    outcome.Status = UploadStatus.REGISTERED
    outcome.ImageName = image.ImageName
    outcome.Warnings = list(image.Warnings)
    outcome.Reason = None
    outcome.CompletedTime = now
    outcome.SecondsLeft = 0.0
    try:
        _save(run, deps)
    except _Superseded:
        current = deps.outcomes.get(run.blob.name)
        if current is None or current.Status != UploadStatus.REGISTERED:
            raise
        return current
    _log(outcome)
    return outcome


def _detected(probe: Any) -> dict[str, Any]:
    d = probe.to_dict()
    d.pop("warnings", None)
    return dict(d)


def _log(outcome: UploadOutcome) -> None:
    log_event(
        log,
        "upload %s (%s): %s %s from %s, %s read, %s written",
        outcome.BlobName,
        outcome.ETag,
        outcome.Status,
        outcome.ImageName or (outcome.Error.Code if outcome.Error else outcome.Reason),
        outcome.SourceFormat,
        outcome.BytesRead,
        outcome.BytesWritten,
        image_name=outcome.ImageName,
        blob_name=outcome.BlobName,
    )


def _fail(run: _Run, deps: Any, error: CatalogError) -> UploadOutcome:
    """Reject the upload: its targets deleted first (never a leased one), then the row."""
    outcome = run.outcome
    _discard_targets(deps, outcome.BlobName, outcome.ETag or "", run.job)
    outcome.Status = UploadStatus.REJECTED
    outcome.Error = ErrorInfo(Code=error.code, Message=error.message)
    outcome.Reason = None
    outcome.SecondsLeft = None
    outcome.CompletedTime = deps.clock()
    try:
        _save(run, deps)
    except _Superseded:
        return deps.outcomes.get(outcome.BlobName) or outcome
    _log(outcome)
    return outcome


def _discard_targets(deps: Any, blob_name: str, etag: str, job: ConversionJob | None) -> None:
    """Delete the converted disks of that upload version that no image holds."""
    if deps.images is None or not etag:
        return
    if job is not None:
        names = [d.Target for d in job.Disks]
    else:
        prefix = target_blob(blob_name, etag)[: -len(".vhd")]
        names = [b.name for b in deps.images.list_blobs(name_starts_with=prefix)]
    for name in names:
        delete_protected(deps.images.get_blob_client(name))


def stalled(outcome: UploadOutcome, now: datetime, policy: ConversionPolicy) -> bool:
    """A Converting job with no checkpoint for a long while: its chain of steps was lost."""
    job = outcome.Conversion
    if job is None or outcome.Status != UploadStatus.CONVERTING:
        return False
    quiet = timedelta(seconds=policy.step_seconds + policy.stall_seconds)
    return now - job.Updated > quiet


def size_gb(n: int) -> int:
    return math.ceil(n / GIB)


Writer = Callable[[int, bytes], None]
