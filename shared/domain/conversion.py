"""Converting an uploaded disk image into fixed VHDs: the job's plan, its checkpoint and
the pages it writes. Pure: the copying itself is `shared/adapters/page_copy.py`, the job
`shared/services/conversion.py`.

A target is a new page blob of the source's virtual size rounded up to a whole MiB, plus
the 512-byte footer. Only the source's allocated data is read (its extents), only the
pages that are not all zeros are written, and the footer goes last, so a target cut
short anywhere is not a VHD. The checkpoint is the virtual offset below which every
page is written, per disk: a job resumes there, and since the source version is fixed
(its ETag), writing a page twice writes the same bytes.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.vhd import (
    CompressedArchive,
    DifferencingVhdNotSupported,
    DynamicVhdNotSupported,
    RawDiskWithoutFooter,
    UnsupportedFormatQcow2,
    UnsupportedFormatVhdx,
    UnsupportedFormatVmdk,
    VhdRejected,
    VirtualSizeNotWholeMiB,
)

PAGE = 512
MIB = 1024 * 1024
MAX_PUT_PAGE = 4 * MIB  # the largest Put Page storage takes
_ZERO_PAGE = bytes(PAGE)
_ZERO_WRITE = bytes(MAX_PUT_PAGE)
MAX_BLOB_NAME = 1024
CONVERTED_FOLDER = "converted/"


# What the fixed-VHD validation says of a disk image the format readers read: those are
# converted (the readers give the precise verdict); any other rejection of a VHD stands.
_CONVERTIBLE: tuple[type[VhdRejected], ...] = (
    DynamicVhdNotSupported,
    DifferencingVhdNotSupported,
    VirtualSizeNotWholeMiB,
    UnsupportedFormatVhdx,
    UnsupportedFormatQcow2,
    UnsupportedFormatVmdk,
    RawDiskWithoutFooter,
    CompressedArchive,  # a tar may be an OVA
)


def convertible(rejection: VhdRejected) -> bool:
    """Is a file `validate_vhd` refused with this a disk image to convert instead?"""
    return type(rejection) in _CONVERTIBLE


def fixed_size(virtual_size: int) -> int:
    """The converted disk's virtual size: the source's, rounded up to a whole MiB."""
    return -(-virtual_size // MIB) * MIB


def target_blob(upload_name: str, etag: str, index: int | None = None) -> str:
    """The converted disk's name in the images container, one per upload version.

    `converted/<upload name>~<digest of its ETag>.vhd` (`-disk<i>` before `.vhd` for the
    disks of an OVA): a new version of the upload gets new targets, a repeat of a job the
    same ones.
    """
    digest = hashlib.sha256(etag.strip('"').encode()).hexdigest()[:16]
    # "~", not "@": a URL keeps it as it is, so MediaLinks stay readable.
    tail = f"~{digest}" + (f"-disk{index}" if index is not None else "") + ".vhd"
    head = CONVERTED_FOLDER + upload_name
    room = MAX_BLOB_NAME - len(tail)
    if len(head) > room:  # keep it unique: the whole name's digest replaces the cut part
        whole = hashlib.sha256(upload_name.encode()).hexdigest()[:16]
        head = head[: room - 17] + "~" + whole
    return head + tail


def nonzero_runs(data: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of the runs of 512-byte pages of `data` that are not all zeros.

    `offset` is 512-aligned; a last partial page is padded with zeros (the target is a
    whole MiB, so it has room). Each run is at most 4 MiB, one Put Page.
    """
    if offset % PAGE:
        raise ValueError("pages start at multiples of 512")
    data = bytes(data)
    if len(data) % PAGE:
        data += bytes(PAGE - len(data) % PAGE)
    n = len(data)
    # All zeros is one memcmp; page by page, comparing 512-byte slices is what is fast.
    if data == (_ZERO_WRITE if n == MAX_PUT_PAGE else bytes(n)):
        return
    start = -1
    for at in range(0, n, PAGE):
        zero = data[at : at + PAGE] == _ZERO_PAGE
        if start >= 0 and (zero or at - start >= MAX_PUT_PAGE):
            yield offset + start, data[start:at]
            start = -1
        if not zero and start < 0:
            start = at
    if start >= 0:
        yield offset + start, data[start:n]


class ConvertedDisk(BaseModel):
    """One disk of the source and its target, with the checkpoint of its copy."""

    model_config = ConfigDict(extra="ignore")

    Member: str = ""  # the disk's file inside an OVA; "" for a single disk image
    Format: str
    VirtualSize: int  # the source's (the target's is `fixed_size` of it)
    Target: str  # the blob in the images container
    Done: int = 0  # every page below this virtual offset is written

    @property
    def size(self) -> int:
        return fixed_size(self.VirtualSize)

    @property
    def copied(self) -> bool:
        return self.Done >= self.VirtualSize


class ConversionJob(BaseModel):
    """The checkpoint of a conversion, kept in the upload's outcome row."""

    model_config = ConfigDict(extra="ignore")

    Disks: list[ConvertedDisk]
    BytesRead: int = 0  # from the source, by every step so far (headers and tables too)
    BytesWritten: int = 0  # page writes to the targets
    Steps: int = 0  # step messages that checkpointed
    Started: datetime
    Updated: datetime
    # The footer's stamp and id, fixed at the start: a footer written twice is the same.
    FooterTime: datetime = Field(default_factory=lambda: datetime.now(UTC))
    FooterIds: list[str] = Field(default_factory=list)

    @property
    def copied(self) -> bool:
        return all(d.copied for d in self.Disks)

    def footer_id(self, index: int) -> uuid.UUID:
        return uuid.UUID(self.FooterIds[index])


def new_job(disks: list[ConvertedDisk], now: datetime, bytes_read: int) -> ConversionJob:
    return ConversionJob(
        Disks=disks,
        BytesRead=bytes_read,
        Started=now,
        Updated=now,
        FooterTime=now,
        FooterIds=[str(uuid.uuid4()) for _ in disks],
    )


def progress(job: ConversionJob, total: int, now: datetime) -> tuple[int, float | None]:
    """(bytes done, seconds left) of a job over a source of `total` bytes.

    Nearly every byte of a disk image file is data a conversion reads once (the tables
    and headers are the rest), so the bytes read so far measure the work done; the time
    left is the time so far stretched over what is left of the file.
    """
    done = min(job.BytesRead, total)
    if job.copied:
        return total, 0.0
    elapsed = max(0.0, (now - job.Started).total_seconds())
    if done <= 0 or elapsed <= 0:
        return done, None
    return done, round(elapsed * (total - done) / done, 1)


class ImageReader:
    """A disk image's virtual disk as a RangeReader (what the disk probe reads): the
    extents' bytes, zeros between them, and zeros up to the next whole MiB."""

    def __init__(self, image: Any) -> None:  # a shared.domain.formats.DiskImage
        self._image = image
        self._size = fixed_size(image.virtual_size)

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be non-negative")
        end = min(self._size, offset + length)
        if offset >= end:
            return b""
        out = bytearray(end - offset)
        for e in self._image.extents(offset):
            if e.offset >= end:
                break
            data = e.data()
            lo, hi = max(offset, e.offset), min(end, e.offset + len(data))
            if lo < hi:
                out[lo - offset : hi - offset] = data[lo - e.offset : hi - e.offset]
        return bytes(out)
