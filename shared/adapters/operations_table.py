"""Operation records in the `operations` table (one row per operation id)."""

from __future__ import annotations

from collections.abc import Iterator

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.adapters.recent import RecentIndex
from shared.domain.operations import Operation, OperationNotFound, validate_operation_id

PARTITION = "operation"


class Operations:
    def __init__(self, table: TableClient) -> None:
        self.table = table
        self.recent_index = RecentIndex(table)

    def get(self, operation_id: str) -> Operation:
        validate_operation_id(operation_id)
        try:
            e = self.table.get_entity(PARTITION, operation_id)
        except ResourceNotFoundError as err:
            raise OperationNotFound(f"no operation has the id '{operation_id}'") from err
        return Operation.model_validate_json(e["Operation"])

    def find(self, operation_id: str) -> Operation | None:
        try:
            return self.get(operation_id)
        except OperationNotFound:
            return None

    def create(self, op: Operation) -> tuple[Operation, bool]:
        """Insert `op`; if the id exists already, return the existing one and False."""
        validate_operation_id(op.OperationId)
        try:
            self.table.create_entity(self._entity(op))
        except ResourceExistsError:
            existing = self.get(op.OperationId)
            self._index(existing)  # its creator may have died before indexing it
            return existing, False
        self._index(op)
        return op, True

    def all(self) -> Iterator[Operation]:
        """Every operation (for the invariant check)."""
        rows = self.table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": PARTITION}, select=["Operation"]
        )
        return (Operation.model_validate_json(r["Operation"]) for r in rows)

    def save(self, op: Operation) -> Operation:
        self.table.upsert_entity(self._entity(op), mode=UpdateMode.REPLACE)
        self._index(op)
        return op

    def save_if_unchanged(self, op: Operation, etag: str) -> None:
        self.table.update_entity(
            self._entity(op),
            mode=UpdateMode.REPLACE,
            etag=etag,
            match_condition=MatchConditions.IfNotModified,
        )
        self._index(op)

    def _index(self, op: Operation) -> None:
        self.recent_index.put(
            op.CreatedTime, op.OperationId, op.model_dump_json(exclude_none=True), op.final
        )

    def recent(self, top: int, after: str | None) -> tuple[list[Operation], str | None]:
        """The operations newest first (by CreatedTime), a page at a time (see RecentIndex)."""

        def fresh(doc: str, final: bool) -> Operation:
            op = Operation.model_validate_json(doc)
            return op if final else self.find(op.OperationId) or op

        return self.recent_index.page(top, after, fresh)

    @staticmethod
    def _entity(op: Operation) -> dict[str, object]:
        return {
            "PartitionKey": PARTITION,
            "RowKey": op.OperationId,
            "Status": op.Status,
            "Kind": op.Kind,
            "Operation": op.model_dump_json(exclude_none=True),
        }
