"""OVA: a tar holding an OVF descriptor and its disks (reader being written)."""

from __future__ import annotations

from shared.domain.formats.base import DiskImage, UnsupportedDiskFeature
from shared.domain.ranged import RangeReader


def find_ovf(reader: RangeReader) -> str | None:
    return None


def open_ova(
    reader: RangeReader, *, max_virtual_size: int | None = None
) -> list[tuple[str, DiskImage]]:
    raise UnsupportedDiskFeature("OVA files are not read yet.")


class OffsetReader:
    """A RangeReader over [offset, offset+size) of another: one file inside a tar."""

    def __init__(self, inner: RangeReader, offset: int, size: int) -> None:
        self._inner = inner
        self._offset = offset
        self._size = max(0, min(size, inner.size - offset))

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be non-negative")
        length = min(length, self._size - offset)
        if length <= 0:
            return b""
        return self._inner.read(self._offset + offset, length)
