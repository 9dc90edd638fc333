"""Register an upload: judge a dropped blob and turn it into an image, or say why not.

One entry, `examine_upload`, serves the blob trigger (Event Grid fires once,
the local scanner on every new ETag) and the delayed re-checks alike. It is
idempotent: the same blob version examined again answers the same outcome.
Disks are only ever read by ranged reads; the uploaded blob is never written,
only leased once it is registered.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from azure.core.exceptions import ResourceModifiedError
from azure.storage.blob import BlobClient, ContainerClient
from pydantic import ValidationError

from shared.adapters.blobs import BlobDiskGuard, BlobFacts, BlobRangeReader, facts
from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.queues import ConversionSteps
from shared.adapters.uploads_table import UploadOutcomes
from shared.domain.conversion import convertible
from shared.domain.disk_probe import DiskProbe, check_partitions_fit, probe_disk
from shared.domain.errors import CatalogError, describe_validation_error
from shared.domain.images import (
    FAMILY,
    DataDisk,
    DiskState,
    Image,
    ImageKind,
    ImageNameTaken,
    ImageSource,
    InvalidImageName,
    OSDisk,
    OSType,
    image_name_from_blob,
    parse_choice,
    validate_image_name,
)
from shared.domain.uploads import (
    DISK_EXTENSIONS,
    ErrorInfo,
    InvalidMetadata,
    NotAPageBlob,
    OSNotDetermined,
    UnsupportedFileType,
    UploadIncomplete,
    UploadKind,
    UploadOutcome,
    UploadStatus,
    VmImageManifest,
    check_declared,
    declared_flag,
    is_settled,
    recheck_delay,
    timed_out,
    upload_kind,
    utcnow,
)
from shared.domain.vhd import (
    MissingVhdFooter,
    NotADisk,
    RawDiskWithoutFooter,
    VhdFooter,
    VhdRejected,
    validate_vhd,
)
from shared.services.conversion import ConversionPolicy, stalled, start_conversion
from shared.services.registration import publish
from shared.telemetry import log_event

log = logging.getLogger(__name__)
GIB = 1024**3


class Rechecks(Protocol):
    def schedule(self, blob_name: str, delay_seconds: float) -> None: ...


@dataclass(frozen=True)
class UploadPolicy:
    settle_seconds: float = 15.0
    timeout_seconds: float = 3600.0
    max_os_disk_bytes: int = 2048 * GIB  # a Gen1 OS disk
    max_data_disk_bytes: int = 32767 * GIB

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> UploadPolicy:
        e = os.environ if env is None else env
        return cls(
            settle_seconds=float(e.get("UPLOAD_SETTLE_SECONDS", cls.settle_seconds)),
            timeout_seconds=float(e.get("UPLOAD_TIMEOUT_SECONDS", cls.timeout_seconds)),
            max_os_disk_bytes=int(float(e.get("MAX_OS_DISK_GB", 2048)) * GIB),
            max_data_disk_bytes=int(float(e.get("MAX_DATA_DISK_GB", 32767)) * GIB),
        )


@dataclass
class UploadDeps:
    uploads: ContainerClient
    outcomes: UploadOutcomes
    catalog: ImageCatalog
    rechecks: Rechecks
    policy: UploadPolicy = field(default_factory=UploadPolicy)
    clock: Callable[[], datetime] = utcnow
    # Conversions: where the fixed VHDs made of other disk images go, and their job steps.
    images: ContainerClient | None = None
    conversions: ConversionSteps | None = None
    conversion: ConversionPolicy = field(default_factory=ConversionPolicy)
    before_step: Callable[[str], None] | None = None  # tests: "kill" a job at a step


class _StillWriting(Exception):
    def __init__(self, reason: str, delay: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


def examine_upload(client: BlobClient, deps: UploadDeps) -> UploadOutcome | None:
    """Judge the blob's current version; returns its outcome (None if the blob is gone)."""
    now = deps.clock()
    blob = facts(client)
    prior, prior_row = deps.outcomes.get_versioned(client.blob_name)
    if blob is None:
        return prior
    if (
        prior is not None
        and prior.ETag == blob.etag
        and (prior.final or prior.Conversion is not None)
    ):
        # Judged, or being converted: never start this version's job twice. A job whose
        # chain of steps was lost (no checkpoint for long) is carried on.
        if deps.conversions is not None and stalled(prior, now, deps.conversion):
            deps.conversions.schedule(blob.name, blob.etag, 0)
        return prior
    outcome = UploadOutcome(
        BlobName=blob.name,
        Kind=upload_kind(blob.name),
        Status=UploadStatus.PENDING,
        ETag=blob.etag,
        BlobType=blob.blob_type,
        SizeInBytes=blob.size,
        FirstSeen=prior.FirstSeen if prior else now,
        LastChecked=now,
    )
    try:
        _judge(client, blob, outcome, deps, now)
    except _StillWriting as w:
        outcome.Status = UploadStatus.PENDING
        outcome.Reason = w.reason
        _schedule(outcome, prior, blob, deps, now, w.delay)
    except CatalogError as e:
        outcome.Status = UploadStatus.REJECTED
        outcome.Error = ErrorInfo(Code=e.code, Message=e.message)
        outcome.CompletedTime = now
    if outcome.Status == UploadStatus.CONVERTING:
        assert deps.conversions is not None
        # The first step is queued before the job is written: a step that finds no job
        # judges the upload again, so a worker killed in between loses nothing.
        deps.conversions.schedule(blob.name, blob.etag, 1)
        if deps.before_step is not None:
            deps.before_step("Start")
        if deps.outcomes.put_if(outcome, prior_row) is None:
            return deps.outcomes.get(client.blob_name)  # a twin delivery started it
        return outcome
    deps.outcomes.put(outcome)
    log_event(
        log,
        "upload %s (%s): %s%s",
        blob.name,
        blob.etag,
        outcome.Status,
        f" {outcome.Error.Code}" if outcome.Error else f" {outcome.ImageName or outcome.Reason}",
        image_name=outcome.ImageName,
        blob_name=blob.name,
    )
    return outcome


def _schedule(
    outcome: UploadOutcome,
    prior: UploadOutcome | None,
    blob: BlobFacts,
    deps: UploadDeps,
    now: datetime,
    wait: float,
) -> None:
    """One re-check chain per blob: don't start another while one is on its way.

    A check due within the next seconds counts as arriving now: a re-check message
    may come a little before its time (queue and worker clocks differ), and it
    must then carry the chain on rather than end it. The delay backs off while the
    blob is left untouched (`recheck_delay`), and the last check falls just past
    the time limit.
    """
    due_soon = now + timedelta(seconds=2)
    if prior is not None and prior.NextCheck is not None and prior.NextCheck > due_soon:
        outcome.NextCheck = prior.NextCheck
        return
    deadline = blob.created + timedelta(seconds=deps.policy.timeout_seconds)
    idle = max(0.0, (now - blob.last_modified).total_seconds())
    # One second past the deadline: `timed_out` asks for strictly more than the limit.
    until_deadline = (deadline - now).total_seconds() + 1.0
    delay = float(math.ceil(recheck_delay(wait, idle, until_deadline)))
    outcome.NextCheck = now + timedelta(seconds=delay)
    deps.rechecks.schedule(outcome.BlobName, delay)


def _judge(
    client: BlobClient, blob: BlobFacts, outcome: UploadOutcome, deps: UploadDeps, now: datetime
) -> None:
    policy = deps.policy
    if outcome.Kind == UploadKind.OTHER:
        raise UnsupportedFileType(
            f"'{blob.name}' is neither a disk image ({', '.join(DISK_EXTENSIONS)}, in any "
            "letter case) nor a VM image manifest (*.image.json). Upload the disk under a "
            "name with one of those extensions."
        )
    if outcome.Kind == UploadKind.MANIFEST:
        _register_manifest(client, blob, outcome, deps, now)
        return
    if blob.blob_type == "AppendBlob":
        raise NotAPageBlob(
            f"'{blob.name}' was uploaded as an append blob; upload disks as block blobs "
            "(`az storage blob upload`) or page blobs (`--type page`, `vmimage upload`)."
        )
    if blob.blob_type != "PageBlob":
        # Committed at once, so judged now: a fixed VHD, or a disk image the fixed-VHD check
        # takes for one, is converted (to a page blob); the check's other verdicts stand.
        reader = BlobRangeReader(client, blob.size, blob.etag)
        try:
            validate_vhd(reader, max_size_bytes=2**63)
        except VhdRejected as e:
            if not convertible(e):
                raise
        finally:
            outcome.BytesRead = reader.bytes_read
        _convert(client, blob, outcome, deps, now, reader)
        return
    settled, wait = is_settled(blob.last_modified, blob.metadata, now, policy.settle_seconds)
    if not settled:
        _unless_timed_out(blob, now, policy)
        raise _StillWriting(
            f"upload in progress: judged once the blob has not changed for "
            f"{policy.settle_seconds:g}s (or when its metadata says uploadstate=complete)",
            wait,
        )
    max_bytes = (
        policy.max_data_disk_bytes
        if outcome.Kind == UploadKind.VM_DISK
        else policy.max_os_disk_bytes
    )
    reader = BlobRangeReader(client, blob.size, blob.etag)
    try:
        footer = validate_vhd(reader, max_size_bytes=max_bytes)
        probe = probe_disk(reader, disk_size=footer.current_size)
    except ResourceModifiedError as e:
        raise _StillWriting("the blob changed while it was being read", 1.0) from e
    except VhdRejected as e:
        if isinstance(e, MissingVhdFooter) and _footer_maybe_on_its_way(e, blob, reader):
            _unless_timed_out(blob, now, policy)
            raise _StillWriting(
                "no VHD footer yet (the last 512 bytes are still empty)",
                policy.settle_seconds,
            ) from None
        if not convertible(e):
            raise
        convert = True
    else:
        convert = False
    finally:
        outcome.BytesRead = reader.bytes_read
    if convert:
        # Not a fixed VHD, but another disk image (or a VHD of an odd size): convert it.
        _convert(client, blob, outcome, deps, now, reader)
        return
    outcome.VirtualSizeInBytes = footer.current_size
    outcome.Detected = _detected(probe)
    outcome.Warnings = list(probe.warnings)
    check_partitions_fit(probe)  # OS and data disks alike: a cut-short disk is broken
    if outcome.Kind == UploadKind.VM_DISK:
        outcome.Reason = "validated; it becomes part of a VM image when its manifest is registered"
        return
    image = _image_from_upload(client, blob, footer, probe, outcome)
    _register(image, deps)
    outcome.Status = UploadStatus.REGISTERED
    outcome.ImageName = image.ImageName
    outcome.Warnings = list(image.Warnings)
    outcome.CompletedTime = now


def _convert(
    client: BlobClient,
    blob: BlobFacts,
    outcome: UploadOutcome,
    deps: UploadDeps,
    now: datetime,
    judged: BlobRangeReader | None,
) -> None:
    """Make the upload a conversion job, or reject it before any data moves."""
    if deps.images is None or deps.conversions is None:
        raise RuntimeError("conversions are not set up (UploadDeps.images, .conversions)")
    if outcome.Kind == UploadKind.DISK:
        _image_name(blob)  # a bad name or metadata is known now, not after the conversion
        _declared_os_state(blob)
    reader = BlobRangeReader(client, blob.size, blob.etag)
    already = judged.bytes_read if judged is not None else 0
    try:
        start_conversion(
            outcome,
            blob,
            reader,
            max_os_bytes=deps.policy.max_os_disk_bytes,
            max_data_bytes=deps.policy.max_data_disk_bytes,
            now=now,
            bytes_read=already,
        )
    finally:
        outcome.BytesRead = already + reader.bytes_read
    if outcome.Conversion is not None:
        outcome.Conversion.BytesRead = outcome.BytesRead or 0
    if outcome.Kind == UploadKind.DISK:
        name = _image_name(blob)
        if deps.catalog.find(name) is not None:
            raise ImageNameTaken(
                f"an image named '{name}' already exists; upload under another name or set "
                "the blob metadata imagename"
            )


def _footer_maybe_on_its_way(e: MissingVhdFooter, blob: BlobFacts, reader: BlobRangeReader) -> bool:
    """Could this still become a fixed VHD once its last page is written?

    Only if nothing else was recognised, the size is a whole number of MiB plus
    a footer, and the last sector was never written (reads as zeros).
    """
    if type(e) not in (MissingVhdFooter, RawDiskWithoutFooter, NotADisk):
        return False
    if blob.size < 512 or (blob.size - 512) % (1024 * 1024) != 0:
        return False
    return not any(reader.read(blob.size - 512, 512))


def _unless_timed_out(blob: BlobFacts, now: datetime, policy: UploadPolicy) -> None:
    if timed_out(blob.created, now, policy.timeout_seconds):
        raise UploadIncomplete(
            f"the upload of '{blob.name}' did not finish within {policy.timeout_seconds:g}s of "
            "its creation (it kept changing, or its VHD footer never arrived). Upload it again; "
            "if your tool can, set the metadata uploadstate=complete when it is done."
        )


def _detected(probe: DiskProbe) -> dict[str, Any]:
    d = probe.to_dict()
    d.pop("warnings", None)
    return d


def _declared(blob: BlobFacts) -> dict[str, str]:
    return {k: v.strip() for k, v in blob.metadata.items() if v and v.strip()}


def _family_from(probe: DiskProbe) -> str | None:
    rel = probe.os_release
    name = rel.get("NAME")
    version = rel.get("VERSION_ID")
    family = f"{name} {version}" if name and version else None
    try:  # read off the disk: a name no family may have is no family
        return FAMILY.check(family) if family else None
    except ValueError:
        return None


def _image_name(blob: BlobFacts) -> str:
    """The image's name: the metadata's `imagename`, else the blob's name."""
    declared = _declared(blob)
    check_declared(declared)
    name = declared.get("imagename")
    if name is None:
        return image_name_from_blob(blob.name)
    try:
        return validate_image_name(name)
    except InvalidImageName as e:
        raise InvalidImageName(f"blob metadata imagename: {e.message}") from None


def _declared_os_state(blob: BlobFacts) -> tuple[OSType | None, DiskState]:
    declared = _declared(blob)
    try:
        declared_os = parse_choice(declared["os"], OSType, "os") if "os" in declared else None
        state = parse_choice(declared.get("osstate", "Generalized"), DiskState, "osstate")
    except CatalogError as e:
        raise InvalidMetadata(f"blob metadata: {e.message}") from e
    return declared_os, state


@dataclass(frozen=True)
class _Disk:
    path: str  # container/blob
    url: str
    size: int  # virtual, bytes


def _image_from_upload(
    client: BlobClient, blob: BlobFacts, footer: VhdFooter, probe: DiskProbe, outcome: UploadOutcome
) -> Image:
    disk = _Disk(f"{blob.container}/{blob.name}", client.url.split("?")[0], footer.current_size)
    return _image_over(blob, disk, [], probe, outcome)


def image_from_converted(
    client: BlobClient,
    blob: BlobFacts,
    outcome: UploadOutcome,
    checked: list[tuple[Any, VhdFooter, DiskProbe]],
    deps: UploadDeps,
) -> Image:
    """The image of a converted upload: over its fixed VHDs (the OS disk first)."""
    assert deps.images is not None
    disks = [
        _Disk(
            f"{deps.images.container_name}/{d.Target}",
            deps.images.get_blob_client(d.Target).url.split("?")[0],
            footer.current_size,
        )
        for d, footer, _ in checked
    ]
    return _image_over(blob, disks[0], disks[1:], checked[0][2], outcome)


def _image_over(
    blob: BlobFacts,
    os_disk: _Disk,
    data_disks: list[_Disk],
    probe: DiskProbe,
    outcome: UploadOutcome,
) -> Image:
    declared = _declared(blob)
    name = _image_name(blob)
    warnings = list(probe.warnings)
    declared_os, state = _declared_os_state(blob)
    detected_os = OSType(probe.os) if probe.os in ("Linux", "Windows") else None
    if declared_os and detected_os and declared_os != detected_os:
        warnings.append(
            f"The metadata declares os={declared_os} but the disk looks like {detected_os}; "
            f"the declared value is used."
        )
    os_type = declared_os or detected_os
    if os_type is None:
        raise OSNotDetermined(
            f"no operating system was declared or found on '{blob.name}' "
            f"(partitions: {probe.partition_style or 'none'}; file systems: "
            f"{', '.join(probe.filesystems) or 'none'}). Set the blob metadata os=Linux or "
            "os=Windows, or upload a disk with an OS on it."
        )
    family = declared.get("imagefamily") or _family_from(probe)
    size_gb = math.ceil(os_disk.size / GIB)
    # Data disks (an OVA's) make a VM image, whatever the OS state.
    vm = state == DiskState.SPECIALIZED or bool(data_disks)
    kind = ImageKind.VM if vm else ImageKind.OS
    return Image(
        ImageName=name,
        ImageType=kind,
        Label=declared.get("label") or name,
        Description=declared.get("description"),
        ImageFamily=family,
        OS=os_type,
        PublishedDate=blob.last_modified,
        LogicalSizeInGB=size_gb,
        MediaLink=os_disk.url if kind == ImageKind.OS else None,
        OSDiskConfiguration=OSDisk(
            OS=os_type,
            OSState=state,
            MediaLink=os_disk.url,
            LogicalDiskSizeInGB=size_gb,
            SourceBlob=os_disk.path,
        ),
        DataDiskConfigurations=[
            DataDisk(
                Lun=lun,
                MediaLink=d.url,
                LogicalDiskSizeInGB=math.ceil(d.size / GIB),
                SourceBlob=d.path,
            )
            for lun, d in enumerate(data_disks)
        ],
        Source=ImageSource.UPLOAD,
        SourceUpload=f"{blob.container}/{blob.name}@{blob.etag}",
        Generation=probe.generation,
        Probe=outcome.Detected,
        Warnings=warnings,
        ExcludeFromLatest=declared_flag(declared, "excludefromlatest"),
    )


class InvalidManifest(CatalogError):
    code = "InvalidManifest"


class ManifestDiskMissing(CatalogError):
    code = "ManifestDiskMissing"


class ManifestDiskInvalid(CatalogError):
    code = "ManifestDiskInvalid"


MAX_MANIFEST_BYTES = 64 * 1024


def _read_manifest(client: BlobClient, blob: BlobFacts) -> VmImageManifest:
    if blob.size > MAX_MANIFEST_BYTES:
        raise InvalidManifest(
            f"a manifest is at most {MAX_MANIFEST_BYTES} bytes; this is {blob.size}"
        )
    raw = BlobRangeReader(client, blob.size, blob.etag).read(0, blob.size)
    try:
        return VmImageManifest.model_validate_json(raw)
    except ValidationError as e:
        problems = describe_validation_error(e, "manifest")
        raise InvalidManifest(f"'{blob.name}' is not a valid VM image manifest: {problems}") from e


def _register_manifest(
    client: BlobClient, blob: BlobFacts, outcome: UploadOutcome, deps: UploadDeps, now: datetime
) -> None:
    """A VM image from a manifest, once every disk it lists has validated."""
    manifest = _read_manifest(client, blob)
    folder = blob.name.rsplit("/", 1)[0] + "/" if "/" in blob.name else ""
    disks = [("OS disk", manifest.OSDisk), *((f"LUN {d.Lun}", d) for d in manifest.DataDisks)]
    judged: dict[str, UploadOutcome] = {}
    for role, disk in disks:
        name = disk.Blob if "/" in disk.Blob or not folder else folder + disk.Blob
        if upload_kind(name) != UploadKind.VM_DISK:
            raise InvalidManifest(
                f"{role} '{name}' must be a .vhd inside a folder named '<something>.image/' "
                "(so that it is not also registered as an OS image on its own)"
            )
        disk_client = deps.uploads.get_blob_client(name)
        disk_outcome = examine_upload(disk_client, deps)
        if disk_outcome is None:
            raise ManifestDiskMissing(
                f"{role} '{name}' listed in '{blob.name}' is not in the container; upload the "
                "disks first, then the manifest again"
            )
        if disk_outcome.Status == UploadStatus.REJECTED and disk_outcome.Error is not None:
            raise ManifestDiskInvalid(
                f"{role} '{name}' was rejected: {disk_outcome.Error.Code}: "
                f"{disk_outcome.Error.Message}"
            )
        if disk_outcome.VirtualSizeInBytes is None:
            raise _StillWriting(
                f"waiting for {role} '{name}' to be validated", deps.policy.settle_seconds
            )
        judged[name] = disk_outcome
    image = _image_from_manifest(deps, blob, manifest, judged, folder)
    _register(image, deps)
    for disk_outcome in judged.values():
        disk_outcome.Status = UploadStatus.REGISTERED
        disk_outcome.ImageName = image.ImageName
        disk_outcome.Reason = None
        disk_outcome.CompletedTime = now
        deps.outcomes.put(disk_outcome)
    outcome.Status = UploadStatus.REGISTERED
    outcome.ImageName = image.ImageName
    outcome.Warnings = list(image.Warnings)
    outcome.CompletedTime = now


def _image_from_manifest(
    deps: UploadDeps,
    blob: BlobFacts,
    manifest: VmImageManifest,
    judged: dict[str, UploadOutcome],
    folder: str,
) -> Image:
    def full(n: str) -> str:
        return n if "/" in n or not folder else folder + n

    name = manifest.ImageName or image_name_from_blob(blob.name[: -len(".image.json")])
    validate_image_name(name)
    os_outcome = judged[full(manifest.OSDisk.Blob)]
    detected = (os_outcome.Detected or {}).get("os")
    warnings: list[str] = []
    for n, o in judged.items():
        warnings += [f"{n}: {w}" for w in o.Warnings]
    os_type = manifest.OS or (OSType(detected) if detected in ("Linux", "Windows") else None)
    if manifest.OS and detected and detected != manifest.OS:
        warnings.append(
            f"The manifest declares OS={manifest.OS} but the OS disk looks like {detected}."
        )
    if os_type is None:
        raise OSNotDetermined("the manifest declares no OS and none was found on its OS disk")

    def gb(n: str) -> int:
        return math.ceil((judged[n].VirtualSizeInBytes or 0) / GIB)

    def path(n: str) -> str:
        # A converted disk is its fixed VHD in the images container; others, the upload.
        converted = judged[n].ConvertedBlobs
        return converted[0] if converted else f"{blob.container}/{n}"

    def link(n: str) -> str:
        return _blob_client(deps, path(n)).url.split("?")[0]

    os_name = full(manifest.OSDisk.Blob)
    return Image(
        ImageName=name,
        ImageType=ImageKind.VM,
        Label=manifest.Label or name,
        Description=manifest.Description,
        ImageFamily=manifest.ImageFamily,
        OS=os_type,
        PublishedDate=blob.last_modified,
        LogicalSizeInGB=gb(os_name),
        OSDiskConfiguration=OSDisk(
            OS=os_type,
            OSState=manifest.OSState,
            HostCaching=manifest.OSDisk.HostCaching,
            MediaLink=link(os_name),
            LogicalDiskSizeInGB=gb(os_name),
            SourceBlob=path(os_name),
        ),
        DataDiskConfigurations=[
            DataDisk(
                Lun=d.Lun,
                HostCaching=d.HostCaching,
                MediaLink=link(full(d.Blob)),
                LogicalDiskSizeInGB=gb(full(d.Blob)),
                SourceBlob=path(full(d.Blob)),
            )
            for d in manifest.DataDisks
        ],
        Source=ImageSource.UPLOAD,
        SourceUpload=f"{blob.container}/{blob.name}@{blob.etag}",
        Generation=(os_outcome.Detected or {}).get("generation"),
        Probe=os_outcome.Detected,
        Warnings=warnings,
        ExcludeFromLatest=manifest.ExcludeFromLatest,
    )


def _blob_client(deps: UploadDeps, path: str) -> BlobClient:
    """`container/blob` in the uploads container, or (a converted disk) the images one."""
    container, _, name = path.partition("/")
    if deps.images is not None and container == deps.images.container_name:
        return deps.images.get_blob_client(name)
    if container != deps.uploads.container_name:
        raise ValueError(f"{path} is neither in {deps.uploads.container_name} nor in images")
    return deps.uploads.get_blob_client(name)


def register_image(image: Image, deps: UploadDeps) -> None:
    """Claim and lease every disk, then publish the image (see services.registration)."""
    publish(deps.catalog, BlobDiskGuard(lambda path: _blob_client(deps, path)), image)


_register = register_image


def parse_recheck(body: bytes) -> str:
    """The blob name in a re-check message; InvalidMetadata-free, a plain ValueError if bad."""
    doc = json.loads(body)
    name = doc.get("BlobName") if isinstance(doc, dict) else None
    if not isinstance(name, str) or not name:
        raise ValueError("a re-check message needs a BlobName")
    return name
