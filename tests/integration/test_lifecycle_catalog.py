"""Lifecycle fields in the catalog table: "latest" and the counts per state, against Azurite.

Latest stays a point read in the family summaries while time passes without any write
(end-of-life dates expire), and stays right when writers die between any two writes
or race each other: every answer is checked against the image rows judged now.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters.catalog_table import (
    FAMILIES,
    ImageCatalog,
    copy_row,
    family_key,
    summarize,
)
from shared.domain.images import Image
from shared.domain.lifecycle import ALL, eligible, state_counts
from tests.integration.test_catalog_table import Killed, pending_tokens

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def catalog(azurite_connection: str, clock: Clock) -> ImageCatalog:
    service = TableServiceClient.from_connection_string(azurite_connection)
    return ImageCatalog(service.create_table(f"life{uuid.uuid4().hex[:12]}"), clock=clock)


def image(name: str, days: float, family: str | None = "F", os: str = "Linux", **kw: Any) -> Image:
    return Image.model_validate(
        {
            "ImageName": name,
            "Label": name,
            "ImageFamily": family,
            "OS": os,
            "PublishedDate": T0 - timedelta(days=100 - days),
            "LogicalSizeInGB": 1,
            **kw,
        }
    )


def latest(catalog: ImageCatalog, family: str = "F", os: str | None = None, incl: bool = False):
    return (catalog.latest(family, os, incl)[1] or {}).get("ImageName")


def truth(catalog: ImageCatalog, family: str, os: str | None, incl: bool) -> str | None:
    """Latest worked out from the image rows alone, at the catalog's time."""
    members = [
        i
        for i in catalog.page(None, {}, 1000, None).items
        if family_key(i.ImageFamily or "") == family_key(family) and os in (None, i.OS)
    ]
    now = catalog.clock()
    members.sort(key=copy_row)
    return next((i.ImageName for i in members if eligible(i, now, incl)), None)


def assert_latest_right(catalog: ImageCatalog, *families: str) -> None:
    now = catalog.clock()
    everything = catalog.page(None, {}, 1000, None).items
    for family in families:
        for os in (None, "Linux", "Windows"):
            for incl in (False, True):
                assert latest(catalog, family, os, incl) == truth(catalog, family, os, incl), (
                    family,
                    os,
                    incl,
                )
        members = [i for i in everything if family_key(i.ImageFamily or "") == family_key(family)]
        listed = {s.family.lower(): s for s in catalog.families()}
        summary = listed.get(family.lower())
        if not members:
            assert summary is None
            continue
        shown = catalog.resolve(summary).to_json()
        assert shown["StateCounts"] == state_counts(members, now), family
        assert shown["ExcludedFromLatest"] == sum(i.ExcludeFromLatest for i in members)
        assert (shown["Latest"] or {}).get("ImageName") == truth(catalog, family, None, False)


def test_deprecating_excluding_and_disabling_move_latest_back(catalog: ImageCatalog) -> None:
    for d in (1, 2, 3):
        catalog.add(image(f"u{d}", d))
    catalog.add(image("w", 4, os="Windows"))
    assert latest(catalog) == "w" and latest(catalog, os="Linux") == "u3"
    catalog.update("u3", {"State": "Deprecated", "ReplacedBy": "u2"})
    assert latest(catalog, os="Linux") == "u2"
    catalog.update("u2", {"ExcludeFromLatest": True})
    assert latest(catalog, os="Linux") == "u1"
    assert latest(catalog, os="Linux", incl=True) == "u2"
    catalog.update("u1", {"State": "Disabled"})
    assert latest(catalog, os="Linux") is None
    catalog.update("u2", {"ExcludeFromLatest": False})
    assert latest(catalog, os="Linux") == "u2"
    assert_latest_right(catalog, "F")
    counts = catalog.resolve(catalog.summary("F")).to_json()["StateCounts"]
    assert counts == {"Active": 2, "Deprecated": 1, "Disabled": 1}


def test_end_of_life_passes_without_any_write(catalog: ImageCatalog, clock: Clock) -> None:
    catalog.add(image("old", 1))
    catalog.add(image("mid", 2, EndOfLifeDate=T0 + timedelta(days=2)))
    catalog.add(image("new", 3, EndOfLifeDate=T0 + timedelta(days=1)))
    assert latest(catalog) == "new"
    clock.now = T0 + timedelta(days=1)  # "new" reaches its end of life: nobody writes
    assert latest(catalog) == "mid"
    shown = catalog.resolve(catalog.summary("F")).to_json()
    assert shown["StateCounts"] == {"Active": 2, "Deprecated": 1, "Disabled": 0}
    assert shown["Latest"]["ImageName"] == "mid"
    clock.now = T0 + timedelta(days=3)
    assert latest(catalog) == "old"
    assert_latest_right(catalog, "F")


def test_latest_is_point_reads_until_every_kept_candidate_has_expired(
    catalog: ImageCatalog, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog.add(image("steady", 0))
    for d in range(12):  # more short-lived images than a summary keeps, the newest first to go
        catalog.add(image(f"brief{d:02}", 1 + d, EndOfLifeDate=T0 + timedelta(hours=12 - d)))
    ranges: list[str] = []
    real = catalog.table.query_entities

    def counted(query_filter: str, **kw: Any) -> Any:
        ranges.append(query_filter)
        return real(query_filter, **kw)

    monkeypatch.setattr(catalog.table, "query_entities", counted)
    assert latest(catalog) == "brief11"
    clock.now = T0 + timedelta(hours=5)
    assert latest(catalog) == "brief06"
    assert ranges == []  # the summary's candidates answered: point reads only
    clock.now = T0 + timedelta(days=1)  # every brief one has expired
    assert latest(catalog) == "steady"
    assert len(ranges) == 1  # one range over the family, newest first
    monkeypatch.undo()
    assert_latest_right(catalog, "F")


def test_a_summary_from_before_lifecycle_fields_still_answers(catalog: ImageCatalog) -> None:
    catalog.add(image("a", 1))
    catalog.add(image("b", 2, State="Deprecated"))
    row = dict(catalog.table.get_entity(FAMILIES, family_key("F")))
    del row["Lifecycle"]  # as the summaries written before this change
    catalog.table.upsert_entity(row)
    assert latest(catalog) == "a"
    assert_latest_right(catalog, "F")
    # The first reader of the families list brings it up to date: point reads from then on.
    catalog.families()
    assert json.loads(catalog.table.get_entity(FAMILIES, family_key("F"))["Lifecycle"])
    assert latest(catalog) == "a" and pending_tokens(catalog) == 0


def test_an_old_summary_is_not_upgraded_over_a_change_under_way(catalog: ImageCatalog) -> None:
    catalog.add(image("a", 1))
    row = dict(catalog.table.get_entity(FAMILIES, family_key("F")))
    del row["Lifecycle"]
    catalog.table.upsert_entity(row)
    stale = catalog.table.get_entity(FAMILIES, family_key("F"))
    before = summarize("F", [catalog.get("a")])  # what the reader recomputed
    catalog.add(image("b", 2))  # a writer changes the family after the reader's read
    catalog._upgrade(stale, before)  # the reader's write loses: ETag
    assert catalog.summary("F").count == 2
    assert latest(catalog) == "b"


# -- crashes between the writes of a lifecycle change -----------------------------------

CHANGES = {
    "deprecate newest": lambda c: c.update("u3", {"State": "Deprecated", "ReplacedBy": "u2"}),
    "exclude newest": lambda c: c.update("u3", {"ExcludeFromLatest": True}),
    "end of life past": lambda c: c.update("u3", {"EndOfLifeDate": T0 - timedelta(days=1)}),
    "disable and move": lambda c: c.update("u3", {"State": "Disabled", "ImageFamily": "G"}),
    "add excluded newest": lambda c: c.add(image("n", 9, ExcludeFromLatest=True)),
    "reinstate": lambda c: c.update("d", {"State": "Active"}),
}
ONE = [("mark", 1), ("mark", 2), ("commit", 1), ("index", 1), ("summary", 1)]
TWO = [*ONE, ("mark", 3), ("index", 2), ("summary", 2)]
KILLS = [(c, s, n) for c in CHANGES for s, n in (TWO if "move" in c else ONE)]


def seed(catalog: ImageCatalog) -> None:
    catalog.add(image("u1", 1))
    catalog.add(image("u2", 2, EndOfLifeDate=T0 + timedelta(days=30)))
    catalog.add(image("u3", 3))
    catalog.add(image("d", 4, State="Deprecated"))
    catalog.add(image("g1", 1, family="G", os="Windows"))


def view(catalog: ImageCatalog) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for family in ("F", "G"):
        for os in (None, "Linux", "Windows"):
            for incl in (False, True):
                out[f"{family} {os} {incl}"] = latest(catalog, family, os, incl)
        summary = catalog.summary(family)
        out[family] = summary and catalog.resolve(summary).to_json()
    return out


@pytest.mark.parametrize("change,step,nth", KILLS, ids=[f"{c}-{s}-{n}" for c, s, n in KILLS])
def test_a_lifecycle_change_killed_between_any_two_writes_leaves_before_or_after(
    azurite_connection: str, change: str, step: str, nth: int
) -> None:
    service = TableServiceClient.from_connection_string(azurite_connection)
    table = service.create_table(f"life{uuid.uuid4().hex[:12]}")
    clock = Clock(T0)
    catalog = ImageCatalog(table, clock=clock)
    seed(catalog)
    before = view(catalog)
    seen: Counter[str] = Counter()

    def kill(at: str) -> None:
        seen[at] += 1
        if (at, seen[at]) == (step, nth):
            raise Killed(f"killed before {at} #{nth}")

    with pytest.raises(Killed):
        CHANGES[change](ImageCatalog(table, before_commit=kill, clock=clock))
    committed = seen["commit"] == 1 and step != "commit"
    now = view(catalog)
    if committed:
        assert now != before
    else:
        assert now == before
    assert_latest_right(catalog, "F", "G")
    # The next writer in each family finishes the dead one's change.
    repairer = ImageCatalog(table, stale_after=timedelta(0), clock=clock)
    for family in ("F", "G"):
        name = f"probe-{uuid.uuid4().hex[:6]}"
        repairer.add(image(name, -50, family=family))
        repairer.remove(name)
    assert pending_tokens(catalog) == 0
    assert view(catalog) == now
    assert_latest_right(catalog, "F", "G")


def test_concurrent_lifecycle_changes_and_adds_keep_latest_right(
    catalog: ImageCatalog, clock: Clock
) -> None:
    for i in range(12):
        catalog.add(image(f"m{i}", i, family=("A", "B")[i % 2], os=("Linux", "Windows")[i % 3 % 2]))

    def churn(i: int) -> None:
        catalog.update(
            f"m{i}",
            [
                {"State": "Deprecated"},
                {"ExcludeFromLatest": True},
                {"EndOfLifeDate": T0 + timedelta(hours=i)},
                {"ImageFamily": ("B", "A")[i % 2]},
            ][i % 4],
        )
        catalog.add(image(f"n{i}", 20 + i, family=("A", "B")[i % 2], ExcludeFromLatest=i % 3 == 0))
        if i % 5 == 0:
            catalog.update(f"n{i}", {"State": "Disabled"})

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(churn, range(12)))
    assert pending_tokens(catalog) == 0
    assert_latest_right(catalog, "A", "B")
    clock.now = T0 + timedelta(hours=6)  # some end-of-life dates pass
    assert_latest_right(catalog, "A", "B")
    assert {ALL} <= set(catalog.summary("A").lifecycle.candidates)
