"""vhdx images (reader being written; refused until then)."""

from __future__ import annotations

from shared.domain.formats.base import DiskImage, UnsupportedDiskFeature
from shared.domain.ranged import RangeReader


def open_vhdx(reader: RangeReader, *, max_virtual_size: int | None = None) -> DiskImage:
    raise UnsupportedDiskFeature("vhdx images are not read yet.")
