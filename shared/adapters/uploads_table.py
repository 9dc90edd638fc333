"""What became of each dropped blob: one row per blob name in the `uploads` table."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.domain.uploads import UploadOutcome

PARTITION = "upload"


def row_key(blob_name: str) -> str:
    # Blob names may hold '/', '#', '?', '\\', which row keys forbid.
    return quote(blob_name, safe="")


class UploadOutcomes:
    def __init__(self, table: TableClient) -> None:
        self.table = table

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
