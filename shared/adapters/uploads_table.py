"""What became of each dropped blob: one row per blob name in the `uploads` table."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from shared.adapters.recent import RecentIndex
from shared.domain.uploads import UploadOutcome

PARTITION = "upload"


MAX_KEY_CHARS = 400  # row keys hold at most 1 KiB


def row_key(blob_name: str) -> str:
    # Blob names may hold '/', '#', '?', '\\', which row keys forbid; quoting keeps them
    # readable, and a name too long once quoted keeps its head plus a digest of the rest.
    key = quote(blob_name, safe="")
    if len(key) <= MAX_KEY_CHARS:
        return key
    digest = hashlib.sha256(blob_name.encode("utf-8")).hexdigest()
    return f"{key[:300]}~{digest}"


class UploadOutcomes:
    def __init__(self, table: TableClient) -> None:
        self.table = table
        self.recent_index = RecentIndex(table)

    def get(self, blob_name: str) -> UploadOutcome | None:
        try:
            e = self.table.get_entity(PARTITION, row_key(blob_name))
        except ResourceNotFoundError:
            return None
        return UploadOutcome.model_validate(json.loads(e["Outcome"]))

    def put(self, outcome: UploadOutcome) -> None:
        entity: dict[str, Any] = {
            "PartitionKey": PARTITION,
            "RowKey": row_key(outcome.BlobName),
            "Status": outcome.Status,
            "Outcome": outcome.model_dump_json(exclude_none=True),
        }
        self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        self.recent_index.put(
            outcome.FirstSeen, entity["RowKey"], entity["Outcome"], final=outcome.final
        )

    def get_versioned(self, blob_name: str) -> tuple[UploadOutcome | None, str | None]:
        """The outcome and its row's ETag (for `put_if`); (None, None) when there is none."""
        try:
            e = self.table.get_entity(PARTITION, row_key(blob_name))
        except ResourceNotFoundError:
            return None, None
        return UploadOutcome.model_validate(json.loads(e["Outcome"])), e.metadata["etag"]

    def put_if(self, outcome: UploadOutcome, etag: str | None) -> str | None:
        """Write the outcome only over the row read with `etag` (None: only where there is
        no row); its new ETag, or None when someone else wrote the row meanwhile."""
        entity: dict[str, Any] = {
            "PartitionKey": PARTITION,
            "RowKey": row_key(outcome.BlobName),
            "Status": outcome.Status,
            "Outcome": outcome.model_dump_json(exclude_none=True),
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
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return None
        self.recent_index.put(
            outcome.FirstSeen, entity["RowKey"], entity["Outcome"], final=outcome.final
        )
        return str(meta["etag"])

    def recent(self, top: int, after: str | None) -> tuple[list[UploadOutcome], str | None]:
        """The outcomes newest first (by FirstSeen), a page at a time (see RecentIndex)."""

        def fresh(doc: str, final: bool) -> UploadOutcome:
            outcome = UploadOutcome.model_validate(json.loads(doc))
            if final:
                return outcome
            return self.get(outcome.BlobName) or outcome

        return self.recent_index.page(top, after, fresh)
