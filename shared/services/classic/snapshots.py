"""Classic lists from snapshots: a whole list is built once per catalog version.

Classic clients always list everything, and List OS Images / List VM Images have no
paging, so at 100k images every call would read the whole catalog (and Azurite
answers each page of a query by scanning its whole table). Instead, a list's body is
kept as a snapshot labelled with the catalog's version (`ImageCatalog.version`, one
point read) as read BEFORE the rows were: while the version stays the same, no image
row has changed since, and the snapshot is the answer. When the version has moved
on, the list is built from the rows as before, answered, and kept under the version
read first (a change committed during the build moved the version again, so that
snapshot is never taken as current).

One gap is closed by age instead: a writer that died between its commit and the
version change after it leaves a snapshot built during its change looking current.
So a snapshot is also never served once older than `max_age` (counted from before its
build): after such a crash, a classic list lags by at most that long, and every other
read (JSON, Get OS Image) is never behind. Keeping a snapshot is best effort: if the
write fails, the answer is the same and the next call builds again.

Snapshots are kept gzipped (XML lists shrink about tenfold), and a client that accepts
gzip gets those bytes as they are (`Content-Encoding: gzip`): less to send, and less
for the app to hold, than the whole list. Any other client gets the XML.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from azure.core.exceptions import AzureError

log = logging.getLogger(__name__)

# Part of every label: change it whenever the lists' XML changes, so that snapshots
# written by an older release are built again rather than served.
FORMAT = "classic-list-1"
MAX_AGE = timedelta(minutes=10)


@dataclass(frozen=True)
class Snapshot:
    body: bytes  # the list's XML, gzipped
    label: str  # FORMAT and the catalog version it was built under
    built: datetime  # when its build began (before the version was read)


class SnapshotStore(Protocol):
    def read(self, name: str) -> Snapshot | None: ...
    def write(self, name: str, snapshot: Snapshot) -> None: ...


def label_of(version: str) -> str:
    return f"{FORMAT}|{version}"


def current(snapshot: Snapshot | None, version: str, now: datetime, max_age: timedelta) -> bool:
    """May this snapshot answer now, the catalog's version being `version`?"""
    if snapshot is None or snapshot.label != label_of(version):
        return False
    age = now - snapshot.built
    return timedelta(0) <= age < max_age


@dataclass(frozen=True)
class ListBody:
    """A list's body as it was at hand: the XML (just built), gzipped (from a snapshot), or both."""

    xml: bytes | None = None
    gzipped: bytes | None = None

    def plain(self) -> bytes:
        if self.xml is not None:
            return self.xml
        assert self.gzipped is not None
        return gzip.decompress(self.gzipped)

    def as_accepted(self, accept_encoding: str | None) -> tuple[bytes, dict[str, str]]:
        """The body and the headers to send it with, for a request's `Accept-Encoding`."""
        headers = {"Vary": "Accept-Encoding"}
        if self.gzipped is not None and accepts_gzip(accept_encoding):
            return self.gzipped, {**headers, "Content-Encoding": "gzip"}
        return self.plain(), headers


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Does an `Accept-Encoding` header accept gzip (RFC 9110 12.5.3: `gzip`, `x-gzip`
    or `*`, with a q-value above 0; an explicit `gzip;q=0` refuses it)?"""
    weights: dict[str, float] = {}
    for item in (accept_encoding or "").split(","):
        coding, *params = (p.strip() for p in item.split(";"))
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if coding:
            weights[coding.lower()] = weight
    for coding in ("gzip", "x-gzip"):
        if coding in weights:
            return weights[coding] > 0
    return weights.get("*", 0.0) > 0


def snapshot_list(
    store: SnapshotStore,
    name: str,
    version: Callable[[], str],
    build: Callable[[], bytes],
    now: Callable[[], datetime],
    max_age: timedelta = MAX_AGE,
) -> ListBody:
    """The list `name`: its snapshot if current, else `build()` (kept as the snapshot)."""
    started = now()
    seen = version()
    snapshot = store.read(name)
    if current(snapshot, seen, started, max_age):
        assert snapshot is not None
        return ListBody(gzipped=snapshot.body)
    xml = build()
    gzipped = gzip.compress(xml, compresslevel=1, mtime=0)
    try:
        store.write(name, Snapshot(body=gzipped, label=label_of(seen), built=started))
    except AzureError as e:
        log.warning("the snapshot of %s was not kept: %s", name, e)
    return ListBody(xml=xml, gzipped=gzipped)
