"""Capture a VM into an image (Save-AzureVMImage), safe to run any number of times.

Steps, each idempotent so that a repeated or resumed delivery finishes the job:
find the VM (it must be stopped) -> snapshot each disk and copy the snapshot
server-side into `images/<image>/<operation>/<role>.vhd` (deterministic names, tagged with
the operation id) -> check every copy is complete and that its 4 MiB block hashes
equal its snapshot's (both read by page ranges) -> protect the copies with
the catalog's lease -> publish the image (one atomic catalog write) -> only
then delete the VM and its disks (no OSState, or Generalized) -> mark the
operation Succeeded. A permanent error fails the operation and removes this
operation's copies; a transient storage error is raised so the queue retries.
Only the hash comparison reads disk bytes, and only the ranges that hold data.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobServiceClient

from shared.adapters.blobs import (
    BlobDiskGuard,
    BlobFacts,
    BlobRangeReader,
    delete_protected,
    facts,
)
from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.disk_hashing import block_hashes, data_size_of
from shared.adapters.operations_table import Operations
from shared.adapters.vms_table import VmInventory
from shared.domain.captures import (
    CaptureRequest,
    InvalidCaptureRequest,
    OperationIdConflict,
    decode_message,
    operation_id_in,
    parse_capture,
)
from shared.domain.content_hash import BLOCK_SIZE
from shared.domain.disks import MediaLinkElsewhere, parse_media_link
from shared.domain.errors import CatalogError, InvalidParameter, NotFound
from shared.domain.images import (
    DataDisk,
    DiskInUse,
    DiskState,
    Image,
    ImageCategory,
    ImageKind,
    ImageNameTaken,
    ImageSource,
    OSDisk,
)
from shared.domain.operations import Operation, new_operation_id
from shared.domain.uploads import utcnow
from shared.domain.vhd import VhdRejected, validate_vhd
from shared.domain.vms import VirtualMachine, VmNotStopped, VmState
from shared.services.registration import owner_of_operation, publish
from shared.telemetry import log_event

log = logging.getLogger(__name__)
GIB = 1024**3
TAG = "captureop"
RESEND_AFTER = timedelta(minutes=5)  # a queued capture nobody has touched for this long


class DiskBlobNotFound(NotFound):
    code = "DiskBlobNotFound"


class DiskNotInAccount(InvalidParameter):
    code = "DiskNotInAccount"


class NotAVmDisk(InvalidParameter):
    """A capture takes only VM disks: fixed-VHD page blobs in the VM disk containers."""

    code = "NotAVmDisk"


class CopyFailed(CatalogError):
    code = "CopyFailed"
    status = 500


@dataclass
class CaptureDeps:
    blobs: BlobServiceClient
    images_container: str
    catalog: ImageCatalog
    vms: VmInventory
    operations: Operations
    before_step: Callable[[str], None] | None = None  # tests: "kill" the worker at a step
    copy_timeout_seconds: float = 1800.0
    vm_disk_containers: tuple[str, ...] = ("vhds",)  # where VM disks live (VHDS_CONTAINER)
    max_disk_bytes: int = 32767 * GIB

    def step(self, name: str, op: Operation) -> Operation:
        if self.before_step is not None:
            self.before_step(name)
        op = op.model_copy(update={"Step": name, "UpdatedTime": utcnow()})
        self.operations.save(op)
        return op


def start_operation(request: CaptureRequest, operation_id: str, ops: Operations) -> Operation:
    """The operation of this request: created, or the one a repeat of it created.
    OperationIdConflict when the id belongs to a different request."""
    op = Operation(
        OperationId=operation_id,
        Kind="CaptureVM",
        ImageName=request.ImageName,
        ServiceName=request.ServiceName,
        VMName=request.Name,
        Step="Queued",
        RequestFingerprint=request.fingerprint,
    )
    op, created = ops.create(op)
    # Another kind of operation (a classic call's request id) is another request too.
    if not created and (
        op.Kind != "CaptureVM" or op.RequestFingerprint not in (None, request.fingerprint)
    ):
        raise OperationIdConflict(
            f"the operation id '{operation_id}' was used for another request (image "
            f"'{op.ImageName}' from {op.ServiceName}/{op.VMName}); an OperationId names one "
            "request: send the same body to repeat it, or use a new id"
        )
    return op


def run_capture(request: CaptureRequest, operation_id: str, deps: CaptureDeps) -> Operation:
    """Run (or finish) the capture; returns its final operation record."""
    op = start_operation(request, operation_id, deps.operations)
    if op.final:
        return op  # a repeated delivery of a finished request
    try:
        op = _capture(request, op, deps)
    except CatalogError as e:
        if _published_by(request, op.OperationId, deps):
            # A twin delivery published it (and may have deleted the VM since we read it):
            # the operation is that delivery's to finish, never to fail here.
            return deps.operations.get(op.OperationId)
        _discard_copies(request, op.OperationId, deps)
        if _published_by(request, op.OperationId, deps):  # by a twin, before it was fenced
            return deps.operations.get(op.OperationId)
        op = op.fail(e.code, e.message, e.status)
        deps.operations.save(op)
    log_event(
        log,
        "capture %s -> %s: %s",
        op.OperationId,
        request.ImageName,
        op.Status,
        operation_id=op.OperationId,
        image_name=request.ImageName,
    )
    return op


def _published_by(request: CaptureRequest, op_id: str, deps: CaptureDeps) -> bool:
    image = deps.catalog.find(request.ImageName)
    return image is not None and image.SourceOperation == op_id


def fail_after_retries(
    request: CaptureRequest, operation_id: str, deps: CaptureDeps, why: str
) -> Operation:
    """The last delivery hit a transient error too: give up cleanly."""
    op = start_operation(request, operation_id, deps.operations)
    if op.final:
        return op
    _discard_copies(request, op.OperationId, deps)
    if _published_by(request, op.OperationId, deps):
        return deps.operations.get(op.OperationId)
    op = op.fail("CaptureRetriesExhausted", f"the capture kept failing: {why}", 503)
    deps.operations.save(op)
    return op


def _target(deps: CaptureDeps, request: CaptureRequest, op_id: str, role: str) -> BlobClient:
    # The operation id in the path: two captures racing for one name never share a blob.
    name = f"{request.ImageName.lower()}/{op_id}/{role}.vhd"
    return deps.blobs.get_blob_client(deps.images_container, name)


def _roles(vm: VirtualMachine, request: CaptureRequest) -> list[tuple[str, str]]:
    disks = [("os", vm.OSDisk.MediaLink)]
    if request.OSState is not None:
        disks += [(f"lun{d.Lun}", d.MediaLink) for d in vm.DataDisks]
    return disks


def _source(deps: CaptureDeps, url: str) -> BlobClient:
    """The blob a MediaLink names, which must be in this catalog's storage account.

    A link that names no blob of ours is a CatalogError: the capture fails at once."""
    try:
        container, blob = parse_media_link(url, deps.blobs.url)
    except MediaLinkElsewhere as e:
        raise DiskNotInAccount(f"{e.message} (copy the disk into it first)") from None
    return deps.blobs.get_blob_client(container, blob)


def _capture(request: CaptureRequest, op: Operation, deps: CaptureDeps) -> Operation:
    op = deps.step("ReadVM", op)
    published = deps.catalog.find(request.ImageName)
    if published is not None and published.SourceOperation != op.OperationId:
        raise ImageNameTaken(f"an image named '{request.ImageName}' already exists")
    if published is None:  # otherwise an earlier delivery got as far as publishing
        op = _copy_and_publish(request, deps.vms.get(request.ServiceName, request.Name), op, deps)
    op = deps.step("PostCapture", op)
    vm = deps.vms.find(request.ServiceName, request.Name)
    if vm is not None:  # also when an earlier delivery died between publishing and this
        for url in vm.disk_links:
            with contextlib.suppress(CatalogError, ResourceNotFoundError):
                _drop_snapshots(_source(deps, url), op.OperationId, deps)
    if request.OSState != DiskState.SPECIALIZED:
        _delete_vm(request, deps)
    image = deps.catalog.find(request.ImageName)
    if image is None or image.SourceOperation != op.OperationId:
        # Published, then removed by its owner before this step: the capture did its work.
        op = op.succeed(ImageName=request.ImageName, Step="Done", Details={"Removed": True})
    else:
        op = op.succeed(
            ImageName=image.ImageName,
            Step="Done",
            Details={"ImageType": image.ImageType, "Disks": image.disk_blobs},
        )
    deps.operations.save(op)
    return op


def _copy_and_publish(
    request: CaptureRequest, vm: VirtualMachine, op: Operation, deps: CaptureDeps
) -> Operation:
    if vm.State == VmState.RUNNING:
        raise VmNotStopped(
            f"VM '{request.Name}' in '{request.ServiceName}' is {vm.State}; stop it "
            "(Stop-AzureVM) before capturing it"
        )
    pairs = [
        (role, _source(deps, url), _target(deps, request, op.OperationId, role))
        for role, url in _roles(vm, request)
    ]
    sizes = {role: _vm_disk(deps, role, src).size for role, src, _dst in pairs}
    op = deps.step("CopyDisks", op)
    for _role, src, dst in pairs:
        _copy(src, dst, op.OperationId, deps)
    op = deps.step("VerifyCopies", op)
    for role, _src, dst in pairs:
        _verify(dst, sizes[role], op.OperationId)
    op = deps.step("CompareHashes", op)
    for role, src, dst in pairs:
        _compare_hashes(deps, role, src, dst, sizes[role], op.OperationId)
    op = deps.step("Publish", op)
    image = _image(request, vm, op.OperationId, {r: d for r, _s, d in pairs}, sizes)
    # Claims and leases the copies, then publishes: one image per operation, however often.
    publish(deps.catalog, BlobDiskGuard.of_account(deps.blobs), image)
    return op


def _vm_disk(deps: CaptureDeps, role: str, src: BlobClient) -> BlobFacts:
    """Check a source disk before anything is copied: a fixed-VHD page blob in a VM disk
    container (never a blob receipt, an upload, or an image's copy)."""
    where = f"the {role} disk {src.container_name}/{src.blob_name}"
    if src.container_name not in deps.vm_disk_containers:
        raise NotAVmDisk(
            f"{where} is not in a VM disk container ({', '.join(deps.vm_disk_containers)}); "
            "a capture takes only VM disks"
        )
    found = facts(src)
    if found is None:
        raise DiskBlobNotFound(f"{where} does not exist")
    if found.blob_type != "PageBlob":
        raise NotAVmDisk(f"{where} is a {found.blob_type}; VM disks are page blobs")
    try:
        validate_vhd(
            BlobRangeReader(src, found.size, found.etag), max_size_bytes=deps.max_disk_bytes
        )
    except VhdRejected as e:
        raise NotAVmDisk(f"{where} is not a fixed VHD: {e.code}: {e.message}") from e
    return found


def _copy(src: BlobClient, dst: BlobClient, op_id: str, deps: CaptureDeps) -> None:
    existing = facts(dst)
    if existing is not None and existing.metadata.get(TAG) == op_id:
        return  # copied by an earlier delivery of this operation
    snapshot = src.create_snapshot(metadata={TAG: op_id})
    source_url = f"{src.url}?snapshot={snapshot['snapshot']}"
    dst.start_copy_from_url(source_url, metadata={TAG: op_id})
    deadline = time.monotonic() + deps.copy_timeout_seconds
    delay = 0.2
    while True:
        copy = dst.get_blob_properties().copy
        status = str(getattr(copy.status, "value", copy.status) or "success")
        if status == "success":
            return
        if status in ("failed", "aborted"):
            raise CopyFailed(f"copying {src.url} failed: {copy.status_description}")
        if time.monotonic() > deadline:
            raise CopyFailed(f"copying {src.url} did not finish in {deps.copy_timeout_seconds:g}s")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def _verify(dst: BlobClient, expected_size: int, op_id: str) -> None:
    props = dst.get_blob_properties()
    status = str(getattr(props.copy.status, "value", props.copy.status) or "success")
    if (
        status != "success"
        or props.size != expected_size
        or (props.metadata or {}).get(TAG) != op_id
    ):
        raise CopyFailed(f"the copy {dst.url} is not complete ({status}, {props.size} bytes)")


def _snapshot_of(deps: CaptureDeps, src: BlobClient, dst: BlobClient, op_id: str) -> BlobClient:
    """The snapshot the copy was made from: its copy source, else the newest snapshot of
    the source disk this operation took."""
    source = dst.get_blob_properties().copy.source or ""
    taken = parse_qs(urlsplit(source).query).get("snapshot")
    if not taken:
        container = deps.blobs.get_container_client(src.container_name)
        taken = sorted(
            b.snapshot
            for b in container.list_blobs(
                name_starts_with=src.blob_name, include=["snapshots", "metadata"]
            )
            if b.name == src.blob_name and b.snapshot and (b.metadata or {}).get(TAG) == op_id
        )[-1:]
    if not taken:
        raise CopyFailed(f"the snapshot {dst.url} was copied from is gone: capture again")
    return deps.blobs.get_blob_client(src.container_name, src.blob_name, snapshot=taken[0])


def _compare_hashes(
    deps: CaptureDeps, role: str, src: BlobClient, dst: BlobClient, size: int, op_id: str
) -> None:
    """The copy's 4 MiB block hashes must equal its snapshot's (each read by its page
    ranges: the data only), or nothing is published."""
    snapshot = _snapshot_of(deps, src, dst, op_id)
    try:
        expected, _ = block_hashes(snapshot, data_size_of(size))
    except ResourceNotFoundError:
        raise CopyFailed(f"the snapshot of the {role} disk is gone: capture again") from None
    copied, _ = block_hashes(dst, data_size_of(size))
    differ = expected.differences(copied)
    if differ:
        raise CopyFailed(
            f"the copy of the {role} disk differs from its snapshot in {len(differ)} block(s) "
            f"of 4 MiB (the first at byte {differ[0] * BLOCK_SIZE}); nothing was published"
        )


def _image(
    request: CaptureRequest,
    vm: VirtualMachine,
    op_id: str,
    targets: dict[str, BlobClient],
    sizes: dict[str, int],
) -> Image:
    def gb(role: str) -> int:
        return max(1, math.ceil((sizes[role] - 512) / GIB))

    def link(role: str) -> str:
        return targets[role].url.split("?")[0]

    def blob(role: str) -> str:
        t = targets[role]
        return f"{t.container_name}/{t.blob_name}"

    vm_image = request.OSState is not None
    state = DiskState(request.OSState) if vm_image else DiskState.GENERALIZED
    return Image(
        ImageName=request.ImageName,
        ImageType=ImageKind.VM if vm_image else ImageKind.OS,
        Label=request.label,
        Description=request.Description
        or f"Captured from VM {request.Name} in {request.ServiceName}",
        ImageFamily=request.ImageFamily,
        RecommendedVMSize=request.RecommendedVMSize,
        OS=vm.OSDisk.OS,
        Category=ImageCategory.USER,
        PublishedDate=utcnow(),
        LogicalSizeInGB=gb("os"),
        MediaLink=None if vm_image else link("os"),
        OSDiskConfiguration=OSDisk(
            OS=vm.OSDisk.OS,
            OSState=state,
            HostCaching=vm.OSDisk.HostCaching,
            MediaLink=link("os"),
            LogicalDiskSizeInGB=gb("os"),
            SourceBlob=blob("os"),
        ),
        DataDiskConfigurations=[
            DataDisk(
                Lun=d.Lun,
                HostCaching=d.HostCaching,
                MediaLink=link(f"lun{d.Lun}"),
                LogicalDiskSizeInGB=gb(f"lun{d.Lun}"),
                SourceBlob=blob(f"lun{d.Lun}"),
            )
            for d in (vm.DataDisks if vm_image else [])
        ],
        Source=ImageSource.CAPTURE,
        SourceOperation=op_id,
        SourceVM=f"{request.ServiceName}/{request.Name}",
    )


def _drop_snapshots(src: BlobClient, op_id: str, deps: CaptureDeps) -> None:
    """Delete the snapshots this operation took of a source disk."""
    container = deps.blobs.get_container_client(src.container_name)
    for b in container.list_blobs(
        name_starts_with=src.blob_name, include=["snapshots", "metadata"]
    ):
        if b.name == src.blob_name and b.snapshot and (b.metadata or {}).get(TAG) == op_id:
            with contextlib.suppress(ResourceNotFoundError):
                container.get_blob_client(b.name, snapshot=b.snapshot).delete_blob()


def _delete_vm(request: CaptureRequest, deps: CaptureDeps) -> None:
    """After publishing: the VM and its disks go (classic PostCaptureAction=Delete).

    A disk is deleted only when this VM record is the only thing naming it: never
    one an image holds, one another VM record names, or one that is not a VM disk.
    """
    try:
        vm = deps.vms.get(request.ServiceName, request.Name)
    except NotFound:
        return  # deleted by an earlier delivery
    for url in vm.disk_links:
        try:
            src = _source(deps, url)
            why_not = _why_keep(deps, vm, url, src)
            if why_not is not None:
                log_event(
                    log,
                    "kept the VM disk %s: %s",
                    url,
                    why_not,
                    level=logging.WARNING,
                    image_name=request.ImageName,
                )
                continue
            src.delete_blob(delete_snapshots="include")
        except ResourceNotFoundError:
            pass
        except (HttpResponseError, CatalogError) as e:
            log_event(
                log,
                "could not delete the VM disk %s: %s",
                url,
                e,
                level=logging.WARNING,
                image_name=request.ImageName,
            )
    with contextlib.suppress(ResourceNotFoundError):
        deps.vms.delete(request.ServiceName, request.Name)


def _why_keep(deps: CaptureDeps, vm: VirtualMachine, url: str, src: BlobClient) -> str | None:
    """Why this VM disk must not be deleted with its VM, or None when it may."""
    path = f"{src.container_name}/{src.blob_name}"
    holder = deps.catalog.holder(path)
    if holder is not None:
        return f"the image '{holder}' holds it"
    others = [o for o in deps.vms.users_of(url) if o != (vm.ServiceName.lower(), vm.Name.lower())]
    if others:
        return f"the VM record {others[0][0]}/{others[0][1]} names it too"
    try:
        _vm_disk(deps, "VM", src)
    except NotAVmDisk as e:
        return e.message
    return None


def _discard_copy(deps: CaptureDeps, copy: BlobClient, op_id: str) -> None:
    """Delete one of this operation's copies, with the lease of this operation's claim
    on it if an interrupted attempt left one (an image's copy is never touched)."""
    path = f"{copy.container_name}/{copy.blob_name}"
    held = deps.catalog.claim_of(path)
    if held is not None:
        if held.get("Owner") != owner_of_operation(op_id):
            return
        try:  # a twin delivery may be publishing it: it can't commit once this returns
            deps.catalog.end_claim(held, owner_of_operation(op_id))
        except DiskInUse:
            return  # it has: the copy is that image's
    # Under the claim's lease, or one of the claims it replaced that a twin leased it under.
    lease_ids = [None] if held is None else deps.catalog.lease_ids_of(held)
    if any(delete_protected(copy, lease_id) for lease_id in lease_ids) and held is not None:
        deps.catalog.unclaim([path], held["Change"])


def _discard_copies(request: CaptureRequest, op_id: str, deps: CaptureDeps) -> None:
    """Remove this operation's copies and snapshots, unless an image of this operation uses them."""
    image = deps.catalog.find(request.ImageName)
    if image is not None and image.SourceOperation == op_id:
        return
    container = deps.blobs.get_container_client(deps.images_container)
    for b in container.list_blobs(
        name_starts_with=f"{request.ImageName.lower()}/", include=["metadata"]
    ):
        if (b.metadata or {}).get(TAG) == op_id:
            _discard_copy(deps, container.get_blob_client(b.name), op_id)
    try:
        vm = deps.vms.get(request.ServiceName, request.Name)
    except NotFound:
        return
    for url in [vm.OSDisk.MediaLink, *(d.MediaLink for d in vm.DataDisks)]:
        with contextlib.suppress(CatalogError, HttpResponseError):
            _drop_snapshots(_source(deps, url), op_id, deps)


@dataclass
class MessageOutcome:
    operation: Operation
    keep_raw: str | None = None  # text to park in the poison queue


def handle_capture_message(
    body: bytes, message_id: str, dequeue_count: int, deps: CaptureDeps, max_attempts: int
) -> MessageOutcome:
    """One delivery of a queue message: never a crash loop for a bad message."""
    raw = body.decode("utf-8", "replace")
    op_id = f"msg-{message_id}"  # the same message delivered twice is the same operation
    try:
        doc = decode_message(body)
        op_id = operation_id_in(doc) or op_id
        request = parse_capture(doc)
    except InvalidCaptureRequest as e:
        op = Operation(OperationId=op_id, Kind="CaptureVM", Request=raw[:8192])
        op, created = deps.operations.create(op)
        if not created and op.Request != raw[:8192]:
            # The id is another request's: fail a duplicate of this message's own, not that.
            dup_id = f"msg-{message_id}"[:64]
            dup = Operation(OperationId=dup_id, Kind="CaptureVM", Request=raw[:8192])
            op, _ = deps.operations.create(dup)
        if not op.final:
            op = op.fail(e.code, e.message, 400, Request=raw[:8192])
            deps.operations.save(op)
        return MessageOutcome(op, keep_raw=raw)
    try:
        return MessageOutcome(run_capture(request, op_id, deps))
    except OperationIdConflict as e:  # never a second image: a failed duplicate of its own
        dup = Operation(
            OperationId=f"msg-{message_id}"[:64],
            Kind="CaptureVM",
            ImageName=request.ImageName,
            ServiceName=request.ServiceName,
            VMName=request.Name,
            Request=raw[:8192],
        )
        dup, _ = deps.operations.create(dup)
        if not dup.final:
            dup = dup.fail(e.code, e.message, e.status)
            deps.operations.save(dup)
        return MessageOutcome(dup)
    except Exception as e:  # transient: let the queue retry, unless this was the last try
        if dequeue_count >= max_attempts:
            return MessageOutcome(
                fail_after_retries(request, op_id, deps, f"{type(e).__name__}: {e}")
            )
        raise


def submit_capture(
    doc: Any, deps: CaptureDeps, send: Callable[[dict[str, Any]], None]
) -> Operation:
    """`POST /api/captures`: validate, check what can be checked now, record the operation,
    enqueue. Idempotent by OperationId: the same body again is the same operation (a
    finished one is not sent again); another body with that id is OperationIdConflict."""
    request = parse_capture(doc)
    op_id = request.OperationId or new_operation_id()
    existing = deps.operations.find(op_id)
    if existing is None or existing.RequestFingerprint != request.fingerprint:
        _check_now(request, op_id, deps)
    op = start_operation(request, op_id, deps.operations)
    # A repeat is answered with the operation, not sent again (twin deliveries only race
    # each other), unless the first message looks lost: nothing has moved for a while.
    lost = not op.final and utcnow() - op.UpdatedTime > RESEND_AFTER
    if existing is None or lost:
        send({**request.model_dump(mode="json", exclude_none=True), "OperationId": op_id})
    return op


def _check_now(request: CaptureRequest, op_id: str, deps: CaptureDeps) -> None:
    """What a new capture would fail on anyway: answered at once (409 or 404), not as a
    202 followed by a failed operation."""
    published = deps.catalog.find(request.ImageName)
    if published is not None and published.SourceOperation != op_id:
        raise ImageNameTaken(
            f"an image named '{published.ImageName}' already exists; choose another name"
        )
    vm = deps.vms.get(request.ServiceName, request.Name)
    if vm.State == VmState.RUNNING:
        raise VmNotStopped(
            f"VM '{request.Name}' in '{request.ServiceName}' is {vm.State}; stop it "
            "(Stop-AzureVM) before capturing it"
        )
