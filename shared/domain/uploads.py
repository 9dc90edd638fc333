"""Uploads: what a dropped blob may be, when it is judged, and the outcome a user reads.

The completeness rule (documented in the README): a page blob is created at
full size and then written piece by piece, so a trigger may see it half
written. A page blob is judged only when it has not changed for
`settle_seconds` (its Last-Modified is that old), or when its uploader says it
is done with the metadata `uploadstate=complete`. Until then it is `Pending`
and re-examined through a delayed queue message. A settled blob whose last
sector was never written (all zeros, no footer) is still treated as
unfinished. An upload still unfinished `timeout_seconds` after the blob was
created is `Rejected` with `UploadIncomplete`. Block blobs are committed
atomically, so they are judged at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.errors import UploadRejected

MANIFEST_SUFFIX = ".image.json"
VM_DISK_FOLDER_SUFFIX = ".image"
DECLARABLE = ("imagename", "label", "imagefamily", "os", "osstate", "description")


class UploadStatus(StrEnum):
    PENDING = "Pending"
    REGISTERED = "Registered"
    REJECTED = "Rejected"


class UploadKind(StrEnum):
    DISK = "Disk"  # a .vhd that becomes an OS image on its own
    VM_DISK = "VmImageDisk"  # a .vhd inside `<name>.image/`, registered by its manifest
    MANIFEST = "Manifest"
    OTHER = "Other"


def upload_kind(blob_name: str) -> UploadKind:
    lower = blob_name.lower()
    if lower.endswith(MANIFEST_SUFFIX):
        return UploadKind.MANIFEST
    if lower.endswith(".vhd"):
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
    FirstSeen: datetime
    LastChecked: datetime
    CompletedTime: datetime | None = None
    NextCheck: datetime | None = None

    @property
    def final(self) -> bool:
        return self.Status != UploadStatus.PENDING


def is_settled(
    last_modified: datetime, metadata: dict[str, str], now: datetime, settle_seconds: float
) -> tuple[bool, float]:
    """(settled?, seconds still to wait) under the completeness rule."""
    if metadata.get("uploadstate", "").lower() == "complete":
        return True, 0.0
    age = (now - last_modified).total_seconds()
    return age >= settle_seconds, max(0.0, settle_seconds - age)


def timed_out(created: datetime, now: datetime, timeout_seconds: float) -> bool:
    return now - created > timedelta(seconds=timeout_seconds)


def utcnow() -> datetime:
    return datetime.now(UTC)
