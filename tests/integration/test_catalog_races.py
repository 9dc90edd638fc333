"""ImageCatalog under forced interleavings of concurrent writers, against a real Azurite.

Each test stops one writer at a chosen step with the `before_commit` hook (a `Gate`
blocks the writer's thread there until released; `Killed` ends it there for good)
while other writers run, then checks what every read path says once they are done.
The first tests pinned bugs a review found (they failed before the fixes): a
re-add or an update from a clock running ahead left a stale copy, a writer slower
than `stale_after` left a wrong summary or an unindexed image, "newest" compared
dates as text, `uses_media` missed VM images' disks, and far-future dates broke keys.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters import catalog_table
from shared.adapters.catalog_table import ImageCatalog, copy_row, family_key
from shared.domain.images import Image, ImageKind, ImageNameTaken, OSDisk
from tests.integration.test_catalog_table import Killed, pending_tokens

T0 = datetime(2024, 1, 1, tzinfo=UTC)
WAIT = 30  # seconds a test waits for a thread to reach or pass a step


@pytest.fixture
def catalog(azurite_connection: str) -> ImageCatalog:
    service = TableServiceClient.from_connection_string(azurite_connection)
    return ImageCatalog(service.create_table(f"race{uuid.uuid4().hex[:12]}"))


@pytest.fixture
def pool() -> Any:
    with ThreadPoolExecutor(4) as executor:
        yield executor


def image(
    name: str,
    family: str | None = "F",
    days: float = 0,
    os: str = "Linux",
    label: str | None = None,
) -> Image:
    return Image(
        ImageName=name,
        Label=label or name,
        ImageFamily=family,
        OS=os,
        PublishedDate=T0 + timedelta(days=days),
        LogicalSizeInGB=30,
    )


class Gate:
    """A `before_commit` hook: holds the writer before the nth `step` until `release()`;
    with `then_kill`, the writer dies before the first `then_kill` step after that."""

    def __init__(self, step: str, nth: int = 1, then_kill: str | None = None):
        self.step, self.nth, self.then_kill = step, nth, then_kill
        self.seen = 0
        self.reached = threading.Event()
        self.go = threading.Event()

    def __call__(self, step: str) -> None:
        if self.reached.is_set() and self.go.is_set() and step == self.then_kill:
            raise Killed(f"killed before {step}")
        if step == self.step:
            self.seen += 1
            if self.seen == self.nth:
                self.reached.set()
                assert self.go.wait(WAIT), "the test never released the writer"

    def release(self) -> None:
        self.go.set()


def held(
    pool: ThreadPoolExecutor, catalog: ImageCatalog, gate: Gate, change: Callable[[Any], Any]
) -> Future[Any]:
    """Run `change` with a writer that `gate` holds; return once it is held."""
    writer = ImageCatalog(catalog.table, before_commit=gate)
    future = pool.submit(change, writer)
    assert gate.reached.wait(WAIT), "the writer never reached the gate"
    return future


def killed_at(catalog: ImageCatalog, step: str, nth: int = 1) -> ImageCatalog:
    seen = {"n": 0}

    def hook(at: str) -> None:
        if at == step:
            seen["n"] += 1
            if seen["n"] == nth:
                raise Killed(f"killed before {at} #{nth}")

    return ImageCatalog(catalog.table, before_commit=hook)


def repair(catalog: ImageCatalog, *families: str) -> None:
    """The next writer in each family, finishing any token at once (then its probe goes)."""
    repairer = ImageCatalog(catalog.table, stale_after=timedelta(0))
    for family in families:
        name = f"probe-{uuid.uuid4().hex[:8]}"
        repairer.add(image(name, family=family, days=-99))
        repairer.remove(name)


def assert_consistent(catalog: ImageCatalog, *families: str) -> None:
    """Every read path agrees with the image rows (the source of truth)."""
    everything = catalog.page(None, {}, 1000, None).items
    truth = {i.ImageName: i for i in everything}
    for family in families:
        members = sorted(
            (i for i in everything if family_key(i.ImageFamily or "") == family_key(family)),
            key=copy_row,
        )
        page = catalog.page(family, {}, 1000, None).items
        assert [(i.ImageName, i.Label, i.OS) for i in page] == [
            (i.ImageName, i.Label, i.OS) for i in members
        ], f"page of {family}"
        for item in page:  # get-by-name says the same
            assert catalog.get(item.ImageName).model_dump() == truth[item.ImageName].model_dump()
        summary = catalog.summary(family)
        if not members:
            assert summary is None, f"summary of {family}"
            continue
        assert summary is not None, f"summary of {family}"
        assert summary.count == len(members), f"count of {family}"
        assert summary.newest["ImageName"] == members[0].ImageName, f"newest of {family}"
        for os_name in ("Linux", "Windows"):
            of_os = [i.ImageName for i in members if os_name == i.OS]
            ref = summary.newest_by_os.get(os_name)
            assert (ref and ref["ImageName"]) == (of_os[0] if of_os else None), (
                f"{os_name} of {family}"
            )
        listed = {s.family.lower(): s.count for s in catalog.families()}
        assert listed.get(family.strip().lower()) == len(members), f"families() for {family}"


# -- bugs ------------------------------------------------------------------------------


def test_a_slow_readd_still_lands_in_its_family(
    catalog: ImageCatalog, pool: ThreadPoolExecutor
) -> None:
    catalog.add(image("keep", days=1))
    # A starts adding x (its Rev is taken now) and is held before the commit.
    a_gate = Gate("commit")
    a = held(pool, catalog, a_gate, lambda c: c.add(image("x", days=5, label="from A")))
    # Meanwhile B adds x (a larger Rev) and R removes it, held before deleting the copy.
    catalog.add(image("x", days=5, label="from B"))
    r_gate = Gate("index")
    r = held(pool, catalog, r_gate, lambda c: c.remove("x"))
    a_gate.release()
    a.result(WAIT)  # A's create succeeds; its sync overwrites B's copy (Revs only differ)
    r_gate.release()
    r.result(WAIT)  # R's delete of the copy it read before A committed loses the ETag race
    assert catalog.get("x").Label == "from A"
    assert pending_tokens(catalog) == 0
    repair(catalog, "F")
    # (it used to be: x in F by name, but missing from F's page and count, for good)
    assert_consistent(catalog, "F")


def test_an_update_after_one_from_a_clock_ahead_is_indexed(
    catalog: ImageCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog.add(image("x", days=1))
    real_rev = catalog_table._rev
    ahead = lambda: f"{time.time_ns() + 5 * 10**9:020d}{uuid.uuid4().hex[:6]}"  # noqa: E731
    with monkeypatch.context() as m:  # another instance, its clock 5 s ahead
        m.setattr(catalog_table, "_rev", ahead)
        catalog.update("x", {"Label": "first"})
    assert catalog_table._rev is real_rev
    catalog.update("x", {"Label": "second", "ShowInGui": False})
    assert catalog.get("x").Label == "second"
    repair(catalog, "F")
    assert_consistent(catalog, "F")  # (F's page used to keep saying "first")


def test_a_writer_slower_than_stale_after_is_fenced_and_starts_over(
    catalog: ImageCatalog, pool: ThreadPoolExecutor
) -> None:
    catalog.add(image("u1", days=1))
    gate = Gate("commit")
    slow = held(pool, catalog, gate, lambda c: c.add(image("slow", days=9)))
    # Another writer in F, for whom the slow writer's token is stale (here: at once).
    ImageCatalog(catalog.table, stale_after=timedelta(0)).add(image("u2", days=2))
    gate.release()
    slow.result(WAIT)
    assert pending_tokens(catalog) == 0  # the summary is trusted as is...
    assert_consistent(catalog, "F")  # ...and counts the slow image (fenced, it marked again)


def test_a_fenced_slow_writer_that_dies_after_its_commit_is_repaired(
    catalog: ImageCatalog, pool: ThreadPoolExecutor
) -> None:
    catalog.add(image("u1", days=1))
    gate = Gate("commit", then_kill="index")
    slow = held(pool, catalog, gate, lambda c: c.add(image("slow", days=9)))
    ImageCatalog(catalog.table, stale_after=timedelta(0)).add(image("u2", days=2))
    gate.release()
    with pytest.raises(Killed):
        slow.result(WAIT)
    assert catalog.get("slow").ImageFamily == "F"
    repair(catalog, "F")
    assert pending_tokens(catalog) == 0
    assert_consistent(catalog, "F")


def test_newest_within_the_same_second_is_the_later_one(catalog: ImageCatalog) -> None:
    catalog.add(image("whole-second", days=1))  # e.g. an upload: blob Last-Modified
    catalog.add(image("half-second-later", days=1 + 0.5 / 86400))  # e.g. a capture: now()
    assert catalog.page("F", {}, 10, None).items[0].ImageName == "half-second-later"
    assert catalog.summary("F").newest["ImageName"] == "half-second-later"  # latest API


def test_uses_media_sees_a_vm_image_disk(catalog: ImageCatalog) -> None:
    link = "http://127.0.0.1:10000/devstoreaccount1/vhds/captured-os.vhd"
    vm = image("vm", family=None).model_copy(
        update={
            "ImageType": ImageKind.VM,
            "OSDiskConfiguration": OSDisk(OS="Linux", MediaLink=link, LogicalDiskSizeInGB=30),
        }
    )
    catalog.add(vm)
    assert catalog.get("vm").MediaLink is None
    # Removing an OS image registered from the same blob with delete_vhd would delete it.
    assert catalog.uses_media(link)


def test_dates_the_keys_cannot_order_are_refused_and_the_rest_order_and_page(
    catalog: ImageCatalog,
) -> None:
    # Add OS Image takes any ISO 8601 PublishedDate; the model bounds it to 1900-2999.
    with pytest.raises(ValueError, match="from 1900 to 2999"):
        Image.model_validate({**image("far").model_dump(), "PublishedDate": "6000-01-01T00:00Z"})
    for name, year in (("y1901", 1901), ("y2999", 2999), ("now", 2024)):
        catalog.add(
            image(name, days=0).model_copy(
                update={"PublishedDate": datetime(year, 6, 1, tzinfo=UTC)}
            )
        )
    first = catalog.page("F", {}, 1, None)
    assert first.last_row is not None
    assert catalog_table.is_page_key("F", first.last_row)  # else the token is refused
    names = [i.ImageName for i in catalog.page("F", {}, 10, None).items]
    assert names == ["y2999", "now", "y1901"]
    assert catalog.summary("F").newest["ImageName"] == "y2999"


# -- tricky interleavings that hold ----------------------------------------------------


def test_case_different_names_racing_across_families(
    catalog: ImageCatalog, pool: ThreadPoolExecutor
) -> None:
    gate = Gate("commit")
    loser = held(pool, catalog, gate, lambda c: c.add(image("Img-A", family="G", days=3)))
    catalog.add(image("IMG-a", family="F", days=1, os="Windows"))
    gate.release()
    with pytest.raises(ImageNameTaken):
        loser.result(WAIT)
    assert pending_tokens(catalog) == 0
    assert catalog.get("img-A").ImageName == "IMG-a"
    assert catalog.summary("G") is None
    assert_consistent(catalog, "F", "G")


def test_case_different_names_racing_in_one_family_at_the_same_date(
    catalog: ImageCatalog, pool: ThreadPoolExecutor
) -> None:
    # Both have the same copy row key: the loser's sync must not clobber the winner's copy.
    catalog.add(image("other", days=0))
    loser_gate = Gate("commit")
    loser = held(pool, catalog, loser_gate, lambda c: c.add(image("Img-A", days=3, label="l")))
    winner_gate = Gate("index")  # the winner committed, then is held before its copy
    winner = held(pool, catalog, winner_gate, lambda c: c.add(image("IMG-a", days=3, os="Windows")))
    assert_consistent(catalog, "F")  # readers resolve both pending names by the image row
    loser_gate.release()
    with pytest.raises(ImageNameTaken):
        loser.result(WAIT)  # the loser indexes the winner's image on its behalf
    assert_consistent(catalog, "F")
    winner_gate.release()
    winner.result(WAIT)  # its stale create of the copy loses and re-reads
    assert pending_tokens(catalog) == 0
    assert catalog.get("img-a").Label == "IMG-a"
    assert_consistent(catalog, "F")


def test_remove_then_readd_while_the_remover_is_held_before_its_index(
    catalog: ImageCatalog, pool: ThreadPoolExecutor
) -> None:
    catalog.add(image("x", days=5, label="old", os="Windows"))
    gate = Gate("index")
    remover = held(pool, catalog, gate, lambda c: c.remove("x"))
    catalog.add(image("x", days=5, label="new"))  # same copy row, a later Rev
    gate.release()
    remover.result(WAIT)  # its stale delete of the copy loses the ETag race and re-reads
    assert pending_tokens(catalog) == 0
    assert catalog.get("x").Label == "new"
    assert_consistent(catalog, "F")


def test_move_and_move_back_interleaved(catalog: ImageCatalog, pool: ThreadPoolExecutor) -> None:
    catalog.add(image("x", family="F", days=5))
    catalog.add(image("y", family="G", days=1))
    gate = Gate("index")  # held after committing F -> G, before any index write
    there = held(pool, catalog, gate, lambda c: c.update("x", {"ImageFamily": "G"}))
    assert_consistent(catalog, "F", "G")  # readers already see x in G only
    catalog.update("x", {"ImageFamily": "F", "Label": "back"})
    gate.release()
    there.result(WAIT)
    assert pending_tokens(catalog) == 0
    assert catalog.get("x").ImageFamily == "F"
    assert_consistent(catalog, "F", "G")


def test_readers_mid_move_see_one_consistent_state(
    catalog: ImageCatalog, pool: ThreadPoolExecutor
) -> None:
    catalog.add(image("a", family="F", days=1))
    catalog.add(image("b", family="F", days=2, os="Windows"))
    catalog.add(image("c", family="G", days=1))
    steps = [("mark", 2), ("commit", 1), ("index", 1), ("summary", 1), ("index", 2)]
    for step, nth in [*steps, ("summary", 2)]:
        gate = Gate(step, nth)
        moving = held(pool, catalog, gate, lambda c: c.update("b", {"ImageFamily": "G"}))
        assert catalog.get("b").ImageFamily == ("F" if step in ("mark", "commit") else "G")
        assert_consistent(catalog, "F", "G")
        gate.release()
        moving.result(WAIT)
        assert pending_tokens(catalog) == 0
        assert_consistent(catalog, "F", "G")
        catalog.update("b", {"ImageFamily": "F"})  # back, for the next round


def test_families_differing_only_in_case_and_whitespace_are_one(
    catalog: ImageCatalog, pool: ThreadPoolExecutor
) -> None:
    # An image's family has no blank at either end (the model refuses one); a reader's
    # spelling may have, and still finds the one family.
    written = ["Ubuntu 22.04", "ubuntu 22.04", "UBUNTU 22.04", "uBuNtU 22.04"]
    spellings = [*written, " ubuntu 22.04", "UBUNTU 22.04 "]
    list(
        pool.map(
            lambda i: catalog.add(image(f"i{i}", family=written[i % 4], days=i)),
            range(12),
        )
    )
    assert pending_tokens(catalog) == 0
    assert len(catalog.families()) == 1
    for spelling in spellings:
        assert catalog.summary(spelling).count == 12
        assert catalog.summary(spelling).newest["ImageName"] == "i11"
    assert_consistent(catalog, spellings[0])


def test_a_crashed_remove_then_readd_by_another_writer(catalog: ImageCatalog) -> None:
    catalog.add(image("x", days=1, label="old"))
    with pytest.raises(Killed):
        killed_at(catalog, "index").remove("x")  # committed, copy left, token left
    catalog.add(image("x", days=1, label="new"))
    assert_consistent(catalog, "F")
    repair(catalog, "F")
    assert pending_tokens(catalog) == 0
    assert_consistent(catalog, "F")
