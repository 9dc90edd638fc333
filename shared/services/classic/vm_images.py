"""VM images: List (with location, publisher, category), Get, Create, Update and Delete VM Image.

Catalog VM images become `<VMImage>` with the OS disk and every data disk;
Create registers one over disk blobs of ours, each validated and leased; Update
changes the image's fields and each disk's host caching.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.storage.blob import BlobServiceClient

from shared.adapters.catalog_table import ImageCatalog, from_entity
from shared.domain.errors import InvalidParameter
from shared.domain.images import (
    LABEL,
    URI,
    CachingMode,
    DataDisk,
    DiskState,
    Image,
    ImageCategory,
    ImageKind,
    ImageNameTaken,
    ImageSource,
    OSDisk,
    OSType,
    PlatformImageReadOnly,
    TextRule,
    parse_choice,
    validate_image_name,
)
from shared.services import catalog as catalog_service
from shared.services.classic import listing
from shared.services.classic.disks import our_disk, probed, register_leased
from shared.services.classic.images import (
    get_image_of_kind,
    iter_images_of_kind,
    new_image_details,
    update_changes,
)
from shared.services.classic.snapshots import ListBody, SnapshotStore, snapshot_list
from shared.services.classic.xmldoc import (
    InvalidXmlBody,
    add_all,
    children,
    document,
    joined,
    list_document,
    q,
    read_root,
    split_tag,
    text_field,
)
from shared.services.uploads import UploadPolicy


def _os_disk(image: Image) -> OSDisk:
    if image.OSDiskConfiguration is not None:
        return image.OSDiskConfiguration
    return OSDisk(OS=image.OS, MediaLink=image.MediaLink, LogicalDiskSizeInGB=image.LogicalSizeInGB)


def _vm_image(image: Image) -> ET.Element:
    # Element order as Azure's List VM Images documents it; ServiceName, DeploymentName,
    # RoleName, AffinityGroup, ModifiedTime, Language and IOType are not kept, so not sent.
    el = ET.Element(q("VMImage"))
    add_all(
        el,
        [
            ("Name", image.ImageName),
            ("Label", image.Label),
            ("Category", image.Category),
            ("Description", image.Description),
        ],
    )
    os_disk = _os_disk(image)
    add_all(
        ET.SubElement(el, q("OSDiskConfiguration")),
        [
            ("Name", os_disk.Name),
            ("HostCaching", os_disk.HostCaching),
            ("OSState", os_disk.OSState),
            ("OS", os_disk.OS),
            ("MediaLink", os_disk.MediaLink),
            ("LogicalDiskSizeInGB", os_disk.LogicalDiskSizeInGB),
        ],
    )
    data_disks = ET.SubElement(el, q("DataDiskConfigurations"))
    for disk in sorted(image.DataDiskConfigurations, key=lambda d: d.Lun):
        add_all(
            ET.SubElement(data_disks, q("DataDiskConfiguration")),
            [
                ("Name", disk.Name),
                ("HostCaching", disk.HostCaching),
                ("Lun", disk.Lun),
                ("MediaLink", disk.MediaLink),
                ("LogicalDiskSizeInGB", disk.LogicalDiskSizeInGB),
            ],
        )
    add_all(
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
    return document(_vm_image(image))


def vm_images_xml_chunks(images: Iterable[Image]) -> Iterator[bytes]:
    """List VM Images' body, an image at a time (see `list_document`)."""
    return list_document("VMImages", map(_vm_image, images))


def vm_images_xml(images: Iterable[Image]) -> bytes:
    return joined(vm_images_xml_chunks(images))


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
        if split_tag(child.tag)[1] != "DataDiskConfiguration":
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
            return text_field(name, value, TextRule(256)) if value else None

        return cls(get("location"), get("publisher"), get("category"))

    def matches(self, image: Image) -> bool:
        return self._matches(image.Location, image.PublisherName, str(image.Category))

    def matches_row(self, row: Mapping[str, Any]) -> bool:
        """`matches` for a table row (a missing Category is the model's default, User)."""
        category = row.get("Category") or ImageCategory.USER.value
        return self._matches(row.get("Location"), row.get("PublisherName"), str(category))

    def _matches(self, location: str | None, publisher: str | None, category: str) -> bool:
        if self.location is not None:
            places = {p.strip().lower() for p in (location or "").split(";")}
            if self.location.lower() not in places:
                return False
        if self.publisher is not None and (publisher or "").lower() != self.publisher.lower():
            return False
        return self.category is None or category.lower() == self.category.lower()


def iter_vm_images(catalog: ImageCatalog, wanted: VmImageFilter) -> Iterator[Image]:
    return (i for i in iter_images_of_kind(catalog, ImageKind.VM) if wanted.matches(i))


def list_vm_images(catalog: ImageCatalog, wanted: VmImageFilter) -> list[Image]:
    return list(iter_vm_images(catalog, wanted))


def list_vm_images_body(catalog: ImageCatalog, wanted: VmImageFilter) -> Iterator[bytes]:
    """List VM Images' body in pieces, as `list_os_images_body`; equal to `vm_images_xml`."""
    rows = catalog.select_images({"ImageType": ImageKind.VM.value}, listing.VM_IMAGE_COLUMNS)
    return listing.vm_images_xml_rows(filter(wanted.matches_row, rows), from_entity, _vm_image)


def vm_images_list(
    catalog: ImageCatalog, wanted: VmImageFilter, snapshots: SnapshotStore
) -> ListBody:
    """List VM Images' whole body: unfiltered, from its snapshot while the catalog is
    unchanged (see `os_images_list`); filtered, built."""
    build = lambda: joined(list_vm_images_body(catalog, wanted))  # noqa: E731
    if wanted != VmImageFilter():
        return ListBody(xml=build())
    return snapshot_list(
        snapshots, "vm-images.xml", catalog.version, build, lambda: datetime.now(UTC)
    )


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
                text_field("MediaLink", d["MediaLink"], URI),
            )
        )
    details = new_image_details(f)
    if details.get("ImageFamily"):
        catalog_service.check_family(details["ImageFamily"])
    return NewVMImage(
        name=validate_image_name(f["Name"]),
        label=text_field("Label", f["Label"], LABEL),
        os=parse_choice(osd["OS"], OSType, "OS"),
        os_state=parse_choice(osd["OSState"], DiskState, "OSState"),
        os_caching=parse_choice(
            osd.get("HostCaching") or CachingMode.READ_WRITE.value,
            CachingMode,
            "OSDiskConfiguration/HostCaching",
        ),
        os_media_link=text_field("MediaLink", osd["MediaLink"], URI),
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
            **probed(os_disk, request.os),
        }
    )
    return register_leased(catalog, blobs, image, [os_disk, *(disk for _, disk in data)])
