"""Raw disks (a partition table, any length) and fixed VHDs: the bytes are the disk."""

from __future__ import annotations

from collections.abc import Iterator

from shared.domain.formats.base import (
    MAX_EXTENT,
    SECTOR,
    DiskImage,
    Extent,
    Piece,
    check_virtual_size,
    merge_pieces,
    round_up,
)
from shared.domain.ranged import RangeReader


class FlatImage(DiskImage):
    """A disk stored as itself from `data_offset`: a raw image, or a fixed VHD's data.

    Nothing says which parts are zero, so every byte is an extent; a converter skips
    the zero pages it reads.
    """

    def __init__(
        self,
        reader: RangeReader,
        fmt: str,
        virtual_size: int,
        *,
        data_offset: int = 0,
        max_virtual_size: int | None = None,
    ) -> None:
        super().__init__(reader)
        self.format = fmt
        self.virtual_size = virtual_size
        self.data_offset = data_offset
        check_virtual_size(virtual_size, fmt, max_virtual_size)

    def extents(self, start: int = 0) -> Iterator[Extent]:
        end = round_up(self.virtual_size, SECTOR)

        def pieces() -> Iterator[Piece]:
            at = start - start % SECTOR
            while at < end:
                n = min(MAX_EXTENT - at % MAX_EXTENT, end - at)
                # Past the virtual size (a last partial sector) the read clips: zeros.
                stored = max(0, min(n, self.virtual_size - at))
                yield Piece(at, n, self.data_offset + at, stored, None if stored == n else _pad)
                at += n

        return merge_pieces(self.reader, pieces(), start, end, max_gap=0)

    def allocated_bytes(self) -> int:
        return round_up(self.virtual_size, SECTOR)


def _pad(data: bytes, length: int) -> bytes:
    return data + bytes(length - len(data))
