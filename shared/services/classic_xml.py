"""The classic Service Management API over the catalog: its XML in and out, and its use cases.

Azure's classic API (`management.core.windows.net/<subscription-id>/...`) speaks
XML in the namespace `http://schemas.microsoft.com/windowsazure`. Here:

- reading: `<OSImage>` request bodies are parsed with a real parser
  (namespaced or not), after refusing bodies over 64 KiB and any DTD or entity
  declaration; every element is checked against what the operation accepts;
- writing: catalog images become `<OSImage>` / `<VMImage>` with their
  elements in the order Azure documents, operation records `<Operation>`,
  domain errors `<Error>` with Azure's classic codes (`BadRequest`,
  `ResourceNotFound`, `ConflictError`, `ForbiddenError`, ...);
- the use cases the classic API adds to the catalog: list every image of one
  kind, register an OS image from a MediaLink in our storage account, update
  or delete one kind of image, and record an asynchronous call as an operation
  whose id is the call's `x-ms-request-id`.

The entry points (`functions/classic.py`) only parse, call one of these and
serialize. Everything above the "Use cases" line is pure.
"""

from __future__ import annotations

import codecs
import math
import os
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from azure.storage.blob import BlobClient, BlobServiceClient
from pydantic import ValidationError

from shared.adapters.blobs import BlobDiskGuard, BlobFacts, BlobRangeReader, facts
from shared.adapters.catalog_table import ImageCatalog
from shared.domain.disk_probe import check_partitions_fit, probe_disk
from shared.domain.disks import InvalidMediaLink as InvalidMediaLink  # re-exported
from shared.domain.disks import parse_media_link
from shared.domain.errors import (
    CatalogError,
    InvalidParameter,
    describe_validation_error,
)
from shared.domain.images import (
    LABEL,
    TEXT,
    TEXT_RULES,
    URI,
    CachingMode,
    DataDisk,
    DiskState,
    Image,
    ImageCategory,
    ImageKind,
    ImageNameTaken,
    ImageNotFound,
    ImageSource,
    OSDisk,
    OSType,
    PlatformImageReadOnly,
    TextRule,
    check_text,
    parse_choice,
    validate_image_name,
)
from shared.domain.operations import Operation
from shared.domain.uploads import NotAPageBlob
from shared.domain.vhd import VhdRejected, validate_vhd
from shared.services import catalog as catalog_service
from shared.services.registration import publish
from shared.services.uploads import UploadPolicy
from shared.settings import DEFAULTS

NS = "http://schemas.microsoft.com/windowsazure"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
# Requests may use the namespace as the client writes it, as newer docs spell it, or none.
ACCEPTED_NAMESPACES = frozenset({NS, "https://schemas.microsoft.com/windowsazure", ""})
MAX_BODY_BYTES = 64 * 1024
SUBSCRIPTION_SETTING = "CLASSIC_SUBSCRIPTION_ID"
GIB = 1024**3

# Operation kinds recorded for the asynchronous calls.
ADD_OS_IMAGE = "AddOSImage"
UPDATE_OS_IMAGE = "UpdateOSImage"
DELETE_OS_IMAGE = "DeleteOSImage"
DELETE_VM_IMAGE = "DeleteVMImage"
CREATE_VM_IMAGE = "CreateVMImage"
UPDATE_VM_IMAGE = "UpdateVMImage"


# -- Errors ------------------------------------------------------------------------


class MissingOrIncorrectVersionHeader(InvalidParameter):
    code = "MissingOrIncorrectVersionHeader"


class SubscriptionForbidden(CatalogError):
    code = "ForbiddenError"
    status = 403


class InvalidXmlBody(InvalidParameter):
    code = "InvalidXmlBody"


class MediaLinkNotFound(InvalidParameter):
    code = "MediaLinkNotFound"


# Codes a classic client knows; any other domain code is reported by its status.
_CLASSIC_CODES = frozenset(
    {
        "BadRequest",
        "ResourceNotFound",
        "ConflictError",
        "ForbiddenError",
        "InternalError",
        "MissingOrIncorrectVersionHeader",
    }
)
_CODE_BY_STATUS = {
    400: "BadRequest",
    401: "AuthenticationFailed",
    403: "ForbiddenError",
    404: "ResourceNotFound",
    409: "ConflictError",
    503: "ServiceUnavailable",
}


def classic_code(code: str, status: int) -> str:
    """The classic API's error code for a domain error (`ImageNotFound` -> `ResourceNotFound`)."""
    if code in _CLASSIC_CODES:
        return code
    if status in _CODE_BY_STATUS:
        return _CODE_BY_STATUS[status]
    return "InternalError" if status >= 500 else "BadRequest"


# -- Request checks ----------------------------------------------------------------


def check_version(header: str | None, since: str) -> str:
    """The `x-ms-version` header: a date-shaped version, no older than the operation."""
    value = (header or "").strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        date.fromisoformat(value)
    except ValueError:
        raise MissingOrIncorrectVersionHeader(
            "The versioning header is not specified or was specified incorrectly."
        ) from None
    if value < since:
        raise MissingOrIncorrectVersionHeader(
            f"The versioning header {value} is older than this operation supports "
            f"(use {since} or later)."
        )
    return value


def configured_subscription(env: Mapping[str, str] | None = None) -> str:
    e = os.environ if env is None else env
    return e.get(SUBSCRIPTION_SETTING) or DEFAULTS[SUBSCRIPTION_SETTING]


def check_subscription(given: str, configured: str) -> None:
    # Azure answers a subscription the credential does not belong to with 403 ForbiddenError.
    if given.strip().lower() != configured.strip().lower():
        raise SubscriptionForbidden(
            "The server failed to authenticate the request. Verify that the function key "
            "is valid and is associated with this subscription."
        )


def new_request_id() -> str:
    return uuid.uuid4().hex


def comp_media(params: Mapping[str, str]) -> bool:
    """`?comp=media` on a delete: also delete the disk blobs."""
    comp = params.get("comp")
    if comp is None:
        return False
    if comp.strip().lower() != "media":
        raise InvalidParameter(f"comp may only be 'media', not '{comp[:64]}'")
    return True


# -- Writing XML ---------------------------------------------------------------------

# Characters XML 1.0 cannot carry; a stray one must not make the whole answer unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def iso8601(value: datetime) -> str:
    v = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return v.isoformat().replace("+00:00", "Z")


def xml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso8601(value)
    return _NOT_XML.sub("", str(value))


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _add(parent: ET.Element, name: str, value: Any) -> None:
    if value is not None:
        ET.SubElement(parent, _q(name)).text = xml_text(value)


def _add_all(parent: ET.Element, pairs: Iterable[tuple[str, Any]]) -> None:
    for name, value in pairs:
        _add(parent, name, value)


def _document(root: ET.Element) -> bytes:
    body = ET.tostring(root, encoding="utf-8", default_namespace=NS)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


def media_link(image: Image) -> str | None:
    return image.MediaLink or (image.OSDiskConfiguration and image.OSDiskConfiguration.MediaLink)


def _os_image(image: Image) -> ET.Element:
    # Element order as Azure's List OS Images documents it; AffinityGroup, Language and
    # IOType are never known here, so never sent.
    el = ET.Element(_q("OSImage"))
    _add_all(
        el,
        [
            ("Category", image.Category),
            ("Label", image.Label),
            ("Location", image.Location),
            ("LogicalSizeInGB", image.LogicalSizeInGB),
            ("MediaLink", media_link(image)),
            ("Name", image.ImageName),
            ("OS", image.OS),
            ("Eula", image.Eula),
            ("Description", image.Description),
            ("ImageFamily", image.ImageFamily),
            ("ShowInGui", image.ShowInGui),
            ("PublishedDate", image.PublishedDate),
            ("IsPremium", image.IsPremium),
            ("IconUri", image.IconUri),
            ("PrivacyUri", image.PrivacyUri),
            ("RecommendedVMSize", image.RecommendedVMSize),
            ("PublisherName", image.PublisherName),
            ("PricingDetailLink", image.PricingDetailLink),
            ("SmallIconUri", image.SmallIconUri),
        ],
    )
    return el


def os_image_xml(image: Image) -> bytes:
    return _document(_os_image(image))


def os_image_details_xml(image: Image) -> bytes:
    """Get OS Image Details: the OS image's fields under `OSImageDetails`, plus where it
    is replicated. An image here lives in one place, so that is its Location (or none),
    fully replicated."""
    el = _os_image(image)
    el.tag = _q("OSImageDetails")
    progress = ET.SubElement(el, _q("ReplicationProgress"))
    for location in filter(None, (image.Location or "").split(";")):
        _add_all(
            ET.SubElement(progress, _q("ReplicationProgressElement")),
            [("Location", location), ("Progress", 100)],
        )
    return _document(el)


def images_xml(images: Iterable[Image]) -> bytes:
    root = ET.Element(_q("Images"))
    root.extend(_os_image(i) for i in images)
    return _document(root)


def _os_disk(image: Image) -> OSDisk:
    if image.OSDiskConfiguration is not None:
        return image.OSDiskConfiguration
    return OSDisk(OS=image.OS, MediaLink=image.MediaLink, LogicalDiskSizeInGB=image.LogicalSizeInGB)


def _vm_image(image: Image) -> ET.Element:
    # Element order as Azure's List VM Images documents it; ServiceName, DeploymentName,
    # RoleName, AffinityGroup, ModifiedTime, Language and IOType are not kept, so not sent.
    el = ET.Element(_q("VMImage"))
    _add_all(
        el,
        [
            ("Name", image.ImageName),
            ("Label", image.Label),
            ("Category", image.Category),
            ("Description", image.Description),
        ],
    )
    os_disk = _os_disk(image)
    _add_all(
        ET.SubElement(el, _q("OSDiskConfiguration")),
        [
            ("Name", os_disk.Name),
            ("HostCaching", os_disk.HostCaching),
            ("OSState", os_disk.OSState),
            ("OS", os_disk.OS),
            ("MediaLink", os_disk.MediaLink),
            ("LogicalDiskSizeInGB", os_disk.LogicalDiskSizeInGB),
        ],
    )
    data_disks = ET.SubElement(el, _q("DataDiskConfigurations"))
    for disk in sorted(image.DataDiskConfigurations, key=lambda d: d.Lun):
        _add_all(
            ET.SubElement(data_disks, _q("DataDiskConfiguration")),
            [
                ("Name", disk.Name),
                ("HostCaching", disk.HostCaching),
                ("Lun", disk.Lun),
                ("MediaLink", disk.MediaLink),
                ("LogicalDiskSizeInGB", disk.LogicalDiskSizeInGB),
            ],
        )
    _add_all(
        el,
        [
            ("Location", image.Location),
            ("CreatedTime", image.CreatedTime),
            ("ImageFamily", image.ImageFamily),
            ("RecommendedVMSize", image.RecommendedVMSize),
            ("IsPremium", image.IsPremium),
            ("Eula", image.Eula),
            ("IconUri", image.IconUri),
            ("SmallIconUri", image.SmallIconUri),
            ("PrivacyUri", image.PrivacyUri),
            ("PublisherName", image.PublisherName),
            ("PublishedDate", image.PublishedDate),
            ("ShowInGui", image.ShowInGui),
            ("PricingDetailLink", image.PricingDetailLink),
        ],
    )
    return el


def vm_image_xml(image: Image) -> bytes:
    return _document(_vm_image(image))


def vm_images_xml(images: Iterable[Image]) -> bytes:
    root = ET.Element(_q("VMImages"))
    root.extend(_vm_image(i) for i in images)
    return _document(root)


def operation_xml(op: Operation) -> bytes:
    """Get Operation Status. Azure sends `<ID>`; the Python classic client reads `<Id>`:
    both are sent (`<Id>` last, where readers that follow the schema skip it)."""
    root = ET.Element(_q("Operation"))
    _add(root, "ID", op.OperationId)
    _add(root, "Status", op.Status)
    if op.final:
        _add(root, "HttpStatusCode", op.HttpStatusCode)
    if op.Error is not None:
        error = ET.SubElement(root, _q("Error"))
        _add(error, "Code", op.Error.Code)
        _add(error, "Message", op.Error.Message)
    _add(root, "Id", op.OperationId)
    return _document(root)


def error_xml(code: str, message: str) -> bytes:
    root = ET.Element(_q("Error"))
    _add(root, "Code", code)
    _add(root, "Message", message)
    return _document(root)


# -- Reading XML ---------------------------------------------------------------------

_DECLARATIONS = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _decode(body: bytes) -> str:
    try:
        if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return body.decode("utf-16")
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidXmlBody(f"the body is not UTF-8 (or UTF-16) text: {e.reason}") from None


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def read_root(body: bytes, root: str) -> ET.Element:
    """The `<root>` element of a request body, refusing what no body of ours may hold.

    Refuses (InvalidXmlBody, 400) bodies over 64 KiB, DTDs and entity
    declarations (searched in the decoded text, so no encoding hides one),
    malformed XML, and another root or namespace.
    """
    if len(body) > MAX_BODY_BYTES:
        raise InvalidXmlBody(f"the body is larger than {MAX_BODY_BYTES // 1024} KiB")
    text = _decode(body)
    if not text.strip():
        raise InvalidXmlBody(f"send an <{root}> XML body")
    if _DECLARATIONS.search(text):
        raise InvalidXmlBody("DTDs and entity declarations are not accepted in request bodies")
    try:
        doc = ET.fromstring(text)
    except ET.ParseError as e:
        raise InvalidXmlBody(f"the body is not well-formed XML: {e}") from None
    ns, local = _split(doc.tag)
    if local != root or ns not in ACCEPTED_NAMESPACES:
        where = f" in namespace {ns}" if ns else ""
        raise InvalidXmlBody(
            f"expected an <{root}> element in namespace {NS}, not <{local}>{where}"
        )
    return doc


def children(
    parent: ET.Element, where: str, allowed: Sequence[str], nested: Sequence[str] = ()
) -> dict[str, Any]:
    """The child elements of `parent`: {name: text} (None for `i:nil="true"`), or the
    element itself for the `nested` names. Unknown, repeated, or (other than `nested`)
    nested children are refused. Text is stripped of surrounding whitespace."""
    fields: dict[str, Any] = {}
    for child in parent:
        ns, name = _split(child.tag)
        if ns not in ACCEPTED_NAMESPACES or name not in allowed:
            raise InvalidXmlBody(
                f"<{name[:64]}> is not an element of <{where}>; it may have {', '.join(allowed)}"
            )
        if name in fields:
            raise InvalidXmlBody(f"<{name}> is given more than once")
        if name in nested:
            fields[name] = child
            continue
        if len(child):
            raise InvalidXmlBody(f"<{name}> must hold a value, not other elements")
        nil = (child.get(f"{{{XSI}}}nil") or "").strip().lower() in ("true", "1")
        fields[name] = None if nil else (child.text or "").strip()
    return fields


def read_element(body: bytes, root: str, allowed: Sequence[str]) -> dict[str, str | None]:
    """The simple child elements of a `<root>` body (see `read_root` and `children`)."""
    return children(read_root(body, root), root, allowed)


def _string(name: str, value: str, rule: TextRule = TEXT) -> str:
    return check_text(name, value, rule)


def parse_bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise InvalidParameter(f"{name} must be true or false, not '{value[:64]}'")
    return v == "true"


def parse_date(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidParameter(
            f"{name} must be an ISO 8601 date, like 2014-05-23T07:00:00Z, not '{value[:64]}'"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# Add OS Image: required and optional elements, as Azure documents them.
ADD_ELEMENTS = (
    "Label",
    "MediaLink",
    "Name",
    "OS",
    "Eula",
    "Description",
    "ImageFamily",
    "PublishedDate",
    "IsPremium",
    "ShowInGui",
    "PrivacyUri",
    "IconUri",
    "RecommendedVMSize",
    "SmallIconUri",
    "Language",
)
_OPTIONAL_TEXT = ("Eula", "Description", "ImageFamily", "RecommendedVMSize")
_URIS = ("PrivacyUri", "IconUri", "SmallIconUri")


@dataclass(frozen=True)
class NewOSImage:
    """A parsed Add OS Image request."""

    name: str
    label: str
    media_link: str
    os: OSType
    details: dict[str, Any] = field(default_factory=dict)  # other Image fields given


def new_image_details(f: Mapping[str, Any]) -> dict[str, Any]:
    """The optional Image fields an Add OS Image or Create VM Image body gives."""
    details: dict[str, Any] = {}
    for k in _OPTIONAL_TEXT:
        if f.get(k):
            details[k] = _string(k, f[k], TEXT_RULES[k])
    for k in _URIS:
        if f.get(k):
            details[k] = _string(k, f[k], URI)
    for k in ("IsPremium", "ShowInGui"):
        if f.get(k):
            details[k] = parse_bool(k, f[k])
    if f.get("PublishedDate"):
        details["PublishedDate"] = parse_date("PublishedDate", f["PublishedDate"])
    # Language: the catalog keeps no language; accepted and not stored.
    return details


def parse_add_os_image(body: bytes) -> NewOSImage:
    f = read_element(body, "OSImage", ADD_ELEMENTS)
    missing = [k for k in ("Label", "MediaLink", "Name", "OS") if not f.get(k)]
    if missing:
        raise InvalidParameter(f"Add OS Image needs {', '.join(f'<{k}>' for k in missing)}")
    return NewOSImage(
        name=validate_image_name(f["Name"]),
        label=_string("Label", f["Label"], LABEL),  # type: ignore[arg-type]
        media_link=_string("MediaLink", f["MediaLink"], URI),  # type: ignore[arg-type]
        os=parse_choice(f["OS"], OSType, "OS"),  # type: ignore[arg-type]
        details=new_image_details(f),
    )


# Update OS Image: what Azure documents, plus Name/MediaLink/OS, which older clients send
# (the Python client's `update_os_image`) and which may only repeat the current values.
UPDATE_ELEMENTS = (
    "Label",
    "Eula",
    "Description",
    "ImageFamily",
    "PublishedDate",
    "ShowInGui",
    "PrivacyUri",
    "IconUri",
    "RecommendedVMSize",
    "SmallIconUri",
    "Language",
    "MediaLink",
    "Name",
    "OS",
)


def parse_update_os_image(body: bytes) -> dict[str, str | None]:
    return read_element(body, "OSImage", UPDATE_ELEMENTS)


def update_changes(
    image: Image, fields: Mapping[str, str | None], operation: str = "Update OS Image"
) -> dict[str, Any]:
    """The catalog changes an Update OS (or VM) Image body asks for (only those that differ).

    Updatable: Label, Eula, Description, ImageFamily, RecommendedVMSize (an
    empty or nil element clears all but Label) and ShowInGui. PublishedDate,
    the icon and privacy URIs, Name, MediaLink and OS are kept by the catalog:
    they may be absent, empty, or repeat the current value (so an image read
    with Get OS Image can be sent back), and are refused if they differ.
    Language is accepted and ignored (the catalog keeps none).
    """
    changes: dict[str, Any] = {}
    if "Label" in fields:
        if not fields["Label"]:
            raise InvalidParameter("Label can't be empty")
        changes["Label"] = _string("Label", fields["Label"], LABEL)
    for k in _OPTIONAL_TEXT:
        if k in fields:
            changes[k] = _string(k, fields[k], TEXT_RULES[k]) if fields[k] else None
    if fields.get("ShowInGui"):
        changes["ShowInGui"] = parse_bool("ShowInGui", fields["ShowInGui"])  # type: ignore[arg-type]

    def kept(name: str, same: Callable[[str], bool]) -> None:
        value = fields.get(name)
        if value and not same(value):
            raise InvalidParameter(
                f"{name} can't be changed by {operation} here; "
                "send the current value or leave it out"
            )

    kept("PublishedDate", lambda v: parse_date("PublishedDate", v) == image.PublishedDate)
    for k in _URIS:
        kept(k, lambda v, k=k: v == getattr(image, k))
    kept("Name", lambda v: v.lower() == image.ImageName.lower())
    kept("MediaLink", lambda v: v == media_link(image))
    kept("OS", lambda v: parse_choice(v, OSType, "OS") == image.OS)
    return {k: v for k, v in changes.items() if getattr(image, k) != v}


# Update VM Image: what Azure documents (the disks' host caching by disk name or LUN).
UPDATE_VM_ELEMENTS = (
    "Label",
    "Description",
    "OSDiskConfiguration",
    "DataDiskConfigurations",
    "Language",
    "ImageFamily",
    "RecommendedVMSize",
    "Eula",
    "IconUri",
    "SmallIconUri",
    "PrivacyUri",
    "PublishedDate",
    "ShowInGui",
)
_DISK_LIST = ("OSDiskConfiguration", "DataDiskConfigurations")


@dataclass(frozen=True)
class VmImageUpdate:
    fields: dict[str, str | None]
    os_caching: str | None = None
    data_disks: tuple[dict[str, str | None], ...] = ()  # Name, HostCaching, Lun as sent


def data_disk_elements(listed: ET.Element | None, allowed: Sequence[str]) -> list[dict[str, Any]]:
    """The `<DataDiskConfiguration>` children of a `<DataDiskConfigurations>` element."""
    disks = []
    for child in [] if listed is None else listed:
        if _split(child.tag)[1] != "DataDiskConfiguration":
            raise InvalidXmlBody(
                "<DataDiskConfigurations> may only hold <DataDiskConfiguration> elements"
            )
        disks.append(children(child, "DataDiskConfiguration", allowed))
    return disks


def parse_update_vm_image(body: bytes) -> VmImageUpdate:
    f = children(read_root(body, "VMImage"), "VMImage", UPDATE_VM_ELEMENTS, _DISK_LIST)
    os_caching = None
    if (os_disk := f.pop("OSDiskConfiguration", None)) is not None:
        os_caching = children(os_disk, "OSDiskConfiguration", ("HostCaching",)).get("HostCaching")
    disks = data_disk_elements(
        f.pop("DataDiskConfigurations", None), ("Name", "HostCaching", "Lun")
    )
    return VmImageUpdate(f, os_caching, tuple(disks))


def vm_update_changes(image: Image, update: VmImageUpdate) -> dict[str, Any]:
    """The catalog changes an Update VM Image body asks for (only those that differ).

    As Update OS Image for the image's own fields, plus each disk's host caching:
    a data disk is named by its Name, or by its Lun when it has no name; its Lun
    can't be changed, and a disk the image doesn't have is refused.
    """
    changes = update_changes(image, update.fields, "Update VM Image")
    if update.os_caching:
        caching = parse_choice(update.os_caching, CachingMode, "OSDiskConfiguration/HostCaching")
        os_disk = _os_disk(image)
        if os_disk.HostCaching != caching:
            changes["OSDiskConfiguration"] = {**os_disk.model_dump(), "HostCaching": caching}
    disks = [d.model_dump() for d in image.DataDiskConfigurations]
    changed = False
    for sent in update.data_disks:
        name, lun = sent.get("Name"), sent.get("Lun")
        if lun and not re.fullmatch(r"\d{1,2}", lun):
            raise InvalidParameter(f"Lun must be a whole number from 0 to 63, not '{lun[:16]}'")
        match = [
            d
            for d in disks
            if (name and (d.get("Name") or "").lower() == name.lower())
            or (not name and lun and d["Lun"] == int(lun))
        ]
        if not match:
            raise InvalidParameter(
                f"'{image.ImageName}' has no data disk {name or f'at LUN {lun}'}"[:300]
            )
        disk = match[0]
        if lun and int(lun) != disk["Lun"]:
            raise InvalidParameter(f"the data disk {name}'s Lun can't be changed")
        if sent.get("HostCaching"):
            caching = parse_choice(
                sent["HostCaching"], CachingMode, "DataDiskConfiguration/HostCaching"
            )
            if disk["HostCaching"] != caching:
                disk["HostCaching"] = caching
                changed = True
    if changed:
        changes["DataDiskConfigurations"] = disks
    return changes


def update_vm_image(catalog: ImageCatalog, name: str, update: VmImageUpdate) -> Image:
    image = get_image_of_kind(catalog, name, ImageKind.VM)
    if image.Category == ImageCategory.PUBLIC:
        raise PlatformImageReadOnly(f"'{image.ImageName}' is a platform image and can't be changed")
    changes = vm_update_changes(image, update)
    if not changes:
        return image
    if changes.get("ImageFamily"):
        catalog_service.check_family(changes["ImageFamily"])
    return catalog.update(image.ImageName, changes)


@dataclass(frozen=True)
class VmImageFilter:
    """List VM Images' `location`, `publisher` and `category` (case-insensitive)."""

    location: str | None = None
    publisher: str | None = None
    category: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> VmImageFilter:
        def get(name: str) -> str | None:
            value = (params.get(name) or "").strip()
            return _string(name, value, TextRule(256)) if value else None

        return cls(get("location"), get("publisher"), get("category"))

    def matches(self, image: Image) -> bool:
        if self.location is not None:
            places = {p.strip().lower() for p in (image.Location or "").split(";")}
            if self.location.lower() not in places:
                return False
        if self.publisher is not None and (image.PublisherName or "").lower() != (
            self.publisher.lower()
        ):
            return False
        return self.category is None or str(image.Category).lower() == self.category.lower()


def blob_for_media_link(blobs: BlobServiceClient, link: str) -> BlobClient:
    """The blob a MediaLink names; it must be in the catalog's storage account."""
    container, blob = parse_media_link(link.strip(), blobs.url)
    return blobs.get_blob_client(container, blob)


# -- Use cases -----------------------------------------------------------------------


def list_images_of_kind(catalog: ImageCatalog, kind: ImageKind) -> list[Image]:
    """Every image of one kind (the classic lists have no paging), by name."""
    images: list[Image] = []
    after: str | None = None
    while True:
        page = catalog.page(None, {"ImageType": kind.value}, catalog_service.MAX_TOP, after)
        images.extend(page.items)
        if page.last_row is None:
            return images
        after = page.last_row


def list_vm_images(catalog: ImageCatalog, wanted: VmImageFilter) -> list[Image]:
    return [i for i in list_images_of_kind(catalog, ImageKind.VM) if wanted.matches(i)]


def get_image_of_kind(catalog: ImageCatalog, name: str, kind: ImageKind) -> Image:
    """An image by name, if it is of this kind (an OS image is not found as a VM image)."""
    image = catalog_service.get_image(catalog, name)
    if image.ImageType != kind:
        where = "services/vmimages" if image.ImageType == ImageKind.VM else "services/images"
        raise ImageNotFound(f"'{image.ImageName}' is a {image.ImageType}, not an {kind} ({where})")
    return image


def update_os_image(catalog: ImageCatalog, name: str, fields: Mapping[str, str | None]) -> Image:
    image = get_image_of_kind(catalog, name, ImageKind.OS)
    if image.Category == ImageCategory.PUBLIC:
        raise PlatformImageReadOnly(f"'{image.ImageName}' is a platform image and can't be changed")
    changes = update_changes(image, fields)
    if not changes:
        return image
    return catalog_service.update_image(catalog, image.ImageName, changes)


class Remover(Protocol):
    def remove(self, name: str, delete_vhd: bool) -> Image: ...


def delete_image(
    catalog: ImageCatalog, remover: Remover, name: str, kind: ImageKind, delete_vhd: bool
) -> Image:
    image = get_image_of_kind(catalog, name, kind)
    return remover.remove(image.ImageName, delete_vhd)


@dataclass(frozen=True)
class OurDisk:
    """A disk blob of ours that a request names, validated as a fixed VHD."""

    client: BlobClient
    blob: BlobFacts
    reader: BlobRangeReader
    size_bytes: int  # the disk's size as its footer gives it

    @property
    def link(self) -> str:
        return self.client.url.split("?")[0]

    @property
    def size_gb(self) -> int:
        return math.ceil(self.size_bytes / GIB)

    @property
    def path(self) -> str:
        return f"{self.blob.container}/{self.blob.name}"


def our_disk(blobs: BlobServiceClient, link: str, what: str, max_bytes: int) -> OurDisk:
    """The page blob at `link` (`what` names it in errors), validated by ranged reads.

    A disk another image holds is refused with 409 `DiskInUse` naming that image,
    and one leased by another tool with 409 `DiskLeased`, when it is claimed.
    """
    client = blob_for_media_link(blobs, link)
    blob = facts(client)
    if blob is None:
        raise MediaLinkNotFound(f"no blob exists at {what} '{link[:256]}'")
    if blob.blob_type != "PageBlob":
        raise NotAPageBlob(f"{what} is a {blob.blob_type}; disks must be page blobs")
    reader = BlobRangeReader(client, blob.size, blob.etag)
    try:
        footer = validate_vhd(reader, max_size_bytes=max_bytes)
    except VhdRejected as e:
        e.message = f"{what}: {e.message}"  # which disk, when a request names several
        raise
    return OurDisk(client, blob, reader, footer.current_size)


def _probed(disk: OurDisk, os: OSType) -> dict[str, Any]:
    """What the OS disk's probe adds to an image: generation, probe data, warnings."""
    probe = probe_disk(disk.reader, disk_size=disk.size_bytes)
    check_partitions_fit(probe)
    warnings = list(probe.warnings)
    if probe.os in ("Linux", "Windows") and probe.os != os:
        warnings.append(f"The request says OS={os} but the disk looks like {probe.os}.")
    probed = probe.to_dict()
    probed.pop("warnings", None)
    return {"Generation": probe.generation, "Probe": probed, "Warnings": warnings}


def _register_leased(
    catalog: ImageCatalog, blobs: BlobServiceClient, image: Image, disks: Sequence[OurDisk]
) -> Image:
    """Claim and lease every disk, then add the image (see services.registration)."""
    held = {disk.path for disk in disks}
    assert held == set(image.disk_blobs), "the image names exactly the disks validated"
    return publish(catalog, BlobDiskGuard.of_account(blobs), image)


def add_os_image(
    catalog: ImageCatalog,
    blobs: BlobServiceClient,
    request: NewOSImage,
    policy: UploadPolicy | None = None,
) -> Image:
    """Register a `User` OS image over a fixed VHD page blob of ours, and lease the blob.

    The disk is validated and probed with ranged reads, as an upload is.
    """
    policy = policy or UploadPolicy.from_env()
    if catalog.find(request.name) is not None:
        raise ImageNameTaken(f"an image named '{request.name}' already exists; choose another name")
    disk = our_disk(blobs, request.media_link, "the MediaLink blob", policy.max_os_disk_bytes)
    image = Image.model_validate(
        {
            "PublishedDate": datetime.now(UTC),
            **request.details,
            "ImageName": request.name,
            "ImageType": ImageKind.OS,
            "Label": request.label,
            "OS": request.os,
            "Category": ImageCategory.USER,
            "LogicalSizeInGB": disk.size_gb,
            "MediaLink": disk.link,
            "OSDiskConfiguration": OSDisk(
                OS=request.os,
                MediaLink=disk.link,
                LogicalDiskSizeInGB=disk.size_gb,
                SourceBlob=disk.path,
            ),
            "Source": ImageSource.API,
            **_probed(disk, request.os),
        }
    )
    return _register_leased(catalog, blobs, image, [disk])


# Create VM Image: what Azure documents.
CREATE_VM_ELEMENTS = ("Name", *UPDATE_VM_ELEMENTS)


@dataclass(frozen=True)
class NewDataDisk:
    lun: int
    caching: CachingMode
    media_link: str


@dataclass(frozen=True)
class NewVMImage:
    """A parsed Create VM Image request."""

    name: str
    label: str
    os: OSType
    os_state: DiskState
    os_caching: CachingMode
    os_media_link: str
    data_disks: tuple[NewDataDisk, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


def _lun(value: str | None) -> int:
    if not value:
        return 0  # "optional if the LUN for the disk is 0"
    if not re.fullmatch(r"\d{1,2}", value) or int(value) > 63:
        raise InvalidParameter(f"Lun must be a whole number from 0 to 63, not '{value[:16]}'")
    return int(value)


def parse_create_vm_image(body: bytes) -> NewVMImage:
    f = children(read_root(body, "VMImage"), "VMImage", CREATE_VM_ELEMENTS, _DISK_LIST)
    missing = [k for k in ("Name", "Label") if not f.get(k)]
    if f.get("OSDiskConfiguration") is None:  # an element: test presence, not truth
        missing.append("OSDiskConfiguration")
    if missing:
        raise InvalidParameter(f"Create VM Image needs {', '.join(f'<{k}>' for k in missing)}")
    osd = children(
        f.pop("OSDiskConfiguration"),
        "OSDiskConfiguration",
        ("HostCaching", "OSState", "OS", "MediaLink"),
    )
    lacking = [k for k in ("OSState", "OS", "MediaLink") if not osd.get(k)]
    if lacking:
        raise InvalidParameter(
            f"<OSDiskConfiguration> needs {', '.join(f'<{k}>' for k in lacking)}"
        )
    disks: list[NewDataDisk] = []
    listed = f.pop("DataDiskConfigurations", None)
    for d in data_disk_elements(listed, ("HostCaching", "Lun", "MediaLink", "LogicalDiskSizeInGB")):
        lun = _lun(d.get("Lun"))
        if not d.get("MediaLink"):
            raise InvalidParameter(f"the data disk at LUN {lun} needs a <MediaLink>")
        if any(other.lun == lun for other in disks):
            raise InvalidParameter(f"two data disks are given LUN {lun}")
        caching = d.get("HostCaching") or CachingMode.NONE.value
        disks.append(
            NewDataDisk(
                lun,
                parse_choice(caching, CachingMode, "DataDiskConfiguration/HostCaching"),
                _string("MediaLink", d["MediaLink"], URI),
            )
        )
    details = new_image_details(f)
    if details.get("ImageFamily"):
        catalog_service.check_family(details["ImageFamily"])
    return NewVMImage(
        name=validate_image_name(f["Name"]),
        label=_string("Label", f["Label"], LABEL),
        os=parse_choice(osd["OS"], OSType, "OS"),
        os_state=parse_choice(osd["OSState"], DiskState, "OSState"),
        os_caching=parse_choice(
            osd.get("HostCaching") or CachingMode.READ_WRITE.value,
            CachingMode,
            "OSDiskConfiguration/HostCaching",
        ),
        os_media_link=_string("MediaLink", osd["MediaLink"], URI),
        data_disks=tuple(sorted(disks, key=lambda d: d.lun)),
        details=details,
    )


def create_vm_image(
    catalog: ImageCatalog,
    blobs: BlobServiceClient,
    request: NewVMImage,
    policy: UploadPolicy | None = None,
) -> Image:
    """Register a `User` VM image over an OS disk and data disks of ours, leasing them all.

    Every disk is validated with ranged reads (the OS disk also probed) before
    any is leased; a disk named twice, or already leased, is refused.
    """
    policy = policy or UploadPolicy.from_env()
    if catalog.find(request.name) is not None:
        raise ImageNameTaken(f"an image named '{request.name}' already exists; choose another name")
    os_disk = our_disk(
        blobs, request.os_media_link, "the OS disk's MediaLink", policy.max_os_disk_bytes
    )
    data = [
        (
            d,
            our_disk(
                blobs,
                d.media_link,
                f"the MediaLink of the data disk at LUN {d.lun}",
                policy.max_data_disk_bytes,
            ),
        )
        for d in request.data_disks
    ]
    paths = [os_disk.path] + [disk.path for _, disk in data]
    if len(set(paths)) != len(paths):
        raise InvalidParameter("a disk blob is named more than once; each disk needs its own")
    image = Image.model_validate(
        {
            "PublishedDate": datetime.now(UTC),
            **request.details,
            "ImageName": request.name,
            "ImageType": ImageKind.VM,
            "Label": request.label,
            "OS": request.os,
            "Category": ImageCategory.USER,
            "LogicalSizeInGB": os_disk.size_gb,
            "OSDiskConfiguration": OSDisk(
                Name=f"{request.name}-os",
                OS=request.os,
                OSState=request.os_state,
                HostCaching=request.os_caching,
                MediaLink=os_disk.link,
                LogicalDiskSizeInGB=os_disk.size_gb,
                SourceBlob=os_disk.path,
            ),
            "DataDiskConfigurations": [
                DataDisk(
                    Name=f"{request.name}-data-{d.lun}",
                    Lun=d.lun,
                    HostCaching=d.caching,
                    MediaLink=disk.link,
                    LogicalDiskSizeInGB=disk.size_gb,
                    SourceBlob=disk.path,
                )
                for d, disk in data
            ],
            "Source": ImageSource.API,
            **_probed(os_disk, request.os),
        }
    )
    return _register_leased(catalog, blobs, image, [os_disk, *(disk for _, disk in data)])


class OperationLog(Protocol):
    def create(self, op: Operation) -> tuple[Operation, bool]: ...


@dataclass
class ClassicCall:
    """One classic request: its `x-ms-request-id` and, for asynchronous calls, what to record."""

    request_id: str
    kind: str | None = None  # the operation kind; None for calls that leave no operation
    image_name: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def operation(self) -> Operation:
        return Operation(
            OperationId=self.request_id,
            Kind=self.kind or "Classic",
            ImageName=self.image_name,
            Details=self.details,
        )


@contextmanager
def recorded(log: OperationLog, call: ClassicCall) -> Iterator[ClassicCall]:
    """Record the call as a finished operation: Succeeded, or Failed with the error's code.

    Every asynchronous call completes before it answers, so its operation is
    final by the time the client can ask Get Operation Status about it.
    """
    try:
        yield call
    except CatalogError as e:
        log.create(call.operation().fail(e.code, e.message, e.status))
        raise
    except ValidationError as e:
        log.create(call.operation().fail("InvalidParameter", describe_validation_error(e), 400))
        raise
    except Exception:
        # The caller reports the original failure; a second one while recording must not hide it.
        with suppress(Exception):
            log.create(call.operation().fail("InternalError", "The operation failed.", 500))
        raise
    log.create(call.operation().succeed())


CAPTURE_ROLE = "CaptureRoleOperation"
CAPTURE_AS_VM_IMAGE = "CaptureRoleAsVMImageOperation"
_CAPTURE_FIELDS = {
    CAPTURE_ROLE: (
        "OperationType", "PostCaptureAction", "ProvisioningConfiguration",
        "TargetImageLabel", "TargetImageName",
    ),
    CAPTURE_AS_VM_IMAGE: (
        "OperationType", "OSState", "VMImageName", "VMImageLabel", "Description",
        "Language", "ImageFamily", "RecommendedVMSize",
    ),
}  # fmt: skip


def parse_capture_operation(
    body: bytes, service: str, role: str, request_id: str
) -> dict[str, Any]:
    """A classic role-instance capture body as the catalog's capture request (a dict).

    `CaptureRoleOperation` (PostCaptureAction=Delete) captures an OS image and
    deletes the VM; `CaptureRoleAsVMImageOperation` captures a VM image with the
    given OSState. The request id becomes the operation id.
    """
    fields: dict[str, str | None] | None = None
    root = CAPTURE_ROLE
    for candidate in (CAPTURE_ROLE, CAPTURE_AS_VM_IMAGE):
        try:
            fields = read_element(body, candidate, _CAPTURE_FIELDS[candidate])
            root = candidate
            break
        except InvalidXmlBody as e:
            if "expected an <" not in e.message:
                raise
    if fields is None:
        raise InvalidXmlBody(f"expected a <{CAPTURE_ROLE}> or <{CAPTURE_AS_VM_IMAGE}> body")
    if (fields.get("OperationType") or root) != root:
        raise InvalidXmlBody(f"OperationType must be {root}")
    doc: dict[str, Any] = {"ServiceName": service, "Name": role, "OperationId": request_id}
    if root == CAPTURE_ROLE:
        action = (fields.get("PostCaptureAction") or "").strip()
        if action.lower() != "delete":
            raise InvalidXmlBody(
                f"PostCaptureAction {action or '(missing)'} is not supported: the catalog "
                "captures an OS image and deletes the VM (Delete); to keep the VM, capture it "
                "as a Specialized VM image (CaptureRoleAsVMImageOperation)"
            )
        doc["ImageName"] = fields.get("TargetImageName")
        doc["ImageLabel"] = fields.get("TargetImageLabel") or None
    else:
        doc["ImageName"] = fields.get("VMImageName")
        doc["ImageLabel"] = fields.get("VMImageLabel") or None
        doc["OSState"] = fields.get("OSState")
        for name in ("Description", "ImageFamily", "RecommendedVMSize"):
            if fields.get(name):
                doc[name] = fields[name]
    return {k: v for k, v in doc.items() if v is not None}
