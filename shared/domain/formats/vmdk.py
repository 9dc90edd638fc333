"""VMDK sparse extents (reader being written; refused until then)."""

from __future__ import annotations

import struct

from shared.domain.formats.base import DiskImage, UnsupportedDiskFeature
from shared.domain.ranged import RangeReader

FLAG_COMPRESSED = 1 << 16


def is_stream_optimized(head: bytes) -> bool:
    """A KDMV header whose grains are compressed: streamOptimized."""
    return len(head) >= 12 and bool(struct.unpack_from("<I", head, 8)[0] & FLAG_COMPRESSED)


def open_vmdk(reader: RangeReader, *, max_virtual_size: int | None = None) -> DiskImage:
    raise UnsupportedDiskFeature("VMDK images are not read yet.")
