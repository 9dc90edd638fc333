"""The VM inventory captures read: VMs by cloud service and name, their state and disks."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from shared.domain.disks import InvalidMediaLink, check_media_link
from shared.domain.errors import Conflict, InvalidParameter, NotFound
from shared.domain.images import URI, CachingMode, OSType, shown
from shared.domain.uploads import utcnow

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class VmState(StrEnum):
    RUNNING = "Running"
    STOPPED = "Stopped"
    STOPPED_DEALLOCATED = "StoppedDeallocated"


class InvalidVmName(InvalidParameter):
    code = "InvalidVmName"


class VmNotFound(NotFound):
    code = "VmNotFound"


class VmNotStopped(Conflict):
    code = "VmNotStopped"


def validate_vm_name(value: str, what: str = "VM name") -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise InvalidVmName(
            f"'{shown(value)}' is not a valid {what}: use 1-63 letters, digits, '.', '-' "
            "or '_', starting with a letter or digit"
        )
    return value


# Context for reading a record back: it keeps the links it was stored with, and a link
# today's rules refuse fails the capture that resolves it, not every read of the record.
STORED = {"stored": True}


def _https_or_http_url(v: str, info: ValidationInfo) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"https?://[^\s?#]+/[^\s?#]+", v):
        raise ValueError("must be the blob's URL (http(s)://account/container/blob.vhd), no SAS")
    if not (info.context or {}).get("stored"):
        try:
            check_media_link(v)
        except InvalidMediaLink as e:
            raise ValueError(e.message) from None
    return URI.check(v)


BlobUrl = Annotated[str, Field(max_length=2048), AfterValidator(_https_or_http_url)]


class VmOSDisk(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    OS: OSType
    HostCaching: CachingMode = CachingMode.READ_WRITE
    MediaLink: BlobUrl


class VmDataDisk(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    Lun: int = Field(ge=0, le=63)
    HostCaching: CachingMode = CachingMode.NONE
    MediaLink: BlobUrl


class VmBody(BaseModel):
    """What `PUT /api/vms/{service}/{vm}` accepts."""

    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    State: VmState
    OSDisk: VmOSDisk
    DataDisks: list[VmDataDisk] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _distinct(self) -> VmBody:
        luns = [d.Lun for d in self.DataDisks]
        if len(set(luns)) != len(luns):
            raise ValueError("each data disk needs its own Lun")
        links = [self.OSDisk.MediaLink, *(d.MediaLink for d in self.DataDisks)]
        if len({link.lower() for link in links}) != len(links):
            raise ValueError("a disk can be attached only once")
        return self


class VirtualMachine(VmBody):
    ServiceName: str
    Name: str
    UpdatedTime: datetime = Field(default_factory=utcnow)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def disk_links(self) -> list[str]:
        """The MediaLink of every disk: the OS disk first, then the data disks."""
        return [self.OSDisk.MediaLink, *(d.MediaLink for d in self.DataDisks)]
