"""The catalog in Table storage: one small partition per image, indexes kept beside it.

Partitions (all in one table):
- `image|<name>`      RowKey `image`: the image, the source of truth. Get by name is a
                      point read in a one-row partition; list-all pages across these
                      partitions in name order.
- `family|<family>`   RowKey `<newest-first>|<name>`: a copy of each image of the family,
                      so one family is a single-partition range, newest first.
- `families`          RowKey `<family>`: the family's summary (count, newest image overall
                      and per OS, counts per state and the candidates for "latest": see
                      shared/domain/lifecycle.py), so the families list and "latest" never
                      read images. End-of-life dates pass without any write: a summary
                      keeps the newest few candidates with their dates, and only when all
                      of them have expired does a reader range over the family's
                      partition, newest first, up to the first eligible image.
- `disk|<account/container/blob>`  RowKey `claim`: which image's change holds the disk.
                      A disk belongs to at most one image: creating this row is the claim.
- `listing`           RowKey `version`: a new random value whenever an image row may
                      change (just before and just after each commit), so whatever was
                      built from the image rows under one value (the classic lists'
                      snapshots, shared/services/classic/snapshots.py) is known current
                      by one point read. Written blind: no writer ever waits on it.

No entity-group transaction spans partitions, so a change is made in steps, and
the image row is the commit point:
1. *mark*: each family the change touches gets a pending token in its summary row
   (the name, the index row key, a revision, the time);
   A new image then *claims* each of its disks (the claim row names the change), and
   the caller leases them with a lease id bound to that claim;
2. *commit*: the image row is created, replaced or deleted (ETag-guarded; creating
   it is what makes a name taken, in any letter case); it carries the id of the
   change that claimed its disks, so a claim is live only while its image row says so;
3. *index*: the family's copy is written or deleted to match the image row now,
   never older than what is there (each copy carries its image's revision);
4. *summary*: the family's summary is recomputed from its partition and the token
   removed, in one write guarded by the summary's ETag.

Readers trust a summary only when it has no pending token. Otherwise they read
the family's partition and let the image row decide each pending name (the slow
path, taken only while a change is under way or after a writer died mid-way). So
a crash between any two writes leaves readers the state before or after the
change, never a mix; the next writer in that family finishes any token older
than `stale_after`. A claim whose change was fenced, or whose image is gone, is dead:
the next claimer of that disk takes it over (deleting the fence first when the
claimer is a retry of the same request, or the claim is stale), and moves the
lease from the dead claim's id to its own. Names, families and filters reach storage as parameters,
never spliced into OData text.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.domain.images import (
    STORED,
    DiskInUse,
    Image,
    ImageNameTaken,
    ImageNotFound,
    image_key,
)
from shared.domain.lifecycle import ALL, FamilyLifecycle, eligible

IMAGE = "image|"  # partition prefix of the image rows
IMAGE_ROW = "image"
FENCE = "fence|"  # RowKey prefix of a change's fence row, beside its image row
FAMILY = "family|"  # partition prefix of a family's copies
FAMILIES = "families"  # the partition of family summaries
CLAIM = "disk|"  # partition prefix of a disk's claim
CLAIM_ROW = "claim"
LISTING, VERSION_ROW = "listing", "version"  # the catalog's version (see above)
IMAGE_RANGE = (IMAGE, IMAGE[:-1] + "}")  # '}' sorts right after '|'
CLAIM_RANGE = (CLAIM, CLAIM[:-1] + "}")
_JSON_FIELDS = ("OSDiskConfiguration", "DataDiskConfigurations", "Probe", "Warnings")
_OWN_FIELDS = ("PartitionKey", "RowKey", "Rev", "ClaimId")
_LEASE_NAMESPACE = uuid.UUID("0d7f3a52-5c1e-4c7b-8f7e-2b9c41d6a3e8")
_MAX_TRIES = 20
_MAX_LEASE_CHAIN = 64  # lease ids a claim remembers of the claims it replaced
STALE_AFTER = timedelta(minutes=2)
log = logging.getLogger(__name__)

# A key holds at most 1 KiB (512 UTF-16 characters); a copy's row key is
# `<18 digits>|<image name, up to 256>`, and a family partition `family|<family key>`.
_MAX_FAMILY_KEY = 228
_MAX_DISK_KEY = 460
_COPY_ROW = re.compile(r"\d{18}\|[a-z0-9][a-z0-9._-]{0,255}")


def family_key(family: str) -> str:
    # Keys forbid / \ # ? and control characters; quoting keeps them reversible.
    # A name whose quoted form is too long for a key (non-ASCII text takes 9 to 12
    # characters a letter) keeps a prefix plus a digest of the whole, one longer than
    # any quoted key so that the two forms never meet: still one key per family.
    quoted = quote(family.strip().lower(), safe=" ")
    if len(quoted) <= _MAX_FAMILY_KEY:
        return quoted
    digest = hashlib.sha256(quoted.encode()).hexdigest()[:32]
    return f"{quoted[: _MAX_FAMILY_KEY - 32]}~{digest}"


def disk_key(account: str, path: str) -> str:
    """A disk's key: `account/container/blob` (blob names keep their letter case), quoted
    for a key; a too-long one keeps a prefix plus a digest, one longer than any quoted key."""
    container, _, blob = path.partition("/")
    raw = f"{account.lower()}/{container.lower()}/{blob}"
    quoted = quote(raw, safe="")
    if len(quoted) <= _MAX_DISK_KEY:
        return quoted
    digest = hashlib.sha256(raw.encode()).hexdigest()[:32]
    return f"{quoted[: _MAX_DISK_KEY - 32]}~{digest}"


def claim_partition(account: str, path: str) -> str:
    return CLAIM + disk_key(account, path)


def claim_lease_id(account: str, path: str, claim_id: str) -> str:
    """The lease id of a disk held under a claim: it belongs to that image's change,
    never to the path, so another image's lease id never matches it."""
    return str(uuid.uuid5(_LEASE_NAMESPACE, f"{disk_key(account, path)}|{claim_id}"))


@dataclass(frozen=True)
class DiskLease:
    """A disk claimed for an image: the lease to hold on it, and the lease ids of
    dead claims it took over (the blob may still be leased under one of those)."""

    path: str  # container/blob
    lease_id: str
    previous: tuple[str, ...] = ()


class DiskGuard:
    """What the catalog asks of the blob side while it registers an image (no-ops here)."""

    def hold(self, leases: list[DiskLease]) -> None:
        """Lease each disk under its claim's lease id (taking over a previous lease)."""

    def release(self, leases: list[DiskLease]) -> None:
        """Give up the leases `hold` took (the registration did not happen)."""


def _newest_first(published: datetime) -> str:
    micros = int(published.timestamp() * 1_000_000)
    return f"{10**17 - micros:018d}"


def _rev() -> str:
    """A revision: later writes get larger ones (fixed width, so strings compare)."""
    return f"{time.time_ns():020d}{uuid.uuid4().hex[:6]}"


def image_partition(name: str) -> str:
    return IMAGE + image_key(name)


def family_partition(family: str) -> str:
    return FAMILY + family_key(family)


def copy_row(image: Image) -> str:
    """The row key of the image's copy in its family: newest first, then by name."""
    return f"{_newest_first(image.PublishedDate)}|{image.key}"


def is_page_key(family: str | None, key: str) -> bool:
    """Could `key` be where a page of this query stopped? (Continuation tokens are checked.)"""
    if family is None:
        return key.startswith(IMAGE) and len(key) <= 300
    return _COPY_ROW.fullmatch(key) is not None


def _entity(image: Image, partition: str, row: str, rev: str) -> dict[str, Any]:
    doc = image.model_dump(mode="json", exclude_none=True)
    entity: dict[str, Any] = {"PartitionKey": partition, "RowKey": row, "Rev": rev}
    for k, v in doc.items():
        entity[k] = json.dumps(v) if k in _JSON_FIELDS else v
    entity["PublishedDate"] = image.PublishedDate
    entity["CreatedTime"] = image.CreatedTime
    return entity


def image_entity(image: Image, rev: str, claim_id: str | None = None) -> dict[str, Any]:
    entity = _entity(image, image_partition(image.ImageName), IMAGE_ROW, rev)
    if claim_id:
        entity["ClaimId"] = claim_id
    return entity


def copy_entity(image: Image, rev: str) -> dict[str, Any]:
    assert image.ImageFamily, "only an image with a family has a copy"
    return _entity(image, family_partition(image.ImageFamily), copy_row(image), rev)


def from_entity(entity: dict[str, Any]) -> Image:
    doc = {k: v for k, v in entity.items() if k not in _OWN_FIELDS}
    for k in _JSON_FIELDS:
        if isinstance(doc.get(k), str):
            doc[k] = json.loads(doc[k])
    return Image.model_validate(doc, context=STORED)


def _etag(entity: Any) -> dict[str, Any]:
    return {"etag": entity.metadata["etag"], "match_condition": MatchConditions.IfNotModified}


@dataclass
class FamilySummary:
    family: str
    count: int = 0
    newest: dict[str, Any] | None = None  # {"ImageName", "PublishedDate", "OS", "ImageType"}
    newest_by_os: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Counts per state and the candidates for latest (shared/domain/lifecycle.py); None in
    # a summary written before lifecycle fields: readers then recompute it from the family.
    lifecycle: FamilyLifecycle | None = field(default_factory=FamilyLifecycle.fresh)
    # What a reader worked out at its time (`ImageCatalog.resolve`), shown by `to_json`.
    now: dict[str, Any] | None = None

    @classmethod
    def from_entity(cls, e: dict[str, Any]) -> FamilySummary:
        lifecycle = e.get("Lifecycle")
        return cls(
            family=e["Family"],
            count=int(e.get("Count", 0)),
            newest=json.loads(e["Newest"]) if e.get("Newest") else None,
            newest_by_os=json.loads(e.get("NewestByOS") or "{}"),
            lifecycle=FamilyLifecycle.from_json(json.loads(lifecycle)) if lifecycle else None,
        )

    def to_entity(self, pending: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "PartitionKey": FAMILIES,
            "RowKey": family_key(self.family),
            "Family": self.family,
            "Count": self.count,
            "Newest": json.dumps(self.newest) if self.newest else "",
            "NewestByOS": json.dumps(self.newest_by_os),
            "Lifecycle": json.dumps(self.lifecycle.to_json()) if self.lifecycle else "",
            "Pending": json.dumps(pending or {}),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "ImageFamily": self.family,
            "ImageCount": self.count,
            "Newest": self.newest,
            "NewestByOS": self.newest_by_os,
            **(self.now or {}),
        }


def _ref(image: Image) -> dict[str, Any]:
    return {
        "ImageName": image.ImageName,
        "PublishedDate": image.PublishedDate.isoformat().replace("+00:00", "Z"),
        "OS": image.OS,
        "ImageType": image.ImageType,
    }


def _ref_of(candidate: dict[str, Any]) -> dict[str, Any]:
    """A summary's reference to an image, from a candidate for latest (which says more)."""
    return {k: candidate[k] for k in ("ImageName", "PublishedDate", "OS", "ImageType")}


def _instant(ref: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(ref["PublishedDate"].replace("Z", "+00:00"))


def _newer(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    """Is ref b newer than ref a? Instants are compared (not their text), and a tie goes
    to the name a family's page lists first, so "latest" is always that page's first."""
    if a is None:
        return True
    if _instant(a) != _instant(b):
        return _instant(b) > _instant(a)
    return b["ImageName"].lower() < a["ImageName"].lower()


def _with(summary: FamilySummary, image: Image) -> FamilySummary:
    """The family's summary once `image` has joined it."""
    summary.count += 1
    ref = _ref(image)
    if _newer(summary.newest, ref):
        summary.newest = ref
    if _newer(summary.newest_by_os.get(image.OS), ref):
        summary.newest_by_os[image.OS] = ref
    if summary.lifecycle is not None:
        summary.lifecycle.add(image, ref)
    return summary


def summarize(family: str, images: Iterable[Image], now: datetime | None = None) -> FamilySummary:
    summary = FamilySummary(family, lifecycle=FamilyLifecycle.fresh(now))
    for image in images:
        _with(summary, image)
    return summary


def _back_off(attempt: int) -> None:
    """After losing an ETag race: wait a little, longer each time, jittered."""
    time.sleep(random.uniform(0, min(0.5, 0.005 * 2**attempt)))


def _pending(row: Any) -> dict[str, dict[str, str]]:
    return json.loads(row.get("Pending") or "{}") if row is not None else {}


@dataclass
class Change:
    """One change under way: its token and the families (by key) it marked."""

    token: dict[str, str]
    families: dict[str, str]
    fenced: bool = False

    @property
    def id(self) -> str:
        return self.token["Id"]

    @property
    def fence(self) -> dict[str, str]:
        return {
            "PartitionKey": image_partition(self.token["Name"]),
            "RowKey": FENCE + self.token["Id"],
        }


@dataclass
class Page:
    items: list[Any]
    last_row: str | None  # the key to continue after, None when this was the last page


class ImageCatalog:
    """Repository of images over one table.

    `before_commit(step)` is a test hook called before every write, with the step's
    name ("mark", "commit", "version", "index" or "summary"), so crash tests can stop a writer
    between any two writes. `stale_after` is how old another writer's pending token
    must be before a writer in the same family finishes it. `clock` is the time that
    end-of-life dates are compared with. `announce(image, committed)` is told of each
    new image with disks just before its commit and again once it is published (the
    app sends its content hash job both times, so that a crash in between loses none).
    """

    def __init__(
        self,
        table: TableClient,
        before_commit: Callable[[str], None] | None = None,
        stale_after: timedelta = STALE_AFTER,
        account: str = "devstoreaccount1",
        clock: Callable[[], datetime] | None = None,
        announce: Callable[[Image, bool], None] | None = None,
    ):
        self.table = table
        self.before_commit = before_commit
        self.stale_after = stale_after
        self.account = account  # the storage account whose disks the claims name
        self.clock = clock or (lambda: datetime.now(UTC))
        self.announce = announce

    # -- reads ------------------------------------------------------------------
    def _read(self, partition: str, row: str) -> Any | None:
        try:
            return self.table.get_entity(partition, row)
        except ResourceNotFoundError:
            return None

    def find(self, name: str) -> Image | None:
        entity = self._read(image_partition(name), IMAGE_ROW)
        return None if entity is None else from_entity(entity)

    def get(self, name: str) -> Image:
        image = self.find(name)
        if image is None:
            raise ImageNotFound(f"no image is named '{name[:256]}'")
        return image

    def uses_media(self, media_link: str) -> bool:
        """Does any image (still) have this disk, as its MediaLink or one of its disks?

        An OS image's MediaLink is a column (one filtered query); a VM image keeps its
        disks in JSON columns, so the VM images' disk columns are read and looked into.
        Only a deletion with its disks asks, once per disk.
        """
        rows = self._images(None, {"MediaLink": media_link}, ["RowKey"], per_page=1)
        if next(rows, None) is not None:
            return True
        columns = ["OSDiskConfiguration", "DataDiskConfigurations"]
        for row in self._images(None, {"ImageType": "VMImage"}, columns):
            disks = [json.loads(row.get(c) or "null") for c in columns]
            links = [disks[0] or {}, *(disks[1] or [])]
            if any(d.get("MediaLink") == media_link for d in links):
                return True
        return False

    def select_images(self, filters: dict[str, Any], columns: Iterable[str]) -> Iterator[Any]:
        """Every image row matching `filters`, by name, with only `columns`, as raw entities:
        ONE query whose pages (1000 rows) follow its continuation tokens (on Azure a range
        read that resumes where the last page stopped), not a new query per page."""
        return self._images(None, filters, list(columns), per_page=1000)

    def summary(self, family: str) -> FamilySummary | None:
        row = self._read(FAMILIES, family_key(family))
        if row is None:
            return None
        summary = self._settled(row)
        return summary if summary.count else None

    def families(self) -> list[FamilySummary]:
        rows = self.table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": FAMILIES}, results_per_page=1000
        )
        summaries = [self._settled(row) for row in rows]
        return [s for s in summaries if s.count]

    def _settled(self, row: Any) -> FamilySummary:
        """A summary row as readers may trust it: recomputed while a change is pending
        (or when it was written before lifecycle fields existed)."""
        if not _pending(row) and row.get("Lifecycle"):
            return FamilySummary.from_entity(row)
        summary = summarize(row["Family"], self._members(row), self.clock())
        if not _pending(row) and summary.count:
            self._upgrade(row, summary)
        return summary

    def _upgrade(self, row: Any, summary: FamilySummary) -> None:
        """Write back a summary from before lifecycle fields, recomputed, so the next reader
        has point reads again: step 4 without a token, under the ETag of the row read (a
        writer that marked the family since makes it fail, and its own step 4 wins)."""
        with contextlib.suppress(AzureError):
            self.table.update_entity(summary.to_entity(), mode=UpdateMode.REPLACE, **_etag(row))

    def _members(self, row: Any) -> list[Image]:
        """The family's images from its partition, pending changes decided by image rows."""
        return [from_entity(e) for e in self._resolved_copies(row["RowKey"], _pending(row))]

    def latest(
        self, family: str, os: str | None = None, include_excluded: bool = False
    ) -> tuple[FamilySummary | None, dict[str, Any] | None]:
        """The family's summary (None: no such family) and a reference to its latest image
        of `os` (None: none is eligible now). Point reads while the summary's candidates
        answer; else one range of the family's partition, newest first."""
        row = self._read(FAMILIES, family_key(family))
        if row is None:
            return None, None
        now = self.clock()
        if _pending(row) or not row.get("Lifecycle"):
            members = self._members(row)
            found = next(
                (
                    i
                    for i in members
                    if (os is None or os == i.OS) and eligible(i, now, include_excluded)
                ),
                None,
            )
            summary = summarize(row["Family"], members, now)
            return summary, None if found is None else _ref(found)
        summary = FamilySummary.from_entity(row)
        assert summary.lifecycle is not None
        ref, complete = summary.lifecycle.pick(os or ALL, now, include_excluded)
        if ref is None and not complete:
            ref = self._first_eligible(row["RowKey"], os, include_excluded, now)
        return summary, ref

    def _first_eligible(
        self, fkey: str, os: str | None, include_excluded: bool, now: datetime
    ) -> dict[str, Any] | None:
        """Read the family newest first up to its first image eligible for latest."""
        for entity in self._copies(fkey, None, {"OS": os} if os else {}, None, per_page=100):
            image = from_entity(entity)
            if eligible(image, now, include_excluded):
                return _ref(image)
        return None

    def resolve(self, summary: FamilySummary) -> FamilySummary:
        """Work out at this time what a summary says: the counts per state, how many are
        excluded from latest, and the latest image overall and per OS (`summary.now`)."""
        now = self.clock()
        fkey = family_key(summary.family)
        lifecycle = summary.lifecycle or FamilyLifecycle.fresh(now)
        counts = lifecycle.counts_at(now)
        if counts is None:  # dates beyond those the summary kept have passed
            row = self._read(FAMILIES, fkey)
            fresh = summarize(summary.family, self._members(row) if row else [], now)
            counts = fresh.lifecycle.counts_at(now) if fresh.lifecycle else {}
        latest: dict[str, Any] = {}
        for scope in (ALL, *sorted(summary.newest_by_os)):
            ref, complete = lifecycle.pick(scope, now, False)
            if ref is None and not complete:
                os = None if scope == ALL else scope
                ref = self._first_eligible(fkey, os, False, now)
            latest[scope] = ref and _ref_of(ref)
        summary.now = {
            "StateCounts": counts,
            "ExcludedFromLatest": lifecycle.excluded,
            "Latest": latest[ALL],
            "LatestByOS": {s: r for s, r in latest.items() if s != ALL and r is not None},
        }
        return summary

    def _resolved_copies(self, fkey: str, pending: dict[str, dict[str, str]]) -> list[Any]:
        """The family's rows as they are once every pending change is decided by its image."""
        names = {token["Name"].lower() for token in pending.values()}
        rows = [
            e
            for e in self._copies(fkey, None, {}, None, per_page=1000)
            if image_key(e["ImageName"]) not in names
        ]
        for name in names:
            entity = self._read(image_partition(name), IMAGE_ROW)
            if entity is None or family_key(entity.get("ImageFamily") or "") != fkey:
                continue
            entity = dict(entity)
            entity["RowKey"] = copy_row(from_entity(entity))
            rows.append(entity)
        return sorted(rows, key=lambda e: e["RowKey"])

    def page(
        self,
        family: str | None,
        filters: dict[str, Any],
        top: int,
        after: str | None,
        select: list[str] | None = None,
        where: Callable[[Any], bool] | None = None,
        columns: tuple[str, ...] = (),
    ) -> Page:
        """One page of images (all by name, or one family newest first), filtered by equality
        in storage and then by `where` (a test of the row that needs `columns` besides the
        selected ones: what depends on the time, as an image's effective state)."""
        fetch = None if select is None else [*select, *columns]
        if family is None:
            per_page = top + 1 if where is None else 1000
            found = self._images(after, filters, fetch, per_page=per_page)
            rows = list(islice(filter(where, found), top + 1))
            key = "PartitionKey"
        else:
            rows = self._family_page(family_key(family), filters, top, after, fetch, where)
            key = "RowKey"
        more = len(rows) > top
        rows = rows[:top]
        items = [self._partial(e, fetch) for e in rows]
        return Page(items, rows[-1][key] if more and rows else None)

    def _family_page(
        self,
        fkey: str,
        filters: dict[str, Any],
        top: int,
        after: str | None,
        select: Any,
        where: Callable[[Any], bool] | None = None,
    ) -> list[Any]:
        row = self._read(FAMILIES, fkey)
        if row is None:
            return []
        pending = _pending(row)
        if not pending:
            per_page = top + 1 if where is None else 1000
            found = self._copies(fkey, after, filters, select, per_page)
            return list(islice(filter(where, found), top + 1))
        rows = [
            e
            for e in self._resolved_copies(fkey, pending)
            if (after is None or e["RowKey"] > after)
            and all(e.get(k) == v for k, v in filters.items())
            and (where is None or where(e))
        ]
        return rows[: top + 1]

    def _partial(self, e: dict[str, Any], select: list[str] | None) -> Any:
        if select is None:
            return from_entity(e)
        doc = {k: e[k] for k in select if k in e}
        for k in _JSON_FIELDS:
            if isinstance(doc.get(k), str):
                doc[k] = json.loads(doc[k])
        return doc

    def _query(
        self,
        clauses: list[str],
        params: dict[str, Any],
        filters: dict[str, Any],
        select: list[str] | None,
        per_page: int,
    ) -> Iterator[Any]:
        for i, (prop, value) in enumerate(sorted(filters.items())):
            clauses.append(f"{prop} eq @f{i}")
            params[f"f{i}"] = value
        columns = None if select is None else sorted({*select, "PartitionKey", "RowKey"})
        return iter(
            self.table.query_entities(
                " and ".join(clauses),
                parameters=params,
                select=columns,
                results_per_page=max(1, min(per_page, 1000)),
            )
        )

    def _images(
        self, after: str | None, filters: dict[str, Any], select: Any, per_page: int = 1000
    ) -> Iterator[Any]:
        """Image rows in name order (after the partition `after`): ask for what you use."""
        lo, hi = IMAGE_RANGE
        params: dict[str, Any] = {"lo": after or lo, "hi": hi, "row": IMAGE_ROW}
        clauses = [
            "PartitionKey gt @lo" if after else "PartitionKey ge @lo",
            "PartitionKey lt @hi",
            "RowKey eq @row",  # not a change's fence row
        ]
        return self._query(clauses, params, filters, select, per_page)

    def _copies(
        self,
        fkey: str,
        after: str | None,
        filters: dict[str, Any],
        select: Any,
        per_page: int = 1000,
    ) -> Iterator[Any]:
        """One family's copies newest first (after the row `after`)."""
        params: dict[str, Any] = {"pk": FAMILY + fkey}
        clauses = ["PartitionKey eq @pk"]
        if after is not None:
            clauses.append("RowKey gt @after")
            params["after"] = after
        return self._query(clauses, params, filters, select, per_page)

    # -- writes -----------------------------------------------------------------
    def _step(self, step: str) -> None:
        if self.before_commit is not None:
            self.before_commit(step)

    def add(self, image: Image, owner: str | None = None, guard: DiskGuard | None = None) -> Image:
        """Register a new image; ImageNameTaken if any image (any letter case) has the name,
        DiskInUse (naming the image) if another image holds one of its disks.

        Each disk in `image.disk_blobs` is claimed for this change, then `guard` leases
        them, then the image row commits. `owner` names the request (an upload's blob
        version, a capture's operation): a claim left by an earlier attempt of the same
        request is taken over at once instead of after `stale_after`.
        """
        disks = list(dict.fromkeys(image.disk_blobs))
        guard = guard or DiskGuard()
        for attempt in range(_MAX_TRIES):
            rev = _rev()
            change = self._mark([image.ImageFamily], image, rev, fenced=bool(disks))
            leases: list[DiskLease] = []
            try:
                for path in disks:
                    leases.append(self._claim(change, image.ImageName, path, owner))
                guard.hold(leases)
                claim_id = change.id if disks else None
                if disks and self.announce is not None:
                    self.announce(image, False)
                self._commit(change, [("create", image_entity(image, rev, claim_id))])
            except TableTransactionError as e:
                self._abandon(change, leases, guard)
                if self.find(image.ImageName) is not None:
                    raise ImageNameTaken(
                        f"an image named '{image.ImageName}' already exists; choose another name"
                    ) from e
                _back_off(attempt)
                continue  # fenced: a writer took this one for dead; mark again
            except Exception:  # not on a crash: then the claims stay until taken over
                # Fenced before it failed (a twin delivery took its claims over and leased a
                # disk first): the failure was the twin's doing; mark again, as above.
                fence = change.fence
                gone = self._read(fence["PartitionKey"], fence["RowKey"]) is None
                fenced = change.fenced and gone
                self._abandon(change, leases, guard)
                if fenced:
                    _back_off(attempt)
                    continue
                raise
            self._committed_version()
            self._settle(change)
            if disks and self.announce is not None:
                self.announce(image, True)
            return image
        raise RuntimeError(f"could not register {image.ImageName}: too much contention")

    # -- disk claims ----------------------------------------------------------
    def _claim(self, change: Change, name: str, path: str, owner: str | None) -> DiskLease:
        """Claim one disk for this change (creating the claim row, or taking over a dead one)."""
        pk = claim_partition(self.account, path)
        mine = {
            "PartitionKey": pk,
            "RowKey": CLAIM_ROW,
            "Image": name,
            "Change": change.id,
            "Owner": owner or "",
            "Disk": path,
            "At": datetime.now(UTC).isoformat(),
        }
        lease_id = claim_lease_id(self.account, path, change.id)
        for attempt in range(_MAX_TRIES):
            self._step("claim")
            try:
                self.table.create_entity(mine)
                return DiskLease(path, lease_id)
            except ResourceExistsError:
                pass
            held = self._read(pk, CLAIM_ROW)
            if held is None:
                continue
            if held["Change"] == change.id:
                return DiskLease(path, lease_id)
            self._bury(held, owner)
            # The disk may still be leased under any claim this one replaced (twin deliveries
            # of one request take a claim from each other before leasing): remember them all.
            previous = self.lease_ids_of(dict(held))[:_MAX_LEASE_CHAIN]
            mine["Leases"] = json.dumps(previous)
            self._step("claim")
            try:
                self.table.update_entity(mine, mode=UpdateMode.REPLACE, **_etag(held))
            except (ResourceModifiedError, ResourceNotFoundError):
                _back_off(attempt)
                continue
            return DiskLease(path, lease_id, tuple(previous))
        raise RuntimeError(f"could not claim the disk {path}: too much contention")

    def _bury(self, held: Any, owner: str | None) -> None:
        """Make sure another change's claim is dead, or raise DiskInUse naming its image.

        A change whose fence row is gone can never commit, so the fence is looked at
        first (and removed when the claim may be taken over), then the image row.
        """
        name, cid, path = held["Image"], held["Change"], held.get("Disk", "")
        fence = self._read(image_partition(name), FENCE + cid)
        if fence is not None:
            age = datetime.now(UTC) - datetime.fromisoformat(held["At"])
            if not (owner and held.get("Owner") == owner) and age < self.stale_after:
                raise DiskInUse(
                    f"the disk {path} is being registered as the image '{name}'; "
                    "a disk belongs to at most one image",
                    image_name=name,
                )
            self._step("fence")
            with contextlib.suppress(ResourceNotFoundError):
                self.table.delete_entity(image_partition(name), FENCE + cid)
        truth = self._read(image_partition(name), IMAGE_ROW)
        if truth is not None and truth.get("ClaimId") == cid:
            raise DiskInUse(
                f"the disk {path} belongs to the image '{truth['ImageName']}'; a disk belongs "
                "to at most one image (remove that image first, or copy the disk)",
                image_name=truth["ImageName"],
            )

    def _abandon(self, change: Change, leases: list[DiskLease], guard: DiskGuard) -> None:
        """Undo a registration that will not commit: fence it, give the disks back."""
        if change.fenced:
            self._step("fence")
            with contextlib.suppress(ResourceNotFoundError):
                self.table.delete_entity(change.fence["PartitionKey"], change.fence["RowKey"])
        if leases:
            guard.release(leases)
            self.unclaim([lease.path for lease in leases], change.id)
        self._settle(change)

    def lease_ids_of(self, held: dict[str, Any]) -> list[str]:
        """The ids the disk of this claim may be leased under: its own, then those of the
        claims it replaced, newest first."""
        own = claim_lease_id(self.account, held["Disk"], held["Change"])
        return [own, *json.loads(held.get("Leases") or "[]")]

    def end_claim(self, held: dict[str, Any], owner: str) -> None:
        """Make this claim of `owner`'s dead: its change can never commit after this.
        DiskInUse (naming the image) when it already has."""
        self._bury(held, owner)

    def unclaim(self, paths: Iterable[str], claim_id: str) -> None:
        """Delete these disks' claims if they are still this change's (idempotent)."""
        for path in paths:
            pk = claim_partition(self.account, path)
            held = self._read(pk, CLAIM_ROW)
            if held is None or held["Change"] != claim_id:
                continue
            self._step("unclaim")
            with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
                self.table.delete_entity(pk, CLAIM_ROW, **_etag(held))

    def claim_of(self, path: str) -> dict[str, Any] | None:
        """The disk's claim row, if any (live or dead)."""
        row = self._read(claim_partition(self.account, path), CLAIM_ROW)
        return None if row is None else dict(row)

    def holder(self, path: str) -> str | None:
        """The name of the image that holds this disk now (a live claim), or None."""
        held = self.claim_of(path)
        if held is None:
            return None
        truth = self._read(image_partition(held["Image"]), IMAGE_ROW)
        if truth is not None and truth.get("ClaimId") == held["Change"]:
            return str(truth["ImageName"])
        return None

    def claims(self) -> Iterator[dict[str, Any]]:
        """Every claim row (for the invariant check)."""
        lo, hi = CLAIM_RANGE
        rows = self.table.query_entities(
            "PartitionKey ge @lo and PartitionKey lt @hi",
            parameters={"lo": lo, "hi": hi},
            results_per_page=1000,
        )
        return (dict(r) for r in rows)

    def claim_in_progress(self, claim: dict[str, Any]) -> bool:
        """Is this claim's change still able to commit, and not yet stale?"""
        fence = self._read(image_partition(claim["Image"]), FENCE + claim["Change"])
        age = datetime.now(UTC) - datetime.fromisoformat(claim["At"])
        return fence is not None and age < self.stale_after

    def image_rows(self) -> Iterator[dict[str, Any]]:
        """Every image row as stored (for the invariant check: it reads the whole catalog)."""
        return (dict(r) for r in self._images(None, {}, None))

    def claim_id(self, name: str) -> str | None:
        """The id of the change whose claims hold this image's disks (None: no claims)."""
        row = self._read(image_partition(name), IMAGE_ROW)
        return None if row is None else row.get("ClaimId")

    def remove(self, name: str) -> Image:
        return self.remove_claimed(name)[0]

    def remove_claimed(
        self, name: str, check: Callable[[Image], None] | None = None
    ) -> tuple[Image, str | None]:
        """Unpublish the image; returns it with the id of the claims on its disks,
        which the caller then releases (`unclaim`). `check` may refuse, by raising,
        the image row the deletion is conditional on (e.g. deletion protection)."""
        for _ in range(_MAX_TRIES):
            entity = self._image_entity(name)
            image = from_entity(entity)
            if check is not None:
                check(image)
            change = self._mark([image.ImageFamily], image, _rev())
            try:
                self._commit(change, [("delete", entity, _etag(entity))])
            except TableTransactionError:
                self._settle(change)
                continue
            self._committed_version()
            self._settle(change)
            return image, entity.get("ClaimId")
        raise RuntimeError(f"could not remove {name}: too much contention")

    def update(self, name: str, changes: dict[str, Any]) -> Image:
        """Change updatable fields; a family change moves the image between families."""
        return self.amend(name, lambda _old: changes)

    def amend(self, name: str, changes_to: Callable[[Image], dict[str, Any] | None]) -> Image:
        """Change the fields `changes_to(image row now)` names (None: nothing to change;
        it may raise to refuse); the write is conditional on the row it was given."""
        for _ in range(_MAX_TRIES):
            entity = self._image_entity(name)
            old = from_entity(entity)
            changes = changes_to(old)
            if changes is None:
                return old
            new = Image.model_validate({**old.model_dump(), **changes})
            rev = _rev()
            change = self._mark([old.ImageFamily, new.ImageFamily], new, rev)
            replace = {"mode": UpdateMode.REPLACE, **_etag(entity)}
            try:
                row = image_entity(new, rev, entity.get("ClaimId"))
                self._commit(change, [("update", row, replace)])
            except TableTransactionError:
                self._settle(change)
                continue
            self._committed_version()
            self._settle(change)
            return new
        raise RuntimeError(f"could not update {name}: too much contention")

    def _image_entity(self, name: str) -> Any:
        entity = self._read(image_partition(name), IMAGE_ROW)
        if entity is None:
            raise ImageNotFound(f"no image is named '{name[:256]}'")
        return entity

    def _commit(self, change: Change, operations: list[Any]) -> None:
        """Step 2, in the image's partition: the image row, and the change's fence row
        deleted in the same transaction, so a fenced change can no longer commit.
        The catalog's version changes before it, and the caller changes it again once
        committed (`_committed_version`)."""
        if change.fenced:
            operations = [*operations, ("delete", change.fence)]
        self._new_version()
        self._step("commit")
        self.table.submit_transaction(operations)

    def _committed_version(self) -> None:
        """Right after a commit, outside any handler that would undo the change: the
        catalog's version changes again (see `version`)."""
        self._step("version")
        try:
            self._new_version()
        except AzureError as e:  # committed all the same: snapshots expire (see `version`)
            log.warning("the catalog's version was not renewed after a commit: %s", e)

    def version(self) -> str:
        """The catalog's version: something built from the image rows after reading this
        value is current while it stays the same. It changes just before each commit (so
        a build that read the old value is stale) and just after (so a build that read
        the value in between, and may have missed the commit, is stale too). Only a
        writer that dies between its commit and the second change leaves one such build
        looking current: users of the version also bound a build's age."""
        row = self._read(LISTING, VERSION_ROW)
        return "" if row is None else str(row.get("Version", ""))

    def _new_version(self) -> None:
        self.table.upsert_entity(
            {"PartitionKey": LISTING, "RowKey": VERSION_ROW, "Version": uuid.uuid4().hex},
            mode=UpdateMode.REPLACE,
        )

    def _mark(
        self, families: list[str | None], image: Image, rev: str, fenced: bool = False
    ) -> Change:
        """Step 1: a fence row beside the image row, then a pending token in each family
        the change touches (a copy's row key is bound to the image's date, which no
        update changes)."""
        token = {
            "Id": uuid.uuid4().hex[:16],
            "Name": image.ImageName,
            "Row": copy_row(image),
            "Rev": rev,
            "At": datetime.now(UTC).isoformat(),
        }
        keys = {family_key(f): f for f in families if f}
        change = Change(token, keys, fenced=fenced or bool(keys))
        if change.fenced:
            self._step("mark")
            self.table.upsert_entity(change.fence)
        for family in keys.values():
            self._add_token(family, token)
        return change

    def _add_token(self, family: str, token: dict[str, str]) -> None:
        fkey = family_key(family)
        for attempt in range(_MAX_TRIES):
            row = self._read(FAMILIES, fkey)
            self._step("mark")
            try:
                if row is None:
                    entity = FamilySummary(family.strip()).to_entity({token["Id"]: token})
                    self.table.create_entity(entity)
                else:
                    entity = dict(row)
                    entity["Pending"] = json.dumps({**_pending(row), token["Id"]: token})
                    self.table.update_entity(entity, mode=UpdateMode.REPLACE, **_etag(row))
                return
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                _back_off(attempt)
        raise RuntimeError(f"could not mark the family {family}: too much contention")

    def _settle(self, change: Change) -> None:
        """Steps 3 and 4 for each family marked (safe to repeat, and for anyone to run)."""
        for fkey in change.families:
            self._sync_copy(fkey, change.token)  # even if another writer finished the token
            self._refresh(fkey, {change.token["Id"]})

    def _refresh(self, fkey: str, mine: set[str]) -> None:
        """Step 4, for this writer's tokens and any other it can finish.

        Another writer's token can be finished when its image row carries its
        revision (that change has committed) or when it is stale: then its fence
        row is deleted first, so that a writer which is only slow, not dead, can't
        commit any more (it marks again). So under contention one summary write
        settles many changes, and a writer whose token someone else finished has
        nothing left to do.
        """
        for attempt in range(_MAX_TRIES):
            row = self._read(FAMILIES, fkey)
            pending = _pending(row)
            if row is None or not mine & pending.keys():
                return
            now = datetime.now(UTC)
            done = set(mine & pending.keys())
            for t, token in sorted(pending.items()):
                if t in done:
                    continue
                if now - datetime.fromisoformat(token["At"]) >= self.stale_after:
                    self._step("fence")
                    self.table.delete_entity(image_partition(token["Name"]), FENCE + t)
                elif not self._committed(token):
                    continue
                done.add(t)
                self._sync_copy(fkey, token)
            copies = self._copies(fkey, None, {}, None)
            summary = summarize(row["Family"], (from_entity(e) for e in copies), self.clock())
            rest = {t: token for t, token in pending.items() if t not in done}
            self._step("summary")
            try:
                if summary.count == 0 and not rest:
                    self.table.delete_entity(FAMILIES, fkey, **_etag(row))
                else:
                    self.table.update_entity(
                        summary.to_entity(rest), mode=UpdateMode.REPLACE, **_etag(row)
                    )
                return
            except (ResourceModifiedError, ResourceNotFoundError):
                _back_off(attempt)
        raise RuntimeError(f"could not settle the family {fkey}: too much contention")

    def _committed(self, token: dict[str, str]) -> bool:
        """Has the write that made this token reached its image row (and nothing since)?"""
        truth = self._read(image_partition(token["Name"]), IMAGE_ROW)
        return truth is not None and truth.get("Rev") == token["Rev"]

    def _sync_copy(self, fkey: str, token: dict[str, str]) -> None:
        """Step 3: make the family's copy for the token's name match the image row now.

        The copy is read before the image row and written under the copy's ETag, so
        a sync that read an older image row loses to any sync that wrote after it:
        whatever the order of the writers, the last write is of the image row as it
        was last read.
        """
        partition, row_key = FAMILY + fkey, token["Row"]
        for attempt in range(_MAX_TRIES):
            have = self._read(partition, row_key)
            truth = self._read(image_partition(token["Name"]), IMAGE_ROW)
            image = None if truth is None else from_entity(truth)
            wanted = (
                image
                if image is not None
                and family_key(image.ImageFamily or "") == fkey
                and copy_row(image) == row_key
                else None
            )
            if wanted is None and have is None:
                return
            if wanted is not None and have is not None and have.get("Rev") == truth["Rev"]:
                return
            self._step("index")
            try:
                if wanted is None:
                    self.table.delete_entity(partition, row_key, **_etag(have))
                elif have is None:
                    self.table.create_entity(_entity(wanted, partition, row_key, truth["Rev"]))
                else:
                    self.table.update_entity(
                        _entity(wanted, partition, row_key, truth["Rev"]),
                        mode=UpdateMode.REPLACE,
                        **_etag(have),
                    )
                return
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                _back_off(attempt)
        raise RuntimeError(f"could not index {token['Name']} in {fkey}: too much contention")
