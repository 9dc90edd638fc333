"""The catalog in Table storage: every row of it in one partition, every write one batch.

Row keys (partition `catalog`):
- `image|<name>`                         the image (the source of truth; point read by name)
- `family|<family>|<newest-first>|<name>`  a copy of it in its family's range (one family
                                           is a single-partition range query, newest first)
- `families|<family>`                     the family's summary: count and newest image
                                           (overall and per OS), so the families list and
                                           "latest in family" never read the images

An image row, its family row and its family's summary change together in one
entity-group transaction, so a crash can never leave a reader a half-written
state; the summary is guarded by its ETag so concurrent writers retry instead
of losing counts. Names, families and filters reach storage as parameters,
never spliced into OData text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.domain.images import Image, ImageNameTaken, ImageNotFound, image_key

PARTITION = "catalog"
IMAGE = "image|"
FAMILY = "family|"
FAMILIES = "families|"
_JSON_FIELDS = ("OSDiskConfiguration", "DataDiskConfigurations", "Probe", "Warnings")
_MAX_TRIES = 20


# A row key holds at most 1 KiB (512 UTF-16 characters), and a family row's key is
# `family|<family key>|<18 digits>|<image name, up to 256>`: 283 + the family key.
_MAX_FAMILY_KEY = 228


def family_key(family: str) -> str:
    # Row keys forbid / \ # ? and control characters; quoting keeps them reversible.
    # A name whose quoted form is too long for a row key (non-ASCII text takes 9 to 12
    # characters a letter) keeps a prefix plus a digest of the whole, one longer than
    # any quoted key so that the two forms never meet: still one key per family.
    quoted = quote(family.strip().lower(), safe=" ")
    if len(quoted) <= _MAX_FAMILY_KEY:
        return quoted
    digest = hashlib.sha256(quoted.encode()).hexdigest()[:32]
    return f"{quoted[: _MAX_FAMILY_KEY - 32]}~{digest}"


def _newest_first(published: datetime) -> str:
    micros = int(published.timestamp() * 1_000_000)
    return f"{10**17 - micros:018d}"


def image_row(name: str) -> str:
    return IMAGE + image_key(name)


def family_row(image: Image) -> str | None:
    if not image.ImageFamily:
        return None
    return (
        f"{FAMILY}{family_key(image.ImageFamily)}|{_newest_first(image.PublishedDate)}|{image.key}"
    )


def family_range(family: str) -> tuple[str, str]:
    prefix = f"{FAMILY}{family_key(family)}|"
    return prefix, prefix[:-1] + "}"  # '}' sorts right after '|'


def to_entity(image: Image, row_key: str) -> dict[str, Any]:
    doc = image.model_dump(mode="json", exclude_none=True)
    entity: dict[str, Any] = {"PartitionKey": PARTITION, "RowKey": row_key}
    for k, v in doc.items():
        entity[k] = json.dumps(v) if k in _JSON_FIELDS else v
    entity["PublishedDate"] = image.PublishedDate
    entity["CreatedTime"] = image.CreatedTime
    return entity


def from_entity(entity: dict[str, Any]) -> Image:
    doc = {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey")}
    for k in _JSON_FIELDS:
        if isinstance(doc.get(k), str):
            doc[k] = json.loads(doc[k])
    return Image.model_validate(doc)


@dataclass
class FamilySummary:
    family: str
    count: int = 0
    newest: dict[str, Any] | None = None  # {"ImageName", "PublishedDate", "OS", "ImageType"}
    newest_by_os: dict[str, dict[str, Any]] = field(default_factory=dict)
    etag: str | None = None

    @classmethod
    def from_entity(cls, e: dict[str, Any]) -> FamilySummary:
        return cls(
            family=e["Family"],
            count=int(e.get("Count", 0)),
            newest=json.loads(e["Newest"]) if e.get("Newest") else None,
            newest_by_os=json.loads(e.get("NewestByOS") or "{}"),
            etag=e.metadata.get("etag") if hasattr(e, "metadata") else None,
        )

    def to_entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": PARTITION,
            "RowKey": FAMILIES + family_key(self.family),
            "Family": self.family,
            "Count": self.count,
            "Newest": json.dumps(self.newest) if self.newest else "",
            "NewestByOS": json.dumps(self.newest_by_os),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "ImageFamily": self.family,
            "ImageCount": self.count,
            "Newest": self.newest,
            "NewestByOS": self.newest_by_os,
        }


def _ref(image: Image) -> dict[str, Any]:
    return {
        "ImageName": image.ImageName,
        "PublishedDate": image.PublishedDate.isoformat().replace("+00:00", "Z"),
        "OS": image.OS,
        "ImageType": image.ImageType,
    }


def _newer(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    """Is ref b newer than ref a (ties broken by name, so the order is total)?"""
    if a is None:
        return True
    return (b["PublishedDate"], b["ImageName"].lower()) > (
        a["PublishedDate"],
        a["ImageName"].lower(),
    )


def _with(summary: FamilySummary, image: Image) -> FamilySummary:
    """The family's summary once `image` has joined it."""
    summary.count += 1
    ref = _ref(image)
    if _newer(summary.newest, ref):
        summary.newest = ref
    if _newer(summary.newest_by_os.get(image.OS), ref):
        summary.newest_by_os[image.OS] = ref
    return summary


@dataclass
class Page:
    items: list[Image]
    last_row: str | None  # the row key to continue after, None when this was the last page


class ImageCatalog:
    """Repository of images over one table. `before_commit` is a test hook for crash tests."""

    def __init__(self, table: TableClient, before_commit: Callable[[str], None] | None = None):
        self.table = table
        self.before_commit = before_commit

    # -- reads ------------------------------------------------------------------
    def find(self, name: str) -> Image | None:
        try:
            return from_entity(self.table.get_entity(PARTITION, image_row(name)))
        except ResourceNotFoundError:
            return None

    def get(self, name: str) -> Image:
        image = self.find(name)
        if image is None:
            raise ImageNotFound(f"no image is named '{name[:256]}'")
        return image

    def uses_media(self, media_link: str) -> bool:
        """Does any image (still) have this disk as its MediaLink?"""
        rows = self._range(
            IMAGE, IMAGE[:-1] + "}", None, {"MediaLink": media_link}, ["RowKey"], per_page=1
        )
        return next(rows, None) is not None

    def summary(self, family: str) -> FamilySummary | None:
        try:
            e = self.table.get_entity(PARTITION, FAMILIES + family_key(family))
        except ResourceNotFoundError:
            return None
        return FamilySummary.from_entity(e)

    def families(self) -> list[FamilySummary]:
        rows = self._range(FAMILIES, FAMILIES[:-1] + "}", None, {}, None)
        return [FamilySummary.from_entity(e) for e in rows]

    def page(
        self,
        family: str | None,
        filters: dict[str, Any],
        top: int,
        after: str | None,
        select: list[str] | None = None,
    ) -> Page:
        """One page of images (all, or one family newest first), filtered by equality."""
        lo, hi = family_range(family) if family is not None else (IMAGE, IMAGE[:-1] + "}")
        rows = list(islice(self._range(lo, hi, after, filters, select, per_page=top + 1), top + 1))
        more = len(rows) > top
        rows = rows[:top]
        images = [self._partial(e, select) for e in rows]
        return Page(images, rows[-1]["RowKey"] if more and rows else None)

    def _partial(self, e: dict[str, Any], select: list[str] | None) -> Any:
        if select is None:
            return from_entity(e)
        doc = {k: e[k] for k in select if k in e}
        for k in _JSON_FIELDS:
            if isinstance(doc.get(k), str):
                doc[k] = json.loads(doc[k])
        return doc

    def _range(
        self,
        lo: str,
        hi: str,
        after: str | None,
        filters: dict[str, Any],
        select: list[str] | None,
        per_page: int = 1000,
    ) -> Iterator[Any]:
        """Rows in [lo, hi) (after `after`), fetched `per_page` at a time: ask for what you use."""
        params: dict[str, Any] = {"pk": PARTITION, "lo": lo, "hi": hi}
        clauses = ["PartitionKey eq @pk", "RowKey lt @hi"]
        if after is not None:
            clauses.append("RowKey gt @after")
            params["after"] = after
        else:
            clauses.append("RowKey ge @lo")
        for i, (prop, value) in enumerate(sorted(filters.items())):
            clauses.append(f"{prop} eq @f{i}")
            params[f"f{i}"] = value
        columns = None if select is None else sorted({*select, "RowKey"})
        return iter(
            self.table.query_entities(
                " and ".join(clauses),
                parameters=params,
                select=columns,
                results_per_page=max(1, min(per_page, 1000)),
            )
        )

    # -- writes -----------------------------------------------------------------
    def _commit(self, step: str, operations: list[Any]) -> None:
        if self.before_commit is not None:
            self.before_commit(step)
        self.table.submit_transaction(operations)

    def _summary_op(self, summary: FamilySummary) -> Any:
        entity = summary.to_entity()
        if summary.count == 0:
            return (
                "delete",
                entity,
                {"etag": summary.etag, "match_condition": MatchConditions.IfNotModified},
            )
        if summary.etag is None:
            return ("create", entity)
        return (
            "update",
            entity,
            {
                "mode": UpdateMode.REPLACE,
                "etag": summary.etag,
                "match_condition": MatchConditions.IfNotModified,
            },
        )

    def add(self, image: Image) -> Image:
        """Register a new image; ImageNameTaken if any image (any letter case) has the name."""
        for _ in range(_MAX_TRIES):
            ops: list[Any] = [("create", to_entity(image, image_row(image.ImageName)))]
            if image.ImageFamily:
                ops.append(("create", to_entity(image, family_row(image))))  # type: ignore[arg-type]
                summary = self.summary(image.ImageFamily) or FamilySummary(image.ImageFamily)
                ops.append(self._summary_op(_with(summary, image)))
            try:
                self._commit("add", ops)
                return image
            except TableTransactionError as e:
                if self.find(image.ImageName) is not None:
                    raise ImageNameTaken(
                        f"an image named '{image.ImageName}' already exists; choose another name"
                    ) from e
                if e.error_code not in ("UpdateConditionNotSatisfied", "EntityAlreadyExists"):
                    raise
        raise RuntimeError(f"could not register {image.ImageName}: too much contention")

    def _without(self, summary: FamilySummary, image: Image) -> FamilySummary:
        """The family's summary once `image` has left it (reads at most two rows)."""
        summary.count -= 1
        if summary.count <= 0:
            summary.count = 0
            return summary
        lo, hi = family_range(summary.family)
        own = family_row(image)
        if summary.newest and summary.newest["ImageName"].lower() == image.key:
            rows = islice(self._range(lo, hi, None, {}, None, per_page=2), 2)
            rest = [e for e in rows if e["RowKey"] != own]
            summary.newest = _ref(from_entity(rest[0])) if rest else None
        by_os = summary.newest_by_os.get(image.OS)
        if by_os and by_os["ImageName"].lower() == image.key:
            rest = [
                e
                for e in islice(
                    self._range(lo, hi, None, {"OS": str(image.OS)}, None, per_page=2), 2
                )
                if e["RowKey"] != own
            ]
            if rest:
                summary.newest_by_os[image.OS] = _ref(from_entity(rest[0]))
            else:
                summary.newest_by_os.pop(image.OS, None)
        return summary

    def remove(self, name: str) -> Image:
        for _ in range(_MAX_TRIES):
            entity = self._entity(name)
            image = from_entity(entity)
            ops: list[Any] = [
                (
                    "delete",
                    entity,
                    {
                        "etag": entity.metadata["etag"],
                        "match_condition": MatchConditions.IfNotModified,
                    },
                )
            ]
            if image.ImageFamily:
                ops.append(("delete", {"PartitionKey": PARTITION, "RowKey": family_row(image)}))
                summary = self.summary(image.ImageFamily)
                if summary is not None:
                    ops.append(self._summary_op(self._without(summary, image)))
            try:
                self._commit("remove", ops)
                return image
            except TableTransactionError as e:
                if e.error_code not in (
                    "UpdateConditionNotSatisfied",
                    "ResourceNotFound",
                    "EntityNotFound",
                ):
                    raise
        raise RuntimeError(f"could not remove {name}: too much contention")

    def _entity(self, name: str) -> Any:
        try:
            return self.table.get_entity(PARTITION, image_row(name))
        except ResourceNotFoundError as e:
            raise ImageNotFound(f"no image is named '{name[:256]}'") from e

    def update(self, name: str, changes: dict[str, Any]) -> Image:
        """Change updatable fields; a family change moves the image between summaries."""
        for _ in range(_MAX_TRIES):
            entity = self._entity(name)
            old = from_entity(entity)
            new = Image.model_validate({**old.model_dump(), **changes})
            ops: list[Any] = [
                (
                    "update",
                    to_entity(new, image_row(name)),
                    {
                        "mode": UpdateMode.REPLACE,
                        "etag": entity.metadata["etag"],
                        "match_condition": MatchConditions.IfNotModified,
                    },
                )
            ]
            old_row, new_row = family_row(old), family_row(new)
            if old_row and old_row == new_row:
                ops.append(("upsert", to_entity(new, new_row), {"mode": UpdateMode.REPLACE}))
            else:
                if old_row:
                    ops.append(("delete", {"PartitionKey": PARTITION, "RowKey": old_row}))
                if new_row:
                    ops.append(("create", to_entity(new, new_row)))
            if (old.ImageFamily or "").lower() != (new.ImageFamily or "").lower():
                if old.ImageFamily and (s := self.summary(old.ImageFamily)) is not None:
                    ops.append(self._summary_op(self._without(s, old)))
                if new.ImageFamily:
                    s = self.summary(new.ImageFamily) or FamilySummary(new.ImageFamily)
                    ops.append(self._summary_op(_with(s, new)))
            try:
                self._commit("update", ops)
                return new
            except TableTransactionError as e:
                if e.error_code not in ("UpdateConditionNotSatisfied", "EntityAlreadyExists"):
                    raise
        raise RuntimeError(f"could not update {name}: too much contention")


def now() -> datetime:
    return datetime.now(UTC)
