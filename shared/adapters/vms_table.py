"""The VM inventory in the `vms` table: partition = cloud service, row = VM (both lowercased)."""

from __future__ import annotations

import base64
import json
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.domain.errors import InvalidParameter
from shared.domain.vms import VirtualMachine, VmNotFound


class VmInventory:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def get(self, service: str, name: str) -> VirtualMachine:
        try:
            e = self.table.get_entity(service.lower(), name.lower())
        except ResourceNotFoundError as err:
            raise VmNotFound(f"no VM '{name}' in cloud service '{service}'") from err
        return VirtualMachine.model_validate_json(e["Vm"])

    def put(self, vm: VirtualMachine) -> bool:
        """Create or replace; True when it was created."""
        try:
            self.table.get_entity(vm.ServiceName.lower(), vm.Name.lower(), select=["RowKey"])
            created = False
        except ResourceNotFoundError:
            created = True
        self.table.upsert_entity(
            {
                "PartitionKey": vm.ServiceName.lower(),
                "RowKey": vm.Name.lower(),
                "State": vm.State,
                "Vm": vm.model_dump_json(),
            },
            mode=UpdateMode.REPLACE,
        )
        return created

    def delete(self, service: str, name: str) -> None:
        self.table.delete_entity(service.lower(), name.lower())

    def page(self, top: int, token: str | None) -> tuple[list[VirtualMachine], str | None]:
        continuation: Any = None
        if token:
            try:
                continuation = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
                if not isinstance(continuation, dict):
                    raise ValueError
            except ValueError as e:
                raise InvalidParameter("the continuation token is not valid") from e
        pages = self.table.list_entities(results_per_page=top).by_page(
            continuation_token=continuation
        )
        items = [VirtualMachine.model_validate_json(e["Vm"]) for e in next(pages, [])]
        nxt = pages.continuation_token
        encoded = (
            base64.urlsafe_b64encode(json.dumps(nxt).encode()).decode().rstrip("=") if nxt else None
        )
        return items, encoded
