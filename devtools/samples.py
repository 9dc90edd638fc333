"""Sample data for `make run`: the platform gallery, a few VMs to capture, and spare disks.

Loaded once per storage account: when done, a note is left in the metadata of
the VM disks container (`VHDS_CONTAINER`), and later runs only report it, so
that a sample VM a capture deleted stays deleted. Wiping Azurite's data
(`make reset`) starts over. A load cut short is finished by the next run: each
step adds only what is missing. The disks are small real fixed VHDs (a boot
sector and a footer; the rest is a hole) as page blobs in the VM disks container.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from azure.core.exceptions import ResourceExistsError

from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.storage import StorageAccount
from shared.adapters.vms_table import VmInventory
from shared.domain.errors import NotFound
from shared.domain.vhd import build_footer
from shared.domain.vms import VirtualMachine
from shared.services.gallery import load_gallery

MIB = 1024 * 1024
# The container metadata key that says the samples were loaded (and what they were).
MARKER = "samplesloaded"
SAMPLE_VMS = [
    # service, vm, state, OS, data disks
    ("contoso-web", "web01", "Stopped", "Linux", 0),
    ("contoso-sql", "sql01", "StoppedDeallocated", "Windows", 4),
    ("contoso-app", "app01", "Running", "Linux", 1),
]
# Attached to no VM: the README's "Send a capture" example makes a VM of them.
SPARE_DISKS = ["myvm-os.vhd", "myvm-data0.vhd"]


def _disk(storage: StorageAccount, name: str, size: int = 64 * MIB) -> str:
    client = storage.blobs.get_blob_client(storage.settings.vhds_container, name)
    try:
        client.create_page_blob(size + 512, if_none_match="*")
        boot = bytearray(512)
        boot[510:512] = b"\x55\xaa"
        client.upload_page(bytes(boot), offset=0, length=512)
        client.upload_page(build_footer(size), offset=size, length=512)
    except ResourceExistsError:
        pass
    return client.url


def loaded(storage: StorageAccount) -> str | None:
    """What the note says about an earlier load ("<when> (<what>)"), or None."""
    container = storage.blobs.get_container_client(storage.settings.vhds_container)
    return container.get_container_properties().metadata.get(MARKER)


def load(storage: StorageAccount) -> Iterator[str]:
    """Load the samples unless they were loaded before; yield what was done, line by line."""
    earlier = loaded(storage)
    if earlier is not None:
        yield (
            f"sample data already loaded {earlier}; not loaded again, so what you "
            "changed or deleted stays so (`make reset` wipes Azurite's data to start over)"
        )
        return
    catalog = ImageCatalog(storage.tables.get_table_client(storage.settings.images_table))
    added, present = load_gallery(catalog)
    yield f"gallery: {added} images added, {present} already there"
    inventory = VmInventory(storage.tables.get_table_client(storage.settings.vms_table))
    created: list[str] = []
    for service, name, state, os_type, data in SAMPLE_VMS:
        try:
            inventory.get(service, name)
            continue
        except NotFound:
            pass
        inventory.put(
            VirtualMachine(
                ServiceName=service,
                Name=name,
                State=state,
                OSDisk={"OS": os_type, "MediaLink": _disk(storage, f"{name}-os.vhd")},
                DataDisks=[
                    {"Lun": i, "MediaLink": _disk(storage, f"{name}-data{i}.vhd")}
                    for i in range(data)
                ],
            )
        )
        created.append(f"{service}/{name}")
    kept = len(SAMPLE_VMS) - len(created)
    yield f"sample VMs: {len(created)} added ({', '.join(created) or 'none'}), {kept} already there"
    container = storage.settings.vhds_container
    for name in SPARE_DISKS:
        _disk(storage, name)
    yield f"spare disks for the README's capture example: {', '.join(SPARE_DISKS)} in {container}"
    note = (
        f"on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({added + present} images, "
        f"{len(SAMPLE_VMS)} VMs, {len(SPARE_DISKS)} spare disks)"
    )
    client = storage.blobs.get_container_client(container)
    metadata = client.get_container_properties().metadata
    client.set_container_metadata({**metadata, MARKER: note})
