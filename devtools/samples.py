"""Sample data for `make run`: the platform gallery (loaded idempotently)."""

from __future__ import annotations

from collections.abc import Iterator

from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.storage import StorageAccount
from shared.services.gallery import load_gallery


def load(storage: StorageAccount) -> Iterator[str]:
    catalog = ImageCatalog(storage.tables.get_table_client(storage.settings.images_table))
    added, present = load_gallery(catalog)
    yield f"gallery: {added} images added, {present} already there"
