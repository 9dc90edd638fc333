"""Upload a local disk as a page blob, the way the catalog wants it.

The blob is created at full size with the metadata `uploadstate=uploading`,
then written in 4 MiB pages by parallel workers; holes of a sparse file are
never read (SEEK_DATA/SEEK_HOLE) and chunks that read as all zeros are not
sent, so a 1 TiB disk with 64 MiB of data sends about 64 MiB. Last, the
metadata becomes `uploadstate=complete`, which tells the catalog to judge the
disk now, once, whole (see "When is an upload judged?" in the README).

Any other disk image (dynamic VHD, VHDX, qcow2, VMDK, raw) is converted on the fly by
`upload_converted`: its allocated extents, read by the catalog's own format readers,
go straight into page writes of a fixed VHD (no temp file), footer last. An OVA of
several disks, or any file with `--convert-on-server`, is sent as it is by
`upload_as_is` (a block blob) and the catalog converts it.

`check_disk` runs the catalog's own validation (`validate_vhd`), format readers and
disk probe on the local file first, by ranged reads, so a disk the catalog would
refuse is refused before a byte is sent.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmimage.output import size_text

CHUNK = 4 * 1024 * 1024  # the largest page write storage accepts
SECTOR = 512
_ZERO = bytes(CHUNK)


@dataclass
class UploadStats:
    """How far an upload has got: `sent` bytes of data, `covered` bytes of the virtual size."""

    size: int
    data_estimate: int = 0  # bytes in chunks that may hold data (holes excluded)
    sent: int = 0
    covered: int = 0
    chunks_sent: int = 0
    chunks_skipped: int = 0  # read, but all zeros
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    etag: str | None = None  # the blob's ETag once `uploadstate=complete` is set

    def elapsed(self) -> float:
        return self.seconds or (time.monotonic() - self.started)


def data_chunks(fd: int, size: int, chunk: int = CHUNK) -> Iterator[tuple[int, int]]:
    """(offset, length) of the chunks of a `chunk`-sized grid over [0, size) that hold data.

    Holes of a sparse file are skipped without reading them. Where the OS or
    the file system can't tell holes from data, every chunk is returned.
    Offsets are increasing and every chunk is returned at most once.
    """
    seek_data = getattr(os, "SEEK_DATA", None)
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None:
        yield from _grid(0, size, chunk)
        return
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, seek_data)
        except OSError as e:
            if e.errno == errno.ENXIO:  # nothing but a hole from here to the end
                return
            yield from _grid(offset, size, chunk)  # EINVAL: no SEEK_DATA here
            return
        if start >= size:
            return
        end = min(os.lseek(fd, start, seek_hole), size)
        first = max(offset, start - start % chunk)
        last = min(size, end + (-end % chunk))
        yield from _grid(first, last, chunk)
        offset = last


def _grid(start: int, stop: int, chunk: int) -> Iterator[tuple[int, int]]:
    for offset in range(start, stop, chunk):
        yield offset, min(chunk, stop - offset)


def upload_disk(
    client: Any,  # azure.storage.blob.BlobClient
    path: Path | str,
    metadata: dict[str, str] | None = None,
    *,
    workers: int = 8,
    overwrite: bool = True,
    progress: Callable[[UploadStats], None] | None = None,
) -> UploadStats:
    """Upload `path` as a page blob; returns what was sent. The size must be a multiple of 512.

    With `overwrite=False` an existing blob is an error (`ResourceExistsError`).
    If the upload fails or is interrupted, the half-written blob is deleted, so
    the catalog never waits on it.
    """
    path = Path(path)
    meta = {k: v for k, v in (metadata or {}).items() if k.lower() != "uploadstate"}
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        if size % SECTOR:
            raise ValueError(f"{path} is {size} bytes, not a multiple of 512: not a page blob")
        stats = UploadStats(size=size)
        stats.data_estimate = sum(n for _, n in data_chunks(fd, size))
        create: dict[str, Any] = {}
        if not overwrite:
            from azure.core import MatchConditions

            create["match_condition"] = MatchConditions.IfMissing  # If-None-Match: *
        client.create_page_blob(size, metadata={**meta, "uploadstate": "uploading"}, **create)
        try:
            _write_pages(client, fd, stats, max(1, workers), progress)
            props = client.set_blob_metadata({**meta, "uploadstate": "complete"})
        except BaseException:
            _delete_quietly(client)
            raise
    stats.etag = (props or {}).get("etag")
    stats.seconds = time.monotonic() - stats.started
    if progress is not None:
        progress(stats)
    return stats


def _write_pages(
    client: Any,
    fd: int,
    stats: UploadStats,
    workers: int,
    progress: Callable[[UploadStats], None] | None,
) -> None:
    def write(offset: int, length: int) -> int:
        data = os.pread(fd, length, offset)
        if len(data) != length:
            raise OSError(f"the file shrank while it was being uploaded (at offset {offset})")
        if data == _ZERO[:length]:  # a memcmp; slicing the whole of bytes makes no copy
            return 0
        client.upload_page(data, offset=offset, length=length)
        return length

    cursor = 0  # everything before this is accounted for: sent, skipped or a hole
    pending: dict[Future[int], int] = {}

    def settle(done: set[Future[int]]) -> None:
        for fut in done:
            length = pending.pop(fut)
            n = fut.result()  # re-raises a failed page write
            stats.covered += length
            if n:
                stats.sent += n
                stats.chunks_sent += 1
            else:
                stats.chunks_skipped += 1
        if progress is not None:
            progress(stats)

    with ThreadPoolExecutor(workers, thread_name_prefix="vmimage-upload") as pool:
        try:
            for offset, length in data_chunks(fd, stats.size):
                stats.covered += offset - cursor  # a hole: nothing to send
                cursor = offset + length
                while len(pending) >= 2 * workers:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    settle(done)
                pending[pool.submit(write, offset, length)] = length
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                settle(done)
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
    stats.covered += stats.size - cursor


def _delete_quietly(client: Any) -> None:
    with contextlib.suppress(Exception):  # best effort: the first error is the one to report
        client.delete_blob()


def upload_page_blob(
    client: Any,
    path: Path,
    metadata: dict[str, str] | None = None,
    workers: int = 8,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Upload `path` (overwriting the blob); returns the bytes actually sent.

    `on_progress(n)` gets the bytes sent since its previous call. This is the
    signature `devtools.upload` has always had; the CLI uses `upload_disk`.
    """
    reported = 0

    def report(stats: UploadStats) -> None:
        nonlocal reported
        if on_progress is not None and stats.sent > reported:
            on_progress(stats.sent - reported)
            reported = stats.sent

    return upload_disk(client, path, metadata, workers=workers, progress=report).sent


# -- the local check ---------------------------------------------------------------------


@dataclass
class DiskCheck:
    """What the local check found: the disk's virtual size and what is on it."""

    virtual_size: int  # of the fixed VHD the catalog gets (the OS disk's)
    file_size: int
    os: str | None
    summary: str
    source_format: str | None = None  # None: a fixed VHD, uploaded as it is
    disks: int = 1  # an OVA's disks


def check_disk(path: Path, max_size_bytes: int = 2**63) -> DiskCheck:
    """Validate `path` as a fixed VHD, or open it as another disk image, and probe it, as
    the catalog will; raises `VhdRejected`."""
    from shared.domain.conversion import ImageReader, convertible, fixed_size
    from shared.domain.disk_probe import DiskProbe, check_partitions_fit, probe_disk
    from shared.domain.formats import open_disks
    from shared.domain.ranged import FileReader
    from shared.domain.vhd import VhdRejected, validate_vhd

    def described(what: str, probe: DiskProbe) -> str:
        parts = [what]
        if probe.partition_style:
            parts.append(f"{probe.partition_style}")
        if probe.filesystems:
            parts.append(", ".join(dict.fromkeys(probe.filesystems)))
        parts.append(probe.os or "no OS found")
        return "; ".join(parts)

    reader = FileReader(str(path))
    try:
        footer = validate_vhd(reader, max_size_bytes=max_size_bytes)
    except VhdRejected as e:
        if not convertible(e):
            raise
    else:
        probe = probe_disk(reader, disk_size=footer.current_size)
        check_partitions_fit(probe)
        what = f"fixed VHD, {size_text(footer.current_size)} virtual"
        return DiskCheck(footer.current_size, reader.size, probe.os, described(what, probe))
    disks = open_disks(reader, path.name, max_virtual_size=max_size_bytes)
    image = disks[0][1]
    size = fixed_size(image.virtual_size)
    probe = probe_disk(ImageReader(image), disk_size=size)
    check_partitions_fit(probe)
    fmt = image.format if len(disks) == 1 else f"OVA of {len(disks)} disks ({image.format})"
    what = f"{fmt}, {size_text(size)} virtual"
    return DiskCheck(size, reader.size, probe.os, described(what, probe), fmt, len(disks))


def upload_converted(
    client: Any,  # azure.storage.blob.BlobClient
    path: Path | str,
    metadata: dict[str, str] | None = None,
    *,
    workers: int = 8,
    overwrite: bool = True,
    progress: Callable[[UploadStats], None] | None = None,
) -> UploadStats:
    """Convert a disk image to a fixed VHD page blob while uploading it (no temp file).

    Only the image's allocated data is read and only its non-zero pages are sent; the
    footer goes last, then `uploadstate=complete`. A failed upload deletes its blob.
    """
    from shared.adapters.page_copy import PageWriter, copy_extents
    from shared.domain.conversion import fixed_size
    from shared.domain.formats import open_disks
    from shared.domain.ranged import FileReader
    from shared.domain.vhd import FOOTER_SIZE, build_footer

    path = Path(path)
    # One disk: a disk image, or an OVA of one disk (one of several goes as it is).
    [(_, image)] = open_disks(FileReader(str(path)), path.name)
    size = fixed_size(image.virtual_size)
    meta = {k: v for k, v in (metadata or {}).items() if k.lower() != "uploadstate"}
    stats = UploadStats(size=size + FOOTER_SIZE)
    stats.data_estimate = image.allocated_bytes()
    create: dict[str, Any] = {}
    if not overwrite:
        from azure.core import MatchConditions

        create["match_condition"] = MatchConditions.IfMissing
    client.create_page_blob(
        size + FOOTER_SIZE, metadata={**meta, "uploadstate": "uploading"}, **create
    )
    writer = PageWriter(client)

    def tick(done: int) -> None:
        stats.covered, stats.sent = done, writer.written
        if progress is not None:
            progress(stats)

    try:
        copy_extents(image.extents(0), writer.write, start=0, workers=max(1, workers), tick=tick)
        # Last: until the footer is there, the blob is not a VHD the catalog would take.
        client.upload_page(build_footer(size), offset=size, length=FOOTER_SIZE)
        props = client.set_blob_metadata({**meta, "uploadstate": "complete"})
    except BaseException:
        _delete_quietly(client)
        raise
    stats.sent = writer.written + FOOTER_SIZE
    stats.covered = stats.size
    stats.etag = (props or {}).get("etag")
    stats.seconds = time.monotonic() - stats.started
    if progress is not None:
        progress(stats)
    return stats


def upload_as_is(
    client: Any,  # azure.storage.blob.BlobClient
    path: Path | str,
    metadata: dict[str, str] | None = None,
    *,
    workers: int = 8,
    overwrite: bool = True,
    progress: Callable[[UploadStats], None] | None = None,
) -> UploadStats:
    """Send the file as it is, as a block blob (blocks committed at the end, so the catalog
    sees it whole); the catalog converts it."""
    path = Path(path)
    size = path.stat().st_size
    stats = UploadStats(size=size, data_estimate=size)

    def hook(current: int, total: int | None) -> None:
        stats.sent = stats.covered = current
        if progress is not None:
            progress(stats)

    with open(path, "rb") as f:
        props = client.upload_blob(
            f,
            length=size,
            blob_type="BlockBlob",
            metadata=metadata or None,
            overwrite=overwrite,
            max_concurrency=max(1, workers),
            progress_hook=hook,
        )
    stats.sent = stats.covered = size
    stats.etag = (props or {}).get("etag")
    stats.seconds = time.monotonic() - stats.started
    if progress is not None:
        progress(stats)
    return stats


# -- where the blob goes -----------------------------------------------------------------


def blob_service(connection_string: str | None, account_url: str | None) -> Any:
    """A BlobServiceClient from a connection string, or an account URL + DefaultAzureCredential."""
    from azure.storage.blob import BlobServiceClient, ExponentialRetry

    # Three retries ~2, 3 and 4 s apart (the SDK's default waits 15 s + 3^n): a blip is
    # retried, a dead endpoint is reported within seconds.
    retry = ExponentialRetry(
        initial_backoff=0.5, increment_base=1.5, retry_total=3, random_jitter_range=0.5
    )
    if account_url:
        from azure.identity import DefaultAzureCredential

        return BlobServiceClient(
            account_url, credential=DefaultAzureCredential(), retry_policy=retry
        )
    return BlobServiceClient.from_connection_string(
        connection_string or "UseDevelopmentStorage=true", retry_policy=retry
    )
