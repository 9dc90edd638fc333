"""The image model: OS images and VM images, with the fields Get-AzureVMImage shows.

An OSImage is one generalized OS disk; a VMImage is an OS disk plus every data
disk that was attached, each with its LUN and host caching. Both kinds share
one namespace of names. Field names follow the classic cmdlets so that
`select=Label,ImageName` reads like them; our additions (`ImageType`,
`Source`, `CreatedTime`, `Probe`, `Warnings`, ...) use the same style.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from shared.domain.errors import CatalogError, Conflict, InvalidParameter, NotFound


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


class ImageState(StrEnum):
    """An image's lifecycle (shared/domain/lifecycle.py says what each means)."""

    ACTIVE = "Active"
    DEPRECATED = "Deprecated"  # listed and usable, never "latest"; may name its replacement
    DISABLED = "Disabled"  # listed, not offered for new VMs (never "latest")


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


class DiskInUse(Conflict):
    """The disk already belongs to an image (a disk belongs to at most one)."""

    code = "DiskInUse"

    def __init__(self, message: str, *, image_name: str | None = None) -> None:
        super().__init__(message)
        self.image_name = image_name


class DiskLeased(Conflict):
    """The disk is leased by someone outside the catalog, so it can't be protected."""

    code = "DiskLeased"


class PlatformImageReadOnly(Conflict):
    code = "PlatformImageReadOnly"
    status = 403


EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,255}")
_CASE_INSENSITIVE = {
    e.value.lower(): e.value for cls in (OSType, DiskState, CachingMode, ImageState) for e in cls
}


def validate_image_name(name: str) -> str:
    if not isinstance(name, str) or not IMAGE_NAME.fullmatch(name):
        raise InvalidImageName(
            f"'{shown(name)}' is not a valid image name: use 1-256 letters, digits, "
            "'.', '-' or '_', starting with a letter or digit"
        )
    return name


# The disk image extensions uploads take (shared/domain/uploads.py DISK_EXTENSIONS).
_DISK_SUFFIX = re.compile(r"\.(vhd|vhdx|qcow2|vmdk|ova|img|raw)$", re.IGNORECASE)


def image_name_from_blob(blob_name: str) -> str:
    """The default image name for an upload: the blob name without its disk extension
    (`.vhd`, `.qcow2`, ...), made valid."""
    base = _DISK_SUFFIX.sub("", blob_name.rsplit("/", 1)[-1])
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._")[:256]
    return cleaned or "image"


def parse_choice(value: str, enum: type[StrEnum], field: str) -> Any:
    """Case-insensitive parse of an enum value with an error naming the field."""
    for member in enum:
        if member.value.lower() == str(value).strip().lower():
            return member
    allowed = ", ".join(m.value for m in enum)
    raise InvalidParameter(f"{field} must be one of {allowed}, not '{shown(value)}'")


# -- Text fields ---------------------------------------------------------------------
# Every way in (upload metadata, manifests, PATCH, the classic API, captures) checks an
# image's text with the rules below: through the Image model's fields, or `check_text`
# where a value arrives on its own and the error must name where it came from.

# C0 controls (tab and newlines too), DEL, C1 controls, surrogates (in a str always
# lone: JSON's "\ud800" decodes to one) and U+FFFE/U+FFFF, which XML can't carry.
_NOT_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# The same in JSON Schema (ECMA-262) terms, for the OpenAPI document: a character, and
# one that is not whitespace. (Without the u flag a class can't tell a lone surrogate
# from half of a pair, so those are left to the services.)
_CHAR = r"[^\x00-\x1f\x7f-\x9f\uFFFE\uFFFF]"
_SOLID = r"[^\s\x00-\x1f\x7f-\x9f\uFFFE\uFFFF]"


@dataclass(frozen=True)
class TextRule:
    """What a text field may hold: at most `max_len` printable characters."""

    max_len: int
    required: bool = False  # not empty, nor only whitespace
    trimmed: bool = False  # no whitespace at either end

    def check(self, value: Any) -> str:
        """`value` as given if it keeps the rule; else a ValueError that never echoes it."""
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if len(value) > self.max_len:
            raise ValueError(f"must be at most {self.max_len} characters, not {len(value)}")
        if bad := _NOT_TEXT.search(value):
            c = ord(bad.group())
            kind = (
                "a lone surrogate"
                if 0xD800 <= c <= 0xDFFF
                else "a noncharacter"
                if c >= 0xFFFE
                else "a control character"
            )
            raise ValueError(f"must not contain {kind} (U+{c:04X} at offset {bad.start()})")
        if self.required and not value.strip():
            raise ValueError("must not be empty")
        if self.trimmed and value != value.strip():
            raise ValueError("must not start or end with whitespace")
        return value

    @property
    def pattern(self) -> str:
        """The rule, lengths aside, as a JSON Schema pattern."""
        if self.trimmed:
            body = f"{_SOLID}(?:{_CHAR}*{_SOLID})?"
            return f"^{body}$" if self.required else f"^(?:{body})?$"
        return f"^{_CHAR}*{_SOLID}{_CHAR}*$" if self.required else f"^{_CHAR}*$"


# The limits each way in had before they shared these (PATCH and classic: 4096).
LABEL = TextRule(4096, required=True)
DESCRIPTION = TextRule(4096)
EULA = TextRule(4096)
# A family is a key and a query filter (`family=`, at most 256): one spelling per family.
FAMILY = TextRule(256, required=True, trimmed=True)
VM_SIZE = TextRule(64)
URI = TextRule(2048)
TEXT = TextRule(4096)


def shown(value: Any, limit: int = 80) -> str:
    """A refused value as an error message may repeat it: cut short, and with what no text
    may hold escaped (a lone surrogate in a message breaks pydantic and JSON answers)."""
    return _NOT_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", str(value)[:limit])


# Validation context for rows read back from storage: a row written before a rule existed
# keeps its text (every way in checks new text), so one old row never breaks a listing.
STORED: dict[str, bool] = {"stored": True}


def _text(rule: TextRule) -> Any:
    def check(value: Any, info: ValidationInfo) -> str:
        if (info.context or {}).get("stored") and isinstance(value, str):
            return value
        return rule.check(value)

    return Annotated[
        str,
        Field(
            json_schema_extra={
                "pattern": rule.pattern,
                "minLength": 1 if rule.required else 0,
                "maxLength": rule.max_len,
            },
        ),
        AfterValidator(check),
    ]


LabelText = _text(LABEL)
DescriptionText = _text(DESCRIPTION)
EulaText = _text(EULA)
FamilyName = _text(FAMILY)
VmSize = _text(VM_SIZE)
UriText = _text(URI)
PlainText = _text(TEXT)
Sha256Hex = Annotated[
    str, Field(min_length=64, max_length=64, json_schema_extra={"pattern": "^[0-9a-f]{64}$"})
]


def check_text(
    field: str, value: Any, rule: TextRule, error: type[CatalogError] = InvalidParameter
) -> str:
    """`value` if it keeps `rule`; else `error` naming `field` (and never echoing the value)."""
    try:
        return rule.check(value)
    except ValueError as e:
        raise error(f"{field}: {e}") from None


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
    # SHA-256 of the disk's data area, and where its 4 MiB block hashes are (`container/blob`)
    ContentHash: Sha256Hex | None = None
    BlockHashes: str | None = None

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
    ContentHash: Sha256Hex | None = None
    BlockHashes: str | None = None

    @field_validator("HostCaching", mode="before")
    @classmethod
    def _case(cls, v: Any) -> Any:
        return _CASE_INSENSITIVE.get(str(v).lower(), v) if isinstance(v, str) else v


class Image(_Model):
    ImageName: str
    ImageType: ImageKind = ImageKind.OS
    Label: LabelText
    Description: DescriptionText | None = None
    ImageFamily: FamilyName | None = None
    OS: OSType
    Category: ImageCategory = ImageCategory.USER
    PublisherName: PlainText | None = None
    PublishedDate: datetime
    LogicalSizeInGB: int = Field(ge=0)
    MediaLink: str | None = None
    OSDiskConfiguration: OSDisk | None = None
    DataDiskConfigurations: list[DataDisk] = Field(default_factory=list)
    RecommendedVMSize: VmSize | None = None
    Eula: EulaText | None = None
    IsPremium: bool = False
    ShowInGui: bool = True
    Location: PlainText | None = None
    IconUri: UriText | None = None
    SmallIconUri: UriText | None = None
    PrivacyUri: UriText | None = None
    PricingDetailLink: UriText | None = None
    # Our additions
    Source: ImageSource = ImageSource.API
    CreatedTime: datetime = Field(default_factory=lambda: datetime.now(UTC))
    SourceUpload: str | None = None  # the uploaded blob (or manifest) it was registered from
    SourceOperation: str | None = None  # the capture operation that made it
    SourceVM: str | None = None  # "service/vm" it was captured from
    Generation: int | None = None
    Probe: dict[str, Any] | None = None
    Warnings: list[str] = Field(default_factory=list)
    # Lifecycle: what "latest" offers and what may be removed (shared/domain/lifecycle.py)
    State: ImageState = ImageState.ACTIVE
    ReplacedBy: str | None = Field(
        default=None, max_length=256, json_schema_extra={"pattern": f"^{IMAGE_NAME.pattern}$"}
    )
    ExcludeFromLatest: bool = False
    EndOfLifeDate: datetime | None = None
    DeletionProtection: bool = False
    # The OS disk's ContentHash once every disk is hashed (each disk has its own)
    ContentHash: Sha256Hex | None = None

    @field_validator("ImageName")
    @classmethod
    def _name(cls, v: str) -> str:
        return validate_image_name(v)

    @field_validator("OS", mode="before")
    @classmethod
    def _os(cls, v: Any) -> Any:
        return _CASE_INSENSITIVE.get(str(v).lower(), v) if isinstance(v, str) else v

    @field_validator("State", mode="before")
    @classmethod
    def _state(cls, v: Any) -> Any:
        return _CASE_INSENSITIVE.get(str(v).lower(), v) if isinstance(v, str) else v

    @field_validator("ReplacedBy")
    @classmethod
    def _replacement(cls, v: str | None) -> str | None:
        if v is not None and not IMAGE_NAME.fullmatch(v):
            raise ValueError(f"'{shown(v)}' is not a valid image name")
        return v

    @field_validator("PublishedDate", "CreatedTime", "EndOfLifeDate")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return None
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


# The lifecycle fields (no classic field carries them: PATCH and `vmimage set` change them).
LIFECYCLE_FIELDS = (
    "State",
    "ReplacedBy",
    "ExcludeFromLatest",
    "EndOfLifeDate",
    "DeletionProtection",
)
# Fields a user may change: Update OS Image / Update VM Image allow the first six, PATCH all.
UPDATABLE_FIELDS = (
    "Label",
    "Description",
    "ImageFamily",
    "Eula",
    "RecommendedVMSize",
    "ShowInGui",
    *LIFECYCLE_FIELDS,
)
# The rule of each updatable text field, for the ways in that check one field at a time.
TEXT_RULES = {
    "Label": LABEL,
    "Description": DESCRIPTION,
    "ImageFamily": FAMILY,
    "Eula": EULA,
    "RecommendedVMSize": VM_SIZE,
}
# Fields worked out when an image is read, not stored: what its State counts as now.
COMPUTED_FIELDS = ("EffectiveState",)
# Fields `select=` may name.
SELECTABLE_FIELDS = (*Image.model_fields, *COMPUTED_FIELDS)
