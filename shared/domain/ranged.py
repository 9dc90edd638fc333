"""Ranged reads: the only way domain code looks at disk bytes.

A disk can be terabytes; code that validates or probes it asks for the few
ranges it needs through `RangeReader`, never for the whole blob.
"""

from __future__ import annotations

from typing import Protocol


class RangeReader(Protocol):
    """Random access to an immutable byte sequence of known size."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length) clipped to the end; holes read as zeros."""
        ...


class BytesReader:
    """A RangeReader over bytes in memory (tests, small manifests)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    @property
    def size(self) -> int:
        return len(self._data)

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be non-negative")
        return self._data[offset : offset + length]


class FileReader:
    """A RangeReader over a local file (tests and the CLI)."""

    def __init__(self, path: str) -> None:
        import os

        self._path = path
        self._size = os.path.getsize(path)

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be non-negative")
        with open(self._path, "rb") as f:
            f.seek(offset)
            return f.read(length)


class CountingReader:
    """Wraps a RangeReader and counts reads and bytes (benchmarks, tests)."""

    def __init__(self, inner: RangeReader) -> None:
        self._inner = inner
        self.reads = 0
        self.bytes_read = 0

    @property
    def size(self) -> int:
        return self._inner.size

    def read(self, offset: int, length: int) -> bytes:
        data = self._inner.read(offset, length)
        self.reads += 1
        self.bytes_read += len(data)
        return data
