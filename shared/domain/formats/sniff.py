"""Which format a file is, from its bytes alone, and opening it as a DiskImage."""

from __future__ import annotations

import struct

from shared.domain.formats import ova, qcow2, vhd_dynamic, vhdx, vmdk
from shared.domain.formats.base import (
    DiskImage,
    DiskImageRejected,
    OvaNotASingleDisk,
    UnsupportedDiskFeature,
    VmdkExtentsNotSupported,
)
from shared.domain.formats.raw import FlatImage
from shared.domain.ranged import RangeReader
from shared.domain.vhd import (
    DISK_TYPE_DIFFERENCING,
    DISK_TYPE_DYNAMIC,
    DISK_TYPE_FIXED,
    FOOTER_COOKIE,
    FOOTER_SIZE,
    CompressedArchive,
    EmptyBlob,
    InvalidVhdFooterChecksum,
    NotADisk,
    TruncatedVhd,
    UnsupportedFormatIso,
    UnsupportedFormatVdi,
    VhdSizeMismatch,
    parse_footer,
)

HEAD = 4096
_ARCHIVES: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"PK\x03\x04", "zip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"Rar!\x1a\x07", "RAR"),
)


def _read(reader: RangeReader, offset: int, length: int) -> bytes:
    if offset < 0 or offset >= reader.size or length <= 0:
        return b""
    return bytes(reader.read(offset, length))


def sniff_format(reader: RangeReader) -> str | None:
    """The format the bytes say: one of FORMATS, "ova", or None when it is none of them.

    "vhd-dynamic" also covers differencing VHDs (which `open_disk_image` refuses) and
    "vmdk-sparse" any KDMV sparse extent (monolithicSparse or streamOptimized).
    """
    size = reader.size
    head = _read(reader, 0, HEAD)
    if head.startswith(b"vhdxfile"):
        return "vhdx"
    if head.startswith(b"QFI\xfb"):
        return "qcow2"
    if head.startswith(b"KDMV"):
        return "vmdk-stream" if vmdk.is_stream_optimized(head) else "vmdk-sparse"
    tail = _read(reader, size - FOOTER_SIZE, FOOTER_SIZE) if size >= FOOTER_SIZE else b""
    if tail.startswith(FOOTER_COOKIE) and len(tail) >= 64:
        dtype = struct.unpack_from(">I", tail, 60)[0]
        if dtype == DISK_TYPE_FIXED:
            return "vhd-fixed"
        if dtype in (DISK_TYPE_DYNAMIC, DISK_TYPE_DIFFERENCING):
            return "vhd-dynamic"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "ova"
    if head.startswith(FOOTER_COOKIE):
        return "vhd-dynamic"
    if (len(head) >= 512 and head[510:512] == b"\x55\xaa") or head[512:520] == b"EFI PART":
        return "raw"
    return None


def open_disk_image(
    reader: RangeReader, name: str = "", *, max_virtual_size: int | None = None
) -> DiskImage:
    """Open one disk image of any supported format, recognised from its bytes.

    `name` only words messages; the format never comes from it. An OVA is refused
    here (it holds several disks): use `open_ova`. Raises a VhdRejected subclass
    (DiskTooLarge above `max_virtual_size`, or above MAX_VIRTUAL_SIZE when None).
    """
    label = f"The disk file {name!r}" if name else "This file"
    size = reader.size
    if size == 0:
        raise EmptyBlob(f"{label} is empty (0 bytes): upload the disk image itself.")
    fmt = sniff_format(reader)
    if fmt == "vhdx":
        return vhdx.open_vhdx(reader, max_virtual_size=max_virtual_size)
    if fmt == "qcow2":
        return qcow2.open_qcow2(reader, max_virtual_size=max_virtual_size)
    if fmt in ("vmdk-sparse", "vmdk-stream"):
        return vmdk.open_vmdk(reader, max_virtual_size=max_virtual_size)
    if fmt == "vhd-fixed":
        return _open_fixed_vhd(reader, max_virtual_size)
    if fmt == "vhd-dynamic":
        return vhd_dynamic.open_dynamic_vhd(reader, max_virtual_size=max_virtual_size)
    if fmt == "ova":
        if ova.find_ovf(reader) is None:
            raise CompressedArchive(
                f"{label} is a tar archive without an OVF descriptor, not a disk: extract it "
                "and upload the disk image inside."
            )
        raise OvaNotASingleDisk(f"{label} is an OVA holding disks: open it with open_ova.")
    if fmt == "raw":
        return FlatImage(reader, "raw", size, max_virtual_size=max_virtual_size)
    raise _not_a_disk(reader, label)


def _open_fixed_vhd(reader: RangeReader, max_virtual_size: int | None) -> DiskImage:
    size = reader.size
    footer = parse_footer(_read(reader, size - FOOTER_SIZE, FOOTER_SIZE))
    if not footer.checksum_ok:
        raise InvalidVhdFooterChecksum(
            f"The VHD footer checksum is 0x{footer.checksum:08x} but its contents sum to "
            f"0x{footer.computed_checksum:08x}: the footer was altered or damaged in transit. "
            "Upload the original file again."
        )
    if footer.current_size > size - FOOTER_SIZE:
        raise TruncatedVhd(
            f"The VHD footer says the virtual size is {footer.current_size} bytes but only "
            f"{size - FOOTER_SIZE} bytes of disk precede it: the file was cut short. Upload "
            "the complete file again."
        )
    if footer.current_size < size - FOOTER_SIZE:
        raise VhdSizeMismatch(
            f"The VHD footer says the virtual size is {footer.current_size} bytes, but "
            f"{size - FOOTER_SIZE} bytes of disk precede it: the file was padded or edited. "
            "Upload the original file again."
        )
    return FlatImage(reader, "vhd-fixed", footer.current_size, max_virtual_size=max_virtual_size)


def _not_a_disk(reader: RangeReader, label: str) -> DiskImageRejected | NotADisk:
    head = _read(reader, 0, HEAD)
    if head.lstrip(b"\xef\xbb\xbf").startswith(b"# Disk DescriptorFile"):
        return VmdkExtentsNotSupported(
            f"{label} is a VMDK descriptor: a small text file whose data sits in separate "
            "extent files (-flat.vmdk or -s001.vmdk ...). Make it one file, with the extents "
            "beside the descriptor: `qemu-img convert -O vmdk -o subformat=streamOptimized "
            "disk.vmdk one.vmdk`, then upload one.vmdk."
        )
    if head.startswith(b"COWD"):
        return UnsupportedDiskFeature(
            f"{label} is an old VMware ESX sparse disk (COWD). Convert it with `qemu-img "
            "convert -O qcow2 disk.vmdk disk.qcow2` and upload the qcow2."
        )
    if head.startswith(b"QFI\xfb"):
        return UnsupportedDiskFeature(f"{label} is a qcow image of an unknown version.")
    if len(head) >= 0x44 and head[0x40:0x44] == b"\x7f\x10\xda\xbe":
        return UnsupportedFormatVdi(
            f"{label} is a VirtualBox VDI image, which the catalog does not convert. Convert "
            "it with `VBoxManage clonemedium disk disk.vdi disk.vhd --format VHD` or `qemu-img "
            "convert -f vdi -O qcow2 disk.vdi disk.qcow2`, then upload the result."
        )
    for magic, kind in _ARCHIVES:
        if head.startswith(magic):
            return CompressedArchive(
                f"{label} is a {kind} file, not a disk: decompress or extract it and upload "
                "the disk image inside."
            )
    iso = _read(reader, 0x8001, 5)
    if iso == b"CD001":
        return UnsupportedFormatIso(
            f"{label} is an ISO 9660 optical disc image, not a hard disk. Install the "
            "operating system onto a disk (e.g. in a local VM) and upload that disk."
        )
    return NotADisk(
        f"{label} ({reader.size} bytes) is no disk image format the catalog reads: not a VHD, "
        "VHDX, qcow2, VMDK or OVA, and not a raw disk with an MBR or GPT partition table. "
        "`qemu-img info <file>` tells what it is."
    )
