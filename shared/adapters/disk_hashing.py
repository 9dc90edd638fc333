"""Hash a page blob disk by reading only its data: Get Page Ranges, then ranged reads.

See shared/domain/content_hash.py for what is hashed. Blocks that hold data are read
by a few threads ahead of the hashing (each at most 4 MiB, in one or more ranged GETs
of exactly the ranges that hold data); a block without data gets the zero-block hash
and, for the whole-disk hash, zeros fed in (CPU, no reads). A run can stop at a
deadline and checkpoint as it goes, to be resumed from its next block.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from azure.storage.blob import BlobClient

from shared.adapters.resumable_sha256 import Sha256Stream
from shared.domain.content_hash import (
    BLOCK_SIZE,
    FOOTER_SIZE,
    BlockHashes,
    block_count,
    block_length,
    blocks_of,
    zero_block_hash,
)


def data_ranges(client: BlobClient, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The ranges of [start, end) that hold data (end exclusive), in order."""
    if start >= end:
        return
    for r in client.list_page_ranges(offset=start, length=end - start):
        if not getattr(r, "cleared", False):
            yield r.start, r.end + 1


def data_size_of(blob_size: int) -> int:
    """A fixed VHD's data area: all but its footer."""
    return max(0, blob_size - FOOTER_SIZE)


@dataclass
class Checkpoint:
    """Where a run got to: resume at `next_block` with `stream_state`."""

    next_block: int
    stream_state: bytes | None
    bytes_read: int
    digests: dict[int, str]  # blocks holding data hashed since the last checkpoint


@dataclass
class DiskHash:
    finished: bool
    next_block: int
    bytes_read: int
    content_hash: str | None = None  # when finished, and the whole hash was asked for
    stream_state: bytes | None = None
    digests: dict[int, str] = field(default_factory=dict)  # all blocks holding data, this run


class DiskHasher:
    """Hashes one disk's data area. `whole=False`: block hashes only (no zeros fed)."""

    def __init__(
        self,
        client: BlobClient,
        data_size: int,
        *,
        whole: bool = True,
        workers: int = 4,
        window: int = 8,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        self.data_size = data_size
        self.whole = whole
        self.workers = workers
        self.window = window  # blocks read ahead at most (memory: window x 4 MiB)
        self.on_read = on_read

    def _read(self, block: int, parts: list[tuple[int, int]]) -> tuple[bytearray, int, str]:
        """Read a block's data ranges into a zeroed block and hash it (in a worker thread:
        hashlib lets go of the GIL, so blocks are hashed on every core)."""
        base = block * BLOCK_SIZE
        buf = bytearray(block_length(block, self.data_size))
        read = 0
        for start, end in parts:
            data = self.client.download_blob(
                offset=start, length=end - start, max_concurrency=1
            ).readall()
            buf[start - base : start - base + len(data)] = data
            read += len(data)
        if self.on_read is not None:
            self.on_read(read)
        return buf, read, hashlib.sha256(buf).hexdigest()

    def run(
        self,
        next_block: int = 0,
        stream_state: bytes | None = None,
        bytes_read: int = 0,
        deadline: float | None = None,
        checkpoint: Callable[[Checkpoint], None] | None = None,
        every: float = 5.0,
    ) -> DiskHash:
        """Hash from `next_block` (resuming `stream_state`) to the end, or to `deadline`
        (time.monotonic()) when the state can be saved; `checkpoint` every `every` s."""
        stream = Sha256Stream(stream_state) if self.whole else None
        if self.whole and next_block and stream_state is None:
            raise ValueError("resuming the whole-disk hash needs its saved state")
        can_stop = stream is None or stream.resumable
        blocks = block_count(self.data_size)
        ranges = data_ranges(self.client, next_block * BLOCK_SIZE, self.data_size)
        upcoming = blocks_of(ranges, self.data_size, next_block)
        all_digests: dict[int, str] = {}
        since: dict[int, str] = {}
        last = time.monotonic()
        b = next_block
        with ThreadPoolExecutor(self.workers) as pool:
            pending: deque[tuple[int, Future[tuple[bytearray, int, str]]]] = deque()

            def fill() -> None:
                while len(pending) < self.window:
                    found = next(upcoming, None)
                    if found is None:
                        return
                    pending.append((found[0], pool.submit(self._read, *found)))

            fill()
            try:
                while b < blocks:
                    if pending and pending[0][0] == b:
                        _, future = pending.popleft()
                        buf, read, digest = future.result()
                        fill()
                        bytes_read += read
                        if stream is not None:
                            stream.update(buf)
                        all_digests[b] = since[b] = digest
                        b += 1
                    elif stream is None:  # block hashes only: skip to the next data
                        b = pending[0][0] if pending else blocks
                    else:
                        stream.update_zeros(block_length(b, self.data_size))
                        b += 1
                    now = time.monotonic()
                    if checkpoint is not None and now - last >= every and can_stop:
                        checkpoint(
                            Checkpoint(b, stream.state() if stream else None, bytes_read, since)
                        )
                        since, last = {}, now
                    if deadline is not None and now >= deadline and can_stop and b < blocks:
                        return DiskHash(
                            False,
                            b,
                            bytes_read,
                            None,
                            stream.state() if stream else None,
                            all_digests,
                        )
            finally:
                for _, future in pending:
                    future.cancel()
        return DiskHash(
            True,
            blocks,
            bytes_read,
            stream.hexdigest() if stream is not None else None,
            None,
            all_digests,
        )


def block_hashes(client: BlobClient, data_size: int, **kw: Any) -> tuple[BlockHashes, int]:
    """The block hashes of a disk (data blocks read, zero blocks folded in), and the bytes
    read; `whole=True` (in kw) also gives the whole-disk ContentHash."""
    result = DiskHasher(client, data_size, whole=kw.pop("whole", False), **kw).run()
    doc = BlockHashes(
        DataSize=data_size,
        ContentHash=result.content_hash,
        ZeroBlockHash=zero_block_hash(),
        DataBlocks=result.digests,
    )
    return doc, result.bytes_read
