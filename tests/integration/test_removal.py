"""Removing an image against real Azurite: the disk's lease, its deletion, and a remover
killed between its steps (the next DELETE must finish the job)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobClient, BlobServiceClient

from shared.adapters.blobs import facts, protect
from shared.adapters.catalog_table import ImageCatalog
from shared.domain.images import Image, ImageNotFound
from shared.services.removal import ImageRemover
from tests.integration.test_catalog_table import Killed


@pytest.fixture
def world(azurite_connection: str) -> tuple[ImageCatalog, BlobServiceClient, str]:
    suffix = uuid.uuid4().hex[:10]
    blobs = BlobServiceClient.from_connection_string(azurite_connection)
    blobs.create_container(f"img{suffix}")
    table = TableServiceClient.from_connection_string(azurite_connection).create_table(
        f"rm{suffix}"
    )
    return ImageCatalog(table), blobs, f"img{suffix}"


def registered(catalog: ImageCatalog, blobs: BlobServiceClient, container: str) -> BlobClient:
    """A user image over a leased page blob of ours, as an upload leaves it."""
    disk = blobs.get_blob_client(container, f"{uuid.uuid4().hex[:8]}.vhd")
    disk.create_page_blob(size=1024 * 1024)
    protect(disk)
    catalog.add(
        Image(
            ImageName="mine",
            Label="mine",
            OS="Linux",
            Category="User",
            ImageFamily="Mine",
            PublishedDate=datetime(2024, 1, 1, tzinfo=UTC),
            LogicalSizeInGB=1,
            MediaLink=disk.url,
            OSDiskConfiguration={
                "OS": "Linux",
                "MediaLink": disk.url,
                "LogicalDiskSizeInGB": 1,
                "SourceBlob": f"{container}/{disk.blob_name}",
            },
        )
    )
    return disk


@pytest.mark.parametrize("delete_vhd", [False, True])
def test_removal_releases_or_deletes_the_disk(world, delete_vhd: bool) -> None:
    catalog, blobs, container = world
    disk = registered(catalog, blobs, container)
    assert facts(disk).leased
    ImageRemover(catalog, blobs).remove("mine", delete_vhd)
    assert catalog.find("mine") is None and catalog.summary("Mine") is None
    state = facts(disk)
    assert (state is None) if delete_vhd else (state is not None and not state.leased)


@pytest.mark.parametrize("delete_vhd", [False, True])
def test_killed_after_the_release_the_image_stays_and_a_retry_finishes(
    world, delete_vhd: bool
) -> None:
    catalog, blobs, container = world
    disk = registered(catalog, blobs, container)

    def kill(step: str) -> None:
        raise Killed(step)

    with pytest.raises(Killed):
        ImageRemover(ImageCatalog(catalog.table, before_commit=kill), blobs).remove(
            "mine", delete_vhd
        )
    # Still published, its disk intact (no longer leased): never an image without a disk.
    assert catalog.get("mine").ImageName == "mine"
    assert facts(disk) is not None and not facts(disk).leased
    ImageRemover(catalog, blobs).remove("mine", delete_vhd)
    assert catalog.find("mine") is None
    assert (facts(disk) is None) if delete_vhd else not facts(disk).leased


def test_killed_after_unpublishing_the_disk_is_left_free_to_delete(world) -> None:
    catalog, blobs, container = world
    disk = registered(catalog, blobs, container)

    class DiesBeforeDeleting(ImageCatalog):
        def uses_media(self, media_link: str) -> bool:
            raise Killed("before deleting the disk")

    with pytest.raises(Killed):
        ImageRemover(DiesBeforeDeleting(catalog.table), blobs).remove("mine", True)
    assert catalog.find("mine") is None
    with pytest.raises(ImageNotFound):
        ImageRemover(catalog, blobs).remove("mine", True)
    # No lease of ours is left on it: anyone can delete it without breaking one.
    assert not facts(disk).leased
    disk.delete_blob()


def test_a_failed_unpublish_protects_the_disk_again(world) -> None:
    catalog, blobs, container = world
    disk = registered(catalog, blobs, container)

    class StorageFails(ImageCatalog):
        def remove(self, name: str) -> Image:
            raise RuntimeError("the table is unavailable")

    with pytest.raises(RuntimeError):
        ImageRemover(StorageFails(catalog.table), blobs).remove("mine", True)
    assert catalog.get("mine") and facts(disk).leased
