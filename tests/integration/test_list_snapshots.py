"""Classic lists from snapshots over real Azurite: served while the catalog is unchanged,
never after a change (add, update, family move, removal), nor after a change committed
while the list was being built; after a writer died between its commit and the version
change that follows it, no longer than the age bound."""

from __future__ import annotations

import contextlib
import gzip
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.list_snapshots import BlobSnapshots
from shared.domain.images import Image
from shared.services.classic import images as os_images
from shared.services.classic import vm_images
from shared.services.classic.snapshots import Snapshot, snapshot_list
from shared.services.classic.xmldoc import joined
from tests.unit.test_classic_listing import varied_os_images, varied_vm_images


class Killed(Exception):
    pass


@pytest.fixture
def world(azurite_connection: str) -> tuple[ImageCatalog, BlobSnapshots]:
    suffix = uuid.uuid4().hex[:12]
    tables = TableServiceClient.from_connection_string(azurite_connection)
    blobs = BlobServiceClient.from_connection_string(azurite_connection)
    container = blobs.create_container(f"lists{suffix}")
    return ImageCatalog(tables.create_table(f"snap{suffix}")), BlobSnapshots(container)


def built(catalog: ImageCatalog) -> bytes:
    return joined(os_images.list_os_images_body(catalog))


def tamper(snaps: BlobSnapshots, name: str) -> bytes:
    """Replace a kept snapshot's body, keeping its label: if a list then answers this
    body, it came from the snapshot (and was not built)."""
    kept = snaps.read(name)
    assert kept is not None
    xml = gzip.decompress(kept.body)
    marked = xml.replace(b"</Images>", b"<!-- from the snapshot --></Images>")
    snaps.write(name, replace(kept, body=gzip.compress(marked)))
    return marked


def image(name: str, family: str = "Snapshots") -> Image:
    base = varied_os_images()[0]
    return base.model_copy(update={"ImageName": name, "ImageFamily": family, "MediaLink": None})


def test_served_while_unchanged_and_built_again_after_every_kind_of_change(
    world: tuple[ImageCatalog, BlobSnapshots],
) -> None:
    catalog, snaps = world
    for each in varied_os_images():
        catalog.add(each)
    first = os_images.os_images_list(catalog, snaps).plain()
    assert first == built(catalog)
    marked = tamper(snaps, "os-images.xml")
    assert os_images.os_images_list(catalog, snaps).plain() == marked  # from the snapshot

    changes: list[Callable[[], object]] = [
        lambda: catalog.add(image("snap-new")),
        lambda: catalog.update("snap-new", {"Label": "relabelled & <new>"}),
        lambda: catalog.update("snap-new", {"ImageFamily": "Elsewhere"}),
        lambda: catalog.remove("snap-new"),
    ]
    for change in changes:
        tamper(snaps, "os-images.xml")
        change()
        listed = os_images.os_images_list(catalog, snaps).plain()
        assert b"from the snapshot" not in listed
        assert listed == built(catalog)
    assert b"snap-new" not in listed and listed == first


def test_vm_images_unfiltered_from_a_snapshot_filtered_always_built(
    world: tuple[ImageCatalog, BlobSnapshots],
) -> None:
    catalog, snaps = world
    for each in varied_vm_images():
        catalog.add(each)
    every = vm_images.VmImageFilter()
    assert vm_images.vm_images_list(catalog, every, snaps).plain() == joined(
        vm_images.list_vm_images_body(catalog, every)
    )
    kept = snaps.read("vm-images.xml")
    assert kept is not None
    snaps.write("vm-images.xml", replace(kept, body=gzip.compress(b"<VMImages>kept</VMImages>")))
    assert vm_images.vm_images_list(catalog, every, snaps).plain() == b"<VMImages>kept</VMImages>"
    north = vm_images.VmImageFilter(location="north europe")
    assert vm_images.vm_images_list(catalog, north, snaps).plain() == joined(
        vm_images.list_vm_images_body(catalog, north)
    )


def test_a_change_committed_while_the_list_is_built_is_in_the_next_list(
    world: tuple[ImageCatalog, BlobSnapshots],
) -> None:
    catalog, snaps = world
    catalog.add(image("snap-a"))

    def build_then_commit() -> bytes:
        body = built(catalog)  # read before the new image's commit
        catalog.add(image("snap-b"))
        return body

    now = lambda: datetime.now(UTC)  # noqa: E731
    during = snapshot_list(snaps, "os-images.xml", catalog.version, build_then_commit, now).plain()
    assert b"snap-b" not in during
    after = os_images.os_images_list(catalog, snaps).plain()
    assert b"snap-b" in after and after == built(catalog)


def test_a_list_built_between_the_version_change_and_the_commit_is_not_served_after(
    world: tuple[ImageCatalog, BlobSnapshots],
) -> None:
    catalog, snaps = world
    catalog.add(image("snap-a"))
    seen: list[bytes] = []

    def list_at_commit(step: str) -> None:
        if step == "commit" and not seen:  # the version has changed, the row not yet
            seen.append(os_images.os_images_list(catalog, snaps).plain())

    ImageCatalog(catalog.table, before_commit=list_at_commit).add(image("snap-b"))
    assert b"snap-b" not in seen[0]
    assert b"snap-b" in os_images.os_images_list(catalog, snaps).plain()


def test_a_writer_dead_after_its_commit_leaves_no_older_list_current(
    world: tuple[ImageCatalog, BlobSnapshots],
) -> None:
    catalog, snaps = world
    catalog.add(image("snap-a"))
    os_images.os_images_list(catalog, snaps).plain()  # kept before the change began

    def die_after_commit(step: str) -> None:
        if step == "version":
            raise Killed  # dead between its commit and the version change after it

    with pytest.raises(Killed):
        ImageCatalog(catalog.table, before_commit=die_after_commit).add(image("snap-b"))
    assert catalog.find("snap-b") is not None  # published
    # the version changed before the commit: the list kept before it is not current
    assert b"snap-b" in os_images.os_images_list(catalog, snaps).plain()


def test_a_list_built_during_a_dead_writers_change_is_behind_at_most_the_age_bound(
    world: tuple[ImageCatalog, BlobSnapshots],
) -> None:
    catalog, snaps = world
    catalog.add(image("snap-a"))
    t0 = datetime.now(UTC)
    bound = timedelta(minutes=10)

    def answer(at: datetime) -> bytes:
        build = lambda: built(catalog)  # noqa: E731
        listed = snapshot_list(snaps, "os-images.xml", catalog.version, build, lambda: at, bound)
        return listed.plain()

    def list_then_die(step: str) -> None:
        if step == "commit":
            answer(t0)  # built after this change set the version, before its row commits
        if step == "version":
            raise Killed

    with pytest.raises(Killed):
        ImageCatalog(catalog.table, before_commit=list_then_die).add(image("snap-b"))
    assert b"snap-b" not in answer(t0 + bound - timedelta(seconds=1))  # the gap, bounded
    assert b"snap-b" in answer(t0 + bound)
    # and the next change anywhere in the catalog closes it at once
    marked = tamper(snaps, "os-images.xml")
    assert answer(t0 + bound + timedelta(seconds=1)) == marked
    catalog.update("snap-a", {"Label": "touched"})
    listed = answer(t0 + bound + timedelta(seconds=2))
    assert b"from the snapshot" not in listed and b"touched" in listed


def test_writers_at_once_never_mix_their_snapshots_and_readers_get_one_whole(
    azurite_connection: str,
) -> None:
    """Snapshots of several blocks, written by two writers at once while readers download
    them in small ranges: every read is one writer's whole body under its own label, or
    none (the blob changed under the read); what stays is one writer's, whole."""
    from azure.storage.blob import ContainerClient

    name = f"mix{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(azurite_connection).create_container(name)

    def snapshots() -> BlobSnapshots:
        container = ContainerClient.from_connection_string(
            azurite_connection,
            name,
            max_single_get_size=1 << 20,
            max_chunk_get_size=1 << 20,
            max_single_put_size=1 << 20,  # written in blocks
            max_block_size=1 << 20,
        )
        return BlobSnapshots(container)

    size = (3 << 20) + 12345  # four blocks of 1 MiB
    bodies = {letter: letter.encode() * size for letter in "AB"}
    t0 = datetime.now(UTC)

    def write(letter: str) -> None:
        store = snapshots()
        for _ in range(3):
            # A commit discards every uncommitted block of the blob (Azure does so too),
            # so a writer whose blocks another commit swept away fails: InvalidBlockList.
            # snapshot_list takes that as a snapshot not kept.
            with contextlib.suppress(HttpResponseError):
                store.write("os-images.xml", Snapshot(bodies[letter], letter, t0))

    seen: list[Snapshot | None] = []

    def read() -> None:
        store = snapshots()
        for _ in range(6):
            seen.append(store.read("os-images.xml"))

    write("A")
    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(write, "A"), pool.submit(write, "B"), pool.submit(read)]:
            f.result()
    for snap in [*seen, snapshots().read("os-images.xml")]:
        assert snap is None or snap.body == bodies[snap.label]
    final = snapshots().read("os-images.xml")
    assert final is not None and final.body == bodies[final.label]
