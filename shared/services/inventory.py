"""The VM inventory's list, paged with signed continuation tokens like the image list."""

from __future__ import annotations

from typing import Any

from shared.adapters.vms_table import VmInventory, is_position
from shared.domain.disks import parse_media_link
from shared.domain.errors import InvalidParameter
from shared.domain.vms import VirtualMachine
from shared.services.paging import invalid_token, open_token, sign_token

SCOPE = "vms"  # the list has no filters: every token of it continues the same query


def list_vms(inventory: VmInventory, top: int, token: str | None) -> dict[str, Any]:
    after = None
    if token is not None:
        after = open_token(SCOPE, token)
        if not is_position(after):
            raise invalid_token()
    vms, nxt = inventory.page(top, after)  # type: ignore[arg-type]
    body: dict[str, Any] = {"VMs": [v.to_json() for v in vms], "Count": len(vms)}
    if nxt:
        body["ContinuationToken"] = sign_token(SCOPE, nxt)
    return body


class NotInVmDiskContainer(InvalidParameter):
    code = "NotInVmDiskContainer"


def put_vm(
    inventory: VmInventory, vm: VirtualMachine, account_url: str, containers: tuple[str, ...]
) -> bool:
    """Create or replace a VM record; True when created. Each disk must be a blob of this
    account in a VM disk container (400), and named by no other VM record (409 DiskInUse)."""
    for link in vm.disk_links:
        container, _blob = parse_media_link(link, account_url)
        if container not in containers:
            raise NotInVmDiskContainer(
                f"the disk {link[:256]} is in the container '{container}'; VM disks live in "
                f"{', '.join(containers)} (VHDS_CONTAINER)"
            )
    return inventory.put(vm)
