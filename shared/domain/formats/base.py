"""What every disk image reader gives: its virtual size and its allocated data, as extents.

A reader never holds a disk in memory: `DiskImage.extents()` walks the image's
tables lazily (one table chunk at a time) and each `Extent` reads its bytes from
the source only when `data()` is called. Zero or unallocated regions are simply
absent, so a converter moves only the data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from shared.domain.ranged import RangeReader
from shared.domain.vhd import DiskTooLarge, VhdRejected

SECTOR = 512
KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TIB = 1024 * GIB

#: The longest extent a reader yields (so one extent's data is at most this much memory).
MAX_EXTENT = 4 * MIB

#: The largest virtual disk any reader accepts, whatever the format allows (VHDX's 64 TiB).
MAX_VIRTUAL_SIZE = 64 * TIB

#: Formats, as `DiskImage.format` names them.
FORMATS = ("raw", "vhd-fixed", "vhd-dynamic", "vhdx", "qcow2", "vmdk-sparse", "vmdk-stream")


# --------------------------------------------------------------------------------------
# Rejections: each a VhdRejected (an UploadRejected, 400) with a stable code.


class DiskImageRejected(VhdRejected):
    """Base for a disk image we can't convert, with what to do about it."""

    code = "UnsupportedDiskImage"
    summary = "A disk image the catalog can't convert."


class BackingFileNotSupported(DiskImageRejected):
    code = "BackingFileNotSupported"
    summary = "A differencing disk (a backing file or parent): it holds only changes."


class EncryptedDiskNotSupported(DiskImageRejected):
    code = "EncryptedDiskNotSupported"
    summary = "An encrypted disk image (qcow2 LUKS or AES)."


class VmdkExtentsNotSupported(DiskImageRejected):
    code = "VmdkExtentsNotSupported"
    summary = "A VMDK whose data is in separate extent files (a descriptor, or split/flat)."


class ExternalDataFileNotSupported(DiskImageRejected):
    code = "ExternalDataFileNotSupported"
    summary = "A qcow2 image whose data is in a separate (external) data file."


class UnsupportedDiskFeature(DiskImageRejected):
    code = "UnsupportedDiskFeature"
    summary = "A disk image using a format version or feature the catalog does not read."


class CorruptDiskImage(DiskImageRejected):
    code = "CorruptDiskImage"
    summary = "A damaged disk image: bad checksums, pointers past its end, overlapping tables."


class VhdxLogReplayRequired(DiskImageRejected):
    code = "VhdxLogReplayRequired"
    summary = "A VHDX with unreplayed log entries (not closed cleanly)."


class InvalidOva(DiskImageRejected):
    code = "InvalidOva"
    summary = "An OVA (tar) whose OVF descriptor or disk files can't be used."


class OvaNotASingleDisk(DiskImageRejected):
    """`open_disk_image` was given an OVA: it holds disks, open it with `open_ova`."""

    code = "OvaNotASingleDisk"
    summary = "An OVA holds several disks; it is not one disk image."


_REJECTION_CLASSES: tuple[type[VhdRejected], ...] = (
    DiskImageRejected,
    BackingFileNotSupported,
    EncryptedDiskNotSupported,
    VmdkExtentsNotSupported,
    ExternalDataFileNotSupported,
    UnsupportedDiskFeature,
    CorruptDiskImage,
    VhdxLogReplayRequired,
    InvalidOva,
    OvaNotASingleDisk,
)

#: The codes only the format readers give, mapped to their class (`summary` for docs).
FORMAT_REJECTION_CODES: dict[str, type[VhdRejected]] = {c.code: c for c in _REJECTION_CLASSES}


def flatten_hint(fmt: str, name: str = "disk") -> str:
    """The command that merges a disk with its backing chain into one standalone file."""
    return (
        f"Flatten it into one standalone image first, with its backing file beside it: "
        f"`qemu-img convert -O qcow2 {name} flat.qcow2` (or `-f {fmt}` to be explicit), "
        "then upload flat.qcow2."
    )


# --------------------------------------------------------------------------------------
# The interface.


@dataclass(frozen=True, slots=True)
class Extent:
    """Allocated (possibly non-zero) data of the virtual disk, in virtual order.

    `offset` and `length` are multiples of 512 and `length <= MAX_EXTENT`; extents
    never overlap. When the virtual size is not a multiple of 512 the last extent runs
    to the next multiple and its bytes past the virtual size are zeros.
    `source_length` is how many bytes `data()` reads from the source.
    """

    offset: int
    length: int
    source_length: int
    _load: Callable[[], bytes] = field(repr=False, compare=False)

    @property
    def end(self) -> int:
        return self.offset + self.length

    def data(self) -> bytes:
        """The virtual bytes (decompressed), exactly `length` of them.

        Reads the source through its RangeReader; safe to call from another thread
        than the one iterating `extents()`. Raises CorruptDiskImage on bad data.
        """
        return self._load()


class DiskImage(ABC):
    """An opened disk image: its format, virtual size and allocated extents.

    `metadata_bytes` counts the bytes of headers and tables read so far (it grows
    while `extents()` walks the tables lazily).
    """

    format: str
    virtual_size: int

    def __init__(self, reader: RangeReader) -> None:
        self.reader = reader
        self.metadata_bytes = 0

    @abstractmethod
    def extents(self, start: int = 0) -> Iterator[Extent]:
        """Allocated data at or after virtual offset `start`, in order (resumable there).

        An extent straddling `start` is cut to begin at `start` rounded down to 512.
        Zero and unallocated regions are absent. Not thread-safe: iterate in one thread.
        """

    def allocated_bytes(self) -> int:
        """The total length of the extents (walks the tables; reads no data)."""
        return sum(e.length for e in self.extents())

    def _meta(self, offset: int, length: int, what: str) -> bytes:
        """Read `length` bytes of metadata, all of which must lie inside the file."""
        if offset < 0 or length < 0 or offset + length > self.reader.size:
            raise CorruptDiskImage(
                f"The {self.format} image's {what} at offset {offset} ({length} bytes) lies "
                f"past the end of the file ({self.reader.size} bytes): the file is truncated "
                "or damaged. Upload the complete file again."
            )
        data = bytes(self.reader.read(offset, length))
        self.metadata_bytes += len(data)
        if len(data) != length:
            raise CorruptDiskImage(
                f"The {self.format} image's {what} at offset {offset} could not be read in "
                f"full ({len(data)} of {length} bytes): the file is truncated."
            )
        return data


def round_up(n: int, to: int) -> int:
    return -(-n // to) * to


def check_virtual_size(size: int, fmt: str, max_virtual_size: int | None) -> None:
    """Refuse a virtual size of zero, or beyond the format limit or the caller's maximum."""
    if size <= 0:
        raise CorruptDiskImage(f"The {fmt} image says its virtual size is {size} bytes.")
    limit = MAX_VIRTUAL_SIZE if max_virtual_size is None else max_virtual_size
    if size > limit:
        raise DiskTooLarge(
            f"The {fmt} image's virtual size is {size} bytes ({size / GIB:.2f} GiB), above the "
            f"maximum of {limit} bytes ({limit / GIB:.2f} GiB). Shrink the partitions and the "
            "disk (e.g. `qemu-img resize --shrink`) before uploading."
        )


class DataBudget:
    """Refuses an image that maps more data than its file holds (shared or looping
    pointers), so that a small file can't make a reader read without end."""

    def __init__(self, fmt: str, file_size: int, slack: int = 0) -> None:
        self.fmt = fmt
        self.left = file_size + slack

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise CorruptDiskImage(
                f"The {self.fmt} image maps more data than its file holds: several table "
                "entries point at the same data (overlapping or looping tables). The file is "
                "damaged; `qemu-img check` tells more."
            )


class TableCache:
    """A small LRU of tables read on demand (qcow2 L2, VMDK grain tables)."""

    def __init__(self, load: Callable[[int], bytes], capacity: int = 8) -> None:
        self._load = load
        self._capacity = capacity
        self._items: OrderedDict[int, bytes] = OrderedDict()

    def get(self, offset: int) -> bytes:
        if offset in self._items:
            self._items.move_to_end(offset)
            return self._items[offset]
        table = self._load(offset)
        self._items[offset] = table
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)
        return table


@dataclass(frozen=True, slots=True)
class Piece:
    """One virtual run and where its bytes are: a contiguous host range (`compressed`
    None) or one compressed unit that inflates to `length` bytes."""

    offset: int  # virtual
    length: int
    host: int
    host_length: int
    inflate: Callable[[bytes, int], bytes] | None = None  # (compressed, expected) -> bytes


def merge_pieces(
    reader: RangeReader,
    pieces: Iterator[Piece],
    start: int,
    virtual_end: int,
    *,
    max_gap: int = 64 * KIB,
) -> Iterator[Extent]:
    """Group consecutive pieces into extents read with one ranged read each.

    Pieces come in virtual order. Consecutive pieces join one extent while they are
    virtually adjacent, their host ranges follow each other in the file (with gaps of
    at most `max_gap`, read and dropped), and the extent stays within MAX_EXTENT (both
    virtual and host). A piece is first cut to begin at `start` (512-aligned) and to
    end by `virtual_end` (the virtual size rounded up to 512).
    """
    start -= start % SECTOR
    group: list[Piece] = []
    for p in _cut(pieces, start, virtual_end):
        if group:
            last = group[-1]
            host_end = last.host + last.host_length
            span_v = p.offset + p.length - group[0].offset
            span_h = p.host + p.host_length - group[0].host
            if (
                p.offset == last.offset + last.length
                and host_end <= p.host <= host_end + max_gap
                and span_v <= MAX_EXTENT
                and span_h <= MAX_EXTENT + max_gap
            ):
                group.append(p)
                continue
            yield _extent(reader, group, start, virtual_end)
        group = [p]
    if group:
        yield _extent(reader, group, start, virtual_end)


def _cut(pieces: Iterator[Piece], start: int, virtual_end: int) -> Iterator[Piece]:
    """Pieces within [start, virtual_end), plain ones cut there and split to MAX_EXTENT."""
    for p in pieces:
        if p.offset + p.length <= start or p.offset >= virtual_end:
            continue
        if p.inflate is not None:
            yield p
            continue
        lo = max(p.offset, start)
        hi = min(p.offset + p.length, virtual_end)
        while lo < hi:
            n = min(hi - lo, MAX_EXTENT)
            yield Piece(lo, n, p.host + (lo - p.offset), n)
            lo += n


def _extent(reader: RangeReader, group: list[Piece], start: int, virtual_end: int) -> Extent:
    pieces = tuple(group)
    first, last = pieces[0], pieces[-1]
    v_lo = max(first.offset, start)
    v_hi = min(last.offset + last.length, virtual_end)
    h_lo = first.host
    h_len = last.host + last.host_length - h_lo

    def load() -> bytes:
        raw = bytes(reader.read(h_lo, h_len))
        if len(raw) < h_len:
            # A RangeReader clips at the end: what a file lacks reads as zeros.
            raw += bytes(h_len - len(raw))
        out = bytearray()
        for p in pieces:
            chunk = raw[p.host - h_lo : p.host - h_lo + p.host_length]
            out += chunk if p.inflate is None else p.inflate(chunk, p.length)
        # Compressed pieces inflate whole: cut them to the window asked for.
        lo = v_lo - first.offset
        return bytes(out[lo : lo + v_hi - v_lo])

    return Extent(v_lo, v_hi - v_lo, h_len, load)
