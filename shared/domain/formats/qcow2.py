"""qcow2 images, versions 2 and 3: the header, the L1 table and L2 tables read on demand.

Clusters are data (a host offset), zero (v3's flag), unallocated (reads as zeros: a
backing file is refused up front) or compressed (raw deflate, or zstd when the
header's compression type says so). Extended L2 entries (v3 incompatible bit 4)
are read subcluster by subcluster. Refcounts and snapshots are not needed to read
the active disk and are never read.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator

import zstandard

from shared.domain.formats.base import (
    KIB,
    MIB,
    SECTOR,
    BackingFileNotSupported,
    CorruptDiskImage,
    DataBudget,
    DiskImage,
    EncryptedDiskNotSupported,
    Extent,
    ExternalDataFileNotSupported,
    Piece,
    TableCache,
    UnsupportedDiskFeature,
    check_virtual_size,
    merge_pieces,
    round_up,
)
from shared.domain.ranged import RangeReader

MAGIC = b"QFI\xfb"
_V2 = struct.Struct(">4sIQIIQIIQQIIQ")  # the 72-byte version 2 header
_V3 = struct.Struct(
    ">QQQII"
)  # incompatible, compatible, autoclear features, refcount order, length

INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
INCOMPAT_KNOWN = (
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2
)

OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00
FLAG_COMPRESSED = 1 << 62
FLAG_ZERO = 1
L1_CHUNK = 256 * KIB  # L1 bytes read at a time
SUBCLUSTERS = 32
MAX_L1_BYTES = 32 * MIB  # qemu's own limit on the L1 table

CRYPT_NAMES = {1: "AES", 2: "LUKS"}
COMPRESSION_NAMES = {0: "deflate", 1: "zstd"}


def _inflate_deflate(data: bytes, expected: int) -> bytes:
    d = zlib.decompressobj(-15)
    try:
        out = d.decompress(data, expected)
        # One byte more than the cluster would mean it inflates past its size.
        extra = d.decompress(d.unconsumed_tail, 1) if d.unconsumed_tail else b""
    except zlib.error as e:
        raise CorruptDiskImage(f"A compressed qcow2 cluster does not inflate: {e}.") from None
    return _exact(out, extra, expected)


def _inflate_zstd(data: bytes, expected: int) -> bytes:
    # The window bound keeps a hostile frame from asking for a huge buffer.
    dctx = zstandard.ZstdDecompressor(max_window_size=8 * MIB)
    try:
        with dctx.stream_reader(io.BytesIO(data), read_across_frames=False) as r:
            out = r.read(expected + 1)
    except zstandard.ZstdError as e:
        raise CorruptDiskImage(f"A zstd-compressed qcow2 cluster does not inflate: {e}.") from None
    return _exact(out[:expected], out[expected:], expected)


def _exact(out: bytes, extra: bytes, expected: int) -> bytes:
    if extra:
        raise CorruptDiskImage(
            f"A compressed qcow2 cluster inflates past its size of {expected} bytes: the "
            "image is damaged."
        )
    if len(out) != expected:
        raise CorruptDiskImage(
            f"A compressed qcow2 cluster inflates to {len(out)} bytes, not its size of "
            f"{expected}: the image is damaged or truncated."
        )
    return out


class Qcow2Image(DiskImage):
    format = "qcow2"

    def __init__(self, reader: RangeReader, *, max_virtual_size: int | None = None) -> None:
        super().__init__(reader)
        size = reader.size
        if size < _V2.size:
            raise CorruptDiskImage(f"The qcow2 header is cut short (the file has {size} bytes).")
        head = self._meta(0, min(size, 4 * KIB), "header")
        (
            magic,
            version,
            backing_offset,
            backing_size,
            cluster_bits,
            virtual_size,
            crypt,
            l1_size,
            l1_offset,
            _refcount_offset,
            _refcount_clusters,
            _snapshots,
            _snapshots_offset,
        ) = _V2.unpack_from(head)
        if magic != MAGIC or version not in (2, 3):
            raise UnsupportedDiskFeature(
                f"This is a qcow image of version {version}; the catalog reads versions 2 and "
                "3. Convert it with `qemu-img convert -O qcow2 -o compat=1.1 in.qcow2 "
                "out.qcow2` and upload out.qcow2."
            )
        self.version = version
        incompat = 0
        header_length = _V2.size
        self.compression = 0
        if version == 3:
            if len(head) < _V2.size + _V3.size:
                raise CorruptDiskImage("The qcow2 version 3 header is cut short.")
            incompat, _, _, _, header_length = _V3.unpack_from(head, _V2.size)
            if header_length > 104 and len(head) > 104:
                self.compression = head[104]
        if backing_offset:
            name = head[backing_offset : backing_offset + min(backing_size, 1023)]
            shown = name.decode("utf-8", "replace") if name else "another image"
            raise BackingFileNotSupported(
                f"This qcow2 image has a backing file ({shown!r}): it holds only the changes "
                "against it. Flatten it into one standalone image, with the backing file "
                "beside it: `qemu-img convert -O qcow2 disk.qcow2 flat.qcow2`, then upload "
                "flat.qcow2."
            )
        if crypt:
            kind = CRYPT_NAMES.get(crypt, f"method {crypt}")
            raise EncryptedDiskNotSupported(
                f"This qcow2 image is encrypted ({kind}); the catalog can't read it without its "
                "passphrase. Decrypt it first: `qemu-img convert --object "
                "secret,id=sec0,file=passphrase.txt --image-opts "
                "driver=qcow2,file.filename=disk.qcow2,encrypt.key-secret=sec0 -O qcow2 "
                "plain.qcow2`, then upload plain.qcow2."
            )
        if incompat & INCOMPAT_DATA_FILE:
            raise ExternalDataFileNotSupported(
                "This qcow2 image keeps its data in a separate (external) data file. Make it "
                "one file: `qemu-img convert -O qcow2 disk.qcow2 whole.qcow2` beside its data "
                "file, then upload whole.qcow2."
            )
        if incompat & INCOMPAT_CORRUPT:
            raise CorruptDiskImage(
                "This qcow2 image is marked corrupt (qemu found inconsistent metadata in it). "
                "Repair it with `qemu-img check -r all disk.qcow2` and upload it again."
            )
        if incompat & ~INCOMPAT_KNOWN:
            raise UnsupportedDiskFeature(
                f"This qcow2 image uses incompatible features 0x{incompat & ~INCOMPAT_KNOWN:x} "
                "the catalog does not know. Convert it with `qemu-img convert -O qcow2 in.qcow2 "
                "out.qcow2` and upload out.qcow2."
            )
        if self.compression not in COMPRESSION_NAMES:
            raise UnsupportedDiskFeature(
                f"This qcow2 image uses compression type {self.compression}; the catalog "
                "reads deflate and zstd. Convert it with `qemu-img convert -O qcow2 in.qcow2 "
                "out.qcow2` and upload out.qcow2."
            )
        if not 9 <= cluster_bits <= 21:
            raise CorruptDiskImage(f"The qcow2 cluster size of 2^{cluster_bits} is invalid.")
        self.extended = bool(incompat & INCOMPAT_EXTL2)
        if self.extended and cluster_bits < 14:
            raise CorruptDiskImage("A qcow2 image with extended L2 entries needs 16 KiB clusters.")
        self.virtual_size = virtual_size
        check_virtual_size(virtual_size, self.format, max_virtual_size)

        self.cluster_bits = cluster_bits
        self.cluster = 1 << cluster_bits
        self.entry_size = 16 if self.extended else 8
        self.l2_entries = self.cluster // self.entry_size
        self.l2_span = self.cluster * self.l2_entries  # virtual bytes one L2 table covers
        needed = -(-virtual_size // self.l2_span)
        if l1_size < needed:
            raise CorruptDiskImage(
                f"The qcow2 L1 table has {l1_size} entries; the virtual size of {virtual_size} "
                f"bytes needs {needed}: the image is damaged."
            )
        self.l1_entries = needed
        if (
            l1_offset % self.cluster
            or l1_offset < self.cluster
            or needed * 8 > MAX_L1_BYTES
            or l1_offset + needed * 8 > size
        ):
            raise CorruptDiskImage(
                f"The qcow2 L1 table at offset {l1_offset} ({needed} entries) is misplaced or "
                f"runs past the end of the file ({size} bytes): the image is damaged or "
                "truncated."
            )
        self.l1_offset = l1_offset
        # Host ranges no data cluster or L2 table may overlap: the header and the L1 table.
        self._reserved = ((0, self.cluster), (l1_offset, l1_offset + needed * 8))
        self._compressed_bits = 62 - (cluster_bits - 8)
        self._inflate: Callable[[bytes, int], bytes] = (
            _inflate_zstd if self.compression == 1 else _inflate_deflate
        )
        self._l2 = TableCache(self._load_l2, capacity=4)

    def _check_host(self, host: int, length: int, what: str) -> None:
        if host + min(length, SECTOR) > self.reader.size or any(
            host < hi and lo < host + length for lo, hi in self._reserved
        ):
            raise CorruptDiskImage(
                f"A qcow2 {what} points at offset {host}, past the end of the file "
                f"({self.reader.size} bytes) or over its header or L1 table: the image is "
                "damaged or truncated."
            )

    def _load_l2(self, offset: int) -> bytes:
        return self._meta(offset, self.cluster, "L2 table")

    def _l1(self, first: int) -> Iterator[tuple[int, int]]:
        """(L1 index, L2 table offset) of each allocated L1 entry from `first`."""
        index = first
        per_chunk = L1_CHUNK // 8
        while index < self.l1_entries:
            count = min(per_chunk, self.l1_entries - index)
            chunk = self._meta(self.l1_offset + index * 8, count * 8, "L1 table")
            if chunk.count(0) != len(chunk):
                for i, entry in enumerate(struct.unpack(f">{count}Q", chunk)):
                    l2 = entry & OFFSET_MASK
                    if l2:
                        yield index + i, l2
            index += count

    def _pieces(self, start: int) -> Iterator[Piece]:
        budget = DataBudget(self.format, self.reader.size)
        cluster = self.cluster
        for l1_index, l2_offset in self._l1(start // self.l2_span):
            if l2_offset % cluster:
                raise CorruptDiskImage(
                    f"The qcow2 L2 table offset {l2_offset} is not cluster-aligned: the image "
                    "is damaged."
                )
            self._check_host(l2_offset, cluster, "L2 table")
            budget.spend(cluster)
            table = self._l2.get(l2_offset)
            if table.count(0) == len(table):
                continue
            base = l1_index * self.l2_span
            first = max(0, (start - base) // cluster)
            last = min(self.l2_entries, -(-(self.virtual_size - base) // cluster))
            if self.extended:
                yield from self._extended(table, base, first, last, budget)
                continue
            entries = struct.unpack_from(f">{last - first}Q", table, first * 8)
            for i, entry in enumerate(entries, first):
                if entry:
                    yield from self._cluster(entry, base + i * cluster, budget)

    def _cluster(self, entry: int, virtual: int, budget: DataBudget) -> Iterator[Piece]:
        cluster = self.cluster
        if entry & FLAG_COMPRESSED:
            yield self._compressed(entry, virtual, budget)
            return
        if entry & FLAG_ZERO:
            if self.version < 3:
                raise CorruptDiskImage("A qcow2 version 2 image has a zero cluster flag set.")
            return
        host = entry & OFFSET_MASK
        if not host:
            return
        if host % cluster:
            raise CorruptDiskImage(
                f"The qcow2 data cluster offset {host} is not cluster-aligned: the image is "
                "damaged."
            )
        self._check_host(host, cluster, "data cluster")
        budget.spend(cluster)
        yield Piece(virtual, cluster, host, cluster)

    def _compressed(self, entry: int, virtual: int, budget: DataBudget) -> Piece:
        bits = self._compressed_bits
        host = entry & ((1 << bits) - 1)
        sectors = (entry >> bits) & ((1 << (self.cluster_bits - 8)) - 1)
        length = (sectors + 1) * SECTOR - (host % SECTOR)
        self._check_host(host, 1, "compressed cluster")
        length = min(length, self.reader.size - host)
        # Compressed clusters share sectors with their neighbours: count what is theirs.
        budget.spend(max(1, length - SECTOR))
        return Piece(virtual, self.cluster, host, length, self._inflate)

    def _extended(
        self, table: bytes, base: int, first: int, last: int, budget: DataBudget
    ) -> Iterator[Piece]:
        cluster = self.cluster
        sub = cluster // SUBCLUSTERS
        entries = struct.unpack_from(f">{(last - first) * 2}Q", table, first * 16)
        for n in range(last - first):
            entry, bitmap = entries[2 * n], entries[2 * n + 1]
            virtual = base + (first + n) * cluster
            if entry & FLAG_COMPRESSED:
                yield self._compressed(entry, virtual, budget)
                continue
            alloc, zero = bitmap & 0xFFFF_FFFF, bitmap >> 32
            if alloc & zero:
                raise CorruptDiskImage(
                    "A qcow2 subcluster is marked both allocated and zero: the image is damaged."
                )
            alloc &= ~zero
            if not alloc:
                continue
            host = entry & OFFSET_MASK
            if not host or host % cluster:
                raise CorruptDiskImage(
                    f"A qcow2 cluster with allocated subclusters has host offset {host}: the "
                    "image is damaged."
                )
            self._check_host(host, cluster, "data cluster")
            budget.spend(cluster)
            i = 0
            while i < SUBCLUSTERS:
                if not alloc >> i & 1:
                    i += 1
                    continue
                j = i
                while j < SUBCLUSTERS and alloc >> j & 1:
                    j += 1
                yield Piece(virtual + i * sub, (j - i) * sub, host + i * sub, (j - i) * sub)
                i = j

    def extents(self, start: int = 0) -> Iterator[Extent]:
        start = max(0, start)
        end = round_up(self.virtual_size, SECTOR)
        return merge_pieces(self.reader, self._pieces(start), start, end)


def open_qcow2(reader: RangeReader, *, max_virtual_size: int | None = None) -> Qcow2Image:
    return Qcow2Image(reader, max_virtual_size=max_virtual_size)
