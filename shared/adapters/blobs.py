"""Disk blobs: ranged reads, facts about a blob, and the catalog's protective lease.

Registered disks are held by an infinite lease, as Azure holds registered VHDs:
nobody can delete or overwrite them without breaking it. The lease id belongs to
the image's claim on the disk (`catalog_table.claim_lease_id`), never to the path,
so removing one image can never release a lease another image holds. Images
registered before claims existed hold a lease whose id is derived from the path
(`legacy_lease_id`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobLeaseClient, BlobServiceClient, ContainerClient

from shared.adapters.catalog_table import DiskGuard, DiskLease

_LEASE_NAMESPACE = uuid.UUID("6f0f4d1e-3b1a-4c52-9d0e-7a3c2f1b9e55")


def legacy_lease_id(container: str, blob: str) -> str:
    return str(uuid.uuid5(_LEASE_NAMESPACE, f"{container}/{blob}"))


@dataclass(frozen=True)
class BlobFacts:
    name: str
    container: str
    size: int
    etag: str
    blob_type: str  # "PageBlob" | "BlockBlob" | "AppendBlob"
    created: datetime
    last_modified: datetime
    metadata: dict[str, str]
    leased: bool
    url: str


class BlobRangeReader:
    """A RangeReader over a blob: every read is one ranged GET; nothing else moves."""

    def __init__(self, client: BlobClient, size: int, etag: str | None = None) -> None:
        self._client = client
        self._size = size
        self._etag = etag
        self.reads = 0
        self.bytes_read = 0

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be non-negative")
        if offset >= self._size or length == 0:
            return b""
        length = min(length, self._size - offset)
        kwargs: dict[str, Any] = {"offset": offset, "length": length, "max_concurrency": 1}
        if self._etag:
            # Judge one version only: a write during the read fails it (412), not mixes it.
            from azure.core import MatchConditions

            kwargs.update(etag=self._etag, match_condition=MatchConditions.IfNotModified)
        data = self._client.download_blob(**kwargs).readall()
        self.reads += 1
        self.bytes_read += len(data)
        return data


def facts(client: BlobClient) -> BlobFacts | None:
    """The blob's properties, or None when it does not exist (any more)."""
    try:
        p = client.get_blob_properties()
    except ResourceNotFoundError:
        return None
    return BlobFacts(
        name=p.name,
        container=p.container,
        size=p.size,
        etag=p.etag,
        blob_type=str(getattr(p.blob_type, "value", p.blob_type)),
        created=p.creation_time or p.last_modified,
        last_modified=p.last_modified,
        metadata={k.lower(): v for k, v in (p.metadata or {}).items()},
        leased=str(getattr(p.lease.state, "value", p.lease.state)) == "leased",
        url=client.url,
    )


class DiskLeaseHeld(Exception):
    """Someone else holds a lease on the disk blob."""


_LEASE_TAKEN = ("LeaseAlreadyPresent", "LeaseIdMismatchWithLeaseOperation")
_NOT_OURS = ("LeaseNotPresentWithLeaseOperation", "LeaseIdMismatchWithLeaseOperation")


def _code(e: HttpResponseError) -> str | None:
    return getattr(e, "error_code", None)


def protect(client: BlobClient, lease_id: str, previous: tuple[str, ...] = ()) -> None:
    """Hold an infinite lease with this id (idempotent); a lease still held under one of
    the `previous` ids (a dead claim's) is changed over to it."""
    try:
        client.acquire_lease(lease_duration=-1, lease_id=lease_id)
        return
    except HttpResponseError as e:
        if _code(e) not in _LEASE_TAKEN:
            raise
        taken = e
    for old in previous:
        try:
            BlobLeaseClient(client, lease_id=old).change(proposed_lease_id=lease_id)
            return
        except HttpResponseError as e:
            if _code(e) not in _NOT_OURS:
                raise
    raise DiskLeaseHeld(
        f"{client.container_name}/{client.blob_name} is leased by someone else"
    ) from taken


def release(client: BlobClient, lease_id: str) -> None:
    """Give up this lease (idempotent; a missing blob, or a lease not ours, is left be)."""
    try:
        BlobLeaseClient(client, lease_id=lease_id).release()
    except ResourceNotFoundError:
        return
    except HttpResponseError as e:
        if _code(e) not in _NOT_OURS:
            raise


def delete_protected(client: BlobClient, lease_id: str | None = None) -> bool:
    """Delete a disk, under our lease when we hold one: never one leased by anyone else.
    True when it is gone."""
    try:
        client.delete_blob(lease=lease_id, delete_snapshots="include")
        return True
    except ResourceNotFoundError:
        return True
    except HttpResponseError as e:
        if _code(e) == "LeaseNotPresentWithBlobOperation":
            client.delete_blob(delete_snapshots="include")
            return True
        if _code(e) in ("LeaseIdMissing", "LeaseIdMismatchWithBlobOperation", "LeaseLost"):
            return False  # someone else holds it now: theirs to keep
        raise


@dataclass
class BlobDiskGuard(DiskGuard):
    """Leases disks for the catalog while it registers an image."""

    client: Callable[[str], BlobClient]  # `container/blob` -> its client

    @classmethod
    def of_account(cls, blobs: BlobServiceClient) -> BlobDiskGuard:
        return cls(lambda path: blobs.get_blob_client(*path.split("/", 1)))

    @classmethod
    def of_container(cls, container: ContainerClient) -> BlobDiskGuard:
        def client(path: str) -> BlobClient:
            name, _, blob = path.partition("/")
            if name != container.container_name:
                raise ValueError(f"{path} is not in the container {container.container_name}")
            return container.get_blob_client(blob)

        return cls(client)

    def hold(self, leases: list[DiskLease]) -> None:
        for lease in leases:
            protect(self.client(lease.path), lease.lease_id, lease.previous)

    def release(self, leases: list[DiskLease]) -> None:
        for lease in leases:
            with contextlib.suppress(HttpResponseError):
                release(self.client(lease.path), lease.lease_id)
