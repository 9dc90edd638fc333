"""`make run`'s sample data loads once, says truthfully what it did, and gives real disks."""

from __future__ import annotations

import json
import uuid

from devtools import samples
from shared.adapters.blobs import BlobRangeReader
from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.storage import StorageAccount, ensure_resources
from shared.adapters.vms_table import VmInventory
from shared.domain.vhd import validate_vhd
from shared.services.gallery import GALLERY
from shared.settings import DEFAULTS


def _own_storage(connection: str) -> StorageAccount:
    """Storage names of its own, so the samples don't land in other tests' tables."""
    tag = uuid.uuid4().hex[:8]
    names = {k: f"s{tag}{k.split('_')[0].lower()}" for k in DEFAULTS if k.endswith("_TABLE")}
    names |= {k: f"s{tag}-{v}" for k, v in DEFAULTS.items() if k.endswith(("_CONTAINER", "_QUEUE"))}
    storage = StorageAccount.from_env({**DEFAULTS, **names, "AzureWebJobsStorage": connection})
    ensure_resources(storage)
    return storage


def _assert_disks_are_fixed_vhd_page_blobs_used_by_one_vm_at_most(storage: StorageAccount) -> None:
    container = storage.blobs.get_container_client(storage.settings.vhds_container)
    inventory = VmInventory(storage.tables.get_table_client(storage.settings.vms_table))
    vms, _ = inventory.page(100, None)
    prefix = container.url + "/"
    used = [
        link.removeprefix(prefix)
        for vm in vms
        for link in [vm.OSDisk.MediaLink, *(d.MediaLink for d in vm.DataDisks)]
    ]
    assert len(used) == len(set(used))
    assert not set(used) & set(samples.SPARE_DISKS)
    blobs = {b.name: b for b in container.list_blobs()}
    assert set(blobs) == set(used) | set(samples.SPARE_DISKS)
    for name, blob in blobs.items():
        assert blob.blob_type == "PageBlob", name
        reader = BlobRangeReader(container.get_blob_client(name), blob.size)
        # Raises unless it is a fixed VHD Azure takes, footer and all.
        assert validate_vhd(reader, max_size_bytes=2**40).current_size == blob.size - 512


def test_samples_load_once_and_later_runs_say_so(azurite_connection: str) -> None:
    storage = _own_storage(azurite_connection)
    images = len(json.loads(GALLERY.read_text())["images"])
    first = list(samples.load(storage))
    assert first[0] == f"gallery: {images} images added, 0 already there"
    assert first[1].startswith(f"sample VMs: {len(samples.SAMPLE_VMS)} added (contoso-web/web01")
    assert samples.loaded(storage) is not None
    _assert_disks_are_fixed_vhd_page_blobs_used_by_one_vm_at_most(storage)

    # A capture deletes a sample VM; the next `make run` must not bring it back.
    inventory = VmInventory(storage.tables.get_table_client(storage.settings.vms_table))
    inventory.delete("contoso-web", "web01")
    again = list(samples.load(storage))
    assert len(again) == 1
    assert again[0].startswith("sample data already loaded on ")
    assert f"({images} images, {len(samples.SAMPLE_VMS)} VMs, 2 spare disks)" in again[0]
    assert "make reset" in again[0]
    vms, _ = inventory.page(100, None)
    assert {(v.ServiceName, v.Name) for v in vms} == {
        ("contoso-sql", "sql01"),
        ("contoso-app", "app01"),
    }
    catalog = ImageCatalog(storage.tables.get_table_client(storage.settings.images_table))
    assert sum(f.count for f in catalog.families()) == images


def test_a_load_cut_short_is_finished_and_reports_what_was_there(
    azurite_connection: str,
) -> None:
    storage = _own_storage(azurite_connection)
    lines = samples.load(storage)
    next(lines)  # the gallery is in, then the run was stopped
    lines.close()
    assert samples.loaded(storage) is None
    images = len(json.loads(GALLERY.read_text())["images"])
    finished = list(samples.load(storage))
    assert finished[0] == f"gallery: 0 images added, {images} already there"
    assert finished[1] == (
        "sample VMs: 3 added (contoso-web/web01, contoso-sql/sql01, contoso-app/app01), "
        "0 already there"
    )
    assert samples.loaded(storage) is not None
