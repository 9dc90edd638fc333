"""The VM inventory's list, paged with signed continuation tokens like the image list."""

from __future__ import annotations

from typing import Any

from shared.adapters.vms_table import VmInventory, is_position
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
