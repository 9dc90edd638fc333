"""The shipped gallery loads into a real table, and loading it again adds nothing."""

from __future__ import annotations

import json
import uuid

from azure.data.tables import TableServiceClient

from shared.adapters.catalog_table import ImageCatalog
from shared.services.gallery import GALLERY, load_gallery


def test_gallery_loads_idempotently_with_family_summaries(azurite_connection: str) -> None:
    service = TableServiceClient.from_connection_string(azurite_connection)
    catalog = ImageCatalog(service.create_table(f"gal{uuid.uuid4().hex[:12]}"))
    images = json.loads(GALLERY.read_text())["images"]
    assert load_gallery(catalog) == (len(images), 0)
    assert load_gallery(catalog) == (0, len(images))
    families = {s.family: s for s in catalog.families()}
    expected = {i["ImageFamily"] for i in images}
    assert set(families) == expected
    for family in expected:
        members = [i for i in images if i["ImageFamily"] == family]
        newest = max(members, key=lambda i: i["PublishedDate"])
        assert families[family].count == len(members)
        assert families[family].newest["ImageName"] == newest["ImageName"]
