"""Remove an image: unpublish it, then give back (or delete) its disks.

An image with deletion protection (until its end of life, or until turned off) is
refused with 409 `ImageDeletionProtected` naming the reason.

The image row goes first, so no published image ever has a disk that is unleased
or gone. Then each disk claimed by this image, and only those, is deleted under
the image's own lease (with `delete_vhd`) or its lease released, and the claim
row is dropped. Killed after unpublishing, the disks stay leased under a claim
whose image is gone: nothing is lost, the next image to claim such a disk takes
the claim and its lease over, and `vmimage doctor` lists them (DeadClaim,
LeasedWithoutImage); there is no repair command yet: break the lease by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from azure.storage.blob import BlobServiceClient

from shared.adapters.blobs import delete_protected, legacy_lease_id, release
from shared.adapters.catalog_table import ImageCatalog, claim_lease_id
from shared.adapters.hash_store import HashStore
from shared.domain.images import (
    Image,
    ImageCategory,
    PlatformImageReadOnly,
    validate_image_name,
)
from shared.domain.lifecycle import check_removable
from shared.services.content_hashes import unindex


@dataclass
class ImageRemover:
    catalog: ImageCatalog
    blobs: BlobServiceClient
    hashes: HashStore | None = None  # its content hash index rows, job and blobs go too

    def remove(self, name: str, delete_vhd: bool) -> Image:
        image = self.catalog.get(validate_image_name(name))
        if image.Category == ImageCategory.PUBLIC:
            raise PlatformImageReadOnly(
                f"'{image.ImageName}' is a platform image and can't be removed"
            )
        # Judged on the row the deletion is conditional on: protection turned on meanwhile holds.
        removed, claim_id = self.catalog.remove_claimed(
            image.ImageName, check=lambda row: check_removable(row, datetime.now(UTC))
        )
        self.release_disks(removed.disk_blobs, claim_id, delete_vhd)
        if self.hashes is not None:
            unindex(self.hashes, removed)
        return removed

    def release_disks(self, paths: list[str], claim_id: str | None, delete_vhd: bool) -> None:
        """Give back the disks an image held under `claim_id` (idempotent)."""
        for path in paths:
            container, _, blob = path.partition("/")
            client = self.blobs.get_blob_client(container, blob)
            if claim_id is None:  # an image from before claims: its lease id is the path's
                lease_id = legacy_lease_id(container, blob)
            else:
                held = self.catalog.claim_of(path)
                if held is None or held["Change"] != claim_id:
                    continue  # not ours (any more): never touch another image's disk
                lease_id = claim_lease_id(self.catalog.account, path, claim_id)
            if delete_vhd:
                delete_protected(client, lease_id)
            else:
                release(client, lease_id)
            if claim_id is not None:
                self.catalog.unclaim([path], claim_id)
