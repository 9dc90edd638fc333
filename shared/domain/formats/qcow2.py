"""qcow2 images (reader being written; refused until then)."""

from __future__ import annotations

from shared.domain.formats.base import DiskImage, UnsupportedDiskFeature
from shared.domain.ranged import RangeReader


def open_qcow2(reader: RangeReader, *, max_virtual_size: int | None = None) -> DiskImage:
    raise UnsupportedDiskFeature("qcow2 images are not read yet.")
