"""OS images: List, Get, Get Details, Add, Update and Delete OS Image.

Catalog images become `<OSImage>` with their elements in the order Azure
documents; Add registers an OS image over a fixed VHD page blob of ours (validated
and probed by ranged reads, then claimed and leased); Update and Delete act on
one kind of image only (a VM image is not found here). Get/list/delete helpers
are shared with VM images.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from azure.storage.blob import BlobServiceClient

from shared.adapters.catalog_table import ImageCatalog, from_entity
from shared.domain.errors import InvalidParameter
from shared.domain.images import (
    LABEL,
    TEXT_RULES,
    URI,
    Image,
    ImageCategory,
    ImageKind,
    ImageNameTaken,
    ImageNotFound,
    ImageSource,
    OSDisk,
    OSType,
    PlatformImageReadOnly,
    parse_choice,
    validate_image_name,
)
from shared.services import catalog as catalog_service
from shared.services.classic import listing
from shared.services.classic.disks import our_disk, probed, register_leased
from shared.services.classic.snapshots import ListBody, SnapshotStore, snapshot_list
from shared.services.classic.xmldoc import (
    add_all,
    document,
    joined,
    list_document,
    parse_bool,
    parse_date,
    q,
    read_element,
    text_field,
)
from shared.services.uploads import UploadPolicy


def media_link(image: Image) -> str | None:
    return image.MediaLink or (image.OSDiskConfiguration and image.OSDiskConfiguration.MediaLink)


def _os_image(image: Image) -> ET.Element:
    # Element order as Azure's List OS Images documents it; AffinityGroup, Language and
    # IOType are never known here, so never sent.
    el = ET.Element(q("OSImage"))
    add_all(
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
    return document(_os_image(image))


def os_image_details_xml(image: Image) -> bytes:
    """Get OS Image Details: the OS image's fields under `OSImageDetails`, plus where it
    is replicated. An image here lives in one place, so that is its Location (or none),
    fully replicated."""
    el = _os_image(image)
    el.tag = q("OSImageDetails")
    progress = ET.SubElement(el, q("ReplicationProgress"))
    for location in filter(None, (image.Location or "").split(";")):
        add_all(
            ET.SubElement(progress, q("ReplicationProgressElement")),
            [("Location", location), ("Progress", 100)],
        )
    return document(el)


def images_xml_chunks(images: Iterable[Image]) -> Iterator[bytes]:
    """List OS Images' body, an image at a time (see `list_document`)."""
    return list_document("Images", map(_os_image, images))


def images_xml(images: Iterable[Image]) -> bytes:
    return joined(images_xml_chunks(images))


def list_os_images_body(catalog: ImageCatalog) -> Iterator[bytes]:
    """List OS Images' body in pieces: the OS image rows through one query, only the listed
    columns, written as text (shared/services/classic/listing.py); equal to `images_xml`."""
    rows = catalog.select_images({"ImageType": ImageKind.OS.value}, listing.OS_IMAGE_COLUMNS)
    return listing.os_images_xml_rows(rows, from_entity, _os_image)


def os_images_list(catalog: ImageCatalog, snapshots: SnapshotStore) -> ListBody:
    """List OS Images' whole body: its snapshot while the catalog is unchanged, else built."""
    return snapshot_list(
        snapshots,
        "os-images.xml",
        catalog.version,
        lambda: joined(list_os_images_body(catalog)),
        lambda: datetime.now(UTC),
    )


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
            details[k] = text_field(k, f[k], TEXT_RULES[k])
    for k in _URIS:
        if f.get(k):
            details[k] = text_field(k, f[k], URI)
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
        label=text_field("Label", f["Label"], LABEL),  # type: ignore[arg-type]
        media_link=text_field("MediaLink", f["MediaLink"], URI),  # type: ignore[arg-type]
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
        changes["Label"] = text_field("Label", fields["Label"], LABEL)
    for k in _OPTIONAL_TEXT:
        if k in fields:
            changes[k] = text_field(k, fields[k], TEXT_RULES[k]) if fields[k] else None
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


def iter_images_of_kind(catalog: ImageCatalog, kind: ImageKind) -> Iterator[Image]:
    """Every image of one kind (the classic lists have no paging), by name, read a page of
    1000 at a time as it is consumed: only one page is held at once."""
    after: str | None = None
    while True:
        page = catalog.page(None, {"ImageType": kind.value}, catalog_service.MAX_TOP, after)
        yield from page.items
        if page.last_row is None:
            return
        after = page.last_row


def list_images_of_kind(catalog: ImageCatalog, kind: ImageKind) -> list[Image]:
    return list(iter_images_of_kind(catalog, kind))


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
            **probed(disk, request.os),
        }
    )
    return register_leased(catalog, blobs, image, [disk])
