"""What is on a disk: partition table, file systems, operating system, by ranged reads.

`probe_disk` looks at the virtual disk inside a (validated) fixed VHD and
reports the partition style (MBR/GPT), the partitions and the file system on
each, the operating system they imply, `/etc/os-release` when the root is
ext2/3/4, a VM generation hint and warnings worth showing to the uploader.

It reads a few dozen small ranges (tens of KiB) whatever the disk size, and
everything it parses is hostile input: every count, offset and length read
from the disk is bounded before it is used, and a malformed structure raises
a `DiskProbeError` (a `CatalogError`), never IndexError, struct.error and the
like. The lower-level readers (`read_mbr`, `read_gpt`, `detect_filesystem`,
`Ext4Reader`, `read_ext4_file`) raise those errors; `probe_disk` turns them
into warnings, because the probe informs while only validation rejects.
The one thing the probe finds that rejects a disk is checked apart, by
`check_partitions_fit`: partitions that run past the end of a cut-short disk.
"""

from __future__ import annotations

import itertools
import struct
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from shared.domain.errors import CatalogError
from shared.domain.ranged import RangeReader
from shared.domain.vhd import VhdRejected

__all__ = [
    "GPT_TYPES",
    "MBR_TYPES",
    "DiskProbe",
    "DiskProbeError",
    "Ext4Reader",
    "FileNotFoundOnDisk",
    "GptTable",
    "InvalidPartitionTable",
    "MbrTable",
    "NoPartitionTable",
    "Partition",
    "PartitionBeyondDisk",
    "ProbeBudgetExceeded",
    "ProbeLimitExceeded",
    "ProbeLimits",
    "UnreadableFilesystem",
    "check_partitions_fit",
    "detect_filesystem",
    "parse_os_release",
    "probe_disk",
    "read_ext4_file",
    "read_gpt",
    "read_mbr",
]

SECTOR = 512
TIB = 1024**4


# --------------------------------------------------------------------------------------
# Errors.


class DiskProbeError(CatalogError):
    """A disk structure that cannot be read: malformed, inconsistent or out of bounds."""

    code = "UnreadableDiskStructure"
    status = 422


class NoPartitionTable(DiskProbeError):
    code = "NoPartitionTable"


class InvalidPartitionTable(DiskProbeError):
    code = "InvalidPartitionTable"


class UnreadableFilesystem(DiskProbeError):
    code = "UnreadableFilesystem"


class FileNotFoundOnDisk(DiskProbeError):
    code = "FileNotFoundOnDisk"
    status = 404


class ProbeLimitExceeded(DiskProbeError):
    """A bound in `ProbeLimits` was hit (a huge directory, a symlink loop, ...)."""

    code = "ProbeLimitExceeded"


class ProbeBudgetExceeded(ProbeLimitExceeded):
    """The whole probe's byte budget is spent: nothing more can be read."""

    code = "ProbeBudgetExceeded"


class PartitionBeyondDisk(VhdRejected):
    """A disk that was cut short: its partition table goes on past its end."""

    code = "PartitionBeyondDisk"
    status = 400
    summary = "A partition runs past the end of the disk: the disk was cut short."


# --------------------------------------------------------------------------------------
# Limits and the cached, bounded view of the disk.


@dataclass(frozen=True)
class ProbeLimits:
    """Bounds that keep hostile disks from making the probe loop or read a lot."""

    max_bytes_read: int = 4 * 1024 * 1024  # whole probe; a normal one reads < 128 KiB
    max_file_bytes: int = 64 * 1024  # a file read from ext (os-release is ~400 bytes)
    max_dir_blocks: int = 256  # blocks of one directory scanned for a name
    max_symlink_hops: int = 8
    max_path_components: int = 128  # after symlink expansion
    max_extent_depth: int = 5  # ext4's own maximum
    max_extent_nodes: int = 64  # extent tree blocks visited for one file
    max_gpt_array_bytes: int = 1024 * 1024
    max_logical_partitions: int = 64
    max_os_release_candidates: int = 4


class _DiskView:
    """Reads from the virtual disk through a 4 KiB page cache, with a byte budget.

    Every read must lie inside the disk: a structure pointing outside it is
    malformed, so that raises instead of silently reading zeros.
    """

    PAGE = 4096

    def __init__(self, reader: RangeReader, size: int, limits: ProbeLimits) -> None:
        if not isinstance(size, int) or size < 0:
            raise DiskProbeError(f"Invalid disk size {size!r}.")
        self._reader = reader
        self.size = min(size, reader.size)
        self.limits = limits
        self._pages: dict[int, bytes] = {}
        self.reads = 0
        self.bytes_read = 0

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise DiskProbeError(
                f"A structure at offset {offset} (length {length}) lies outside the disk "
                f"({self.size} bytes)."
            )
        if length == 0:
            return b""
        first = offset // self.PAGE
        last = (offset + length - 1) // self.PAGE
        run_start: int | None = None
        for page in range(first, last + 2):
            missing = page <= last and page not in self._pages
            if missing and run_start is None:
                run_start = page
            elif not missing and run_start is not None:
                self._fetch(run_start, page)
                run_start = None
        parts = [self._pages[p] for p in range(first, last + 1)]
        data = b"".join(parts)
        start = offset - first * self.PAGE
        return data[start : start + length]

    def _fetch(self, first_page: int, end_page: int) -> None:
        start = first_page * self.PAGE
        length = min(end_page * self.PAGE, self.size) - start
        if self.bytes_read + length > self.limits.max_bytes_read:
            raise ProbeBudgetExceeded(
                f"The probe would read more than {self.limits.max_bytes_read} bytes; stopped."
            )
        data = bytes(self._reader.read(start, length))
        self.reads += 1
        self.bytes_read += len(data)
        if len(data) < length:
            # Holes read as zeros per the RangeReader contract; a short read means the
            # blob is shorter than it said, which we treat the same way.
            data = data.ljust(length, b"\0")
        for i, page in enumerate(range(first_page, end_page)):
            self._pages[page] = data[i * self.PAGE : (i + 1) * self.PAGE]


def _view(reader: RangeReader | _DiskView, size: int | None, limits: ProbeLimits) -> _DiskView:
    if isinstance(reader, _DiskView):
        return reader
    return _DiskView(reader, reader.size if size is None else size, limits)


def _u16(b: bytes, off: int) -> int:
    return int.from_bytes(b[off : off + 2], "little")


def _u32(b: bytes, off: int) -> int:
    return int.from_bytes(b[off : off + 4], "little")


def _u64(b: bytes, off: int) -> int:
    return int.from_bytes(b[off : off + 8], "little")


# --------------------------------------------------------------------------------------
# Partition tables.

MBR_TYPES: dict[int, str] = {
    0x01: "FAT12",
    0x04: "FAT16 <32M",
    0x05: "Extended",
    0x06: "FAT16",
    0x07: "NTFS/exFAT/HPFS",
    0x0B: "FAT32 (CHS)",
    0x0C: "FAT32 (LBA)",
    0x0E: "FAT16 (LBA)",
    0x0F: "Extended (LBA)",
    0x11: "Hidden FAT12",
    0x12: "Compaq diagnostics / OEM recovery",
    0x14: "Hidden FAT16 <32M",
    0x16: "Hidden FAT16",
    0x17: "Hidden NTFS",
    0x1B: "Hidden FAT32",
    0x1C: "Hidden FAT32 (LBA)",
    0x27: "Windows recovery (hidden NTFS)",
    0x42: "Windows dynamic disk (LDM)",
    0x82: "Linux swap",
    0x83: "Linux",
    0x85: "Linux extended",
    0x8E: "Linux LVM",
    0xA5: "FreeBSD",
    0xA6: "OpenBSD",
    0xA9: "NetBSD",
    0xEE: "GPT protective",
    0xEF: "EFI system",
    0xFD: "Linux RAID autodetect",
}
_MBR_EXTENDED = {0x05, 0x0F, 0x85}

GPT_EFI = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
GPT_MSR = "E3C9E316-0B5C-4DB8-817D-F92DF00215AE"
GPT_BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
GPT_WINDOWS_RE = "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC"
GPT_LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
GPT_LINUX_SWAP = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
GPT_LINUX_LVM = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
GPT_BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649"
_GPT_LINUX_ROOTS = {
    "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "Linux root (x86-64)",
    "44479540-F297-41B2-9AF7-D131D5F0458A": "Linux root (x86)",
    "B921B045-1DF0-41C3-AF44-4C6F280D3FAE": "Linux root (ARM64)",
}
GPT_TYPES: dict[str, str] = {
    GPT_EFI: "EFI system",
    GPT_MSR: "Microsoft reserved",
    GPT_BASIC_DATA: "Microsoft basic data",
    GPT_WINDOWS_RE: "Windows recovery environment",
    "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3": "Windows LDM metadata",
    "AF9B60A0-1431-4F62-BC68-3311714A69AD": "Windows LDM data",
    "E75CAF8F-F680-4CEE-AFA3-B001E56EFC2D": "Windows Storage Spaces",
    GPT_LINUX_FS: "Linux filesystem",
    **_GPT_LINUX_ROOTS,
    "933AC7E1-2EB4-4F13-B844-0E14E2AEF915": "Linux /home",
    "3B8F8425-20E0-4F3B-907F-1A25A76F98E8": "Linux /srv",
    "4D21B016-B534-45C2-A9FB-5C16E091FD2D": "Linux /var",
    "BC13C2FF-59E6-4262-A352-B275FD6F7172": "Linux extended boot",
    GPT_LINUX_SWAP: "Linux swap",
    GPT_LINUX_LVM: "Linux LVM",
    "A19D880F-05FC-4D3B-A006-743F0F84911E": "Linux RAID",
    "CA7D7CCB-63ED-4C53-861C-1742536059CC": "Linux LUKS",
    GPT_BIOS_BOOT: "BIOS boot",
}
_WINDOWS_GPT = {GPT_MSR, GPT_WINDOWS_RE, "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3"}
_WINDOWS_GPT |= {"AF9B60A0-1431-4F62-BC68-3311714A69AD", "E75CAF8F-F680-4CEE-AFA3-B001E56EFC2D"}
_LINUX_GPT = {GPT_LINUX_FS, GPT_LINUX_SWAP, GPT_LINUX_LVM, *_GPT_LINUX_ROOTS}
_LINUX_GPT |= {
    "933AC7E1-2EB4-4F13-B844-0E14E2AEF915",
    "3B8F8425-20E0-4F3B-907F-1A25A76F98E8",
    "4D21B016-B534-45C2-A9FB-5C16E091FD2D",
    "BC13C2FF-59E6-4262-A352-B275FD6F7172",
    "A19D880F-05FC-4D3B-A006-743F0F84911E",
    "CA7D7CCB-63ED-4C53-861C-1742536059CC",
}
_WINDOWS_MBR = {0x27, 0x42}
_LINUX_MBR = {0x82, 0x83, 0x8E, 0xFD}
# Partitions that are not expected to hold a file system we would recognise.
_NO_FS_EXPECTED = {GPT_MSR, GPT_BIOS_BOOT, "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3"}


@dataclass
class Partition:
    """One partition. Offsets and sizes in bytes; `type` is "0x83" (MBR) or a GUID (GPT)."""

    index: int
    start: int
    size: int
    type: str
    type_name: str
    name: str = ""
    bootable: bool = False
    logical: bool = False
    guid: str | None = None
    attributes: int = 0
    filesystem: str | None = None
    label: str | None = None

    @property
    def end(self) -> int:
        return self.start + self.size

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": self.start,
            "size": self.size,
            "type": self.type,
            "typeName": self.type_name,
            "name": self.name,
            "bootable": self.bootable,
            "logical": self.logical,
            "guid": self.guid,
            "attributes": self.attributes,
            "filesystem": self.filesystem,
            "label": self.label,
        }


@dataclass
class MbrTable:
    disk_signature: int
    partitions: list[Partition]
    protective: bool  # has a 0xEE entry: the real table is GPT
    hybrid: bool  # 0xEE plus other entries
    warnings: list[str] = field(default_factory=list)


@dataclass
class GptTable:
    disk_guid: str
    partitions: list[Partition]
    first_usable_lba: int
    last_usable_lba: int
    used_backup: bool
    warnings: list[str] = field(default_factory=list)


def _is_boot_sector(sector: bytes) -> bool:
    """A file system boot sector (VBR) also ends in 55 AA; it is not an MBR."""
    return (
        sector[3:11] in (b"NTFS    ", b"EXFAT   ", b"-FVE-FS-")
        or sector[82:90] == b"FAT32   "
        or (sector[54:59] == b"FAT12" or sector[54:59] == b"FAT16")
    )


def read_mbr(
    reader: RangeReader | _DiskView,
    *,
    disk_size: int | None = None,
    limits: ProbeLimits | None = None,
) -> MbrTable:
    """Parse the MBR in sector 0, following an extended partition's EBR chain.

    Raises `NoPartitionTable` without a 55 AA signature (or when sector 0 is a
    file system boot sector) and `InvalidPartitionTable` when it is malformed.
    """
    limits = limits or ProbeLimits()
    view = _view(reader, disk_size, limits)
    if view.size < SECTOR:
        raise NoPartitionTable(f"The disk is {view.size} bytes, smaller than one sector.")
    sector = view.read(0, SECTOR)
    if sector[510:512] != b"\x55\xaa":
        raise NoPartitionTable("Sector 0 has no MBR signature (55 AA at byte 510).")
    if _is_boot_sector(sector):
        raise NoPartitionTable("Sector 0 is a file system boot sector, not a partition table.")
    total_sectors = view.size // SECTOR
    table = MbrTable(
        disk_signature=_u32(sector, 440), partitions=[], protective=False, hybrid=False
    )
    extended: list[tuple[int, int]] = []
    others = 0
    for i in range(4):
        entry = sector[446 + 16 * i : 446 + 16 * (i + 1)]
        status, ptype = entry[0], entry[4]
        start, count = _u32(entry, 8), _u32(entry, 12)
        if status not in (0x00, 0x80):
            raise InvalidPartitionTable(
                f"MBR entry {i + 1} has boot indicator 0x{status:02x} (must be 0x00 or 0x80): "
                "sector 0 is not a valid partition table."
            )
        if ptype == 0:
            continue
        if ptype == 0xEE:
            table.protective = True
            continue
        others += 1
        if start == 0 or count == 0:
            raise InvalidPartitionTable(
                f"MBR entry {i + 1} (type 0x{ptype:02x}) starts at sector {start} with "
                f"{count} sectors."
            )
        if start + count > total_sectors:
            table.warnings.append(
                f"MBR partition {i + 1} ends at sector {start + count}, beyond the end of the "
                f"disk ({total_sectors} sectors)."
            )
        if ptype in _MBR_EXTENDED:
            extended.append((start, count))
            continue
        table.partitions.append(
            Partition(
                index=i + 1,
                start=start * SECTOR,
                size=count * SECTOR,
                type=f"0x{ptype:02x}",
                type_name=MBR_TYPES.get(ptype, "Unknown"),
                bootable=status == 0x80,
            )
        )
    table.hybrid = table.protective and others > 0
    if len(extended) > 1:
        table.warnings.append(
            f"The MBR has {len(extended)} extended partitions; only the first is read."
        )
    if extended:
        table.partitions.extend(_read_logical(view, *extended[0], table.warnings, limits))
    _check_overlaps(table.partitions, table.warnings)
    return table


def _read_logical(
    view: _DiskView, ext_start: int, ext_count: int, warnings: list[str], limits: ProbeLimits
) -> list[Partition]:
    """Logical partitions: a chain of EBRs, each relative to the extended partition."""
    found: list[Partition] = []
    ebr = ext_start
    seen: set[int] = set()
    total_sectors = view.size // SECTOR
    while True:
        if ebr in seen:
            raise InvalidPartitionTable(f"The extended partition's EBR chain loops at {ebr}.")
        if len(seen) >= limits.max_logical_partitions:
            warnings.append(
                f"More than {limits.max_logical_partitions} logical partitions; stopped reading."
            )
            break
        seen.add(ebr)
        if ebr >= total_sectors:
            raise InvalidPartitionTable(f"An EBR at sector {ebr} lies beyond the end of the disk.")
        sector = view.read(ebr * SECTOR, SECTOR)
        if sector[510:512] != b"\x55\xaa":
            raise InvalidPartitionTable(f"The EBR at sector {ebr} has no 55 AA signature.")
        first, second = sector[446:462], sector[462:478]
        if first[4] != 0:
            start = ebr + _u32(first, 8)
            count = _u32(first, 12)
            if count == 0 or start >= total_sectors:
                raise InvalidPartitionTable(
                    f"The logical partition described at sector {ebr} is invalid."
                )
            if start + count > total_sectors:
                warnings.append(
                    f"Logical partition {5 + len(found)} ends beyond the end of the disk."
                )
            found.append(
                Partition(
                    index=5 + len(found),
                    start=start * SECTOR,
                    size=count * SECTOR,
                    type=f"0x{first[4]:02x}",
                    type_name=MBR_TYPES.get(first[4], "Unknown"),
                    bootable=first[0] == 0x80,
                    logical=True,
                )
            )
        if second[4] not in _MBR_EXTENDED or _u32(second, 8) == 0:
            break
        ebr = ext_start + _u32(second, 8)
        if ebr >= ext_start + ext_count:
            raise InvalidPartitionTable(
                f"An EBR at sector {ebr} lies outside its extended partition."
            )
    return found


def _check_overlaps(parts: list[Partition], warnings: list[str]) -> None:
    ordered = sorted(parts, key=lambda p: p.start)
    for a, b in itertools.pairwise(ordered):
        if b.start < a.end:
            warnings.append(f"Partitions {a.index} and {b.index} overlap.")


_GPT_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")


def _guid(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=raw)).upper()


def read_gpt(
    reader: RangeReader | _DiskView,
    *,
    disk_size: int | None = None,
    limits: ProbeLimits | None = None,
) -> GptTable:
    """Parse the GPT (header at LBA 1, falling back to the backup at the last LBA).

    Raises `NoPartitionTable` when neither header has the `EFI PART` signature
    and `InvalidPartitionTable` when the headers or entry array are malformed
    (bad CRCs, sizes out of range).
    """
    limits = limits or ProbeLimits()
    view = _view(reader, disk_size, limits)
    total = view.size // SECTOR
    if total < 3:
        raise NoPartitionTable("The disk is too small to hold a GPT.")
    errors: list[DiskProbeError] = []
    for lba, backup in ((1, False), (total - 1, True)):
        try:
            table = _read_gpt_at(view, lba, total, limits)
        except ProbeBudgetExceeded:
            raise
        except DiskProbeError as exc:
            errors.append(exc)
            continue
        if backup:
            table.used_backup = True
            table.warnings.append(
                f"The primary GPT is unusable ({errors[0].message}); the backup GPT was used."
            )
        return table
    if all(isinstance(e, NoPartitionTable) for e in errors):
        raise NoPartitionTable("No GPT header at LBA 1 or at the last LBA.")
    raise InvalidPartitionTable(
        "The GPT is unreadable: "
        + "; ".join(
            f"{where} GPT: {e.message}"
            for where, e in zip(("primary", "backup"), errors, strict=False)
        )
    )


def _read_gpt_at(view: _DiskView, lba: int, total: int, limits: ProbeLimits) -> GptTable:
    hdr = view.read(lba * SECTOR, SECTOR)
    if hdr[:8] != b"EFI PART":
        raise NoPartitionTable(f"no 'EFI PART' signature at LBA {lba}")
    (
        _sig,
        _revision,
        header_size,
        header_crc,
        _reserved,
        my_lba,
        _alternate,
        first_usable,
        last_usable,
        disk_guid,
        entries_lba,
        num_entries,
        entry_size,
        entries_crc,
    ) = _GPT_HEADER.unpack_from(hdr)
    if not 92 <= header_size <= SECTOR:
        raise InvalidPartitionTable(f"header size {header_size} is outside 92..512")
    zeroed = hdr[:16] + b"\0\0\0\0" + hdr[20:header_size]
    if zlib.crc32(zeroed) != header_crc:
        raise InvalidPartitionTable(f"header CRC mismatch at LBA {lba}")
    if my_lba != lba:
        raise InvalidPartitionTable(f"header at LBA {lba} says it is at LBA {my_lba}")
    if entry_size < 128 or entry_size % 8 or entry_size > 4096:
        raise InvalidPartitionTable(f"entry size {entry_size} is invalid")
    array_bytes = num_entries * entry_size
    if array_bytes > limits.max_gpt_array_bytes:
        raise InvalidPartitionTable(
            f"{num_entries} entries of {entry_size} bytes exceed the "
            f"{limits.max_gpt_array_bytes}-byte limit"
        )
    if entries_lba < 2 or entries_lba * SECTOR + array_bytes > total * SECTOR:
        raise InvalidPartitionTable(f"entry array at LBA {entries_lba} lies outside the disk")
    if first_usable > last_usable or first_usable >= total:
        raise InvalidPartitionTable(
            f"usable LBAs {first_usable}..{last_usable} do not fit the disk ({total} sectors)"
        )
    array = view.read(entries_lba * SECTOR, array_bytes)
    if zlib.crc32(array) != entries_crc:
        raise InvalidPartitionTable("partition entry array CRC mismatch")
    table = GptTable(
        disk_guid=_guid(disk_guid),
        partitions=[],
        first_usable_lba=first_usable,
        last_usable_lba=last_usable,
        used_backup=False,
    )
    if last_usable >= total:
        # A valid header for a larger disk: the disk was cut short, taking the backup GPT.
        table.warnings.append(
            f"The GPT was written for a larger disk (usable sectors up to LBA {last_usable}) "
            f"than this one ({total} sectors): the disk was cut short."
        )
    for i in range(num_entries):
        entry = array[i * entry_size : (i + 1) * entry_size]
        if entry[:16] == b"\0" * 16:
            continue
        type_guid = _guid(entry[:16])
        first, last = _u64(entry, 32), _u64(entry, 40)
        if last < first:
            table.warnings.append(f"GPT entry {i + 1} ends (LBA {last}) before it starts.")
            continue
        if last >= total:
            table.warnings.append(
                f"GPT partition {i + 1} ends at LBA {last}, beyond the end of the disk."
            )
        name = entry[56:128].decode("utf-16-le", "replace").split("\0", 1)[0]
        table.partitions.append(
            Partition(
                index=i + 1,
                start=first * SECTOR,
                size=(last - first + 1) * SECTOR,
                type=type_guid,
                type_name=GPT_TYPES.get(type_guid, "Unknown"),
                name=name,
                guid=_guid(entry[16:32]),
                attributes=_u64(entry, 48),
                # Bit 2 is "legacy BIOS bootable".
                bootable=bool(_u64(entry, 48) & 0x4),
            )
        )
    _check_overlaps(table.partitions, table.warnings)
    return table


# --------------------------------------------------------------------------------------
# File system signatures.

_EXT3_INCOMPAT = 0x0002 | 0x0004 | 0x0010  # filetype, recover, meta_bg
_EXT3_RO_COMPAT = 0x0001 | 0x0002 | 0x0004  # sparse_super, large_file, btree_dir
_COMPAT_HAS_JOURNAL = 0x0004
_INCOMPAT_JOURNAL_DEV = 0x0008


def _ext_flavour(sb: bytes) -> str:
    compat, incompat, ro_compat = _u32(sb, 92), _u32(sb, 96), _u32(sb, 100)
    if incompat & _INCOMPAT_JOURNAL_DEV:
        return "jbd"
    if incompat & ~_EXT3_INCOMPAT or ro_compat & ~_EXT3_RO_COMPAT:
        return "ext4"
    return "ext3" if compat & _COMPAT_HAS_JOURNAL else "ext2"


def _label(raw: bytes) -> str | None:
    text = raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()
    return text or None


def _identify(head: bytes) -> tuple[str | None, str | None]:
    """(file system, label) from the first 4 KiB of a partition."""
    oem = head[3:11]
    if oem == b"NTFS    ":
        return "ntfs", None
    if oem == b"EXFAT   ":
        return "exfat", None
    if oem == b"-FVE-FS-":
        return "bitlocker", None
    if head[3:7] == b"ReFS":
        return "refs", None
    if head[:4] == b"XFSB":
        return "xfs", _label(head[108:120])
    if head[:6] == b"LUKS\xba\xbe":
        return "crypto_LUKS", None
    for sector in range(4):
        label = head[sector * SECTOR : sector * SECTOR + 32]
        if label[:8] == b"LABELONE" and label[24:32] == b"LVM2 001":
            return "lvm2", None
    if len(head) >= 1082 and _u16(head, 1080) == 0xEF53 and _u32(head, 1024 + 24) <= 6:
        return _ext_flavour(head[1024:2048]), _label(head[1024 + 120 : 1024 + 136])
    if len(head) >= 4096 and head[4086:4096] in (b"SWAPSPACE2", b"SWAP-SPACE"):
        return "swap", _label(head[1024 + 28 : 1024 + 44])
    if head[510:512] == b"\x55\xaa" and _u16(head, 11) in (512, 1024, 2048, 4096):
        if head[82:90] == b"FAT32   ":
            return "fat32", _fat_label(head[71:82])
        if head[54:62] in (b"FAT16   ", b"FAT12   ", b"FAT     "):
            kind = "fat12" if head[54:59] == b"FAT12" else "fat16"
            return kind, _fat_label(head[43:54])
    return None, None


def _fat_label(raw: bytes) -> str | None:
    text = raw.decode("latin-1").strip()
    return None if text in ("", "NO NAME") else text


def _detect(view: _DiskView, offset: int, size: int | None) -> tuple[str | None, str | None]:
    if offset < 0 or offset >= view.size:
        raise DiskProbeError(f"Partition offset {offset} lies outside the disk.")
    avail = view.size - offset if size is None else min(size, view.size - offset)
    head = view.read(offset, min(4096, avail))
    found = _identify(head)
    # btrfs keeps its superblock at 64 KiB: one more small read, only when needed.
    if found[0] is None and avail >= 0x10048 and view.read(offset + 0x10040, 8) == b"_BHRfS_M":
        return "btrfs", None
    return found


def detect_filesystem(
    reader: RangeReader | _DiskView,
    offset: int = 0,
    size: int | None = None,
    *,
    limits: ProbeLimits | None = None,
) -> str | None:
    """The file system at `offset` by its signature: ext2/3/4, xfs, ntfs, fat32/16/12,
    exfat, swap, lvm2, crypto_LUKS, btrfs, refs, bitlocker; None if unrecognised."""
    limits = limits or ProbeLimits()
    return _detect(_view(reader, None, limits), offset, size)[0]


# --------------------------------------------------------------------------------------
# ext2/3/4.

_S_IFMT = 0xF000
_S_IFDIR = 0x4000
_S_IFREG = 0x8000
_S_IFLNK = 0xA000
_EXTENTS_FL = 0x80000
_INLINE_DATA_FL = 0x10000000
_INCOMPAT_FILETYPE = 0x0002
_INCOMPAT_META_BG = 0x0010
_INCOMPAT_64BIT = 0x0080
_RO_COMPAT_SPARSE_SUPER = 0x0001
_EXTENT_MAGIC = 0xF30A
_ROOT_INODE = 2


@dataclass(frozen=True)
class _Inode:
    number: int
    mode: int
    size: int
    flags: int
    block: bytes  # i_block, 60 bytes
    raw: bytes

    @property
    def kind(self) -> int:
        return self.mode & _S_IFMT


class Ext4Reader:
    """Reads files from an ext2/3/4 file system by path, through ranged reads only.

    Handles 32- and 64-byte group descriptors (and meta_bg), extent trees of
    any depth up to ext4's 5, ext2/3 direct and indirect block pointers,
    inline data, linear directory scans (htree leaves hold ordinary entries)
    and fast and slow symlinks, absolute or relative. Everything is bounded by
    `ProbeLimits`; anything malformed raises `UnreadableFilesystem`.
    """

    def __init__(
        self,
        reader: RangeReader | _DiskView,
        *,
        offset: int = 0,
        size: int | None = None,
        limits: ProbeLimits | None = None,
    ) -> None:
        self.limits = limits or ProbeLimits()
        self._view = _view(reader, None, self.limits)
        if offset < 0 or offset >= self._view.size:
            raise UnreadableFilesystem(f"File system offset {offset} lies outside the disk.")
        self._offset = offset
        avail = self._view.size - offset
        self._size = avail if size is None else max(0, min(size, avail))
        if self._size < 2048:
            raise UnreadableFilesystem("The partition is too small for an ext superblock.")
        sb = self._view.read(offset + 1024, 1024)
        if _u16(sb, 56) != 0xEF53:
            raise UnreadableFilesystem("No ext2/3/4 superblock (magic 0xEF53 at byte 1080).")
        log_bs = _u32(sb, 24)
        if log_bs > 6:
            raise UnreadableFilesystem(f"Invalid block size exponent {log_bs}.")
        self.block_size = 1024 << log_bs
        self.inodes_count = _u32(sb, 0)
        self.first_data_block = _u32(sb, 20)
        self.blocks_per_group = _u32(sb, 32)
        self.inodes_per_group = _u32(sb, 40)
        self.incompat = _u32(sb, 96)
        self.ro_compat = _u32(sb, 100)
        self.rev_level = _u32(sb, 76)
        self.inode_size = 128 if self.rev_level == 0 else _u16(sb, 88)
        self.is_64bit = bool(self.incompat & _INCOMPAT_64BIT)
        self.desc_size = _u16(sb, 254) if self.is_64bit else 32
        blocks_hi = _u32(sb, 0x150) if self.is_64bit else 0
        self.blocks_count = _u32(sb, 4) | (blocks_hi << 32)
        self.first_meta_bg = _u32(sb, 0x104)
        self.volume_name = _label(sb[120:136])
        self.flavour = _ext_flavour(sb)
        bs = self.block_size
        if self.inodes_per_group == 0 or self.inodes_per_group > bs * 8:
            raise UnreadableFilesystem(f"Invalid inodes per group {self.inodes_per_group}.")
        if self.blocks_per_group == 0:
            raise UnreadableFilesystem("Invalid blocks per group 0.")
        if self.inodes_count == 0:
            raise UnreadableFilesystem("The superblock says there are no inodes.")
        size = self.inode_size
        if size < 128 or size > bs or size & (size - 1):
            raise UnreadableFilesystem(f"Invalid inode size {size}.")
        if self.desc_size < 32 or self.desc_size > bs or self.desc_size & (self.desc_size - 1):
            raise UnreadableFilesystem(f"Invalid group descriptor size {self.desc_size}.")
        if self.first_data_block > 1:
            raise UnreadableFilesystem(f"Invalid first data block {self.first_data_block}.")
        if self.blocks_count == 0:
            raise UnreadableFilesystem("The superblock says there are no blocks.")
        self._has_filetype = bool(self.incompat & _INCOMPAT_FILETYPE)
        self._inodes: dict[int, _Inode] = {}

    # -- low level ---------------------------------------------------------------------

    def _read_block(self, block: int, count: int = 1) -> bytes:
        if block == 0:
            # Block 0 holds the boot block or the superblock, never file data.
            raise UnreadableFilesystem("A file or directory points at block 0.")
        if block + count > self.blocks_count:
            raise UnreadableFilesystem(
                f"Block {block} (+{count}) lies beyond the file system ({self.blocks_count} "
                "blocks)."
            )
        start = block * self.block_size
        length = count * self.block_size
        if start + length > self._size:
            raise UnreadableFilesystem(f"Block {block} lies beyond the end of the partition.")
        return self._view.read(self._offset + start, length)

    def _has_super(self, group: int) -> bool:
        if group <= 1 or not self.ro_compat & _RO_COMPAT_SPARSE_SUPER:
            return True
        for base in (3, 5, 7):
            n = base
            while n < group:
                n *= base
            if n == group:
                return True
        return False

    def _group_desc(self, group: int) -> bytes:
        per_block = self.block_size // self.desc_size
        index = group // per_block
        if self.incompat & _INCOMPAT_META_BG and index >= self.first_meta_bg:
            first_group = index * per_block
            block = (
                self.first_data_block
                + first_group * self.blocks_per_group
                + (1 if self._has_super(first_group) else 0)
            )
        else:
            block = self.first_data_block + 1 + index
        data = self._read_block(block)
        off = (group % per_block) * self.desc_size
        return data[off : off + self.desc_size]

    def read_inode(self, number: int) -> _Inode:
        """The inode `number` (1-based)."""
        if number in self._inodes:
            return self._inodes[number]
        if not 1 <= number <= self.inodes_count:
            raise UnreadableFilesystem(
                f"Inode {number} is outside 1..{self.inodes_count}: the file system is damaged."
            )
        group, index = divmod(number - 1, self.inodes_per_group)
        desc = self._group_desc(group)
        table = _u32(desc, 8)
        if self.desc_size >= 64 and self.is_64bit:
            table |= _u32(desc, 0x28) << 32
        per_block = self.block_size // self.inode_size
        block = table + index // per_block
        data = self._read_block(block)
        off = (index % per_block) * self.inode_size
        raw = data[off : off + self.inode_size]
        size = _u32(raw, 4) | (_u32(raw, 108) << 32)
        inode = _Inode(
            number=number,
            mode=_u16(raw, 0),
            size=size,
            flags=_u32(raw, 32),
            block=raw[40:100],
            raw=raw,
        )
        self._inodes[number] = inode
        return inode

    def _inline_data(self, inode: _Inode) -> bytes:
        """Inline data: 60 bytes in i_block, the rest in the `system.data` in-inode xattr."""
        extra = b""
        raw = inode.raw
        if len(raw) > 132:
            start = 128 + _u16(raw, 128)
            if start + 4 <= len(raw) and _u32(raw, start) == 0xEA020000:
                first = start + 4
                pos = first
                while pos + 16 <= len(raw):
                    name_len, name_index = raw[pos], raw[pos + 1]
                    value_offs, value_size = _u16(raw, pos + 2), _u32(raw, pos + 8)
                    if name_len == 0 and name_index == 0 and value_offs == 0:
                        break
                    name = raw[pos + 16 : pos + 16 + name_len]
                    if name_index == 7 and name == b"data":
                        value = raw[first + value_offs : first + value_offs + value_size]
                        if len(value) != value_size:
                            raise UnreadableFilesystem(
                                f"Inode {inode.number}: inline data runs past the inode."
                            )
                        extra = value
                        break
                    pos += (16 + name_len + 3) & ~3
        return inode.block + extra

    def _block_map(self, inode: _Inode, nblocks: int) -> list[int]:
        """Physical block of each of the first `nblocks` logical blocks (0 = hole)."""
        if inode.flags & _EXTENTS_FL:
            return self._extent_map(inode, nblocks)
        return self._indirect_map(inode, nblocks)

    def _extent_map(self, inode: _Inode, nblocks: int) -> list[int]:
        mapping = [0] * nblocks
        limits = self.limits
        # Iterative walk: (node bytes, the depth its parent expects or None at the root).
        stack: list[tuple[bytes, int | None]] = [(inode.block, None)]
        visited = 0
        while stack:
            node, expected_depth = stack.pop()
            magic, entries, max_entries, depth = struct.unpack_from("<HHHH", node, 0)
            if magic != _EXTENT_MAGIC:
                raise UnreadableFilesystem(f"Inode {inode.number}: bad extent header magic.")
            if depth > limits.max_extent_depth:
                raise UnreadableFilesystem(f"Inode {inode.number}: extent depth {depth}.")
            if expected_depth is not None and depth != expected_depth:
                raise UnreadableFilesystem(f"Inode {inode.number}: inconsistent extent depth.")
            if entries > max_entries or 12 + 12 * max_entries > len(node):
                raise UnreadableFilesystem(f"Inode {inode.number}: bad extent entry count.")
            children: list[bytes] = []
            for i in range(entries):
                e = node[12 + 12 * i : 24 + 12 * i]
                first = _u32(e, 0)
                if first >= nblocks:
                    continue  # beyond what we need; entries are sorted
                if depth == 0:
                    length = _u16(e, 4)
                    uninitialised = length > 32768
                    if uninitialised:
                        length -= 32768
                    start = (_u16(e, 6) << 32) | _u32(e, 8)
                    if start + length > self.blocks_count:
                        raise UnreadableFilesystem(
                            f"Inode {inode.number}: extent beyond the file system."
                        )
                    if not uninitialised:  # unwritten extents read as zeros
                        for lb in range(first, min(first + length, nblocks)):
                            mapping[lb] = start + (lb - first)
                else:
                    visited += 1
                    if visited > limits.max_extent_nodes:
                        raise ProbeLimitExceeded(
                            f"Inode {inode.number}: more than {limits.max_extent_nodes} extent "
                            "tree blocks."
                        )
                    leaf = (_u16(e, 8) << 32) | _u32(e, 4)
                    children.append(self._read_block(leaf))
            stack.extend((child, depth - 1) for child in reversed(children))
        return mapping

    def _indirect_map(self, inode: _Inode, nblocks: int) -> list[int]:
        ptrs = struct.unpack_from("<15I", inode.block)
        mapping = list(ptrs[: min(12, nblocks)])
        per = self.block_size // 4
        for depth, root in ((1, ptrs[12]), (2, ptrs[13]), (3, ptrs[14])):
            need = nblocks - len(mapping)
            if need <= 0:
                break
            mapping.extend(self._indirect(root, depth, min(need, per**depth)))
        return mapping

    def _indirect(self, root: int, depth: int, count: int) -> list[int]:
        # Depth is at most 3 (triple indirect), so this recursion is bounded.
        if root == 0:
            return [0] * count
        ptrs = struct.unpack(f"<{self.block_size // 4}I", self._read_block(root))
        if depth == 1:
            return list(ptrs[:count])
        per_child = (self.block_size // 4) ** (depth - 1)
        out: list[int] = []
        for p in ptrs:
            if len(out) >= count:
                break
            out.extend(self._indirect(p, depth - 1, min(per_child, count - len(out))))
        return out

    def _content(self, inode: _Inode, max_bytes: int) -> bytes:
        if inode.size > max_bytes:
            raise ProbeLimitExceeded(
                f"Inode {inode.number} is {inode.size} bytes, more than the {max_bytes}-byte limit."
            )
        if inode.flags & _INLINE_DATA_FL:
            data = self._inline_data(inode)
            if len(data) < inode.size:
                raise UnreadableFilesystem(f"Inode {inode.number}: inline data is short.")
            return data[: inode.size]
        bs = self.block_size
        nblocks = -(-inode.size // bs)
        mapping = self._block_map(inode, nblocks)
        out = bytearray()
        i = 0
        while i < nblocks:
            if mapping[i] == 0:
                out += b"\0" * bs
                i += 1
                continue
            j = i + 1
            while j < nblocks and mapping[j] == mapping[j - 1] + 1:
                j += 1
            out += self._read_block(mapping[i], j - i)
            i = j
        return bytes(out[: inode.size])

    def _dir_entries(self, data: bytes, inode: _Inode) -> list[tuple[bytes, int]]:
        """(name, inode) of the live entries in one directory block (or inline area)."""
        found: list[tuple[bytes, int]] = []
        pos = 0
        end = len(data)
        while pos + 8 <= end:
            ino, rec_len, name_len, ftype = struct.unpack_from("<IHBB", data, pos)
            if self.block_size >= 65536 and rec_len in (0, 65535):
                rec_len = 65536
            if not self._has_filetype:
                name_len |= ftype << 8
            if rec_len < 8 or rec_len % 4 or pos + rec_len > end or name_len > rec_len - 8:
                raise UnreadableFilesystem(
                    f"Directory inode {inode.number}: corrupt entry at byte {pos}."
                )
            if ino:
                found.append((data[pos + 8 : pos + 8 + name_len], ino))
            pos += rec_len
        return found

    def _find(self, directory: _Inode, name: bytes) -> int | None:
        if directory.kind != _S_IFDIR:
            raise UnreadableFilesystem(f"Inode {directory.number} is not a directory.")
        if directory.flags & _INLINE_DATA_FL:
            # The first 4 bytes are the parent's inode number, then ordinary entries.
            data = self._inline_data(directory)[: max(directory.size, 60)]
            if name == b"..":
                return _u32(data, 0)
            for entry, ino in self._dir_entries(data[4:60], directory) + self._dir_entries(
                data[60:], directory
            ):
                if entry == name:
                    return ino
            return None
        bs = self.block_size
        nblocks = -(-directory.size // bs)
        if nblocks > self.limits.max_dir_blocks:
            raise ProbeLimitExceeded(
                f"Directory inode {directory.number} has {nblocks} blocks, more than the "
                f"{self.limits.max_dir_blocks}-block limit."
            )
        for block in self._block_map(directory, nblocks):
            if block == 0:
                continue
            for entry, ino in self._dir_entries(self._read_block(block), directory):
                if entry == name:
                    return ino
        return None

    def _symlink_target(self, inode: _Inode) -> bytes:
        if inode.size == 0 or inode.size > 4096:
            raise UnreadableFilesystem(f"Symlink inode {inode.number} has size {inode.size}.")
        if inode.size < 60 and not inode.flags & (_EXTENTS_FL | _INLINE_DATA_FL):
            return inode.block[: inode.size]  # a fast symlink: the target is in i_block
        return self._content(inode, 4096)

    # -- by path -----------------------------------------------------------------------

    def lookup(self, path: str, *, follow_final: bool = True) -> int:
        """The inode number at `path`, resolving `.`, `..` and symlinks (bounded)."""
        components = deque(path.encode("utf-8", "surrogateescape").split(b"/"))
        chain = [_ROOT_INODE]  # directories from the root to the current one
        hops = 0
        steps = 0
        while components:
            name = components.popleft()
            steps += 1
            if steps > self.limits.max_path_components:
                raise ProbeLimitExceeded(f"Resolving {path!r} takes too many steps.")
            if name in (b"", b"."):
                continue
            if name == b"..":
                if len(chain) > 1:
                    chain.pop()
                continue
            directory = self.read_inode(chain[-1])
            number = self._find(directory, name)
            if number is None:
                raise FileNotFoundOnDisk(
                    f"{path!r}: {name.decode('utf-8', 'replace')!r} not found."
                )
            inode = self.read_inode(number)
            if inode.kind == _S_IFLNK and (components or follow_final):
                hops += 1
                if hops > self.limits.max_symlink_hops:
                    raise ProbeLimitExceeded(
                        f"Resolving {path!r} follows more than {self.limits.max_symlink_hops} "
                        "symlinks."
                    )
                target = self._symlink_target(inode)
                if target.startswith(b"/"):
                    chain = [_ROOT_INODE]
                components.extendleft(reversed(target.split(b"/")))
                continue
            if components and inode.kind != _S_IFDIR:
                raise FileNotFoundOnDisk(
                    f"{path!r}: {name.decode('utf-8', 'replace')!r} is not a directory."
                )
            chain.append(number)
        return chain[-1]

    def read_file(self, path: str, *, max_bytes: int | None = None) -> bytes:
        """The contents of the regular file at `path` (symlinks followed)."""
        limit = self.limits.max_file_bytes if max_bytes is None else max_bytes
        inode = self.read_inode(self.lookup(path))
        if inode.kind != _S_IFREG:
            raise FileNotFoundOnDisk(f"{path!r} is not a regular file.")
        return self._content(inode, limit)

    def read_link(self, path: str) -> str:
        inode = self.read_inode(self.lookup(path, follow_final=False))
        if inode.kind != _S_IFLNK:
            raise FileNotFoundOnDisk(f"{path!r} is not a symlink.")
        return self._symlink_target(inode).decode("utf-8", "surrogateescape")

    def list_dir(self, path: str) -> list[str]:
        """Names in the directory at `path` (bounded like every other read)."""
        directory = self.read_inode(self.lookup(path))
        if directory.kind != _S_IFDIR:
            raise FileNotFoundOnDisk(f"{path!r} is not a directory.")
        if directory.flags & _INLINE_DATA_FL:
            data = self._inline_data(directory)
            entries = self._dir_entries(data[4:60], directory) + self._dir_entries(
                data[60:], directory
            )
            names = [b".", b".."] + [n for n, _ in entries]
        else:
            nblocks = -(-directory.size // self.block_size)
            if nblocks > self.limits.max_dir_blocks:
                raise ProbeLimitExceeded(f"Directory {path!r} is too large to list.")
            names = []
            for block in self._block_map(directory, nblocks):
                if block:
                    names += [n for n, _ in self._dir_entries(self._read_block(block), directory)]
        return [n.decode("utf-8", "surrogateescape") for n in names]


def read_ext4_file(
    reader: RangeReader,
    path: str,
    *,
    offset: int = 0,
    size: int | None = None,
    max_bytes: int | None = None,
    limits: ProbeLimits | None = None,
) -> bytes:
    """Read one file from the ext2/3/4 file system at `offset`."""
    fs = Ext4Reader(reader, offset=offset, size=size, limits=limits)
    return fs.read_file(path, max_bytes=max_bytes)


def parse_os_release(text: str) -> dict[str, str]:
    """Parse os-release(5): KEY=value lines, values optionally quoted with shell escapes."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        if not key.replace("_", "").isalnum():
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                out, i = [], 0
                while i < len(value):
                    ch = value[i]
                    if ch == "\\" and i + 1 < len(value) and value[i + 1] in '"\\$`':
                        out.append(value[i + 1])
                        i += 2
                        continue
                    out.append(ch)
                    i += 1
                value = "".join(out)
        result[key] = value
    return result


# --------------------------------------------------------------------------------------
# The probe.

_LINUX_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "swap", "lvm2", "crypto_LUKS"}
_WINDOWS_FS = {"ntfs", "refs", "bitlocker"}
_EXT = {"ext2", "ext3", "ext4"}


@dataclass
class DiskProbe:
    """What the probe found. `generation` is a hint: 2 for GPT with an ESP, 1 for MBR."""

    disk_size: int
    partition_style: str | None = None  # "MBR", "GPT" or None
    partitions: list[Partition] = field(default_factory=list)
    filesystems: list[str] = field(default_factory=list)
    os: str | None = None  # "Linux", "Windows" or None
    os_release: dict[str, str] = field(default_factory=dict)
    os_release_partition: int | None = None  # 0 for a file system without partitions
    generation: int | None = None
    warnings: list[str] = field(default_factory=list)
    reads: int = 0
    bytes_read: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "diskSize": self.disk_size,
            "partitionStyle": self.partition_style,
            "partitions": [p.to_dict() for p in self.partitions],
            "filesystems": list(self.filesystems),
            "os": self.os,
            "osRelease": dict(self.os_release),
            "osReleasePartition": self.os_release_partition,
            "generation": self.generation,
            "warnings": list(self.warnings),
            "reads": self.reads,
            "bytesRead": self.bytes_read,
        }


def _name(p: Partition) -> str:
    return f"partition {p.index} ({p.type_name}, {p.type})"


def probe_disk(
    reader: RangeReader, *, disk_size: int, limits: ProbeLimits | None = None
) -> DiskProbe:
    """Probe the virtual disk (the first `disk_size` bytes of `reader`).

    Never raises for what is on the disk: unreadable structures become warnings.
    """
    limits = limits or ProbeLimits()
    view = _DiskView(reader, disk_size, limits)
    result = DiskProbe(disk_size=disk_size)
    try:
        _probe(view, result, limits)
    except DiskProbeError as exc:
        # Only the byte budget can get here; what was learned so far stays.
        result.warnings.append(f"The probe stopped early: {exc.message}")
    result.reads = view.reads
    result.bytes_read = view.bytes_read
    return result


def check_partitions_fit(probe: DiskProbe) -> None:
    """Reject a disk whose partitions run past its end: it was cut short and won't boot.

    Raises `PartitionBeyondDisk` naming each such partition, where it ends and
    how big the disk is. OS disks and data disks alike: a cut file system is
    broken whatever the disk is for.
    """
    beyond = [p for p in probe.partitions if p.end > probe.disk_size]
    if not beyond:
        return
    described = "; ".join(
        f"partition {p.index} ({p.type_name}{f' {p.name!r}' if p.name else ''}, {p.type}) "
        f"ends at byte {p.end}"
        for p in beyond[:4]
    )
    more = f" (and {len(beyond) - 4} more)" if len(beyond) > 4 else ""
    raise PartitionBeyondDisk(
        f"{described}{more}, but the disk is only {probe.disk_size} bytes: the disk was cut "
        "short (truncated while it was copied, converted or uploaded), so its file systems "
        "are incomplete and it won't boot. Take the whole source disk again and upload the "
        "complete file as it is (the catalog converts VHD, VHDX, qcow2, VMDK, OVA and raw "
        "disks to a fixed VHD itself)."
    )


def _probe(view: _DiskView, result: DiskProbe, limits: ProbeLimits) -> None:
    warnings = result.warnings
    if view.size < SECTOR:
        warnings.append(f"The disk is only {view.size} bytes: nothing to probe.")
        return
    mbr: MbrTable | None = None
    mbr_error: str | None = None
    try:
        mbr = read_mbr(view, limits=limits)
    except NoPartitionTable as exc:
        mbr_error = exc.message
    except DiskProbeError as exc:
        mbr_error = exc.message
        warnings.append(f"The MBR is invalid: {exc.message}")
    gpt_signature = view.size >= 2 * SECTOR and view.read(SECTOR, 8) == b"EFI PART"
    if gpt_signature or (mbr is not None and mbr.protective):
        result.partition_style = "GPT"
        try:
            gpt = read_gpt(view, limits=limits)
        except DiskProbeError as exc:
            warnings.append(f"The GPT is unreadable: {exc.message}")
            gpt = None
        if gpt is not None:
            result.partitions = gpt.partitions
            warnings.extend(gpt.warnings)
        if mbr is None or not mbr.protective:
            warnings.append(
                "GPT protective MBR missing: sector 0 has no 0xEE entry, so MBR-only tools "
                "may see the disk as empty and overwrite it. Repair it (e.g. `sgdisk -e` or "
                "write the GPT again with sfdisk/gdisk)."
            )
        elif mbr.hybrid:
            warnings.append(
                "Hybrid MBR: the protective MBR also lists ordinary partitions; firmware may "
                "boot either table. Prefer a pure protective MBR."
            )
    elif mbr is not None:
        result.partition_style = "MBR"
        result.partitions = mbr.partitions
        warnings.extend(mbr.warnings)

    for part in result.partitions:
        if part.size <= 0 or part.start >= view.size:
            continue
        try:
            part.filesystem, part.label = _detect(view, part.start, part.size)
        except ProbeBudgetExceeded:
            raise
        except DiskProbeError as exc:
            warnings.append(f"{_name(part)}: {exc.message}")
            continue
        if part.filesystem is None and part.type not in _NO_FS_EXPECTED:
            warnings.append(f"{_name(part)}: file system not recognised.")

    whole_disk_fs: str | None = None
    if result.partition_style is None:
        whole_disk_fs, _ = _detect(view, 0, None)
        if whole_disk_fs is not None:
            warnings.append(
                f"The disk has no partition table: its {whole_disk_fs} file system starts at "
                "sector 0. Azure OS disks need a partitioned, bootable disk."
            )
        elif not view.read(0, min(view.size, 8192)).strip(b"\0"):
            warnings.append(
                "The disk looks blank: no partition table and no file system (the first "
                "sectors are all zeros). An OS disk must hold a bootable operating system."
            )
        else:
            warnings.append(
                "No partition table and no file system recognised"
                + (f" ({mbr_error})" if mbr_error else "")
                + "."
            )

    fs_list = [p.filesystem for p in result.partitions if p.filesystem]
    if whole_disk_fs:
        fs_list.append(whole_disk_fs)
    result.filesystems = list(dict.fromkeys(fs_list))

    _read_os_release(view, result, whole_disk_fs, limits)
    _infer_os(result)
    _infer_generation(result)
    if result.partition_style == "MBR" and view.size > 2 * TIB:
        warnings.append(
            f"The disk is {view.size} bytes but an MBR addresses only 2 TiB: the space beyond "
            "is unusable. Use GPT (and a Generation 2 VM) for larger OS disks."
        )


def _read_os_release(
    view: _DiskView, result: DiskProbe, whole_disk_fs: str | None, limits: ProbeLimits
) -> None:
    candidates: list[tuple[int, int, int | None]] = []  # (partition index, offset, size)
    if whole_disk_fs in _EXT:
        candidates.append((0, 0, None))

    def rank(p: Partition) -> tuple[int, int]:
        # Root-typed GPT partitions first, then the active MBR one, then the largest.
        return (0 if p.type in _GPT_LINUX_ROOTS else 1 if p.bootable else 2, -p.size)

    for p in sorted((p for p in result.partitions if p.filesystem in _EXT), key=rank):
        candidates.append((p.index, p.start, p.size))
    for index, offset, size in candidates[: limits.max_os_release_candidates]:
        try:
            fs = Ext4Reader(view, offset=offset, size=size, limits=limits)
            try:
                raw = fs.read_file("/etc/os-release")
            except FileNotFoundOnDisk:
                raw = fs.read_file("/usr/lib/os-release")
        except FileNotFoundOnDisk:
            continue
        except ProbeBudgetExceeded:
            raise
        except DiskProbeError as exc:
            result.warnings.append(f"Partition {index}: os-release not read: {exc.message}")
            continue
        result.os_release = parse_os_release(raw.decode("utf-8", "replace"))
        result.os_release_partition = index
        return
    if candidates:
        result.warnings.append(
            "No /etc/os-release found on the ext file systems: the Linux distribution is unknown."
        )
    elif any(fs in {"xfs", "btrfs", "lvm2", "crypto_LUKS"} for fs in result.filesystems):
        kinds = sorted(set(result.filesystems) & {"xfs", "btrfs", "lvm2", "crypto_LUKS"})
        result.warnings.append(
            f"The root file system looks like {'/'.join(kinds)}: the probe reads os-release "
            "only from ext2/3/4, so the Linux distribution is not known."
        )


def _infer_os(result: DiskProbe) -> None:
    def windows(p: Partition) -> bool:
        return p.filesystem in _WINDOWS_FS or p.type in _WINDOWS_GPT or _mbr_type(p) in _WINDOWS_MBR

    def linux(p: Partition) -> bool:
        return p.filesystem in _LINUX_FS or p.type in _LINUX_GPT or _mbr_type(p) in _LINUX_MBR

    parts = result.partitions
    win = any(windows(p) for p in parts) or any(f in _WINDOWS_FS for f in result.filesystems)
    lin = any(linux(p) for p in parts) or any(f in _LINUX_FS for f in result.filesystems)
    if result.os_release:
        result.os = "Linux"
        if win:
            result.warnings.append(
                "The disk also has Windows partitions; it was classified as Linux because an "
                "os-release file was found."
            )
    elif win and lin:
        active = [p for p in parts if p.bootable and result.partition_style == "MBR"]
        if len(active) == 1 and windows(active[0]) != linux(active[0]):
            result.os = "Windows" if windows(active[0]) else "Linux"
        else:
            result.warnings.append(
                "The disk has both Windows and Linux partitions; the operating system could not "
                "be told. Declare it when registering the image."
            )
    elif win:
        result.os = "Windows"
    elif lin:
        result.os = "Linux"
    if result.os == "Linux":
        for p in parts:
            if p.filesystem == "swap" or p.type == GPT_LINUX_SWAP or _mbr_type(p) == 0x82:
                result.warnings.append(
                    f"Partition {p.index} is a swap partition on a Linux OS disk: Azure advises "
                    "against it. Remove it and let cloud-init or the Azure Linux agent create "
                    "swap on the resource disk (ResourceDisk.EnableSwap)."
                )


def _mbr_type(p: Partition) -> int | None:
    if p.type.startswith("0x"):
        try:
            return int(p.type, 16)
        except ValueError:
            return None
    return None


def _infer_generation(result: DiskProbe) -> None:
    if result.partition_style == "MBR":
        result.generation = 1
    elif result.partition_style == "GPT":
        types = {p.type for p in result.partitions}
        if GPT_EFI in types:
            result.generation = 2
        elif GPT_BIOS_BOOT in types:
            result.generation = 1
        elif result.partitions:
            result.warnings.append(
                "GPT disk without an EFI system partition: a Generation 2 (UEFI) VM cannot boot "
                "it, and without a BIOS boot partition a Generation 1 VM probably cannot either."
            )
