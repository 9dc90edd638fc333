"""Where content hashes live: jobs and the hash index in the catalog's table, block
hashes in blobs.

- `hashjob|<image key>`, RowKey `job`: the image's hash job (progress, checkpoint);
- `hash|<sha256>`, RowKey `<image key>|<role>`: a disk of that content, so that the
  images with a disk of some content are one partition (`GET /api/images?contentHash=`).
  A row is written before the image row shows the hash and may outlive the image, so
  readers trust only what the image row says (`ImageName`, `Created`, `Disk` identify it);
- blobs `<image key>/<created>/<role>.json` (the BlockHashes document) and `.part`
  (an append blob of the block hashes found so far: 8-byte block index, 32-byte digest).

None of these partitions is an image, family, summary or claim partition, so the
catalog's reads never meet them.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode
from azure.storage.blob import ContainerClient

from shared.domain.content_hash import BlockHashes, HashJob
from shared.domain.images import image_key

JOB = "hashjob|"
JOB_ROW = "job"
HASH = "hash|"
_RECORD = struct.Struct("<Q32s")


def job_partition(name: str) -> str:
    return JOB + image_key(name)


def hash_partition(sha: str) -> str:
    return HASH + sha.lower()


def blob_prefix(name: str, created: datetime) -> str:
    return f"{image_key(name)}/{created.strftime('%Y%m%dT%H%M%S%fZ')}/"


class JobConflict(Exception):
    """Someone else wrote the job row since it was read."""


class HashStore:
    def __init__(self, table: TableClient, container: ContainerClient) -> None:
        self.table = table
        self.container = container

    # -- jobs ---------------------------------------------------------------------------
    def job(self, name: str) -> tuple[HashJob | None, str | None]:
        """The image's job and its row's ETag (None, None: none)."""
        try:
            row = self.table.get_entity(job_partition(name), JOB_ROW)
        except ResourceNotFoundError:
            return None, None
        return HashJob.model_validate_json(row["Job"]), row.metadata["etag"]

    def save_job(self, job: HashJob, etag: str | None) -> str:
        """Write the job under `etag` (None: create it); JobConflict if it changed."""
        entity = {
            "PartitionKey": job_partition(job.ImageName),
            "RowKey": JOB_ROW,
            "Job": job.model_dump_json(exclude_none=True),
        }
        try:
            if etag is None:
                meta = self.table.create_entity(entity)
            else:
                meta = self.table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as e:
            raise JobConflict(type(e).__name__) from e
        return str(meta["etag"])

    def delete_job(self, name: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(job_partition(name), JOB_ROW)

    # -- block hashes -------------------------------------------------------------------
    def append_part(self, path: str, digests: dict[int, str]) -> None:
        """Append block hashes to the part blob (created on first use)."""
        blob = self.container.get_blob_client(path)
        records = b"".join(_RECORD.pack(i, bytes.fromhex(d)) for i, d in sorted(digests.items()))
        step = (4 * 1024 * 1024 // _RECORD.size) * _RECORD.size  # Append Block takes <= 4 MiB
        for start in range(0, len(records), step):
            try:
                blob.append_block(records[start : start + step])
            except ResourceNotFoundError:
                blob.create_append_blob()
                blob.append_block(records[start : start + step])

    def drop_part(self, path: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.container.delete_blob(path)

    def read_part(self, path: str, below: int) -> dict[int, str]:
        """The block hashes appended so far for blocks before `below` (a record appended
        by a run that died before its checkpoint counted is read again, the same)."""
        try:
            data = self.container.get_blob_client(path).download_blob().readall()
        except ResourceNotFoundError:
            return {}
        found: dict[int, str] = {}
        for offset in range(0, len(data) - len(data) % _RECORD.size, _RECORD.size):
            index, digest = _RECORD.unpack_from(data, offset)
            if index < below:
                found[index] = digest.hex()
        return found

    def write_document(self, path: str, doc: BlockHashes) -> None:
        self.container.get_blob_client(path).upload_blob(
            doc.model_dump_json().encode(), overwrite=True
        )

    def read_document(self, path: str) -> BlockHashes:
        data = self.container.get_blob_client(path).download_blob().readall()
        return BlockHashes.model_validate_json(data)

    def delete_blobs(self, prefix: str) -> None:
        """Every block-hash blob under `prefix` (an image's: `blob_prefix`)."""
        for b in self.container.list_blobs(name_starts_with=prefix):
            with contextlib.suppress(ResourceNotFoundError):
                self.container.delete_blob(b.name)

    # -- the index -------------------------------------------------------------------
    def index(self, sha: str, name: str, role: str, created: datetime, disk: str) -> None:
        self.table.upsert_entity(
            {
                "PartitionKey": hash_partition(sha),
                "RowKey": f"{image_key(name)}|{role}",
                "ImageName": name,
                "Role": role,
                "Created": created.isoformat(),
                "Disk": disk,
            }
        )

    def unindex(self, sha: str, name: str, role: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(hash_partition(sha), f"{image_key(name)}|{role}")

    def indexed(self, sha: str, after: str | None = None) -> Iterator[dict[str, Any]]:
        """The index rows of a content, by image key (after the image key `after`)."""
        params: dict[str, Any] = {"pk": hash_partition(sha)}
        query = "PartitionKey eq @pk"
        if after is not None:
            query += " and RowKey ge @after"
            params["after"] = f"{after}}}"  # past every `<after>|<role>` ('}' > '|')
        rows = self.table.query_entities(query, parameters=params, results_per_page=1000)
        return (dict(r) for r in rows)
