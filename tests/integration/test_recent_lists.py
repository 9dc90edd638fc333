"""Newest-first lists of uploads and operations (the portal's Uploads and Operations pages),
against Azurite: order, paging with signed tokens, and a writer killed between a row and
its index copy."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.operations_table import Operations
from shared.adapters.recent import PARTITION
from shared.adapters.storage import StorageAccount
from shared.adapters.uploads_table import UploadOutcomes, row_key
from shared.domain.operations import Operation
from shared.domain.uploads import UploadKind, UploadOutcome, UploadStatus
from shared.services.paging import InvalidContinuationToken
from shared.services.recent_lists import list_operations, list_uploads

pytestmark = pytest.mark.azurite


@pytest.fixture
def tables(storage: StorageAccount):  # type: ignore[no-untyped-def]
    """Fresh tables of their own: the lists are asserted whole."""
    names = [f"recent{uuid.uuid4().hex[:10]}" for _ in range(2)]
    made = [storage.tables.create_table(n) for n in names]
    yield made
    for n in names:
        storage.tables.delete_table(n)


def outcome(name: str, first_seen: datetime, status: UploadStatus) -> UploadOutcome:
    return UploadOutcome(
        BlobName=name,
        Kind=UploadKind.DISK,
        Status=status,
        FirstSeen=first_seen,
        LastChecked=first_seen,
    )


def test_uploads_come_newest_first_a_page_at_a_time(tables) -> None:  # type: ignore[no-untyped-def]
    outcomes = UploadOutcomes(tables[0])
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    names = [f"disk-{i}.vhd" for i in range(5)]
    for i, name in enumerate(names):
        outcomes.put(outcome(name, t0 + timedelta(minutes=i), UploadStatus.PENDING))
    # Written again (judged): still one entry each, in the same place.
    outcomes.put(outcome(names[1], t0 + timedelta(minutes=1), UploadStatus.REGISTERED))
    seen, token, pages = [], None, 0
    while True:
        page = list_uploads(outcomes, 2, token)
        assert page["Count"] <= 2
        seen += [(u.BlobName, u.Status) for u in page["Uploads"]]
        pages += 1
        token = page.get("ContinuationToken")
        if token is None:
            break
    assert [n for n, _ in seen] == names[::-1]
    assert dict(seen)[names[1]] == "Registered"
    assert pages == 3
    one = list_uploads(outcomes, 50, None, blob_name=names[2])
    assert [u.BlobName for u in one["Uploads"]] == [names[2]]
    assert list_uploads(outcomes, 50, None, blob_name="never.vhd") == {"Uploads": [], "Count": 0}


def test_a_token_continues_only_its_own_list(tables) -> None:  # type: ignore[no-untyped-def]
    outcomes, ops = UploadOutcomes(tables[0]), Operations(tables[1])
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(3):
        outcomes.put(outcome(f"d{i}.vhd", t0 + timedelta(seconds=i), UploadStatus.REJECTED))
        ops.create(Operation(OperationId=f"op-{i}", Kind="CaptureVM", CreatedTime=t0))
    token = list_uploads(outcomes, 1, None)["ContinuationToken"]
    with pytest.raises(InvalidContinuationToken):
        list_operations(ops, 1, token)
    with pytest.raises(InvalidContinuationToken):
        list_uploads(outcomes, 1, token[:-2] + "AA")


def test_operations_come_newest_first_with_their_status(tables) -> None:  # type: ignore[no-untyped-def]
    ops = Operations(tables[1])
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(3):
        ops.create(
            Operation(OperationId=f"op-{i}", Kind="CaptureVM", CreatedTime=t0 + timedelta(hours=i))
        )
    ops.save(ops.get("op-0").succeed(ImageName="img"))
    listed = list_operations(ops, 10, None)["Operations"]
    assert [o.OperationId for o in listed] == ["op-2", "op-1", "op-0"]
    assert listed[2].Status == "Succeeded"
    # The index copies live beside the rows: the doctor's and the tests' queries of the
    # rows (by Status, or the whole `operation` partition) never meet them.
    assert len(list(ops.all())) == 3
    assert not list(
        tables[1].query_entities(
            "Status eq 'Succeeded' and PartitionKey eq @p", parameters={"p": PARTITION}
        )
    )


def test_a_writer_killed_before_the_index_copy_leaves_no_stale_status(tables) -> None:  # type: ignore[no-untyped-def]
    outcomes, ops = UploadOutcomes(tables[0]), Operations(tables[1])
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    outcomes.put(outcome("late.vhd", t0, UploadStatus.PENDING))
    ops.create(Operation(OperationId="late-op", Kind="CaptureVM", CreatedTime=t0))
    # The row is judged, and the writer dies before it updates the index copy.
    done = outcome("late.vhd", t0, UploadStatus.REGISTERED)
    tables[0].upsert_entity(
        {"PartitionKey": "upload", "RowKey": row_key("late.vhd"), "Status": "Registered",
         "Outcome": done.model_dump_json(exclude_none=True)}
    )  # fmt: skip
    failed = ops.get("late-op").fail("VmNotFound", "gone", 404)
    tables[1].upsert_entity(
        {"PartitionKey": "operation", "RowKey": "late-op", "Status": "Failed", "Kind": "CaptureVM",
         "Operation": failed.model_dump_json(exclude_none=True)}
    )  # fmt: skip
    assert [u.Status for u in list_uploads(outcomes, 10, None)["Uploads"]] == ["Registered"]
    assert [o.Status for o in list_operations(ops, 10, None)["Operations"]] == ["Failed"]
    # And the operation's creator, run again, puts the copy right.
    ops.create(Operation(OperationId="late-op", Kind="CaptureVM", CreatedTime=t0))
    copy = next(iter(tables[1].query_entities("PartitionKey eq @p", parameters={"p": PARTITION})))
    assert json.loads(copy["Doc"])["Status"] == "Failed" and copy["Final"] is True
