"""Remove an image: unpublish it, then release (or delete) the disks it protected.

The catalog row goes first (one atomic batch), so no reader ever sees an
image whose disk is gone. A disk blob is deleted only with `delete_vhd` and
only if no other image points at it; otherwise its lease is just released.
"""

from __future__ import annotations

from dataclasses import dataclass

from azure.storage.blob import BlobServiceClient

from shared.adapters.blobs import delete_protected, release
from shared.adapters.catalog_table import ImageCatalog
from shared.domain.images import Image, ImageCategory, PlatformImageReadOnly, validate_image_name


@dataclass
class ImageRemover:
    catalog: ImageCatalog
    blobs: BlobServiceClient

    def remove(self, name: str, delete_vhd: bool) -> Image:
        image = self.catalog.get(validate_image_name(name))
        if image.Category == ImageCategory.PUBLIC:
            raise PlatformImageReadOnly(
                f"'{image.ImageName}' is a platform image and can't be removed"
            )
        removed = self.catalog.remove(image.ImageName)
        for path in removed.disk_blobs:
            container, _, blob = path.partition("/")
            client = self.blobs.get_blob_client(container, blob)
            if delete_vhd and not self.catalog.uses_media(client.url.split("?")[0]):
                delete_protected(client)
            else:
                release(client)
        return removed
