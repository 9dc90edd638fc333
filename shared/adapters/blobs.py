"""Disk blobs: ranged reads, facts about a blob, and the catalog's protective lease.

Registered disks are held by an infinite lease, as Azure holds registered VHDs:
nobody can delete or overwrite them without breaking it. The lease id is
derived from the blob's path, so any instance of the catalog can release it
when the image goes away, without having stored it anywhere.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobClient

_LEASE_NAMESPACE = uuid.UUID("6f0f4d1e-3b1a-4c52-9d0e-7a3c2f1b9e55")


def lease_id_for(container: str, blob: str) -> str:
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


def protect(client: BlobClient) -> None:
    """Hold an infinite lease with the catalog's id for this blob (idempotent)."""
    lease_id = lease_id_for(client.container_name, client.blob_name)
    try:
        client.acquire_lease(lease_duration=-1, lease_id=lease_id)
    except HttpResponseError as e:
        if getattr(e, "error_code", None) in (
            "LeaseAlreadyPresent",
            "LeaseIdMismatchWithLeaseOperation",
        ):
            raise DiskLeaseHeld(
                f"{client.container_name}/{client.blob_name} is leased by someone else"
            ) from e
        raise


def release(client: BlobClient) -> None:
    """Give up the catalog's lease (idempotent; a missing blob is fine)."""
    lease_id = lease_id_for(client.container_name, client.blob_name)
    try:
        client.get_blob_properties()
        from azure.storage.blob import BlobLeaseClient

        BlobLeaseClient(client, lease_id=lease_id).release()
    except ResourceNotFoundError:
        return
    except HttpResponseError as e:
        if getattr(e, "error_code", None) not in (
            "LeaseNotPresentWithLeaseOperation",
            "LeaseIdMismatchWithLeaseOperation",
        ):
            raise


def delete_protected(client: BlobClient) -> None:
    """Delete a disk the catalog protects (its lease id is known)."""
    lease_id = lease_id_for(client.container_name, client.blob_name)
    try:
        client.delete_blob(lease=lease_id, delete_snapshots="include")
    except ResourceNotFoundError:
        return
    except HttpResponseError as e:
        if getattr(e, "error_code", None) in ("LeaseNotPresentWithBlobOperation",):
            client.delete_blob(delete_snapshots="include")
        else:
            raise
