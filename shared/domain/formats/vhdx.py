"""VHDX images, dynamic and fixed (MS-VHDX): two headers and two region tables with
CRC-32C checksums, the metadata region (block size, virtual size, sector size, parent
flag) and the block allocation table, whose payload entries are interleaved with a
sector bitmap entry every `chunk ratio` blocks.

A header naming a log (a non-zero LogGuid) means the file was not closed cleanly and
its log has to be replayed before its tables can be trusted: such a file is refused
with what to do. Differencing VHDX (a parent) are refused too.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator

from shared.domain.formats.base import (
    KIB,
    MIB,
    TIB,
    BackingFileNotSupported,
    CorruptDiskImage,
    DataBudget,
    DiskImage,
    Extent,
    Piece,
    UnsupportedDiskFeature,
    check_virtual_size,
    merge_pieces,
    round_up,
)
from shared.domain.formats.vhdx_log import replay_log
from shared.domain.ranged import RangeReader

SIGNATURE = b"vhdxfile"
HEADER_OFFSETS = (64 * KIB, 128 * KIB)
HEADER_SIZE = 4 * KIB
REGION_OFFSETS = (192 * KIB, 256 * KIB)
REGION_SIZE = 64 * KIB
METADATA_TABLE_SIZE = 64 * KIB
BAT_CHUNK = 256 * KIB

BAT_GUID = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
METADATA_GUID = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
FILE_PARAMETERS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VIRTUAL_DISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
VIRTUAL_DISK_ID = uuid.UUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
LOGICAL_SECTOR_SIZE = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
PHYSICAL_SECTOR_SIZE = uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")
PARENT_LOCATOR = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
KNOWN_METADATA = {
    FILE_PARAMETERS,
    VIRTUAL_DISK_SIZE,
    VIRTUAL_DISK_ID,
    LOGICAL_SECTOR_SIZE,
    PHYSICAL_SECTOR_SIZE,
    PARENT_LOCATOR,
}

# Payload block states: these read as zeros on a disk without a parent.
ZERO_STATES = {0, 1, 2, 3, 5}  # not present, undefined, zero, unmapped, unmapped (v0.95)
FULLY_PRESENT = 6
PARTIALLY_PRESENT = 7
SECTOR_BITMAP_PRESENT = 6
SECTOR_BITMAP_BLOCK = 1 * MIB

_HEADER = struct.Struct("<4sIQ16s16s16sHHIQ")
_REGION_HEAD = struct.Struct("<4sIII")
_REGION_ENTRY = struct.Struct("<16sQII")
_METADATA_HEAD = struct.Struct("<8sHH20s")
_METADATA_ENTRY = struct.Struct("<16sIIII")


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of VHDX headers, region tables and log entries."""
    crc = 0xFFFF_FFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFF_FFFF


def _checksum_ok(block: bytes) -> bool:
    stored = struct.unpack_from("<I", block, 4)[0]
    return crc32c(block[:4] + b"\0\0\0\0" + block[8:]) == stored


class VhdxImage(DiskImage):
    format = "vhdx"

    def __init__(self, reader: RangeReader, *, max_virtual_size: int | None = None) -> None:
        super().__init__(reader)
        self.log_replayed = False
        if self._meta(0, 8, "file type identifier") != SIGNATURE:
            raise CorruptDiskImage("The VHDX file type identifier is not 'vhdxfile'.")
        self._header()
        regions = self._regions()
        if BAT_GUID not in regions or METADATA_GUID not in regions:
            raise CorruptDiskImage("The VHDX region table lacks the BAT or the metadata region.")
        bat_offset, bat_length = regions[BAT_GUID]
        meta_offset, meta_length = regions[METADATA_GUID]
        items = self._metadata(meta_offset, meta_length)

        params = items.get(FILE_PARAMETERS)
        disk_size = items.get(VIRTUAL_DISK_SIZE)
        sector = items.get(LOGICAL_SECTOR_SIZE)
        if params is None or len(params) < 8 or disk_size is None or len(disk_size) < 8:
            raise CorruptDiskImage("The VHDX metadata lacks the file parameters or disk size.")
        if sector is None or len(sector) < 4:
            raise CorruptDiskImage("The VHDX metadata lacks the logical sector size.")
        block, flags = struct.unpack_from("<II", params)
        if flags & 2 or PARENT_LOCATOR in items:
            raise BackingFileNotSupported(
                "This is a differencing VHDX: it holds only the changes against a parent disk. "
                "Merge it with its parent into one disk in Hyper-V PowerShell, with the parent "
                "beside it: `Convert-VHD -Path child.vhdx -DestinationPath merged.vhdx "
                "-VHDType Dynamic`, then upload merged.vhdx as it is (qemu-img can't read a "
                "differencing VHDX)."
            )
        self.logical_sector = struct.unpack_from("<I", sector)[0]
        self.virtual_size = struct.unpack_from("<Q", disk_size)[0]
        if block < MIB or block > 256 * MIB or block & (block - 1):
            raise CorruptDiskImage(f"The VHDX block size {block} is invalid.")
        if self.logical_sector not in (512, 4096):
            raise CorruptDiskImage(
                f"The VHDX logical sector size {self.logical_sector} is invalid."
            )
        if self.virtual_size > 64 * TIB or self.virtual_size % self.logical_sector:
            raise CorruptDiskImage(f"The VHDX virtual size {self.virtual_size} is invalid.")
        check_virtual_size(self.virtual_size, self.format, max_virtual_size)
        self.block_size = block
        self.chunk_ratio = (1 << 23) * self.logical_sector // block
        self.data_blocks = -(-self.virtual_size // block)
        entries = self.data_blocks + (self.data_blocks - 1) // self.chunk_ratio
        if entries * 8 > bat_length:
            raise CorruptDiskImage(
                f"The VHDX BAT region holds {bat_length // 8} entries; the disk needs {entries}."
            )
        self.bat_offset = bat_offset
        self.bat_entries = entries
        self._reserved = (
            (0, MIB),
            (bat_offset, bat_offset + bat_length),
            (meta_offset, meta_offset + meta_length),
            self._log,
        )

    def _header(self) -> None:
        best: tuple[int, bytes] | None = None
        for offset in HEADER_OFFSETS:
            raw = self._meta(offset, HEADER_SIZE, "header")
            if raw[:4] == b"head" and _checksum_ok(raw):
                seq = struct.unpack_from("<Q", raw, 8)[0]
                if best is None or seq > best[0]:
                    best = (seq, raw)
        if best is None:
            raise CorruptDiskImage(
                "Neither VHDX header is valid (bad signatures or CRC-32C checksums): the file "
                "is damaged. Upload the original again."
            )
        _, _, _, _, _, log_guid, _, version, log_length, log_offset = _HEADER.unpack_from(best[1])
        if version != 1:
            raise UnsupportedDiskFeature(f"The VHDX header version is {version}; only 1 is read.")
        self._log = (log_offset, log_offset + log_length)
        if log_guid != bytes(16):
            # Not closed cleanly: read everything from here on as the replayed log leaves it.
            self.reader = replay_log(self.reader, log_guid, log_offset, log_length)
            self.metadata_bytes += log_length
            self.log_replayed = True

    def _regions(self) -> dict[uuid.UUID, tuple[int, int]]:
        for offset in REGION_OFFSETS:
            raw = self._meta(offset, REGION_SIZE, "region table")
            signature, _, count, _ = _REGION_HEAD.unpack_from(raw)
            if signature == b"regi" and count <= 2047 and _checksum_ok(raw):
                break
        else:
            raise CorruptDiskImage(
                "Neither VHDX region table is valid (bad signatures or CRC-32C checksums): the "
                "file is damaged. Upload the original again."
            )
        regions: dict[uuid.UUID, tuple[int, int]] = {}
        for i in range(count):
            guid, file_offset, length, required = _REGION_ENTRY.unpack_from(raw, 16 + 32 * i)
            gid = uuid.UUID(bytes_le=guid)
            if gid not in (BAT_GUID, METADATA_GUID):
                if required & 1:
                    raise UnsupportedDiskFeature(
                        f"This VHDX has a required region {gid} the catalog does not know."
                    )
                continue
            if file_offset < MIB or file_offset % MIB or file_offset + length > self.reader.size:
                raise CorruptDiskImage(
                    f"A VHDX region at offset {file_offset} ({length} bytes) is misplaced or "
                    f"runs past the end of the file ({self.reader.size} bytes)."
                )
            regions[gid] = (file_offset, length)
        return regions

    def _metadata(self, offset: int, length: int) -> dict[uuid.UUID, bytes]:
        raw = self._meta(offset, min(length, METADATA_TABLE_SIZE), "metadata table")
        signature, _, count, _ = _METADATA_HEAD.unpack_from(raw)
        if signature != b"metadata" or count > 2047:
            raise CorruptDiskImage("The VHDX metadata table has no 'metadata' signature.")
        items: dict[uuid.UUID, bytes] = {}
        for i in range(count):
            guid, at, size, flags, _ = _METADATA_ENTRY.unpack_from(raw, 32 + 32 * i)
            gid = uuid.UUID(bytes_le=guid)
            if gid not in KNOWN_METADATA:
                if flags & 4 and not flags & 1:
                    raise UnsupportedDiskFeature(
                        f"This VHDX has a required metadata item {gid} the catalog does not know."
                    )
                continue
            if at < METADATA_TABLE_SIZE or size > 64 * KIB or at + size > length:
                raise CorruptDiskImage("A VHDX metadata item lies outside the metadata region.")
            items[gid] = self._meta(offset + at, size, "metadata item")
        return items

    def _bat(self, first: int, last: int) -> Iterator[tuple[int, int]]:
        """(BAT index, entry) for indexes [first, last), read a chunk at a time."""
        index = first
        while index < last:
            count = min(BAT_CHUNK // 8, last - index)
            chunk = self._meta(self.bat_offset + index * 8, count * 8, "BAT")
            if chunk.count(0) != len(chunk):
                for i, entry in enumerate(struct.unpack(f"<{count}Q", chunk)):
                    if entry:
                        yield index + i, entry
            index += count

    def _pieces(self, start: int) -> Iterator[Piece]:
        budget = DataBudget(self.format, self.reader.size)
        ratio = self.chunk_ratio
        first_block = start // self.block_size
        first = first_block + first_block // ratio
        for index, entry in self._bat(first, self.bat_entries):
            if index % (ratio + 1) == ratio:
                continue  # a sector bitmap entry: read when a partially present block needs it
            block = index - index // (ratio + 1)
            state = entry & 7
            if state in ZERO_STATES:
                continue
            if state not in (FULLY_PRESENT, PARTIALLY_PRESENT):
                raise CorruptDiskImage(f"The VHDX BAT entry of block {block} has state {state}.")
            virtual = block * self.block_size
            length = min(self.block_size, self.virtual_size - virtual)
            host = (entry >> 20) << 20
            self._check_host(host, length, f"block {block}")
            budget.spend(length)
            if state == FULLY_PRESENT:
                yield Piece(virtual, length, host, length)
            else:
                yield from self._partial(block, virtual, length, host)

    def _check_host(self, host: int, length: int, what: str) -> None:
        if host + length > self.reader.size or any(
            host < hi and lo < host + length for lo, hi in self._reserved
        ):
            raise CorruptDiskImage(
                f"The VHDX {what} points at offset {host}, past the end of the file "
                f"({self.reader.size} bytes) or over its headers or tables: the file is damaged "
                "or truncated."
            )

    def _partial(self, block: int, virtual: int, length: int, host: int) -> Iterator[Piece]:
        """A partially present block: the sectors its sector bitmap marks present."""
        ratio = self.chunk_ratio
        chunk = block // ratio
        index = chunk * (ratio + 1) + ratio
        raw = self._meta(self.bat_offset + index * 8, 8, "BAT") if index < self._bat_len() else b""
        entry = struct.unpack("<Q", raw)[0] if raw else 0
        if entry & 7 != SECTOR_BITMAP_PRESENT:
            raise CorruptDiskImage(
                f"The VHDX block {block} is partially present but its sector bitmap is missing."
            )
        bitmap_host = (entry >> 20) << 20
        self._check_host(bitmap_host, SECTOR_BITMAP_BLOCK, "sector bitmap")
        sector = self.logical_sector
        sectors = length // sector
        first_bit = (block % ratio) * (self.block_size // sector)
        bits = self._meta(bitmap_host + first_bit // 8, round_up(sectors, 8) // 8, "sector bitmap")
        i = 0
        while i < sectors:
            if not bits[i >> 3] >> (i & 7) & 1:
                i += 1
                continue
            j = i
            while j < sectors and bits[j >> 3] >> (j & 7) & 1:
                j += 1
            yield Piece(virtual + i * sector, (j - i) * sector, host + i * sector, (j - i) * sector)
            i = j

    def _bat_len(self) -> int:
        return (self._reserved[1][1] - self.bat_offset) // 8

    def extents(self, start: int = 0) -> Iterator[Extent]:
        start = max(0, start)
        return merge_pieces(self.reader, self._pieces(start), start, self.virtual_size)


def open_vhdx(reader: RangeReader, *, max_virtual_size: int | None = None) -> VhdxImage:
    return VhdxImage(reader, max_virtual_size=max_virtual_size)
