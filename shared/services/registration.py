"""Publish an image over its disks: the one way every image with disks comes to be.

Uploads, manifests, classic Add OS Image and Create VM Image, and captures all
come here. The catalog claims each disk for the image (a disk belongs to at most
one image), the disks are leased under that claim, and the image row commits;
any failure gives the disks back. A request repeated after it succeeded (the
same upload, the same capture operation) gets its image back, not a second one.
"""

from __future__ import annotations

import random
import time

from shared.adapters.blobs import BlobDiskGuard, DiskLeaseHeld
from shared.adapters.catalog_table import ImageCatalog
from shared.domain.images import DiskInUse, DiskLeased, Image, ImageNameTaken, image_key

_SIBLING_TRIES = 5  # twin deliveries of one request taking a disk from each other


def owner_of_operation(operation_id: str) -> str:
    return f"op:{operation_id}"


def owner_of(image: Image) -> str | None:
    """The request an image came from: a capture operation, or an upload's blob version."""
    if image.SourceOperation:
        return owner_of_operation(image.SourceOperation)
    if image.SourceUpload:
        return f"upload:{image.SourceUpload}"
    return None


def _same_request(catalog: ImageCatalog, image: Image) -> Image | None:
    owner = owner_of(image)
    existing = catalog.find(image.ImageName)
    if owner is not None and existing is not None and owner_of(existing) == owner:
        return existing
    return None


def publish(catalog: ImageCatalog, guard: BlobDiskGuard, image: Image) -> Image:
    """Claim, lease and publish; idempotent for a repeat of the same request."""
    for attempt in range(_SIBLING_TRIES):
        again = _same_request(catalog, image)
        if again is not None:
            return again
        try:
            return catalog.add(image, owner=owner_of(image), guard=guard)
        except ImageNameTaken:
            again = _same_request(catalog, image)
            if again is not None:
                return again
            raise
        except DiskInUse as e:
            if e.image_name and image_key(e.image_name) == image.key:
                again = _same_request(catalog, image)
                if again is not None:
                    return again
            raise
        except DiskLeaseHeld as e:
            # Deliveries of one request race for its disks: another took our claim over and
            # leased the disk under its id before we did. Try again a little later (taking
            # the disk back, or finding its image); never fail a request over its twin.
            if owner_of(image) is not None and attempt + 1 < _SIBLING_TRIES:
                time.sleep(random.uniform(0, 0.05 * 2**attempt))
                continue
            raise DiskLeased(
                f"{e}; the catalog cannot protect it. Break that lease (or stop the tool "
                "that holds it) and try again."
            ) from e
    raise AssertionError("unreachable: the last attempt returns or raises")
