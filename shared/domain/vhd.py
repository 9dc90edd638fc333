"""Strict validation of a VHD that Azure can turn into a disk, by ranged reads.

Azure accepts only a *fixed* VHD: the raw virtual disk followed by a 512-byte
footer whose current size is a whole number of MiB and equals the blob length
minus 512. Everything else (dynamic or differencing VHDs, VHDX, qcow2, VMDK,
VDI, ISO, raw images, archives, truncated copies) is rejected here with a
specific, stable code and a message that says what to do about it.

The validator never reads the whole blob: the happy path takes two reads (the
last KiB and the first 4 KiB); a rejection takes at most four.

`build_footer` writes a valid footer, so tests and benchmarks can make huge
sparse fixed VHDs in milliseconds (truncate + write 512 bytes).
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.domain.errors import UploadRejected
from shared.domain.ranged import RangeReader

__all__ = [
    "DEFAULT_MIN_SIZE_BYTES",
    "DISK_TYPE_DIFFERENCING",
    "DISK_TYPE_DYNAMIC",
    "DISK_TYPE_FIXED",
    "FIXED_DATA_OFFSET",
    "FOOTER_COOKIE",
    "FOOTER_SIZE",
    "MIB",
    "REJECTION_CODES",
    "CompressedArchive",
    "DataAfterVhdFooter",
    "DifferencingVhdNotSupported",
    "DiskTooLarge",
    "DiskTooSmall",
    "DynamicVhdNotSupported",
    "EmptyBlob",
    "InvalidVhdDataOffset",
    "InvalidVhdDiskType",
    "InvalidVhdFooter",
    "InvalidVhdFooterChecksum",
    "InvalidVhdFormatVersion",
    "LegacyVhdFooter",
    "MissingVhdFooter",
    "NestedDiskImage",
    "NotADisk",
    "NotSectorAligned",
    "RawDiskWithoutFooter",
    "TruncatedVhd",
    "UnsupportedFormat",
    "UnsupportedFormatIso",
    "UnsupportedFormatQcow2",
    "UnsupportedFormatVdi",
    "UnsupportedFormatVhdx",
    "UnsupportedFormatVmdk",
    "VhdFooter",
    "VhdRejected",
    "VhdSizeMismatch",
    "VirtualSizeNotWholeMiB",
    "build_footer",
    "chs_geometry",
    "footer_checksum",
    "parse_footer",
    "validate_vhd",
]

SECTOR = 512
FOOTER_SIZE = 512
MIB = 1024 * 1024
GIB = 1024 * MIB
FOOTER_COOKIE = b"conectix"
FIXED_DATA_OFFSET = 0xFFFF_FFFF_FFFF_FFFF
FORMAT_VERSION = 0x0001_0000
FEATURES_RESERVED = 0x0000_0002  # the spec says this bit is always set

DISK_TYPE_FIXED = 2
DISK_TYPE_DYNAMIC = 3
DISK_TYPE_DIFFERENCING = 4
DISK_TYPE_NAMES = {
    0: "none",
    1: "reserved (deprecated)",
    2: "fixed",
    3: "dynamic",
    4: "differencing",
    5: "reserved (deprecated)",
    6: "reserved (deprecated)",
}

# Azure's direct upload refuses anything smaller than 20 MiB (plus the footer).
DEFAULT_MIN_SIZE_BYTES = 20 * MIB

VHD_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

# How many bytes of the blob's start the format sniffing looks at: enough for
# every magic below except ISO 9660, which needs one more small read.
HEAD_BYTES = 4096
TAIL_BYTES = 1024
ISO_MAGIC_OFFSET = 0x8001

# What to do with a disk image that is not an uploadable fixed VHD. Not `qemu-img convert
# -O vpc -o subformat=fixed,force_size=on`: it keeps a size that is not a whole MiB, which
# is then refused as VirtualSizeNotWholeMiB, and it drops a differencing disk's parent.
UPLOAD_AS_IS = (
    "Upload the file as it is into the `uploads` container (a block blob will do), or with "
    "`vmimage upload <file>`: the catalog converts VHD, VHDX, qcow2, VMDK, OVA and raw disks "
    "to a fixed VHD of a whole number of MiB itself."
)
DIFFERENCING_VHD_HINT = (
    "Merge it with its parent into one disk in Hyper-V PowerShell, with the parent beside it: "
    "`Convert-VHD -Path child.vhd -DestinationPath merged.vhd -VHDType Dynamic`, then upload "
    "merged.vhd as it is (the catalog converts it). Not qemu-img: it reads a differencing "
    "VHD without its parent and would silently drop the parent's data."
)
CONVERT_HINT = (
    "Upload the disk image it was made from as it is into the `uploads` container, or with "
    "`vmimage upload <file>`: the catalog converts it to a fixed VHD itself"
)


# --------------------------------------------------------------------------------------
# Rejections: one class per reason, each with a stable code (the class name).


class VhdRejected(UploadRejected):
    """Base for every reason a blob is not an uploadable fixed VHD."""

    code = "UploadRejected"
    summary = "The blob is not an uploadable fixed VHD."


class EmptyBlob(VhdRejected):
    code = "EmptyBlob"
    summary = "The blob is empty (0 bytes)."


class NotSectorAligned(VhdRejected):
    code = "NotSectorAligned"
    summary = "The blob length is not a multiple of 512 bytes."


class LegacyVhdFooter(NotSectorAligned):
    code = "LegacyVhdFooter"
    summary = "A pre-2004 VHD ending in a 511-byte footer (not 512-byte aligned)."


class TruncatedVhd(VhdRejected):
    code = "TruncatedVhd"
    summary = "A VHD whose end (and so its footer) is cut off: an incomplete copy."


class DataAfterVhdFooter(VhdRejected):
    code = "DataAfterVhdFooter"
    summary = "A VHD footer followed by extra bytes; the footer must be the last 512 bytes."


class MissingVhdFooter(VhdRejected):
    code = "MissingVhdFooter"
    summary = "No `conectix` VHD footer in the last 512 bytes."


class UnsupportedFormat(MissingVhdFooter):
    """Another disk image format: it has to be converted to a fixed VHD."""

    code = "UnsupportedFormat"
    summary = "A disk image in a format other than VHD."


class UnsupportedFormatVhdx(UnsupportedFormat):
    code = "UnsupportedFormatVhdx"
    summary = "A VHDX image; Azure needs a fixed VHD."


class UnsupportedFormatQcow2(UnsupportedFormat):
    code = "UnsupportedFormatQcow2"
    summary = "A qcow/qcow2 image; Azure needs a fixed VHD."


class UnsupportedFormatVmdk(UnsupportedFormat):
    code = "UnsupportedFormatVmdk"
    summary = "A VMware VMDK image or descriptor; Azure needs a fixed VHD."


class UnsupportedFormatVdi(UnsupportedFormat):
    code = "UnsupportedFormatVdi"
    summary = "A VirtualBox VDI image; Azure needs a fixed VHD."


class UnsupportedFormatIso(UnsupportedFormat):
    code = "UnsupportedFormatIso"
    summary = "An ISO 9660 optical disc image, not a hard disk."


class RawDiskWithoutFooter(MissingVhdFooter):
    code = "RawDiskWithoutFooter"
    summary = "A raw disk image (MBR or GPT) without the VHD footer."


class CompressedArchive(MissingVhdFooter):
    code = "CompressedArchive"
    summary = "A compressed file or archive (gzip, zip, xz, ...); upload the VHD inside it."


class NotADisk(MissingVhdFooter):
    code = "NotADisk"
    summary = "Not a disk image at all (text or unknown data)."


class InvalidVhdFooter(VhdRejected):
    code = "InvalidVhdFooter"
    summary = "The 512 bytes at the end are not a well-formed VHD footer."


class InvalidVhdFooterChecksum(InvalidVhdFooter):
    code = "InvalidVhdFooterChecksum"
    summary = "The VHD footer checksum does not match its contents."


class InvalidVhdFormatVersion(InvalidVhdFooter):
    code = "InvalidVhdFormatVersion"
    summary = "The VHD footer has an unknown format version."


class DynamicVhdNotSupported(VhdRejected):
    code = "DynamicVhdNotSupported"
    summary = "A dynamic (sparse) VHD; Azure needs a fixed VHD."


class DifferencingVhdNotSupported(VhdRejected):
    code = "DifferencingVhdNotSupported"
    summary = "A differencing (child) VHD; Azure needs a standalone fixed VHD."


class InvalidVhdDiskType(InvalidVhdFooter):
    code = "InvalidVhdDiskType"
    summary = "The VHD footer has a disk type other than fixed, dynamic or differencing."


class VirtualSizeNotWholeMiB(VhdRejected):
    code = "VirtualSizeNotWholeMiB"
    summary = "The virtual size is not a whole number of MiB."


class VhdSizeMismatch(VhdRejected):
    code = "VhdSizeMismatch"
    summary = "The footer's virtual size is not the blob length minus 512 bytes."


class DiskTooLarge(VhdRejected):
    code = "DiskTooLarge"
    summary = "The virtual size is above the configured maximum."


class DiskTooSmall(VhdRejected):
    code = "DiskTooSmall"
    summary = "The virtual size is below the configured minimum."


class InvalidVhdDataOffset(InvalidVhdFooter):
    code = "InvalidVhdDataOffset"
    summary = "A fixed VHD whose footer data offset is not all 0xFF."


class NestedDiskImage(VhdRejected):
    code = "NestedDiskImage"
    summary = "A fixed VHD whose virtual disk is itself an image file (converted as raw)."


_REJECTION_CLASSES: tuple[type[VhdRejected], ...] = (
    EmptyBlob,
    NotSectorAligned,
    LegacyVhdFooter,
    TruncatedVhd,
    DataAfterVhdFooter,
    MissingVhdFooter,
    UnsupportedFormat,
    UnsupportedFormatVhdx,
    UnsupportedFormatQcow2,
    UnsupportedFormatVmdk,
    UnsupportedFormatVdi,
    UnsupportedFormatIso,
    RawDiskWithoutFooter,
    CompressedArchive,
    NotADisk,
    InvalidVhdFooter,
    InvalidVhdFooterChecksum,
    InvalidVhdFormatVersion,
    DynamicVhdNotSupported,
    DifferencingVhdNotSupported,
    InvalidVhdDiskType,
    VirtualSizeNotWholeMiB,
    VhdSizeMismatch,
    DiskTooLarge,
    DiskTooSmall,
    InvalidVhdDataOffset,
    NestedDiskImage,
)

#: Every rejection code the validator can produce, mapped to its class (whose
#: `summary` is a one-line description for docs).
REJECTION_CODES: dict[str, type[VhdRejected]] = {cls.code: cls for cls in _REJECTION_CLASSES}


# --------------------------------------------------------------------------------------
# The footer.

# Big-endian layout of the 512-byte footer, up to and including saved state.
_FOOTER_STRUCT = struct.Struct(">8sIIQI4sI4sQQHBBII16sB")
assert _FOOTER_STRUCT.size == 85


@dataclass(frozen=True)
class VhdFooter:
    """The parsed VHD footer. Sizes in bytes; `geometry` is (cylinders, heads, sectors)."""

    cookie: bytes
    features: int
    format_version: int
    data_offset: int
    timestamp: datetime
    creator_app: str
    creator_version: int
    creator_host_os: str
    original_size: int
    current_size: int
    geometry: tuple[int, int, int]
    disk_type: int
    checksum: int
    computed_checksum: int
    unique_id: uuid.UUID
    saved_state: bool

    @property
    def checksum_ok(self) -> bool:
        return self.checksum == self.computed_checksum

    @property
    def disk_type_name(self) -> str:
        return DISK_TYPE_NAMES.get(self.disk_type, f"unknown ({self.disk_type})")

    @property
    def creator_version_str(self) -> str:
        return f"{self.creator_version >> 16}.{self.creator_version & 0xFFFF}"

    @property
    def chs_size(self) -> int:
        """The size the CHS geometry implies. Informational only: never trust it."""
        c, h, s = self.geometry
        return c * h * s * SECTOR

    def to_dict(self) -> dict[str, object]:
        return {
            "cookie": self.cookie.decode("latin-1"),
            "features": self.features,
            "formatVersion": f"{self.format_version >> 16}.{self.format_version & 0xFFFF}",
            "dataOffset": self.data_offset,
            "timestamp": self.timestamp.isoformat(),
            "creatorApp": self.creator_app,
            "creatorVersion": self.creator_version_str,
            "creatorHostOs": self.creator_host_os,
            "originalSize": self.original_size,
            "currentSize": self.current_size,
            "geometry": list(self.geometry),
            "diskType": self.disk_type_name,
            "checksum": self.checksum,
            "checksumOk": self.checksum_ok,
            "uniqueId": str(self.unique_id),
            "savedState": self.saved_state,
        }


def footer_checksum(raw: bytes) -> int:
    """One's complement of the byte sum of the footer, the checksum field counted as zero."""
    if len(raw) < 68:
        raise InvalidVhdFooter(f"A VHD footer is 512 bytes; got {len(raw)}.")
    total = sum(raw[:64]) + sum(raw[68:])
    return ~total & 0xFFFF_FFFF


def _text(field: bytes) -> str:
    # Footer strings are 4 ASCII bytes, sometimes NUL-padded; latin-1 can't fail.
    return field.rstrip(b"\0").decode("latin-1")


def parse_footer(raw: bytes) -> VhdFooter:
    """Parse a 512-byte VHD footer (or a 511-byte legacy one).

    Raises `MissingVhdFooter` when the cookie is not `conectix` and
    `InvalidVhdFooter` when the length is wrong; the checksum is *not*
    enforced here (see `VhdFooter.checksum_ok`) so callers can report it.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise InvalidVhdFooter("A VHD footer must be bytes.")
    raw = bytes(raw)
    if len(raw) not in (FOOTER_SIZE, FOOTER_SIZE - 1):
        raise InvalidVhdFooter(
            f"A VHD footer is 512 bytes; got {len(raw)}. The file is not a VHD or is damaged."
        )
    if raw[:8] != FOOTER_COOKIE:
        raise MissingVhdFooter(
            f"No VHD footer: the footer must start with 'conectix' but starts with {raw[:8]!r}."
        )
    padded = raw.ljust(FOOTER_SIZE, b"\0")
    (
        cookie,
        features,
        format_version,
        data_offset,
        timestamp,
        creator_app,
        creator_version,
        creator_host_os,
        original_size,
        current_size,
        cylinders,
        heads,
        sectors,
        disk_type,
        checksum,
        unique_id,
        saved_state,
    ) = _FOOTER_STRUCT.unpack_from(padded)
    return VhdFooter(
        cookie=cookie,
        features=features,
        format_version=format_version,
        data_offset=data_offset,
        # u32 seconds from 2000 always fits in a datetime (at most year 2136).
        timestamp=VHD_EPOCH + timedelta(seconds=timestamp),
        creator_app=_text(creator_app),
        creator_version=creator_version,
        creator_host_os=_text(creator_host_os),
        original_size=original_size,
        current_size=current_size,
        geometry=(cylinders, heads, sectors),
        disk_type=disk_type,
        checksum=checksum,
        computed_checksum=footer_checksum(raw),
        unique_id=uuid.UUID(bytes=unique_id),
        saved_state=bool(saved_state),
    )


def chs_geometry(size: int) -> tuple[int, int, int]:
    """CHS geometry for a virtual size, per the VHD specification's algorithm.

    Only used to write plausible footers: the validator never trusts CHS.
    """
    total = size // SECTOR
    total = min(total, 65535 * 16 * 255)
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cyl_heads = total // spt
    else:
        spt = 17
        cyl_heads = total // spt
        heads = max((cyl_heads + 1023) // 1024, 4)
        if cyl_heads >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cyl_heads = total // spt
        if cyl_heads >= heads * 1024:
            spt, heads = 63, 16
            cyl_heads = total // spt
    return min(cyl_heads // heads, 65535), heads, spt


def build_footer(
    current_size: int,
    *,
    disk_type: int = DISK_TYPE_FIXED,
    creator_app: bytes = b"qem2",
    creator_version: int = 0x0005_0003,
    creator_host_os: bytes = b"Wi2k",
    original_size: int | None = None,
    data_offset: int | None = None,
    timestamp: datetime | None = None,
    geometry: tuple[int, int, int] | None = None,
    unique_id: uuid.UUID | None = None,
    saved_state: bool = False,
    features: int = FEATURES_RESERVED,
    format_version: int = FORMAT_VERSION,
    cookie: bytes = FOOTER_COOKIE,
) -> bytes:
    """A 512-byte VHD footer with a correct checksum.

    Defaults describe a fixed disk as qemu writes it; `data_offset` defaults to
    all-FF for a fixed disk and 512 (the dynamic header) otherwise.
    """
    if current_size < 0:
        raise ValueError("current_size must be >= 0")
    if data_offset is None:
        data_offset = FIXED_DATA_OFFSET if disk_type == DISK_TYPE_FIXED else FOOTER_SIZE
    when = timestamp or datetime.now(UTC)
    seconds = int((when - VHD_EPOCH).total_seconds()) & 0xFFFF_FFFF
    c, h, s = geometry if geometry is not None else chs_geometry(current_size)
    body = _FOOTER_STRUCT.pack(
        cookie.ljust(8, b"\0")[:8],
        features,
        format_version,
        data_offset,
        seconds,
        creator_app.ljust(4, b"\0")[:4],
        creator_version,
        creator_host_os.ljust(4, b"\0")[:4],
        current_size if original_size is None else original_size,
        current_size,
        c,
        h,
        s,
        disk_type,
        0,
        (unique_id or uuid.uuid4()).bytes,
        1 if saved_state else 0,
    ).ljust(FOOTER_SIZE, b"\0")
    checksum = footer_checksum(body)
    return body[:64] + struct.pack(">I", checksum) + body[68:]


# --------------------------------------------------------------------------------------
# Validation.


def _human(n: int) -> str:
    """Bytes as a short human figure next to the exact number."""
    for unit, factor in (("TiB", 1024**4), ("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= factor:
            return f"{n / factor:.2f} {unit}"
    return f"{n} bytes"


def _read(reader: RangeReader, offset: int, length: int) -> bytes:
    # A RangeReader clips at the end; never ask for negative ranges.
    if length <= 0 or offset >= reader.size:
        return b""
    return bytes(reader.read(max(0, offset), length))


def validate_vhd(
    reader: RangeReader,
    *,
    max_size_bytes: int,
    min_size_bytes: int = DEFAULT_MIN_SIZE_BYTES,
) -> VhdFooter:
    """Check that the blob is a fixed VHD Azure will accept; return its footer.

    Checks, in order: empty; 512-byte alignment; the `conectix` footer at
    exactly length-512 (otherwise say what the blob is instead); checksum;
    format version; disk type; whole-MiB virtual size; virtual size equal to
    length-512; size limits; fixed-disk data offset; and that the virtual disk
    is not itself another image file. Raises a `VhdRejected` subclass.
    """
    size = reader.size
    if size == 0:
        raise EmptyBlob(
            "The blob is empty (0 bytes). Upload the fixed VHD file itself; if the copy "
            "was interrupted, start it again."
        )

    tail_start = max(0, size - TAIL_BYTES)
    tail = _read(reader, tail_start, size - tail_start)
    if size % SECTOR != 0 or tail[-FOOTER_SIZE:][:8] != FOOTER_COOKIE:
        raise _diagnose_missing_footer(reader, size, tail_start, tail)

    footer = parse_footer(tail[-FOOTER_SIZE:])
    if not footer.checksum_ok:
        raise InvalidVhdFooterChecksum(
            f"The VHD footer checksum is 0x{footer.checksum:08x} but its contents sum to "
            f"0x{footer.computed_checksum:08x}: the footer was altered or damaged in transit. "
            "Upload the original file again."
        )
    if footer.format_version >> 16 != 1:
        raise InvalidVhdFormatVersion(
            f"The VHD footer format version is {footer.format_version >> 16}."
            f"{footer.format_version & 0xFFFF}; only 1.0 exists. The file is damaged or was "
            f"written by a broken tool. {CONVERT_HINT}."
        )
    if footer.disk_type == DISK_TYPE_DYNAMIC:
        raise DynamicVhdNotSupported(
            f"This is a dynamic VHD (virtual size {footer.current_size} bytes, "
            f"{_human(footer.current_size)}); Azure accepts only fixed VHDs. {UPLOAD_AS_IS}"
        )
    if footer.disk_type == DISK_TYPE_DIFFERENCING:
        raise DifferencingVhdNotSupported(
            "This is a differencing VHD: it holds only the changes against a parent disk. "
            f"{DIFFERENCING_VHD_HINT}"
        )
    if footer.disk_type != DISK_TYPE_FIXED:
        raise InvalidVhdDiskType(
            f"The VHD footer has disk type {footer.disk_type} ({footer.disk_type_name}); "
            f"only 2 (fixed) can be uploaded. {CONVERT_HINT}."
        )
    current = footer.current_size
    if current % MIB != 0:
        lower = current // MIB * MIB
        raise VirtualSizeNotWholeMiB(
            f"The VHD has an unsupported virtual size of {current} bytes. The size must be a "
            f"whole number (in MBs). {UPLOAD_AS_IS} This one becomes {lower + MIB} bytes "
            f"({lower // MIB + 1} MiB)."
        )
    if current != size - FOOTER_SIZE:
        raise VhdSizeMismatch(
            f"The VHD footer says the virtual size is {current} bytes, but the blob holds "
            f"{size - FOOTER_SIZE} bytes of disk before the footer (blob length {size}; "
            f"expected {current + FOOTER_SIZE}). The file was truncated, padded or edited: "
            "upload the original fixed VHD again, or re-create it with qemu-img convert."
        )
    if current > max_size_bytes:
        raise DiskTooLarge(
            f"The virtual size is {current} bytes ({_human(current)}), above the maximum of "
            f"{max_size_bytes} bytes ({_human(max_size_bytes)}) for this upload. Shrink the "
            "partitions and the disk (e.g. `qemu-img resize --shrink`), or upload it where "
            "larger disks are allowed."
        )
    if current < min_size_bytes:
        raise DiskTooSmall(
            f"The virtual size is {current} bytes ({_human(current)}), below the minimum of "
            f"{min_size_bytes} bytes ({_human(min_size_bytes)}). Grow the disk (e.g. "
            f"`qemu-img resize -f raw disk.raw {max(min_size_bytes, MIB) // MIB}M`) and "
            "upload it as it is: the catalog converts it to a fixed VHD."
        )
    if footer.data_offset != FIXED_DATA_OFFSET:
        raise InvalidVhdDataOffset(
            f"The footer says this is a fixed VHD but its data offset is "
            f"0x{footer.data_offset:016x}, not 0xffffffffffffffff: the footer was written by a "
            f"broken tool or edited. {CONVERT_HINT}."
        )
    head = _read(reader, 0, min(HEAD_BYTES, current))
    nested = _sniff_image_format(head)
    if nested is not None:
        cls, name, _ = nested
        if cls is not CompressedArchive:
            raise NestedDiskImage(
                f"This fixed VHD's virtual disk starts with a {name} header: an image file was "
                "converted as if it were a raw disk, and a VM would not boot from it. Upload "
                f"the original {_QEMU_FMT[cls]} file as it is into the `uploads` container, or "
                "with `vmimage upload <file>`: the catalog converts it with its real format."
            )
    return footer


_QEMU_FMT: dict[type[VhdRejected], str] = {
    UnsupportedFormatVhdx: "vhdx",
    UnsupportedFormatQcow2: "qcow2",
    UnsupportedFormatVmdk: "vmdk",
    UnsupportedFormatVdi: "vdi",
}


def _sniff_image_format(head: bytes) -> tuple[type[VhdRejected], str, str] | None:
    """(class, name, qemu hint) for the image or archive magic at the start of `head`."""
    if head.startswith(b"vhdxfile"):
        return UnsupportedFormatVhdx, "VHDX", "vhdx"
    if head.startswith(b"QFI\xfb"):
        version = struct.unpack_from(">I", head, 4)[0] if len(head) >= 8 else 0
        return UnsupportedFormatQcow2, f"qcow (version {version})", "qcow2"
    if head.startswith(b"KDMV") or head.startswith(b"COWD"):
        return UnsupportedFormatVmdk, "VMDK (sparse)", "vmdk"
    if head.lstrip(b"\xef\xbb\xbf").startswith(b"# Disk DescriptorFile"):
        return UnsupportedFormatVmdk, "VMDK descriptor", "vmdk"
    if len(head) >= 0x44 and head[0x40:0x44] == b"\x7f\x10\xda\xbe":
        return UnsupportedFormatVdi, "VirtualBox VDI", "vdi"
    for magic, name in _ARCHIVE_MAGICS:
        if head.startswith(magic):
            return CompressedArchive, name, ""
    if len(head) >= 262 and head[257:262] == b"ustar":
        return CompressedArchive, "tar", ""
    return None


_ARCHIVE_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip (empty)"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"MSCF", "cabinet (.cab)"),
    (b"Rar!\x1a\x07", "RAR"),
)


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    sample = head[:1024]
    if b"\0" in sample:
        return False
    printable = sum(1 for b in sample if b in (9, 10, 13) or 32 <= b < 127 or b >= 0x80)
    return printable >= len(sample) * 0.95


def _diagnose_missing_footer(
    reader: RangeReader, size: int, tail_start: int, tail: bytes
) -> VhdRejected:
    """The blob has no footer at length-512: say as precisely as we can what it is."""
    aligned = size % SECTOR == 0
    head = tail if tail_start == 0 else _read(reader, 0, min(HEAD_BYTES, size))
    sniffed = _sniff_image_format(head)
    if sniffed is not None:
        cls, name, _ = sniffed
        if cls is CompressedArchive:
            return CompressedArchive(
                f"This is a {name} file ({size} bytes), not a disk. Decompress or extract it and "
                "upload the fixed VHD inside (Azure does not decompress uploads)."
            )
        if cls is UnsupportedFormatVmdk and name == "VMDK descriptor":
            fix = (
                "This is only the small text descriptor; the data is in the -flat/-s00x files. "
                "Make it one file, with its extents beside it: `qemu-img convert -O vmdk -o "
                "subformat=streamOptimized disk.vmdk one.vmdk`, then upload one.vmdk as it is "
                "(the catalog converts it)."
            )
        elif cls is UnsupportedFormatVdi:
            fix = (
                "The catalog does not convert VDI: make it a qcow2 (`qemu-img convert -f vdi "
                "-O qcow2 disk.vdi disk.qcow2`) and upload that as it is."
            )
        else:
            fix = UPLOAD_AS_IS
        return cls(f"This is a {name} image, not a fixed VHD. {fix}")

    # A footer cookie near the end, just not at length-512.
    pos = tail.rfind(FOOTER_COOKIE)
    if pos >= 0:
        at = tail_start + pos
        if at == size - (FOOTER_SIZE - 1):
            return LegacyVhdFooter(
                f"This VHD ends in a 511-byte footer at offset {at} (an old Virtual PC format), "
                f"so its length {size} is not a multiple of 512. Cut the old footer off "
                "(`truncate -s -511 disk.vhd`) and upload the raw disk that is left as it is: "
                "the catalog converts a raw disk with a partition table."
            )
        if at + FOOTER_SIZE > size:
            missing = at + FOOTER_SIZE - size
            return TruncatedVhd(
                f"The VHD footer starts at offset {at} but the blob ends {missing} bytes before "
                f"the footer's end (length {size}, expected {at + FOOTER_SIZE}): the file was "
                "truncated in transit. Upload the complete file again."
            )
        extra = size - at - FOOTER_SIZE
        return DataAfterVhdFooter(
            f"A VHD footer sits at offset {at} but {extra} more bytes follow it (length {size}); "
            f"the footer must be the last 512 bytes. Remove the trailing bytes (truncate the file "
            f"to {at + FOOTER_SIZE} bytes) or re-create the VHD."
        )

    if head.startswith(FOOTER_COOKIE):
        # The copy of the footer at offset 0 that dynamic and differencing disks carry.
        kind = "dynamic or differencing"
        if len(head) >= 64:
            dtype = struct.unpack_from(">I", head, 60)[0]
            kind = DISK_TYPE_NAMES.get(dtype, kind)
        return TruncatedVhd(
            f"The blob starts with the footer copy of a {kind} VHD but has no footer at its "
            f"end (length {size}): the file is truncated or incomplete. Upload the complete "
            "file as it is: the catalog converts a dynamic VHD to a fixed one itself."
        )

    if size > ISO_MAGIC_OFFSET + 5:
        iso = _read(reader, ISO_MAGIC_OFFSET - 1, 7)
        if iso[1:6] == b"CD001":
            return UnsupportedFormatIso(
                f"This is an ISO 9660 optical disc image ({size} bytes), not a hard disk. Install "
                "the operating system onto a disk (e.g. in a local VM) and upload that disk as "
                "a fixed VHD."
            )

    mbr = len(head) >= SECTOR and head[510:512] == b"\x55\xaa"
    gpt = len(head) >= 520 and head[512:520] == b"EFI PART"
    if mbr or gpt:
        style = "GPT" if gpt else "MBR"
        fix = UPLOAD_AS_IS
        return RawDiskWithoutFooter(
            f"This looks like a raw disk image with an {style} partition table but no VHD "
            f"footer (length {size}). {fix}"
        )

    if _looks_like_text(head):
        snippet = head[:40].decode("utf-8", "replace").splitlines()[0] if head else ""
        return NotADisk(
            f"This is a text file ({size} bytes, starting {snippet!r}), not a disk image. "
            "Upload the fixed VHD file itself."
        )
    if not aligned:
        return NotSectorAligned(
            f"The blob is {size} bytes, not a multiple of 512 ({size % SECTOR} bytes over), and "
            "has no VHD footer: it is not a VHD, or its end was cut off. Upload the complete "
            "fixed VHD."
        )
    if not head.strip(b"\0"):
        return NotADisk(
            f"The blob ({size} bytes) has no VHD footer and starts with zeros only: it is not a "
            "VHD, nor a raw disk with a partition table. Upload the disk image itself."
        )
    return NotADisk(
        f"The blob ({size} bytes) has no VHD footer (the last 512 bytes do not start with "
        "'conectix') and is no disk format we recognise; `qemu-img info <file>` tells what it "
        f"is. {UPLOAD_AS_IS}"
    )
