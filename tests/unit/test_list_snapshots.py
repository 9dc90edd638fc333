"""When a classic list's snapshot may answer (shared/services/classic/snapshots.py): only
under the catalog version it was built under, only while younger than its bound, and
a build is labelled with the version read before it began."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ServiceRequestError

from shared.services.classic import snapshots
from shared.services.classic.snapshots import (
    ListBody,
    Snapshot,
    accepts_gzip,
    current,
    label_of,
    snapshot_list,
)

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


class Store:
    def __init__(self, fail_writes: bool = False) -> None:
        self.kept: dict[str, Snapshot] = {}
        self.fail_writes = fail_writes

    def read(self, name: str) -> Snapshot | None:
        return self.kept.get(name)

    def write(self, name: str, snapshot: Snapshot) -> None:
        if self.fail_writes:
            raise ServiceRequestError("storage is down")
        self.kept[name] = snapshot


def test_a_snapshot_is_current_only_under_its_version_and_while_young() -> None:
    snap = Snapshot(b"<Images/>", label_of("v1"), T0)
    assert current(snap, "v1", T0 + timedelta(minutes=9), timedelta(minutes=10))
    assert not current(snap, "v2", T0, HOUR)  # the catalog changed
    assert not current(snap, "v1", T0 + timedelta(minutes=10), timedelta(minutes=10))
    assert not current(snap, "v1", T0 - timedelta(seconds=1), HOUR)  # built "later": a clock off
    assert not current(None, "v1", T0, HOUR)
    older = Snapshot(b"<Images/>", "classic-list-0|v1", T0)  # another release's XML
    assert not current(older, "v1", T0, HOUR)
    assert label_of("v1").startswith(snapshots.FORMAT)


def test_the_list_is_built_once_per_version_and_labelled_with_the_version_read_first() -> None:
    store, builds = Store(), []
    version = ["v1"]

    def build() -> bytes:
        builds.append(version[0])
        body = f"<Images>{len(builds)}</Images>".encode()
        version[0] = f"v{len(builds) + 1}"  # a writer commits while the list is built
        return body

    def answer(at: datetime) -> bytes:
        return snapshot_list(store, "os.xml", lambda: version[0], build, lambda: at).plain()

    first = answer(T0)
    kept = store.kept["os.xml"]
    assert (kept.label, kept.built, gzip.decompress(kept.body)) == (label_of("v1"), T0, first)
    # v2 now: the kept snapshot (of v1) may miss that change, so it is built again
    second = answer(T0 + timedelta(seconds=1))
    assert second != first and builds == ["v1", "v2"]
    version[0] = "v2"  # say the change during the second build was undone: the version is v2
    assert answer(T0 + timedelta(seconds=2)) == second  # served, not built
    assert builds == ["v1", "v2"]
    # the bound: no snapshot older than max_age answers, whatever its label
    assert answer(T0 + timedelta(seconds=1) + snapshots.MAX_AGE) != second
    assert len(builds) == 3


def test_a_snapshot_that_cannot_be_kept_costs_only_the_build() -> None:
    store = Store(fail_writes=True)
    body = snapshot_list(store, "vm.xml", lambda: "v", lambda: b"<VMImages/>", lambda: T0)
    assert body.plain() == b"<VMImages/>" and store.kept == {}


def test_a_failing_version_read_is_not_hidden() -> None:
    def down() -> str:
        raise ServiceRequestError("storage is down")

    with pytest.raises(ServiceRequestError):
        snapshot_list(Store(), "os.xml", down, lambda: b"x", lambda: T0)


@pytest.mark.parametrize(
    ("header", "gzip_ok"),
    [
        ("gzip, deflate", True),  # requests' default
        ("GZIP", True),
        ("x-gzip", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("*", True),
        ("identity", False),
        ("", False),
        (None, False),
        ("gzip;q=0", False),
        ("gzip;q=0.0, *", False),  # refused by name, whatever * says
        ("*;q=0", False),
        ("deflate", False),
        ("gzip;q=bad", False),
    ],
)
def test_accept_encoding(header: str | None, gzip_ok: bool) -> None:
    assert accepts_gzip(header) is gzip_ok


def test_a_list_goes_gzipped_only_to_a_client_that_accepts_it() -> None:
    xml = b"<Images>" + b"<OSImage/>" * 1000 + b"</Images>"
    from_snapshot = ListBody(gzipped=gzip.compress(xml))
    body, headers = from_snapshot.as_accepted("gzip, deflate")
    assert headers == {"Vary": "Accept-Encoding", "Content-Encoding": "gzip"}
    assert gzip.decompress(body) == xml and len(body) < len(xml) // 10
    body, headers = from_snapshot.as_accepted(None)
    assert (body, headers) == (xml, {"Vary": "Accept-Encoding"})
    filtered = ListBody(xml=xml)  # built, never kept: no gzip to hand
    assert filtered.as_accepted("gzip") == (xml, {"Vary": "Accept-Encoding"})
