"""Disk image formats, read from their bytes over a RangeReader (pure, shared with the CLI).

    image = open_disk_image(reader)          # raw, vhd-fixed, vhd-dynamic, vhdx, qcow2, vmdk-*
    for extent in image.extents(start):      # allocated data in virtual order, <= 4 MiB each
        write(extent.offset, extent.data())  # zeros between extents

    disks = open_ova(reader)                 # [(file name, DiskImage)] in OVF order, OS disk first
    disks = open_disks(reader)               # either: one disk, or an OVA's disks

Every refusal is a VhdRejected (UploadRejected, 400) with a stable code.
"""

from __future__ import annotations

from shared.domain.formats.base import (
    FORMAT_REJECTION_CODES,
    FORMATS,
    MAX_EXTENT,
    MAX_VIRTUAL_SIZE,
    BackingFileNotSupported,
    CorruptDiskImage,
    DiskImage,
    DiskImageRejected,
    EncryptedDiskNotSupported,
    Extent,
    ExternalDataFileNotSupported,
    InvalidOva,
    OvaNotASingleDisk,
    UnsupportedDiskFeature,
    VhdxLogReplayRequired,
    VmdkExtentsNotSupported,
)
from shared.domain.formats.ova import OffsetReader, open_ova
from shared.domain.formats.sniff import open_disk_image, sniff_format
from shared.domain.ranged import RangeReader

__all__ = [
    "FORMATS",
    "FORMAT_REJECTION_CODES",
    "MAX_EXTENT",
    "MAX_VIRTUAL_SIZE",
    "BackingFileNotSupported",
    "CorruptDiskImage",
    "DiskImage",
    "DiskImageRejected",
    "EncryptedDiskNotSupported",
    "Extent",
    "ExternalDataFileNotSupported",
    "InvalidOva",
    "OffsetReader",
    "OvaNotASingleDisk",
    "UnsupportedDiskFeature",
    "VhdxLogReplayRequired",
    "VmdkExtentsNotSupported",
    "open_disk_image",
    "open_disks",
    "open_ova",
    "sniff_format",
]


def open_disks(
    reader: RangeReader, name: str = "", *, max_virtual_size: int | None = None
) -> list[tuple[str, DiskImage]]:
    """The disks a file holds: an OVA's in OVF order (the OS disk first), else [(name, image)]."""
    if sniff_format(reader) == "ova":
        return open_ova(reader, max_virtual_size=max_virtual_size)
    return [(name, open_disk_image(reader, name, max_virtual_size=max_virtual_size))]
