"""Disk blobs of ours that a classic request names: found by MediaLink, validated, leased."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from azure.storage.blob import BlobClient, BlobServiceClient

from shared.adapters.blobs import BlobDiskGuard, BlobFacts, BlobRangeReader, facts
from shared.adapters.catalog_table import ImageCatalog
from shared.domain.disk_probe import check_partitions_fit, probe_disk
from shared.domain.disks import InvalidMediaLink as InvalidMediaLink  # re-exported
from shared.domain.disks import parse_media_link
from shared.domain.errors import InvalidParameter
from shared.domain.images import Image, OSType
from shared.domain.uploads import NotAPageBlob
from shared.domain.vhd import VhdRejected, validate_vhd
from shared.services.registration import publish

GIB = 1024**3


class MediaLinkNotFound(InvalidParameter):
    code = "MediaLinkNotFound"


def blob_for_media_link(blobs: BlobServiceClient, link: str) -> BlobClient:
    """The blob a MediaLink names; it must be in the catalog's storage account."""
    container, blob = parse_media_link(link.strip(), blobs.url)
    return blobs.get_blob_client(container, blob)


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


def probed(disk: OurDisk, os: OSType) -> dict[str, Any]:
    """What the OS disk's probe adds to an image: generation, probe data, warnings."""
    probe = probe_disk(disk.reader, disk_size=disk.size_bytes)
    check_partitions_fit(probe)
    warnings = list(probe.warnings)
    if probe.os in ("Linux", "Windows") and probe.os != os:
        warnings.append(f"The request says OS={os} but the disk looks like {probe.os}.")
    probed = probe.to_dict()
    probed.pop("warnings", None)
    return {"Generation": probe.generation, "Probe": probed, "Warnings": warnings}


def register_leased(
    catalog: ImageCatalog, blobs: BlobServiceClient, image: Image, disks: Sequence[OurDisk]
) -> Image:
    """Claim and lease every disk, then add the image (see services.registration)."""
    held = {disk.path for disk in disks}
    assert held == set(image.disk_blobs), "the image names exactly the disks validated"
    return publish(catalog, BlobDiskGuard.of_account(blobs), image)
