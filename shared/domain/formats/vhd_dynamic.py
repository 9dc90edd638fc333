"""Dynamic VHDs: a footer (and its copy at offset 0), the `cxsparse` header, the block
allocation table, and blocks each preceded by a sector bitmap.

A block the BAT lists is read whole as data (as qemu and Hyper-V do); a block it does
not list reads as zeros. Differencing VHDs are refused: they hold only changes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from shared.domain.formats.base import (
    KIB,
    MIB,
    SECTOR,
    BackingFileNotSupported,
    CorruptDiskImage,
    DataBudget,
    DiskImage,
    Extent,
    Piece,
    check_virtual_size,
    merge_pieces,
    round_up,
)
from shared.domain.ranged import RangeReader
from shared.domain.vhd import (
    DIFFERENCING_VHD_HINT,
    DISK_TYPE_DIFFERENCING,
    DISK_TYPE_DYNAMIC,
    FOOTER_COOKIE,
    FOOTER_SIZE,
    InvalidVhdFooterChecksum,
    TruncatedVhd,
    VhdFooter,
    parse_footer,
)

HEADER_COOKIE = b"cxsparse"
HEADER_SIZE = 1024
UNALLOCATED = 0xFFFF_FFFF
BAT_CHUNK = 256 * KIB  # BAT bytes read at a time
MAX_BLOCK = 256 * MIB

_HEADER = struct.Struct(">8sQQIII")  # cookie, data offset, table offset, version, entries, block


def _checksum(raw: bytes) -> int:
    return ~(sum(raw[:36]) + sum(raw[40:])) & 0xFFFF_FFFF


def _footer(reader: RangeReader) -> VhdFooter:
    """The footer at the end, or its copy at offset 0 when the end one is damaged."""
    size = reader.size
    tail = bytes(reader.read(size - FOOTER_SIZE, FOOTER_SIZE)) if size >= FOOTER_SIZE else b""
    head = bytes(reader.read(0, FOOTER_SIZE))
    candidates = [f for f in (tail, head) if len(f) == FOOTER_SIZE and f[:8] == FOOTER_COOKIE]
    if not tail.startswith(FOOTER_COOKIE):
        raise TruncatedVhd(
            f"The file starts like a dynamic VHD but has no footer at its end (length {size}): "
            "it is truncated or incomplete. Upload the complete file."
        )
    for raw in candidates:
        footer = parse_footer(raw)
        if footer.checksum_ok:
            return footer
    footer = parse_footer(candidates[0])
    raise InvalidVhdFooterChecksum(
        f"The VHD footer checksum is 0x{footer.checksum:08x} but its contents sum to "
        f"0x{footer.computed_checksum:08x} (and the copy at offset 0 is no better): the file "
        "was altered or damaged in transit. Upload the original file again."
    )


class DynamicVhd(DiskImage):
    format = "vhd-dynamic"

    def __init__(self, reader: RangeReader, *, max_virtual_size: int | None = None) -> None:
        super().__init__(reader)
        footer = _footer(reader)
        self.metadata_bytes += 2 * FOOTER_SIZE
        if footer.disk_type == DISK_TYPE_DIFFERENCING:
            raise BackingFileNotSupported(
                "This is a differencing VHD: it holds only the changes against a parent disk. "
                f"{DIFFERENCING_VHD_HINT}"
            )
        if footer.disk_type != DISK_TYPE_DYNAMIC:
            raise CorruptDiskImage(f"The VHD footer has disk type {footer.disk_type}.")
        self.virtual_size = footer.current_size
        check_virtual_size(self.virtual_size, self.format, max_virtual_size)

        raw = self._meta(footer.data_offset, HEADER_SIZE, "dynamic disk header")
        cookie, _, table, _, entries, block = _HEADER.unpack_from(raw)
        if cookie != HEADER_COOKIE:
            raise CorruptDiskImage(
                f"The dynamic VHD's header at offset {footer.data_offset} does not start with "
                f"'cxsparse' (found {cookie!r}): the file is damaged."
            )
        stored = struct.unpack_from(">I", raw, 36)[0]
        if stored != _checksum(raw):
            raise CorruptDiskImage(
                "The dynamic VHD's header checksum does not match its contents: the file is "
                "damaged. Upload the original again."
            )
        if block < SECTOR or block > MAX_BLOCK or block & (block - 1):
            raise CorruptDiskImage(f"The dynamic VHD's block size {block} is invalid.")
        if entries * block < self.virtual_size:
            raise CorruptDiskImage(
                f"The dynamic VHD's allocation table has {entries} entries of {block} bytes, "
                f"fewer than its virtual size of {self.virtual_size} bytes needs."
            )
        self.block_size = block
        self.bitmap_size = round_up(block // SECTOR // 8, SECTOR)
        self.table_offset = table
        self.entries = min(entries, -(-self.virtual_size // block))
        if table < 0 or table + self.entries * 4 > reader.size - FOOTER_SIZE:
            raise CorruptDiskImage(
                f"The dynamic VHD's allocation table at offset {table} ({self.entries} entries) "
                f"runs past the end of the file ({reader.size} bytes): it is truncated."
            )
        # Metadata a block may not overlap: the footer copy, the header and the BAT.
        self._reserved = (
            (0, FOOTER_SIZE),
            (footer.data_offset, footer.data_offset + HEADER_SIZE),
            (table, table + self.entries * 4),
        )

    def _blocks(self, first: int) -> Iterator[Piece]:
        budget = DataBudget(self.format, self.reader.size)
        data_end = self.reader.size - FOOTER_SIZE
        index = first
        while index < self.entries:
            count = min(BAT_CHUNK // 4, self.entries - index)
            chunk = self._meta(self.table_offset + index * 4, count * 4, "allocation table")
            for i, entry in enumerate(struct.unpack(f">{count}I", chunk)):
                if entry == UNALLOCATED:
                    continue
                bitmap = entry * SECTOR
                host = bitmap + self.bitmap_size
                if host + self.block_size > data_end or any(
                    bitmap < hi and lo < host + self.block_size for lo, hi in self._reserved
                ):
                    raise CorruptDiskImage(
                        f"The dynamic VHD's block {index + i} points at offset {bitmap}, past "
                        "the end of the file or over its header or allocation table: the file "
                        "is damaged or truncated."
                    )
                budget.spend(self.block_size)
                yield Piece((index + i) * self.block_size, self.block_size, host, self.block_size)
            index += count

    def extents(self, start: int = 0) -> Iterator[Extent]:
        end = round_up(self.virtual_size, SECTOR)
        return merge_pieces(self.reader, self._blocks(max(0, start) // self.block_size), start, end)


def open_dynamic_vhd(reader: RangeReader, *, max_virtual_size: int | None = None) -> DynamicVhd:
    return DynamicVhd(reader, max_virtual_size=max_virtual_size)
