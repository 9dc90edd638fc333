"""ImageCatalog against a real Azurite table: keys, summaries, concurrency, crashes."""

from __future__ import annotations

import json
import uuid
from collections import Counter
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


# -- crashes between the writes of a change ----------------------------------------------
# A change is four kinds of write (mark, commit, index, summary; a family move makes most
# of them twice). Kill the writer before each one in turn and a reader must see exactly
# the state before the change (killed before the commit) or after it (killed later), on
# every read path; the next writer in the family must then leave no pending change behind.


class Killed(BaseException):
    """The writer process died (not an Exception: nothing in the catalog may catch it)."""


def seed(catalog: ImageCatalog) -> None:
    catalog.add(image("u1", days=1))
    catalog.add(image("u2", days=2))
    catalog.add(image("u3", days=3, os="Windows"))
    catalog.add(image("d1", family="Debian 12", days=1))
    catalog.add(image("loose", family=None, days=5))


CHANGES = {
    "add newest": lambda c: c.add(image("new", days=9)),
    "add to a new family": lambda c: c.add(image("new", family="Fresh", days=9)),
    "remove newest": lambda c: c.remove("u3"),
    "remove last of family": lambda c: c.remove("d1"),
    "update label": lambda c: c.update("u2", {"Label": "relabelled"}),
    "move newest": lambda c: c.update("u3", {"ImageFamily": "Debian 12"}),
    "move to a new family": lambda c: c.update("u3", {"ImageFamily": "Fresh"}),
    "move out of any family": lambda c: c.update("u1", {"ImageFamily": None}),
}
# mark #1 writes the change's fence row; mark #2 (and #3) a token in each family.
ONE_FAMILY = [("mark", 1), ("mark", 2), ("commit", 1), ("index", 1), ("summary", 1)]
TWO_FAMILIES = [*ONE_FAMILY, ("mark", 3), ("index", 2), ("summary", 2)]
KILLS = [
    (change, step, nth)
    for change in CHANGES
    for step, nth in (
        TWO_FAMILIES if change.startswith("move ") and "any" not in change else ONE_FAMILY
    )
]


def view(catalog: ImageCatalog) -> dict[str, object]:
    """Everything a reader can ask, on every read path."""
    everything = catalog.page(None, {}, 1000, None).items
    names = [i.ImageName for i in everything]
    families = {}
    for s in catalog.families():
        families[s.family] = (
            s.count,
            s.newest["ImageName"],
            {os: ref["ImageName"] for os, ref in s.newest_by_os.items()},
            [(i.ImageName, i.Label) for i in catalog.page(s.family, {}, 1000, None).items],
            catalog.summary(s.family).to_json(),
        )
    return {
        "all": [(i.ImageName, i.ImageFamily, i.Label) for i in everything],
        "by name": {n: catalog.get(n).model_dump(exclude={"CreatedTime"}) for n in names},
        "families": families,
        "gone": [n for n in ("new", "u1", "u3", "d1") if n not in names and catalog.find(n)],
    }


def pending_tokens(catalog: ImageCatalog) -> int:
    rows = catalog.table.query_entities("PartitionKey eq 'families'")
    return sum(len(json.loads(r.get("Pending") or "{}")) for r in rows)


def fresh_catalog(azurite_connection: str, **kw: object) -> ImageCatalog:
    service = TableServiceClient.from_connection_string(azurite_connection)
    return ImageCatalog(service.create_table(f"cat{uuid.uuid4().hex[:12]}"), **kw)


@pytest.fixture(scope="module")
def expected(azurite_connection: str) -> dict[str, tuple[dict, dict]]:
    """Each change's before and after view, made without a crash."""
    views = {}
    for name, change in CHANGES.items():
        catalog = fresh_catalog(azurite_connection)
        seed(catalog)
        before = view(catalog)
        change(catalog)
        assert pending_tokens(catalog) == 0
        views[name] = (before, view(catalog))
    return views


@pytest.mark.parametrize("change,step,nth", KILLS, ids=[f"{c}-{s}-{n}" for c, s, n in KILLS])
def test_a_writer_killed_between_any_two_writes_leaves_before_or_after(
    azurite_connection: str, expected: dict, change: str, step: str, nth: int
) -> None:
    before, after = expected[change]
    catalog = fresh_catalog(azurite_connection)
    seed(catalog)
    seen: Counter[str] = Counter()

    def kill(at: str) -> None:
        seen[at] += 1
        if (at, seen[at]) == (step, nth):
            raise Killed(f"killed before {at} #{nth}")

    dying = ImageCatalog(catalog.table, before_commit=kill)
    with pytest.raises(Killed):
        CHANGES[change](dying)
    committed = seen["commit"] == 1 and step != "commit"
    assert pending_tokens(catalog) > 0 or not committed
    assert view(catalog) == (after if committed else before)

    # The next writer in the family (any family) finishes or drops the dead one's change.
    repairer = ImageCatalog(catalog.table, stale_after=timedelta(0))
    for family in ("Ubuntu 22.04", "Debian 12", "Fresh"):
        repairer.add(image(f"probe-{uuid.uuid4().hex[:6]}", family=family, days=-9))
    for probe in [n for n in view(catalog)["by name"] if n.startswith("probe-")]:
        repairer.remove(probe)
    assert pending_tokens(catalog) == 0
    assert view(catalog) == (after if committed else before)


def test_concurrent_moves_adds_and_removes_keep_every_index_exact(
    catalog: ImageCatalog,
) -> None:
    for i in range(12):
        catalog.add(image(f"m{i}", family=("A", "B")[i % 2], days=i))

    def churn(i: int) -> None:
        catalog.update(f"m{i}", {"ImageFamily": ("B", "A", None)[i % 3]})
        catalog.add(image(f"n{i}", family=("A", "B")[i % 2], days=20 + i))
        if i % 4 == 0:
            catalog.remove(f"n{i}")

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(churn, range(12)))
    assert pending_tokens(catalog) == 0
    images = catalog.page(None, {}, 1000, None).items
    for family in ("A", "B"):
        members = sorted(
            (i for i in images if i.ImageFamily == family),
            key=lambda i: (i.PublishedDate, i.ImageName),
            reverse=True,
        )
        s = catalog.summary(family)
        assert s.count == len(members)
        assert s.newest["ImageName"] == members[0].ImageName
        page = catalog.page(family, {}, 1000, None).items
        assert [i.ImageName for i in page] == [i.ImageName for i in members]
    assert {s.family: s.count for s in catalog.families()} == {
        f: sum(1 for i in images if i.ImageFamily == f) for f in ("A", "B")
    }


def test_latest_is_the_first_of_the_family_page_even_on_a_tie(catalog: ImageCatalog) -> None:
    for name in ("tie-b", "tie-a", "tie-c"):
        catalog.add(image(name, days=4))
    catalog.add(image("older", days=1))
    page = [i.ImageName for i in catalog.page("Ubuntu 22.04", {}, 10, None).items]
    assert page == ["tie-a", "tie-b", "tie-c", "older"]
    assert catalog.summary("Ubuntu 22.04").newest["ImageName"] == "tie-a"
    catalog.remove("tie-a")
    assert catalog.summary("Ubuntu 22.04").newest["ImageName"] == "tie-b"


def test_a_row_stored_before_todays_text_rules_still_reads(catalog: ImageCatalog) -> None:
    """Every way in refuses such text now; a row written before must not break listings."""
    from shared.adapters.catalog_table import image_entity

    catalog.add(image("neighbour", family=None))
    old = image("old", family=None).model_copy(update={"Label": "x" * 7000})
    row = image_entity(old, "00000000000000000001aaaaaa")
    row["Description"] = "tab\there"
    catalog.table.upsert_entity(row)
    assert catalog.get("old").Label == "x" * 7000
    names = [i.ImageName for i in catalog.page(None, {}, 10, None).items]
    assert names == ["neighbour", "old"]
