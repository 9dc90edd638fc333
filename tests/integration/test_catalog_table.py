"""ImageCatalog against a real Azurite table: keys, summaries, concurrency, crashes."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters.catalog_table import ImageCatalog
from shared.domain.images import Image, ImageNameTaken, ImageNotFound

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def catalog(azurite_connection: str) -> ImageCatalog:
    service = TableServiceClient.from_connection_string(azurite_connection)
    table = service.create_table(f"cat{uuid.uuid4().hex[:12]}")
    return ImageCatalog(table)


def image(
    name: str, family: str | None = "Ubuntu 22.04", days: int = 0, os: str = "Linux"
) -> Image:
    return Image(
        ImageName=name,
        Label=name,
        ImageFamily=family,
        OS=os,
        PublishedDate=T0 + timedelta(days=days),
        LogicalSizeInGB=30,
    )


def test_add_get_and_names_are_unique_regardless_of_case(catalog: ImageCatalog) -> None:
    catalog.add(image("Img-A"))
    assert catalog.get("img-a").ImageName == "Img-A"
    with pytest.raises(ImageNameTaken):
        catalog.add(image("IMG-A", family="Other"))
    with pytest.raises(ImageNotFound):
        catalog.get("nope")
    # The failed add left no trace in the other family.
    assert catalog.summary("Other") is None


def test_family_summary_tracks_count_and_newest_overall_and_per_os(catalog: ImageCatalog) -> None:
    catalog.add(image("u1", days=1))
    catalog.add(image("u3", days=3))
    catalog.add(image("w2", days=2, os="Windows"))
    s = catalog.summary("ubuntu 22.04")
    assert s is not None and s.count == 3
    assert s.newest["ImageName"] == "u3"
    assert s.newest_by_os["Windows"]["ImageName"] == "w2"
    catalog.remove("u3")
    s = catalog.summary("Ubuntu 22.04")
    assert s.count == 2 and s.newest["ImageName"] == "w2"
    assert s.newest_by_os["Linux"]["ImageName"] == "u1"
    catalog.remove("w2")
    assert "Windows" not in catalog.summary("Ubuntu 22.04").newest_by_os
    catalog.remove("u1")
    assert catalog.summary("Ubuntu 22.04") is None
    assert catalog.families() == []


def test_family_page_is_newest_first_and_pages_continue(catalog: ImageCatalog) -> None:
    for d in range(7):
        catalog.add(image(f"i{d}", days=d))
    catalog.add(image("other", family="Debian 12"))
    first = catalog.page("Ubuntu 22.04", {}, 3, None)
    assert [i.ImageName for i in first.items] == ["i6", "i5", "i4"]
    second = catalog.page("Ubuntu 22.04", {}, 3, first.last_row)
    third = catalog.page("Ubuntu 22.04", {}, 3, second.last_row)
    assert [i.ImageName for i in second.items + third.items] == ["i3", "i2", "i1", "i0"]
    assert third.last_row is None
    everything = catalog.page(None, {}, 100, None)
    assert len(everything.items) == 8


def test_update_moves_an_image_between_families(catalog: ImageCatalog) -> None:
    catalog.add(image("a", days=1))
    catalog.add(image("b", days=2))
    catalog.update("b", {"ImageFamily": "Moved", "Label": "new label"})
    assert catalog.get("b").Label == "new label"
    assert catalog.summary("Ubuntu 22.04").newest["ImageName"] == "a"
    assert catalog.summary("Moved").count == 1
    catalog.update("a", {"Label": "same family"})
    assert catalog.page("Ubuntu 22.04", {}, 10, None).items[0].Label == "same family"


def test_concurrent_registrations_keep_the_family_count_exact(catalog: ImageCatalog) -> None:
    names = [f"c{i}" for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: catalog.add(image(n, days=int(n[1:]))), names))
    s = catalog.summary("Ubuntu 22.04")
    assert s.count == 24
    assert s.newest["ImageName"] == "c23"


def test_a_crash_before_the_commit_leaves_nothing_visible(catalog: ImageCatalog) -> None:
    catalog.add(image("keep", days=1))

    def crash(step: str) -> None:
        raise SystemExit(f"killed before {step}")

    crashing = ImageCatalog(catalog.table, before_commit=crash)
    with pytest.raises(SystemExit):
        crashing.add(image("lost", days=5))
    with pytest.raises(SystemExit):
        crashing.remove("keep")
    with pytest.raises(SystemExit):
        crashing.update("keep", {"ImageFamily": "Elsewhere"})
    # Readers see exactly the state before each attempt.
    assert catalog.find("lost") is None
    assert catalog.get("keep").ImageFamily == "Ubuntu 22.04"
    s = catalog.summary("Ubuntu 22.04")
    assert s.count == 1 and s.newest["ImageName"] == "keep"
    assert catalog.summary("Elsewhere") is None
    assert [i.ImageName for i in catalog.page("Ubuntu 22.04", {}, 10, None).items] == ["keep"]
