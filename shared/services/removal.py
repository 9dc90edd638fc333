"""Remove an image: release its disks, unpublish it, then (optionally) delete the disks.

The order makes every step safe to interrupt and retry: killed after the release,
the image is still listed (its disk intact, just no longer leased) and deleting it
again finishes the job; killed after unpublishing, its disk is left unleased, so
anyone can delete it - never an image whose disk is gone, never a blob that only
breaking our lease could free. A disk blob is deleted only with `delete_vhd` and
only if no other image points at it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from azure.storage.blob import BlobClient, BlobServiceClient

from shared.adapters.blobs import DiskLeaseHeld, delete_protected, protect, release
from shared.adapters.catalog_table import ImageCatalog
from shared.domain.images import (
    Image,
    ImageCategory,
    ImageNotFound,
    PlatformImageReadOnly,
    validate_image_name,
)


@dataclass
class ImageRemover:
    catalog: ImageCatalog
    blobs: BlobServiceClient

    def _disks(self, image: Image) -> list[BlobClient]:
        clients = []
        for path in image.disk_blobs:
            container, _, blob = path.partition("/")
            clients.append(self.blobs.get_blob_client(container, blob))
        return clients

    def remove(self, name: str, delete_vhd: bool) -> Image:
        image = self.catalog.get(validate_image_name(name))
        if image.Category == ImageCategory.PUBLIC:
            raise PlatformImageReadOnly(
                f"'{image.ImageName}' is a platform image and can't be removed"
            )
        disks = self._disks(image)
        for client in disks:
            release(client)
        try:
            removed = self.catalog.remove(image.ImageName)
        except ImageNotFound:
            raise  # removed meanwhile by someone else, who released the same disks
        except Exception:
            with contextlib.suppress(Exception):  # the first error is the one to report
                if self.catalog.find(image.ImageName) is not None:
                    for client in disks:  # still published: protect its disks again
                        with contextlib.suppress(DiskLeaseHeld):
                            protect(client)
            raise
        if delete_vhd:
            for client in self._disks(removed):
                if not self.catalog.uses_media(client.url.split("?")[0]):
                    delete_protected(client)
        return removed
