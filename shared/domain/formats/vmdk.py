"""VMDK hosted sparse extents: monolithicSparse and streamOptimized.

A `KDMV` header, an embedded text descriptor (createType, parentCID, the extent
list), a grain directory of grain tables, and grains: plain, or (streamOptimized)
each a marker {lba, size} followed by its zlib-compressed bytes. A stream whose
header says GD_AT_END keeps the real header in a footer before the end-of-stream
marker. Descriptor-only VMDKs (data in separate extent files) and child disks
(a parent CID) are refused.
"""

from __future__ import annotations

import re
import struct
import zlib
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
    UnsupportedDiskFeature,
    VmdkExtentsNotSupported,
    check_virtual_size,
    merge_pieces,
    round_up,
)
from shared.domain.ranged import RangeReader

MAGIC = b"KDMV"
GD_AT_END = 0xFFFF_FFFF_FFFF_FFFF
FLAG_NEWLINE_TEST = 1 << 0
FLAG_ZERO_GRAIN = 1 << 2
FLAG_COMPRESSED = 1 << 16
FLAG_MARKERS = 1 << 17
COMPRESS_DEFLATE = 1
MARKER_EOS, MARKER_GT, MARKER_GD, MARKER_FOOTER = 0, 1, 2, 3
MAX_GRAIN = 2 * MIB
MAX_DESCRIPTOR = 1 * MIB
GT_READ = 1 * MIB  # consecutive grain tables are read together, up to this much
GD_CHUNK = 256 * KIB

# magic, version, flags, capacity, grain, descriptor offset and size, GTEs per GT,
# redundant GD, GD, overhead (sectors), unclean shutdown, the four newline test bytes,
# compression algorithm.
_HEADER = struct.Struct("<4sIIQQQQIQQQB4sH")
_MARKER = struct.Struct("<QII")


def is_stream_optimized(head: bytes) -> bool:
    """A KDMV header whose grains are compressed: streamOptimized."""
    return len(head) >= 12 and bool(struct.unpack_from("<I", head, 8)[0] & FLAG_COMPRESSED)


def _descriptor_fields(text: str) -> tuple[dict[str, str], list[str]]:
    fields: dict[str, str] = {}
    extents: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if re.match(r"^(RW|RDONLY|NOACCESS)\s", line):
            extents.append(line)
            continue
        key, eq, value = line.partition("=")
        if eq:
            fields[key.strip()] = value.strip().strip('"')
    return fields, extents


class VmdkImage(DiskImage):
    def __init__(self, reader: RangeReader, *, max_virtual_size: int | None = None) -> None:
        super().__init__(reader)
        self.format = "vmdk-sparse"
        size = reader.size
        header = self._meta(0, SECTOR, "header") if size >= SECTOR else b""
        if len(header) < _HEADER.size or header[:4] != MAGIC:
            raise CorruptDiskImage("The VMDK sparse header is cut short.")
        fields = _HEADER.unpack_from(header)
        if fields[9] == GD_AT_END:
            fields = self._footer()
        (
            _,
            version,
            flags,
            capacity,
            grain,
            desc_offset,
            desc_size,
            per_gt,
            _rgd,
            gd_offset,
            _overhead,
            _unclean,
            newlines,
            algorithm,
        ) = fields
        if version not in (1, 2, 3):
            raise UnsupportedDiskFeature(
                f"This VMDK sparse extent has version {version}; the catalog reads 1 to 3. "
                "Convert it with `qemu-img convert -O vmdk -o subformat=streamOptimized in.vmdk "
                "out.vmdk` and upload out.vmdk."
            )
        if flags & FLAG_NEWLINE_TEST and newlines != b"\n \r\n":
            raise CorruptDiskImage(
                "The VMDK header's newline test bytes are altered: the file was copied in "
                "text mode (e.g. ASCII FTP), which damages it. Copy it again in binary mode."
            )
        self.compressed = bool(flags & FLAG_COMPRESSED)
        self.markers = bool(flags & FLAG_MARKERS)
        self.zero_grain = bool(flags & FLAG_ZERO_GRAIN)
        if self.compressed:
            self.format = "vmdk-stream"
            if algorithm != COMPRESS_DEFLATE:
                raise UnsupportedDiskFeature(
                    f"This VMDK uses compression algorithm {algorithm}; only deflate exists."
                )
        self._descriptor(desc_offset, desc_size)
        if grain < 1 or grain & (grain - 1) or grain * SECTOR > MAX_GRAIN:
            raise UnsupportedDiskFeature(
                f"This VMDK's grain size of {grain} sectors is not a power of two up to "
                f"{MAX_GRAIN // SECTOR}."
            )
        if not 1 <= per_gt <= 4096:
            raise CorruptDiskImage(f"The VMDK has {per_gt} entries per grain table.")
        self.virtual_size = capacity * SECTOR
        check_virtual_size(self.virtual_size, self.format, max_virtual_size)
        self.grain = grain * SECTOR
        self.per_gt = per_gt
        self.gt_bytes = per_gt * 4
        self.gt_span = self.grain * per_gt
        self.gd_entries = -(-self.virtual_size // self.gt_span)
        self.gd_offset = gd_offset * SECTOR
        if gd_offset < 1 or self.gd_offset + self.gd_entries * 4 > size:
            raise CorruptDiskImage(
                f"The VMDK grain directory at sector {gd_offset} ({self.gd_entries} entries) "
                f"is misplaced or runs past the end of the file ({size} bytes): the file is "
                "damaged or truncated."
            )

    def _footer(self) -> tuple:
        """The header copy in a stream's footer: footer marker, footer, end-of-stream marker."""
        size = self.reader.size
        if size < 4 * SECTOR:
            raise CorruptDiskImage("The streamOptimized VMDK is too short for its footer.")
        raw = self._meta(size - 3 * SECTOR, 3 * SECTOR, "footer")
        _, msize, mtype = _MARKER.unpack_from(raw, 0)
        eos_val, eos_size, eos_type = _MARKER.unpack_from(raw, 2 * SECTOR)
        if (
            (msize, mtype) != (0, MARKER_FOOTER)
            or raw[SECTOR : SECTOR + 4] != MAGIC
            or (eos_val, eos_size, eos_type) != (0, 0, MARKER_EOS)
        ):
            raise CorruptDiskImage(
                "This streamOptimized VMDK keeps its grain directory at the end, but its footer "
                "is missing or damaged: the file is truncated or incomplete. Upload the "
                "complete file again."
            )
        fields = _HEADER.unpack_from(raw, SECTOR)
        if fields[9] == GD_AT_END:
            raise CorruptDiskImage("The streamOptimized VMDK's footer has no grain directory.")
        return fields

    def _descriptor(self, offset: int, sectors: int) -> None:
        if not offset:
            raise VmdkExtentsNotSupported(
                "This is one extent file of a split VMDK (a KDMV sparse extent without a "
                "descriptor): the disk is spread over several files. Make it one file, from "
                "its descriptor with the extents beside it: `qemu-img convert -O vmdk -o "
                "subformat=streamOptimized disk.vmdk one.vmdk`, then upload one.vmdk."
            )
        length = min(sectors * SECTOR, MAX_DESCRIPTOR)
        raw = self._meta(offset * SECTOR, length, "descriptor")
        text = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        fields, extents = _descriptor_fields(text)
        parent = fields.get("parentCID", "ffffffff").lower()
        if parent != "ffffffff" or "parentFileNameHint" in fields:
            hint = fields.get("parentFileNameHint", "its parent disk")
            raise BackingFileNotSupported(
                f"This VMDK is a child (delta) disk of {hint!r}: it holds only the changes "
                "against its parent. Merge the chain into one disk, with the parent beside it: "
                "`qemu-img convert -O vmdk -o subformat=streamOptimized child.vmdk "
                "merged.vmdk` (or consolidate the VM's snapshots in VMware), then upload "
                "merged.vmdk."
            )
        kinds = {line.split()[2] if len(line.split()) > 2 else "" for line in extents}
        create_type = fields.get("createType", "")
        if create_type not in ("monolithicSparse", "streamOptimized"):
            raise VmdkExtentsNotSupported(
                f"This VMDK sparse extent's descriptor says createType {create_type!r}, not "
                "monolithicSparse or streamOptimized: it is one file of a disk spread over "
                "several. Make it one file, from its descriptor with the extents beside it: "
                "`qemu-img convert -O vmdk -o subformat=streamOptimized disk.vmdk one.vmdk`, "
                "then upload one.vmdk."
            )
        if len(extents) > 1 or kinds - {"SPARSE"}:
            raise VmdkExtentsNotSupported(
                f"This VMDK's descriptor lists {len(extents)} extent(s) of type "
                f"{', '.join(sorted(kinds)) or 'none'}, kept in separate files. Make it one "
                "file, with its extents beside it: `qemu-img convert -O vmdk -o "
                "subformat=streamOptimized disk.vmdk one.vmdk`, then upload one.vmdk."
            )

    def _tables(self, first: int) -> Iterator[tuple[int, bytes]]:
        """(GD index, grain table) of each allocated grain table from `first`."""
        size = self.reader.size
        index = first
        while index < self.gd_entries:
            count = min(GD_CHUNK // 4, self.gd_entries - index)
            chunk = self._meta(self.gd_offset + index * 4, count * 4, "grain directory")
            entries = struct.unpack(f"<{count}I", chunk)
            i = 0
            while i < count:
                if not entries[i]:
                    i += 1
                    continue
                # Grain tables written one after another are read with one request.
                j = i + 1
                while (
                    j < count
                    and entries[j] == entries[j - 1] + self.gt_bytes // SECTOR
                    and (j - i + 1) * self.gt_bytes <= GT_READ
                ):
                    j += 1
                at = entries[i] * SECTOR
                if at + (j - i) * self.gt_bytes > size or at < SECTOR:
                    raise CorruptDiskImage(
                        f"A VMDK grain table at offset {at} lies past the end of the file or "
                        "over its header: the file is damaged or truncated."
                    )
                raw = self._meta(at, (j - i) * self.gt_bytes, "grain tables")
                for k in range(j - i):
                    yield index + i + k, raw[k * self.gt_bytes : (k + 1) * self.gt_bytes]
                i = j
            index += count

    def _grains(self, start: int) -> Iterator[tuple[int, int]]:
        """(virtual offset, host offset) of each stored grain at or after `start`."""
        budget = DataBudget(self.format, self.reader.size)
        size = self.reader.size
        for gd_index, table in self._tables(start // self.gt_span):
            budget.spend(self.gt_bytes)
            if table.count(0) == len(table):
                continue
            base = gd_index * self.gt_span
            first = max(0, (start - base) // self.grain)
            last = min(self.per_gt, -(-(self.virtual_size - base) // self.grain))
            for i, entry in enumerate(struct.unpack_from(f"<{last - first}I", table, first * 4)):
                if entry == 0 or (entry == 1 and self.zero_grain):
                    continue
                host = entry * SECTOR
                if host >= size or host < SECTOR:
                    raise CorruptDiskImage(
                        f"A VMDK grain points at offset {host}, past the end of the file "
                        f"({size} bytes) or over its header: the file is damaged or truncated."
                    )
                budget.spend(SECTOR if self.compressed else self.grain)
                yield base + (first + i) * self.grain, host

    def _pieces(self, start: int) -> Iterator[Piece]:
        size = self.reader.size
        end = self.virtual_size
        if not self.compressed:
            for virtual, host in self._grains(start):
                length = min(self.grain, end - virtual)
                if host + length > size:
                    raise CorruptDiskImage(
                        f"A VMDK grain at offset {host} runs past the end of the file."
                    )
                yield Piece(virtual, length, host, length)
            return
        # A compressed grain's size is in its marker: bound it by where the next grain
        # starts, so consecutive grains are read together without reading markers first.
        bound = round_up(_MARKER.size + self.grain + self.grain // 8 + 64, SECTOR)
        pending: tuple[int, int] | None = None
        for virtual, host in self._grains(start):
            if pending is not None:
                yield self._compressed(*pending, host, bound)
            pending = (virtual, host)
        if pending is not None:
            yield self._compressed(*pending, size, bound)

    def _compressed(self, virtual: int, host: int, next_host: int, bound: int) -> Piece:
        limit = next_host if host < next_host <= host + bound else host + bound
        length = min(limit, self.reader.size) - host
        return Piece(
            virtual, min(self.grain, self.virtual_size - virtual), host, length, self._inflate
        )

    def _inflate(self, data: bytes, expected: int) -> bytes:
        body = data
        if self.markers:
            if len(data) < _MARKER.size:
                raise CorruptDiskImage("A compressed VMDK grain's marker is cut short.")
            _, size, _ = _MARKER.unpack_from(data)
            if size == 0 or size > len(data) - 12:
                raise CorruptDiskImage(
                    f"A compressed VMDK grain says it holds {size} bytes, more than lie before "
                    "the next grain or the end of the file: the file is damaged."
                )
            body = data[12 : 12 + size]
        d = zlib.decompressobj()
        try:
            out = d.decompress(body, self.grain)
            extra = d.decompress(d.unconsumed_tail, 1) if d.unconsumed_tail else b""
        except zlib.error as e:
            raise CorruptDiskImage(f"A compressed VMDK grain does not inflate: {e}.") from None
        if extra:
            raise CorruptDiskImage(
                f"A compressed VMDK grain inflates past the grain size of {self.grain} bytes."
            )
        if len(out) < expected:
            raise CorruptDiskImage(
                f"A compressed VMDK grain inflates to {len(out)} bytes, short of {expected}."
            )
        return out[:expected]

    def extents(self, start: int = 0) -> Iterator[Extent]:
        start = max(0, start)
        end = round_up(self.virtual_size, SECTOR)
        return merge_pieces(self.reader, self._pieces(start), start, end)


def open_vmdk(reader: RangeReader, *, max_virtual_size: int | None = None) -> VmdkImage:
    return VmdkImage(reader, max_virtual_size=max_virtual_size)
