"""The image model: OS images and VM images, with the fields Get-AzureVMImage shows.

An OSImage is one generalized OS disk; a VMImage is an OS disk plus every data
disk that was attached, each with its LUN and host caching. Both kinds share
one namespace of names. Field names follow the classic cmdlets so that
`select=Label,ImageName` reads like them; our additions (`ImageType`,
`Source`, `CreatedTime`, `Probe`, `Warnings`, ...) use the same style.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.domain.errors import Conflict, InvalidParameter, NotFound


class ImageKind(StrEnum):
    OS = "OSImage"
    VM = "VMImage"


class OSType(StrEnum):
    WINDOWS = "Windows"
    LINUX = "Linux"


class ImageCategory(StrEnum):
    PUBLIC = "Public"
    COMMUNITY = "Community"
    USER = "User"


class DiskState(StrEnum):
    GENERALIZED = "Generalized"
    SPECIALIZED = "Specialized"


class CachingMode(StrEnum):
    NONE = "None"
    READ_ONLY = "ReadOnly"
    READ_WRITE = "ReadWrite"


class ImageSource(StrEnum):
    PLATFORM = "Platform"
    UPLOAD = "Upload"
    CAPTURE = "Capture"
    API = "Api"


class InvalidImageName(InvalidParameter):
    code = "InvalidImageName"


class ImageNotFound(NotFound):
    code = "ImageNotFound"


class ImageNameTaken(Conflict):
    code = "ImageNameTaken"


class PlatformImageReadOnly(Conflict):
    code = "PlatformImageReadOnly"
    status = 403


EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,255}")
_CASE_INSENSITIVE = {
    e.value.lower(): e.value for cls in (OSType, DiskState, CachingMode) for e in cls
}


def validate_image_name(name: str) -> str:
    if not isinstance(name, str) or not IMAGE_NAME.fullmatch(name):
        raise InvalidImageName(
            f"'{str(name)[:80]}' is not a valid image name: use 1-256 letters, digits, "
            "'.', '-' or '_', starting with a letter or digit"
        )
    return name


def image_name_from_blob(blob_name: str) -> str:
    """The default image name for an upload: the blob name without `.vhd`, made valid."""
    base = blob_name.rsplit("/", 1)[-1]
    if base.lower().endswith(".vhd"):
        base = base[:-4]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._")[:256]
    return cleaned or "image"


def parse_choice(value: str, enum: type[StrEnum], field: str) -> Any:
    """Case-insensitive parse of an enum value with an error naming the field."""
    for member in enum:
        if member.value.lower() == str(value).strip().lower():
            return member
    allowed = ", ".join(m.value for m in enum)
    raise InvalidParameter(f"{field} must be one of {allowed}, not '{str(value)[:80]}'")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True, populate_by_name=True)


class OSDisk(_Model):
    Name: str | None = None
    OS: OSType
    OSState: DiskState = DiskState.GENERALIZED
    HostCaching: CachingMode = CachingMode.READ_WRITE
    MediaLink: str | None = None
    LogicalDiskSizeInGB: int = Field(ge=0)
    SourceBlob: str | None = None  # container/blob in our account, when we hold its lease

    @field_validator("OS", "OSState", "HostCaching", mode="before")
    @classmethod
    def _case(cls, v: Any) -> Any:
        return _CASE_INSENSITIVE.get(str(v).lower(), v) if isinstance(v, str) else v


class DataDisk(_Model):
    Name: str | None = None
    Lun: int = Field(ge=0, le=63)
    HostCaching: CachingMode = CachingMode.NONE
    MediaLink: str | None = None
    LogicalDiskSizeInGB: int = Field(ge=0)
    SourceBlob: str | None = None

    @field_validator("HostCaching", mode="before")
    @classmethod
    def _case(cls, v: Any) -> Any:
        return _CASE_INSENSITIVE.get(str(v).lower(), v) if isinstance(v, str) else v


class Image(_Model):
    ImageName: str
    ImageType: ImageKind = ImageKind.OS
    Label: str
    Description: str | None = None
    ImageFamily: str | None = None
    OS: OSType
    Category: ImageCategory = ImageCategory.USER
    PublisherName: str | None = None
    PublishedDate: datetime
    LogicalSizeInGB: int = Field(ge=0)
    MediaLink: str | None = None
    OSDiskConfiguration: OSDisk | None = None
    DataDiskConfigurations: list[DataDisk] = Field(default_factory=list)
    RecommendedVMSize: str | None = None
    Eula: str | None = None
    IsPremium: bool = False
    ShowInGui: bool = True
    Location: str | None = None
    IconUri: str | None = None
    SmallIconUri: str | None = None
    PrivacyUri: str | None = None
    PricingDetailLink: str | None = None
    # Our additions
    Source: ImageSource = ImageSource.API
    CreatedTime: datetime = Field(default_factory=lambda: datetime.now(UTC))
    SourceUpload: str | None = None  # the uploaded blob (or manifest) it was registered from
    SourceOperation: str | None = None  # the capture operation that made it
    SourceVM: str | None = None  # "service/vm" it was captured from
    Generation: int | None = None
    Probe: dict[str, Any] | None = None
    Warnings: list[str] = Field(default_factory=list)

    @field_validator("ImageName")
    @classmethod
    def _name(cls, v: str) -> str:
        return validate_image_name(v)

    @field_validator("OS", mode="before")
    @classmethod
    def _os(cls, v: Any) -> Any:
        return _CASE_INSENSITIVE.get(str(v).lower(), v) if isinstance(v, str) else v

    @field_validator("PublishedDate", "CreatedTime")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        v = v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
        if not EARLIEST <= v < LATEST:  # the catalog's keys order dates in this range
            raise ValueError(f"must be from {EARLIEST:%Y} to {LATEST.year - 1}")
        return v

    @property
    def key(self) -> str:
        return image_key(self.ImageName)

    @property
    def disk_blobs(self) -> list[str]:
        """`container/blob` of every disk we hold a lease on for this image."""
        disks: list[Any] = [self.OSDiskConfiguration, *self.DataDiskConfigurations]
        return [d.SourceBlob for d in disks if d is not None and d.SourceBlob]


def image_key(name: str) -> str:
    """Names are unique regardless of letter case, as on Azure."""
    return name.lower()


# Fields a user may change (Update OS Image / Update VM Image allow these).
UPDATABLE_FIELDS = ("Label", "Description", "ImageFamily", "Eula", "RecommendedVMSize", "ShowInGui")
# Fields `select=` may name.
SELECTABLE_FIELDS = tuple(Image.model_fields)
