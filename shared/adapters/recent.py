"""A newest-first index beside a table's rows, for lists a person reads (the portal's).

The rows of `uploads` and `operations` are keyed by name, so a table query returns
them in name order. Beside each row, partition `recent` holds a copy keyed by
`<inverted creation time>|<row key>`: one partition read in key order is then the
newest first, one page at a time. The creation time of a row never changes, so
each row has exactly one index row, rewritten after every write of the row.

The copy is written after the row: a writer killed in between leaves the copy one
write behind. Readers take the copy as it is once it is final and read the row
itself while it is not (`fresh`), so a list never shows as running what is done.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from azure.data.tables import TableClient, UpdateMode

PARTITION = "recent"
_LAST_MS = 10**13 - 1  # milliseconds since 1970 stay below this until the year 2286
POSITION = re.compile(r"\d{13}\|[^\x00-\x1f]{1,1024}")


def recent_key(created: datetime, row_key: str) -> str:
    """Sorts newest first; ties (same millisecond) by row key."""
    ms = int(created.timestamp() * 1000)
    return f"{_LAST_MS - ms:013d}|{row_key}"


class RecentIndex:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def put(self, created: datetime, row_key: str, doc_json: str, final: bool) -> None:
        # Not `Status`: queries over the main rows' Status must not meet these copies.
        self.table.upsert_entity(
            {
                "PartitionKey": PARTITION,
                "RowKey": recent_key(created, row_key),
                "Doc": doc_json,
                "Final": final,
            },
            mode=UpdateMode.REPLACE,
        )

    def page(
        self, top: int, after: str | None, fresh: Callable[[str, bool], Any]
    ) -> tuple[list[Any], str | None]:
        """Up to `top` documents newest first, from the position `after` (a page's next),
        and the position the next page starts after (None at the end). `fresh(doc_json,
        final)` turns a copy into the document to show."""
        clauses, params = ["PartitionKey eq @pk"], {"pk": PARTITION}
        if after is not None:
            clauses.append("RowKey gt @after")
            params["after"] = after
        rows = self.table.query_entities(
            " and ".join(clauses), parameters=params, results_per_page=top + 1
        )
        taken: list[Any] = []
        for row in rows:
            taken.append(row)
            if len(taken) > top:
                break
        more = len(taken) > top
        taken = taken[:top]
        docs = [fresh(r["Doc"], bool(r.get("Final"))) for r in taken]
        return docs, taken[-1]["RowKey"] if more and taken else None


def is_position(value: object) -> bool:
    """Could `value` be where a page stopped? (Continuation tokens are checked.)"""
    return isinstance(value, str) and POSITION.fullmatch(value) is not None
