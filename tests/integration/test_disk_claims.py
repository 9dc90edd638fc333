"""A disk belongs to at most one image, against real Azurite: claims, the leases bound to
them, concurrent registrations over one disk, a registrar or remover killed before each
of its writes and retried, and removal releasing only its own claim."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobClient, BlobServiceClient

from shared.adapters.blobs import BlobDiskGuard, facts, legacy_lease_id, protect
from shared.adapters.catalog_table import (
    CLAIM_ROW,
    ImageCatalog,
    claim_lease_id,
    claim_partition,
)
from shared.domain.images import DiskInUse, DiskLeased, Image, ImageNameTaken, ImageNotFound
from shared.services.registration import publish
from shared.services.removal import ImageRemover
from tests.integration.test_catalog_table import Killed

# Every write of a registration and of a removal, in order.
ADD_STEPS = ["mark", "claim", "commit", "index", "summary"]


@dataclass
class World:
    catalog: ImageCatalog
    blobs: BlobServiceClient
    container: str

    def disk(self, name: str | None = None) -> BlobClient:
        client = self.blobs.get_blob_client(self.container, name or f"{uuid.uuid4().hex[:8]}.vhd")
        client.create_page_blob(size=1024 * 1024)
        return client

    def guard(self) -> BlobDiskGuard:
        return BlobDiskGuard.of_account(self.blobs)

    def with_hook(self, hook: Callable[[str], None], **kw: object) -> ImageCatalog:
        return ImageCatalog(self.catalog.table, before_commit=hook, **kw)  # type: ignore[arg-type]

    def lease_of(self, name: str, disk: BlobClient) -> str:
        claim = self.catalog.claim_id(name)
        assert claim is not None
        return claim_lease_id(self.catalog.account, path(disk), claim)


def path(disk: BlobClient) -> str:
    return f"{disk.container_name}/{disk.blob_name}"


def image(name: str, *disks: BlobClient, owner: str | None = None) -> Image:
    os_disk, *data = disks
    return Image(
        ImageName=name,
        ImageType="VMImage" if data else "OSImage",
        Label=name,
        OS="Linux",
        ImageFamily="Claims",
        PublishedDate=datetime(2024, 1, 1, tzinfo=UTC),
        LogicalSizeInGB=1,
        MediaLink=None if data else os_disk.url,
        OSDiskConfiguration={
            "OS": "Linux",
            "MediaLink": os_disk.url,
            "LogicalDiskSizeInGB": 1,
            "SourceBlob": path(os_disk),
        },
        DataDiskConfigurations=[
            {"Lun": i, "MediaLink": d.url, "LogicalDiskSizeInGB": 1, "SourceBlob": path(d)}
            for i, d in enumerate(data)
        ],
        SourceUpload=owner,
    )


@pytest.fixture
def world(azurite_connection: str) -> World:
    suffix = uuid.uuid4().hex[:10]
    blobs = BlobServiceClient.from_connection_string(azurite_connection)
    blobs.create_container(f"claims{suffix}")
    table = TableServiceClient.from_connection_string(azurite_connection).create_table(
        f"cl{suffix}"
    )
    return World(ImageCatalog(table), blobs, f"claims{suffix}")


def killed_at(step: str, nth: int = 1) -> Callable[[str], None]:
    seen = {"n": 0}

    def hook(at: str) -> None:
        if at == step:
            seen["n"] += 1
            if seen["n"] == nth:
                raise Killed(at)

    return hook


def assert_leased_by(world: World, disk: BlobClient, lease_id: str) -> None:
    """The blob is leased, and under exactly this id (acquiring with it again succeeds,
    any other id is refused)."""
    assert facts(disk).leased
    disk.acquire_lease(lease_duration=-1, lease_id=lease_id)  # idempotent for the holder
    with pytest.raises(HttpResponseError):
        disk.acquire_lease(lease_duration=-1, lease_id=str(uuid.uuid4()))


def test_a_second_image_over_a_held_disk_is_refused_naming_the_holder(world: World) -> None:
    disk, other = world.disk(), world.disk()
    publish(world.catalog, world.guard(), image("first", disk))
    for name, disks in [("second", (disk,)), ("vm-second", (other, disk))]:
        with pytest.raises(DiskInUse, match="'first'") as e:
            publish(world.catalog, world.guard(), image(name, *disks))
        assert e.value.image_name == "first"
        assert world.catalog.find(name) is None
    # The refused VM image gave its other disk back: free, unclaimed.
    assert not facts(other).leased and world.catalog.claim_of(path(other)) is None
    assert_leased_by(world, disk, world.lease_of("first", disk))


def test_concurrent_registrations_over_one_disk_make_one_image(world: World) -> None:
    disk = world.disk()
    names = [f"racer{i}" for i in range(10)]

    def attempt(name: str) -> str:
        try:
            publish(world.catalog, world.guard(), image(name, disk))
            return "ok"
        except DiskInUse as e:
            return f"in use by {e.image_name}"

    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(attempt, names))
    winners = [n for n, o in zip(names, outcomes, strict=True) if o == "ok"]
    assert len(winners) == 1, outcomes
    assert [n for n in names if world.catalog.find(n)] == winners
    assert world.catalog.holder(path(disk)) == winners[0]
    assert_leased_by(world, disk, world.lease_of(winners[0], disk))


def test_removing_one_image_never_releases_another_images_disk(world: World) -> None:
    """The old bug: lease ids derived from the path let a second image 'share' a disk,
    and removing either released the lease under the other."""
    disk = world.disk()
    publish(world.catalog, world.guard(), image("keeper", disk))
    with pytest.raises(DiskInUse):
        publish(world.catalog, world.guard(), image("intruder", disk))
    # A foreign caller guessing the old path-derived lease id gets nowhere.
    with pytest.raises(HttpResponseError):
        disk.acquire_lease(lease_duration=-1, lease_id=legacy_lease_id(*path(disk).split("/")))
    with pytest.raises(HttpResponseError):
        disk.delete_blob()
    assert_leased_by(world, disk, world.lease_of("keeper", disk))


@pytest.mark.parametrize("step", ADD_STEPS)
def test_a_registration_killed_before_any_write_is_finished_by_its_retry(
    world: World, step: str
) -> None:
    disk, data = world.disk(), world.disk()
    request = image("phoenix", disk, data, owner="uploads/phoenix.image.json@etag1")
    with pytest.raises(Killed):
        publish(world.with_hook(killed_at(step)), world.guard(), request)
    committed = world.catalog.find("phoenix") is not None
    assert committed == (step in ("index", "summary"))
    # The retry of the same request (same owner) finishes at once: one image, both disks
    # claimed by it and leased under its claim, no dead claim left.
    again = publish(world.catalog, world.guard(), request)
    assert again.ImageName == "phoenix"
    for d in (disk, data):
        assert world.catalog.holder(path(d)) == "phoenix"
        assert_leased_by(world, d, world.lease_of("phoenix", d))
    assert world.catalog.summary("Claims").count == 1


def test_a_dead_claim_of_another_request_is_taken_over_once_stale(world: World) -> None:
    disk = world.disk()
    with pytest.raises(Killed):
        publish(world.with_hook(killed_at("commit")), world.guard(), image("dead", disk))
    # Fresh: another request is told the disk is being registered (it may still commit).
    with pytest.raises(DiskInUse, match="being registered as the image 'dead'"):
        publish(world.catalog, world.guard(), image("alive", disk))
    # Stale: the dead change is fenced, its claim and its lease are taken over.
    patient = ImageCatalog(world.catalog.table, stale_after=timedelta(0))
    publish(patient, world.guard(), image("alive", disk))
    assert world.catalog.holder(path(disk)) == "alive"
    assert_leased_by(world, disk, world.lease_of("alive", disk))
    assert world.catalog.find("dead") is None


def test_a_slow_registrar_whose_claim_was_taken_over_cannot_commit(world: World) -> None:
    disk = world.disk()
    hold: dict[str, Callable[[], None]] = {}

    def take_over_before_my_commit(at: str) -> None:
        if at == "commit" and "done" not in hold:
            hold["done"] = lambda: None
            patient = ImageCatalog(world.catalog.table, stale_after=timedelta(0))
            publish(patient, world.guard(), image("quick", disk))

    slow = world.with_hook(take_over_before_my_commit)
    with pytest.raises(DiskInUse, match="'quick'"):
        publish(slow, world.guard(), image("slow", disk))
    assert world.catalog.find("slow") is None
    assert world.catalog.holder(path(disk)) == "quick"
    assert_leased_by(world, disk, world.lease_of("quick", disk))


def test_a_name_clash_gives_the_claimed_disks_back(world: World) -> None:
    taken, disk = world.disk(), world.disk()
    publish(world.catalog, world.guard(), image("name", taken))
    with pytest.raises(ImageNameTaken):
        publish(world.catalog, world.guard(), image("NAME", disk))
    assert world.catalog.claim_of(path(disk)) is None and not facts(disk).leased


def test_a_disk_leased_by_another_tool_is_refused_and_left_as_it_was(world: World) -> None:
    disk = world.disk()
    foreign = str(uuid.uuid4())
    disk.acquire_lease(lease_duration=-1, lease_id=foreign)
    with pytest.raises(DiskLeased):
        publish(world.catalog, world.guard(), image("blocked", disk))
    assert world.catalog.claim_of(path(disk)) is None
    assert_leased_by(world, disk, foreign)


@pytest.mark.parametrize("delete_vhd", [False, True])
def test_removal_releases_or_deletes_only_its_own_disk(world: World, delete_vhd: bool) -> None:
    disk = world.disk()
    publish(world.catalog, world.guard(), image("mine", disk))
    ImageRemover(world.catalog, world.blobs).remove("mine", delete_vhd)
    assert world.catalog.find("mine") is None and world.catalog.summary("Claims") is None
    assert world.catalog.claim_of(path(disk)) is None
    state = facts(disk)
    assert (state is None) if delete_vhd else (state is not None and not state.leased)


@pytest.mark.parametrize("step", ["commit", "index", "summary", "unclaim"])
def test_a_removal_killed_before_any_write_never_leaves_a_published_image_unprotected(
    world: World, step: str
) -> None:
    disk = world.disk()
    publish(world.catalog, world.guard(), image("mine", disk))
    with pytest.raises(Killed):
        ImageRemover(world.with_hook(killed_at(step)), world.blobs).remove("mine", True)
    if step == "commit":  # not unpublished: still listed, its disk intact and leased
        assert world.catalog.holder(path(disk)) == "mine"
        assert_leased_by(world, disk, world.lease_of("mine", disk))
        ImageRemover(world.catalog, world.blobs).remove("mine", True)
    else:  # unpublished: a retry finds no image, and the disk is no image's any more
        with pytest.raises(ImageNotFound):
            ImageRemover(world.catalog, world.blobs).remove("mine", True)
    assert world.catalog.holder(path(disk)) is None
    # Whatever is left of it can be claimed by a new image at once (a dead claim).
    if facts(disk) is not None:
        publish(world.catalog, world.guard(), image("next", disk))
        assert world.catalog.holder(path(disk)) == "next"
        assert_leased_by(world, disk, world.lease_of("next", disk))


def test_an_image_from_before_claims_is_removed_with_its_path_lease(world: World) -> None:
    disk = world.disk()
    protect(disk, legacy_lease_id(*path(disk).split("/")))
    legacy = image("legacy", disk)
    world.catalog.table.upsert_entity(
        {**_plain_row(world, legacy)}  # an image row without a ClaimId
    )
    ImageRemover(world.catalog, world.blobs).remove("legacy", False)
    assert not facts(disk).leased


def _plain_row(world: World, img: Image) -> dict[str, object]:
    from shared.adapters.catalog_table import image_entity

    return image_entity(img, "00000000000000000001aaaaaa")


def test_claim_keys_hold_any_blob_name(world: World) -> None:
    long_name = "deep/" * 150 + "disk.vhd"
    pk = claim_partition("acct", f"c/{long_name}")
    assert len(pk) <= 512 and pk != claim_partition("acct", f"c/{long_name}x")
    disk = world.disk(long_name)
    publish(world.catalog, world.guard(), image("long", disk))
    row = world.catalog.table.get_entity(
        claim_partition(world.catalog.account, path(disk)), CLAIM_ROW
    )
    assert row["Image"] == "long"
