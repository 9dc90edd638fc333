"""A disk's content hash: what it is, and the job that computes it (no I/O here).

A disk's *data area* is its virtual content: every byte of the fixed VHD but the
512-byte footer, holes read as zeros. Its `ContentHash` is the SHA-256 of the data
area (what `head -c <virtual size> disk.vhd | sha256sum` prints), and its block
hashes are the SHA-256 of each 4 MiB block of it (the last block may be shorter).

Reading follows the data: only the page ranges that hold data are read, and a block
without any gets the precomputed hash of a zero block. The whole-disk SHA-256 still
takes every byte in order (a chain can't skip), so holes are fed in as zeros: CPU,
no reads. The block hashes are kept in a document that lists the blocks holding data
(`BlockHashes`); any other block is a zero block.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.errors import NotFound

BLOCK_SIZE = 4 * 1024 * 1024
FOOTER_SIZE = 512


@cache
def zero_block_hash(length: int = BLOCK_SIZE) -> str:
    return hashlib.sha256(bytes(length)).hexdigest()


def block_count(data_size: int) -> int:
    return -(-data_size // BLOCK_SIZE)


def block_length(index: int, data_size: int) -> int:
    return min(BLOCK_SIZE, data_size - index * BLOCK_SIZE)


def blocks_of(
    ranges: Any, data_size: int, first_block: int = 0
) -> Any:  # Iterable[(start, end)] -> Iterator[(block, [(start, end), ...])]
    """Group data ranges (start, end exclusive; in order, not overlapping) by block:
    yields (block index, the parts of the ranges inside it), for blocks holding data,
    from `first_block` on; parts past the data area (the footer) are dropped."""
    current: int | None = None
    parts: list[tuple[int, int]] = []
    floor = first_block * BLOCK_SIZE
    for start, end in ranges:
        start, end = max(start, floor), min(end, data_size)
        while start < end:
            block = start // BLOCK_SIZE
            stop = min(end, (block + 1) * BLOCK_SIZE)
            if block != current:
                if current is not None:
                    yield current, parts
                current, parts = block, []
            parts.append((start, stop))
            start = stop
    if current is not None:
        yield current, parts


class BlockHashes(BaseModel):
    """A disk's block hashes: the blocks holding data by index; the others are zeros."""

    model_config = ConfigDict(extra="forbid")

    Algorithm: str = "SHA-256"
    BlockSize: int = BLOCK_SIZE
    DataSize: int = Field(ge=0)  # bytes of the data area
    ContentHash: str | None = None  # SHA-256 of the whole data area, when computed
    ZeroBlockHash: str = Field(default_factory=zero_block_hash)
    DataBlocks: dict[int, str] = Field(default_factory=dict)

    @property
    def blocks(self) -> int:
        return block_count(self.DataSize)

    def digest(self, index: int) -> str:
        found = self.DataBlocks.get(index)
        if found is not None:
            return found
        length = block_length(index, self.DataSize)
        return self.ZeroBlockHash if length == BLOCK_SIZE else zero_block_hash(length)

    def differences(self, other: BlockHashes) -> list[int]:
        """The blocks whose hashes differ (all of them past the shorter of two sizes)."""
        if self.DataSize != other.DataSize:
            return list(range(max(self.blocks, other.blocks)))
        return sorted(
            i
            for i in self.DataBlocks.keys() | other.DataBlocks.keys()
            if self.digest(i) != other.digest(i)
        )


class HashJobStatus(StrEnum):
    QUEUED = "Queued"
    RUNNING = "Running"
    DONE = "Done"
    FAILED = "Failed"


class DiskHashJob(BaseModel):
    """One disk of a hash job: where it is, how far it got, what it found."""

    Role: str  # "os", "lun0", ...
    Path: str  # container/blob
    DataSize: int = 0
    NextBlock: int = 0
    BytesRead: int = 0
    StreamState: str | None = None  # base64 of the saved SHA-256, to resume from NextBlock
    Part: str | None = None  # container/blob where the block hashes found so far are appended
    ContentHash: str | None = None
    BlockHashes: str | None = None  # container/blob of the finished BlockHashes document

    @property
    def done(self) -> bool:
        return self.ContentHash is not None and self.BlockHashes is not None


class HashJob(BaseModel):
    """The content hash job of one image (of one incarnation of it: `Created`)."""

    ImageName: str
    Created: datetime  # the image's CreatedTime: a re-made image of that name is another job
    Status: HashJobStatus = HashJobStatus.QUEUED
    Disks: list[DiskHashJob] = Field(default_factory=list)
    Error: str | None = None
    Owner: str | None = None  # the worker running it
    Heartbeat: datetime | None = None
    Started: datetime | None = None
    Updated: datetime | None = None
    Finished: datetime | None = None

    def progress(self) -> dict[str, Any]:
        """What GET /api/images/{name} shows while the hash is not ready."""
        total = sum(d.DataSize for d in self.Disks)
        hashed = sum(
            d.DataSize if d.done else min(d.DataSize, d.NextBlock * BLOCK_SIZE) for d in self.Disks
        )
        doc: dict[str, Any] = {
            "Status": self.Status.value,
            "BytesHashed": hashed,
            "BytesTotal": total,
            "BytesRead": sum(d.BytesRead for d in self.Disks),
            "Percent": round(100.0 * hashed / total, 1) if total else 0.0,
        }
        current = next((d for d in self.Disks if not d.done), None)
        if current is not None and self.Status == HashJobStatus.RUNNING:
            doc["Disk"] = current.Role
        if self.Updated is not None:
            doc["Updated"] = self.Updated.isoformat().replace("+00:00", "Z")
        if self.Error:
            doc["Error"] = self.Error
        return doc


class ContentHashNotReady(NotFound):
    code = "ContentHashNotReady"
