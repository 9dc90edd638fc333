"""Load the shipped platform and community gallery (shared/data/gallery.json) idempotently."""

from __future__ import annotations

import json
from pathlib import Path

from shared.adapters.catalog_table import ImageCatalog
from shared.domain.images import Image, ImageNameTaken, ImageSource

GALLERY = Path(__file__).resolve().parent.parent / "data" / "gallery.json"


def load_gallery(catalog: ImageCatalog, path: Path = GALLERY) -> tuple[int, int]:
    """Add every gallery image the catalog lacks; returns (added, already there)."""
    added = present = 0
    for doc in json.loads(path.read_text(encoding="utf-8"))["images"]:
        if catalog.find(doc["ImageName"]) is not None:
            present += 1
            continue
        try:
            catalog.add(Image.model_validate({**doc, "Source": ImageSource.PLATFORM}))
            added += 1
        except ImageNameTaken:
            present += 1
    return added, present
