"""Sample data for `make run`: the platform gallery and a few stopped VMs to capture.

Everything is loaded idempotently: running it again adds nothing. The VMs'
disks are small real fixed VHDs (a boot sector and a footer; the rest is a
hole) in the `vhds` container.
"""

from __future__ import annotations

from collections.abc import Iterator

from azure.core.exceptions import ResourceExistsError

from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.storage import StorageAccount
from shared.adapters.vms_table import VmInventory
from shared.domain.errors import NotFound
from shared.domain.vhd import build_footer
from shared.domain.vms import VirtualMachine
from shared.services.gallery import load_gallery

MIB = 1024 * 1024
SAMPLE_VMS = [
    # service, vm, state, OS, data disks
    ("contoso-web", "web01", "Stopped", "Linux", 0),
    ("contoso-sql", "sql01", "StoppedDeallocated", "Windows", 4),
    ("contoso-app", "app01", "Running", "Linux", 1),
]


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


def load(storage: StorageAccount) -> Iterator[str]:
    catalog = ImageCatalog(storage.tables.get_table_client(storage.settings.images_table))
    added, present = load_gallery(catalog)
    yield f"gallery: {added} images added, {present} already there"
    inventory = VmInventory(storage.tables.get_table_client(storage.settings.vms_table))
    created = 0
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
        created += 1
    yield f"sample VMs: {created} added ({', '.join(f'{s}/{v}' for s, v, *_ in SAMPLE_VMS)})"
