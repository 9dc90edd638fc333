"""The invariant check against real Azurite: clean when all holds, and each kind of
breakage reported by name."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobLeaseClient, BlobServiceClient

from shared.adapters.blobs import BlobDiskGuard
from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.operations_table import Operations
from shared.domain.operations import Operation
from shared.services.doctor import Doctor
from shared.services.registration import publish
from tests.integration.test_catalog_table import Killed
from tests.integration.test_disk_claims import image, killed_at


@dataclass
class World:
    catalog: ImageCatalog
    blobs: BlobServiceClient
    operations: Operations
    images: str
    vhds: str

    def disk(self, container: str | None = None, **metadata: str) -> object:
        c = self.blobs.get_blob_client(container or self.images, f"{uuid.uuid4().hex[:8]}.vhd")
        c.create_page_blob(size=1024 * 1024, metadata=metadata or None)
        return c

    def doctor(self, stale_after: timedelta = timedelta(minutes=2)) -> Doctor:
        catalog = ImageCatalog(self.catalog.table, stale_after=stale_after)
        return Doctor(
            catalog, self.blobs, self.operations, [self.images, self.vhds], self.images,
            (self.vhds,),
        )  # fmt: skip

    def kinds(self, **kw: object) -> list[str]:
        report = self.doctor(**kw).examine(stuck_after=timedelta(hours=1))  # type: ignore[arg-type]
        return sorted(p.Kind for p in report.Problems)


@pytest.fixture
def world(azurite_connection: str) -> World:
    s = uuid.uuid4().hex[:10]
    blobs = BlobServiceClient.from_connection_string(azurite_connection)
    tables = TableServiceClient.from_connection_string(azurite_connection)
    blobs.create_container(f"docimg{s}")
    blobs.create_container(f"docvhd{s}")
    return World(
        ImageCatalog(tables.create_table(f"doc{s}")),
        blobs,
        Operations(tables.create_table(f"docops{s}")),
        f"docimg{s}",
        f"docvhd{s}",
    )


def test_a_sound_catalog_is_healthy(world: World) -> None:
    publish(world.catalog, BlobDiskGuard.of_account(world.blobs), image("a", world.disk()))
    publish(
        world.catalog,
        BlobDiskGuard.of_account(world.blobs),
        image("b", world.disk(), world.disk()),
    )
    report = world.doctor().examine(stuck_after=timedelta(hours=1))
    assert report.healthy, report.Problems
    assert report.Checked["Images"] == 2 and report.Checked["Claims"] == 3


def test_a_missing_or_unleased_disk_is_reported(world: World) -> None:
    gone, loose = world.disk(), world.disk()
    guard = BlobDiskGuard.of_account(world.blobs)
    publish(world.catalog, guard, image("gone", gone))
    publish(world.catalog, guard, image("loose", loose))
    BlobLeaseClient(gone).break_lease(lease_break_period=0)
    gone.delete_blob()
    BlobLeaseClient(loose).break_lease(lease_break_period=0)
    assert world.kinds() == ["DiskMissing", "DiskNotLeased"]


def test_a_dead_claim_and_a_foreign_lease_are_reported(world: World) -> None:
    disk = world.disk()
    with pytest.raises(Killed):
        publish(
            ImageCatalog(world.catalog.table, before_commit=killed_at("commit")),
            BlobDiskGuard.of_account(world.blobs),
            image("dead", disk),
        )
    assert world.kinds() == []  # fresh: it may still commit
    assert world.kinds(stale_after=timedelta(0)) == ["DeadClaim", "LeasedWithoutImage"]
    stray = world.disk()
    stray.acquire_lease(lease_duration=-1)
    assert world.kinds().count("LeasedWithoutImage") == 1


def test_stuck_operations_and_orphaned_copies_and_snapshots_are_reported(world: World) -> None:
    old = datetime.now(UTC) - timedelta(hours=3)
    world.operations.save(
        Operation(OperationId="stuck", Kind="CaptureVM", UpdatedTime=old, Step="CopyDisks")
    )
    failed = Operation(OperationId="failed", Kind="CaptureVM").fail("CopyFailed", "x")
    world.operations.save(failed)
    world.operations.save(Operation(OperationId="running", Kind="CaptureVM"))
    world.disk(captureop="failed")  # a copy of a failed capture, in the images container
    world.disk(captureop="running")  # a copy of a capture under way: not an orphan
    vm_disk = world.disk(world.vhds)
    vm_disk.create_snapshot(metadata={"captureop": "failed"})
    vm_disk.create_snapshot(metadata={"captureop": "running"})
    assert world.kinds() == ["OperationStuck", "OrphanCopy", "OrphanSnapshot"]
