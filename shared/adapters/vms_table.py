"""The VM inventory in the `vms` table: partition = cloud service, row = VM (both lowercased).

Beside the VMs, each disk a VM names has a row in partition `!disk|<disk URL>` that
names that VM: two VM records can't name one disk, and a capture can tell whether
a disk has other users before it deletes it. The index row is written before the
VM record and removed after it, so a crash leaves at most an index row whose VM
no longer names the disk: a stale row, taken over by the next VM that names it.
('!' sorts before any service name, so listing VMs skips these partitions.)
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from shared.domain.images import DiskInUse
from shared.domain.vms import STORED, VirtualMachine, VmNotFound

# Where a page of the table stopped, as the Tables SDK gives it back.
Position = dict[str, str | None]

DISK = "!disk|"  # partition prefix of a disk's user row
USER_ROW = "|vm"  # '|' is in no VM name
FIRST_SERVICE = "0"  # service names start with a letter or digit: all sort from here
_MAX_KEY = 460


def link_key(url: str) -> str:
    """One key per disk URL (host in any letter case, path as it decodes)."""
    u = urlsplit(url)
    raw = f"{u.netloc.lower()}{unquote(u.path)}"
    quoted = quote(raw, safe="")
    if len(quoted) <= _MAX_KEY:
        return quoted
    return f"{quoted[: _MAX_KEY - 32]}~{hashlib.sha256(raw.encode()).hexdigest()[:32]}"


def _age(row: Any) -> timedelta:
    """How long ago the row was written (a row from before rows had a time: long ago)."""
    try:
        return datetime.now(UTC) - datetime.fromisoformat(row["At"])
    except (KeyError, TypeError, ValueError):
        return timedelta.max


def _etag(row: Any) -> dict[str, Any]:
    return {"etag": row.metadata["etag"], "match_condition": MatchConditions.IfNotModified}


class VmInventory:
    def __init__(self, table: TableClient, grace: timedelta = timedelta(minutes=2)) -> None:
        self.table = table
        self.grace = grace  # how long a disk row of a PUT under way holds off other VMs

    def get(self, service: str, name: str) -> VirtualMachine:
        try:
            e = self.table.get_entity(service.lower(), name.lower())
        except ResourceNotFoundError as err:
            raise VmNotFound(f"no VM '{name}' in cloud service '{service}'") from err
        return VirtualMachine.model_validate_json(e["Vm"], context=STORED)

    def find(self, service: str, name: str) -> VirtualMachine | None:
        try:
            return self.get(service, name)
        except VmNotFound:
            return None

    def users_of(self, url: str) -> list[tuple[str, str]]:
        """The VMs (service, name) whose records name this disk now."""
        row = self._user_row(url)
        if row is None:
            return []
        vm = self.find(row["Service"], row["Name"])
        if vm is None or link_key(url) not in {link_key(u) for u in vm.disk_links}:
            return []  # a stale row: that VM is gone or names other disks now
        return [(vm.ServiceName.lower(), vm.Name.lower())]

    def _user_row(self, url: str) -> Any | None:
        try:
            return self.table.get_entity(DISK + link_key(url), USER_ROW)
        except ResourceNotFoundError:
            return None

    def _take(self, vm: VirtualMachine, url: str) -> None:
        """Record that `vm` names this disk; DiskInUse when another VM record names it, or
        another PUT is recording it right now (a row younger than `grace` whose VM does
        not name the disk yet). A row of this VM's is rewritten under its ETag, so that a
        concurrent PUT of the same VM giving the disk back can't delete it meanwhile."""
        me = {
            "PartitionKey": DISK + link_key(url),
            "RowKey": USER_ROW,
            "Service": vm.ServiceName.lower(),
            "Name": vm.Name.lower(),
            "Url": url,
            "At": datetime.now(UTC).isoformat(),
        }
        for _ in range(10):
            try:
                self.table.create_entity(me)
                return
            except ResourceExistsError:
                pass
            row = self._user_row(url)
            if row is None:
                continue
            mine = (row["Service"], row["Name"]) == (me["Service"], me["Name"])
            if not mine:
                holder = f"{row['Service']}/{row['Name']}"
                if self.users_of(url):
                    raise DiskInUse(
                        f"the disk {url} is named by the VM {holder}; a disk belongs to one VM"
                    )
                if _age(row) < self.grace:
                    raise DiskInUse(
                        f"the disk {url} is being recorded for the VM {holder}; a disk "
                        "belongs to one VM"
                    )
            try:  # ours: touched; stale: taken over
                self.table.update_entity(me, mode=UpdateMode.REPLACE, **_etag(row))
                return
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
        raise RuntimeError(f"could not record the disk {url}: too much contention")

    def _give_back(self, service: str, name: str, urls: list[str]) -> None:
        """Drop this VM's rows for disks its record no longer names (read row, then record,
        then delete under the row's ETag: a PUT that names the disk again wins)."""
        for url in urls:
            row = self._user_row(url)
            if row is None or (row["Service"], row["Name"]) != (service.lower(), name.lower()):
                continue
            vm = self.find(service, name)
            if vm is not None and link_key(url) in {link_key(u) for u in vm.disk_links}:
                continue
            with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
                self.table.delete_entity(row["PartitionKey"], USER_ROW, **_etag(row))

    def _record(self, service: str, name: str, vm: VirtualMachine | None) -> None:
        if vm is None:
            with contextlib.suppress(ResourceNotFoundError):
                self.table.delete_entity(service.lower(), name.lower())
            return
        self.table.upsert_entity(
            {
                "PartitionKey": vm.ServiceName.lower(),
                "RowKey": vm.Name.lower(),
                "State": vm.State,
                "Vm": vm.model_dump_json(),
            },
            mode=UpdateMode.REPLACE,
        )

    def put(self, vm: VirtualMachine) -> bool:
        """Create or replace; True when it was created. DiskInUse when another VM record
        names one of its disks.

        Rows first, then the record, then the rows again (recreating any a concurrent
        PUT of this VM gave back meanwhile), then the rows of dropped disks given back.
        """
        before = self.find(vm.ServiceName, vm.Name)
        for url in vm.disk_links:
            self._take(vm, url)
        self._record(vm.ServiceName, vm.Name, vm)
        try:
            for url in vm.disk_links:
                self._take(vm, url)
        except DiskInUse:  # another PUT took us for dead: our record must not name it
            self._record(vm.ServiceName, vm.Name, before)
            raise
        if before is not None:
            now = {link_key(u) for u in vm.disk_links}
            dropped = [u for u in before.disk_links if link_key(u) not in now]
            self._give_back(vm.ServiceName, vm.Name, dropped)
        return before is None

    def delete(self, service: str, name: str) -> None:
        vm = self.find(service, name)
        self.table.delete_entity(service.lower(), name.lower())
        if vm is not None:
            self._give_back(service, name, vm.disk_links)

    def page(
        self, top: int, after: Position | None
    ) -> tuple[list[VirtualMachine], Position | None]:
        """One page of VMs from `after` (a page's `next`), and where the next page starts."""
        pages = self.table.query_entities(
            "PartitionKey ge @first", parameters={"first": FIRST_SERVICE}, results_per_page=top
        ).by_page(continuation_token=after)
        items = [
            VirtualMachine.model_validate_json(e["Vm"], context=STORED) for e in next(pages, [])
        ]
        return items, pages.continuation_token or None


def is_position(value: object) -> bool:
    """Could `value` be where a page stopped? (Continuation tokens are checked.)"""
    return (
        isinstance(value, dict)
        and set(value) == {"PartitionKey", "RowKey"}
        and all(v is None or (isinstance(v, str) and len(v) <= 1024) for v in value.values())
    )
