"""Uploads: what a dropped blob may be, when it is judged, and the outcome a user reads.

The completeness rule (documented in the README): a page blob is created at
full size and then written piece by piece, so a trigger may see it half
written. A page blob is judged only when it has not changed for
`settle_seconds` (its Last-Modified is that old), or, for an uploader that
cooperates (our CLI does), when it sets the metadata `uploadstate=complete`;
a blob created with `uploadstate=uploading` is never judged by the settle
window, only by that signal (or the time limit). Until then it is `Pending`
and re-examined through a delayed queue message, less often the longer it
is left untouched (`recheck_delay`). A settled blob whose last
sector was never written (all zeros, no footer) is still treated as
unfinished. An upload still unfinished `timeout_seconds` after the blob was
created is `Rejected` with `UploadIncomplete`. Block blobs are committed
atomically, so they are judged at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.domain.conversion import ConversionJob
from shared.domain.errors import UploadRejected
from shared.domain.images import (
    DESCRIPTION,
    FAMILY,
    LABEL,
    CachingMode,
    DescriptionText,
    DiskState,
    FamilyName,
    LabelText,
    OSType,
    check_text,
    shown,
)

MANIFEST_SUFFIX = ".image.json"
VM_DISK_FOLDER_SUFFIX = ".image"
DECLARABLE = (
    *("imagename", "label", "imagefamily", "os", "osstate", "description"),
    "excludefromlatest",
)


class UploadStatus(StrEnum):
    PENDING = "Pending"
    CONVERTING = "Converting"  # a conversion job is making a fixed VHD of it
    REGISTERED = "Registered"
    REJECTED = "Rejected"


class UploadKind(StrEnum):
    DISK = "Disk"  # a .vhd that becomes an OS image on its own
    VM_DISK = "VmImageDisk"  # a .vhd inside `<name>.image/`, registered by its manifest
    MANIFEST = "Manifest"
    OTHER = "Other"


# What people name the disks they upload (any letter case). A fixed VHD page blob is
# registered as it is; anything else is converted to one first (`conversion`).
DISK_EXTENSIONS = (".vhd", ".vhdx", ".qcow2", ".vmdk", ".ova", ".img", ".raw")


def is_disk_name(blob_name: str) -> bool:
    return blob_name.lower().endswith(DISK_EXTENSIONS)


def upload_kind(blob_name: str) -> UploadKind:
    lower = blob_name.lower()
    if lower.endswith(MANIFEST_SUFFIX):
        return UploadKind.MANIFEST
    if is_disk_name(lower):
        folders = lower.split("/")[:-1]
        if any(f.endswith(VM_DISK_FOLDER_SUFFIX) for f in folders):
            return UploadKind.VM_DISK
        return UploadKind.DISK
    return UploadKind.OTHER


class UnsupportedFileType(UploadRejected):
    code = "UnsupportedFileType"


class NotAPageBlob(UploadRejected):
    code = "NotAPageBlob"


class UploadIncomplete(UploadRejected):
    code = "UploadIncomplete"


class OSNotDetermined(UploadRejected):
    code = "OSNotDetermined"


class InvalidMetadata(UploadRejected):
    code = "InvalidMetadata"


# Declared text metadata and the rule of the Image field each becomes.
DECLARED_TEXT = {"label": LABEL, "imagefamily": FAMILY, "description": DESCRIPTION}


def check_declared(declared: Mapping[str, str]) -> None:
    """InvalidMetadata naming the first declared text value the image would refuse."""
    for key, rule in DECLARED_TEXT.items():
        if key in declared:
            check_text(f"blob metadata {key}", declared[key], rule, InvalidMetadata)
    for key in DECLARED_FLAGS:
        declared_flag(declared, key)


# Declared true/false metadata: `excludefromlatest=true` publishes an image held back from
# "latest" (until a PATCH lets it in).
DECLARED_FLAGS = ("excludefromlatest",)


def declared_flag(declared: Mapping[str, str], key: str) -> bool:
    value = declared.get(key)
    if value is None:
        return False
    if value.strip().lower() not in ("true", "false"):
        raise InvalidMetadata(f"blob metadata {key} must be true or false, not '{shown(value)}'")
    return value.strip().lower() == "true"


class ManifestDisk(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    Blob: str = Field(min_length=1, max_length=1024)
    HostCaching: CachingMode = CachingMode.READ_WRITE


class ManifestDataDisk(ManifestDisk):
    Lun: int = Field(ge=0, le=63)
    HostCaching: CachingMode = CachingMode.NONE


class VmImageManifest(BaseModel):
    """`<name>.image.json`: a VM image made of uploaded disks in `<name>.image/`."""

    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    ImageName: str | None = None
    Label: LabelText | None = None
    Description: DescriptionText | None = None
    ImageFamily: FamilyName | None = None
    OS: OSType | None = None
    OSState: DiskState = DiskState.GENERALIZED
    OSDisk: ManifestDisk
    DataDisks: list[ManifestDataDisk] = Field(default_factory=list, max_length=64)
    ExcludeFromLatest: bool = False  # publish it held back from "latest"

    @model_validator(mode="after")
    def _distinct(self) -> VmImageManifest:
        luns = [d.Lun for d in self.DataDisks]
        if len(set(luns)) != len(luns):
            raise ValueError("each data disk needs its own Lun")
        blobs = [self.OSDisk.Blob, *(d.Blob for d in self.DataDisks)]
        if len({b.lower() for b in blobs}) != len(blobs):
            raise ValueError("a disk blob may be listed only once")
        return self


class ErrorInfo(BaseModel):
    Code: str
    Message: str


class UploadOutcome(BaseModel):
    model_config = ConfigDict(extra="ignore", use_enum_values=True)

    BlobName: str
    Kind: UploadKind
    Status: UploadStatus
    ImageName: str | None = None
    Error: ErrorInfo | None = None
    Warnings: list[str] = Field(default_factory=list)
    Reason: str | None = None  # why it is still Pending
    ETag: str | None = None
    BlobType: str | None = None
    SizeInBytes: int | None = None
    VirtualSizeInBytes: int | None = None
    Detected: dict[str, Any] | None = None  # what the disk probe found
    BytesRead: int | None = None
    # A converted upload: what it was, the fixed VHDs made of it (`container/blob`, the OS
    # disk first), the bytes written to them, and the job's checkpoint and progress.
    SourceFormat: str | None = None
    ConvertedBlobs: list[str] = Field(default_factory=list)
    BytesWritten: int | None = None
    BytesDone: int | None = None
    BytesTotal: int | None = None
    SecondsLeft: float | None = None
    Conversion: ConversionJob | None = None
    FirstSeen: datetime
    LastChecked: datetime
    CompletedTime: datetime | None = None
    NextCheck: datetime | None = None

    @property
    def final(self) -> bool:
        return self.Status in (UploadStatus.REGISTERED, UploadStatus.REJECTED)


def is_settled(
    last_modified: datetime, metadata: dict[str, str], now: datetime, settle_seconds: float
) -> tuple[bool, float]:
    """(settled?, seconds still to wait) under the completeness rule."""
    state = metadata.get("uploadstate", "").lower()
    if state == "complete":
        return True, 0.0
    if state:
        # The uploader promised to say when it is done (e.g. "uploading"): wait for it.
        return False, settle_seconds
    # Last-Modified has whole-second resolution: the last write may be up to 1 s later.
    age = (now - last_modified).total_seconds() - 1.0
    return age >= settle_seconds, max(0.0, settle_seconds - age)


MAX_RECHECK_SECONDS = 300.0


def recheck_delay(wait: float, idle: float, until_deadline: float) -> float:
    """Seconds until a blob that isn't ready yet is looked at again.

    At least `wait` (what the completeness rule still asks for), and as long as the
    blob has been left untouched (`idle` seconds), up to 5 minutes: the looks at an
    abandoned upload thin out, about doubling each time, while a blob still being
    written is looked at every settle window. Never later than the time limit
    (`until_deadline` seconds away, when still ahead), so that `UploadIncomplete`
    comes on time.
    """
    delay = max(wait, min(idle, MAX_RECHECK_SECONDS))
    if until_deadline > 0:
        delay = min(delay, until_deadline)
    return max(1.0, delay)


def timed_out(created: datetime, now: datetime, timeout_seconds: float) -> bool:
    return now - created > timedelta(seconds=timeout_seconds)


def utcnow() -> datetime:
    return datetime.now(UTC)
