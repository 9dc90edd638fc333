"""Copy a disk image's extents into a page blob: parallel reads and Put Page writes of
only the non-zero pages, with a checkpoint that only ever covers finished writes.

Used by the conversion job (source: an uploaded blob) and by `vmimage upload` (source: a
local file). Memory stays bounded whatever the disk's size: at most `2 * workers` groups
of extents are queued, each at most 4 MiB once read, and only `workers` are read at once.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

from shared.domain.conversion import MAX_PUT_PAGE, nonzero_runs


class ExtentLike(Protocol):
    offset: int
    length: int

    def data(self) -> bytes: ...


@dataclass
class CopyResult:
    done: int  # virtual offset below which every page is written
    written: int  # bytes sent by Put Page
    finished: bool  # the extents ran out: the whole disk is written


def groups(extents: Iterable[ExtentLike]) -> Iterator[list[ExtentLike]]:
    """Runs of virtually adjacent extents of at most 4 MiB together: one task each, so
    the small extents of a fragmented image still make writes of up to 4 MiB."""
    group: list[ExtentLike] = []
    size = 0
    for e in extents:
        if group and (
            group[-1].offset + group[-1].length != e.offset or size + e.length > MAX_PUT_PAGE
        ):
            yield group
            group, size = [], 0
        group.append(e)
        size += e.length
    if group:
        yield group


class PageWriter:
    """Put Page to one blob (thread-safe), counting what it sends."""

    def __init__(self, client: Any, lease: str | None = None) -> None:
        self.client = client
        self.lease = lease
        self.written = 0
        self._lock = threading.Lock()

    def write(self, offset: int, data: bytes) -> None:
        kwargs = {"lease": self.lease} if self.lease else {}
        self.client.upload_page(data, offset=offset, length=len(data), **kwargs)
        with self._lock:
            self.written += len(data)


def copy_extents(
    extents: Iterable[ExtentLike],
    write: Callable[[int, bytes], None],
    *,
    start: int,
    workers: int = 4,
    budget: int | None = None,
    stop: Callable[[], bool] = lambda: False,
    tick: Callable[[int], None] | None = None,
) -> CopyResult:
    """Write the non-zero pages of `extents` (from virtual offset `start`) with `write`.

    Once `budget` bytes of the source are queued for reading, or when `stop()` says so
    (asked before each group), the groups under way finish and the copy returns
    unfinished. `tick(done)` is called as the checkpoint advances (it may raise to
    abandon the copy). Returns where the copy got to.
    """
    written = [0]
    lock = threading.Lock()

    def task(group: list[ExtentLike]) -> None:
        data = b"".join(e.data() for e in group)
        sent = 0
        for offset, run in nonzero_runs(data, group[0].offset):
            write(offset, run)
            sent += len(run)
        with lock:
            written[0] += sent

    pending: deque[tuple[int, Future[None]]] = deque()
    done = start
    finished = True
    queued = 0  # source bytes the queued groups read

    def advance() -> None:
        nonlocal done
        moved = False
        while pending and pending[0][1].done():
            end, fut = pending.popleft()
            fut.result()  # a failed read or write fails the copy
            done = max(done, end)
            moved = True
        if moved and tick is not None:
            tick(done)

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="page-copy") as pool:
        try:
            for group in groups(extents):
                if (budget is not None and queued >= budget) or stop():
                    finished = False
                    break
                queued += sum(getattr(e, "source_length", e.length) for e in group)
                while len(pending) >= 2 * max(1, workers):
                    wait([f for _, f in pending], return_when=FIRST_COMPLETED)
                    advance()
                last = group[-1]
                pending.append((last.offset + last.length, pool.submit(task, group)))
                advance()
            while pending:
                wait([pending[0][1]])
                advance()
        except BaseException:
            for _, fut in pending:
                fut.cancel()
            raise
    return CopyResult(done=done, written=written[0], finished=finished)
