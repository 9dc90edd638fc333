"""The CLI's uploader: the sparse chunk iterator, the page-blob protocol, the local check."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from shared.domain.disk_probe import PartitionBeyondDisk
from shared.domain.formats import BackingFileNotSupported
from vmimage import upload as up
from vmimage.upload import CHUNK, check_disk, data_chunks, upload_disk, upload_page_blob

MIB = 1024 * 1024


def sparse(path: Path, size: int, writes: dict[int, bytes]) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in writes.items():
            f.seek(offset)
            f.write(data)
    return path


def chunks_of(path: Path, chunk: int = CHUNK) -> list[tuple[int, int]]:
    with open(path, "rb") as f:
        return list(data_chunks(f.fileno(), os.path.getsize(path), chunk))


@pytest.fixture
def holes(tmp_path: Path) -> None:
    """Skip where the file system stores no holes (every byte would count as data)."""
    probe = sparse(tmp_path / "probe", 64 * MIB, {32 * MIB: b"x"})
    with open(probe, "rb") as f:
        if os.lseek(f.fileno(), 0, os.SEEK_DATA) == 0:
            pytest.skip("this file system does not report holes")


class FakeExtents:
    """Stands in for os.lseek: a file whose data lies in the given [start, end) extents."""

    def __init__(self, extents: list[tuple[int, int]], size: int) -> None:
        self.extents, self.size = extents, size

    def __call__(self, fd: int, offset: int, whence: int) -> int:
        if whence == os.SEEK_DATA:
            for start, end in self.extents:
                if offset < end:
                    return max(start, offset)
            raise OSError(errno.ENXIO, "no more data")
        if whence == os.SEEK_HOLE:
            for start, end in self.extents:
                if start <= offset < end:
                    return end
            return self.size
        raise AssertionError(whence)


@pytest.mark.parametrize(
    ("extents", "size", "expected"),
    [
        ([], 16 * MIB, []),  # all hole
        ([(0, 4096)], 16 * MIB, [(0, CHUNK)]),
        # Data in the middle of chunk 1 only: chunks 0, 2, 3 are never read.
        ([(5 * MIB, 5 * MIB + 4096)], 16 * MIB, [(CHUNK, CHUNK)]),
        # Straddling chunks 1 and 2, then a separate extent in chunk 2 (not repeated).
        (
            [(7 * MIB, 9 * MIB), (10 * MIB, 10 * MIB + 1)],
            16 * MIB,
            [(CHUNK, CHUNK), (2 * CHUNK, CHUNK)],
        ),
        # The last chunk is short: a 10 MiB + 512 file has chunks 4, 4, 2 MiB + 512.
        (
            [(0, 10 * MIB + 512)],
            10 * MIB + 512,
            [(0, CHUNK), (CHUNK, CHUNK), (2 * CHUNK, 2 * MIB + 512)],
        ),
        ([(10 * MIB, 10 * MIB + 512)], 10 * MIB + 512, [(2 * CHUNK, 2 * MIB + 512)]),
    ],
)
def test_only_chunks_with_data_are_listed(monkeypatch, extents, size, expected) -> None:
    monkeypatch.setattr(os, "lseek", FakeExtents(extents, size))
    assert list(data_chunks(3, size)) == expected


def test_without_seek_data_on_the_file_system_every_chunk_is_listed(monkeypatch) -> None:
    def no_seek_data(fd: int, offset: int, whence: int) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "lseek", no_seek_data)
    assert list(data_chunks(3, 9 * MIB)) == [(0, CHUNK), (CHUNK, CHUNK), (2 * CHUNK, MIB)]


def test_without_seek_data_in_the_os_every_chunk_is_listed(monkeypatch) -> None:
    monkeypatch.delattr(os, "SEEK_DATA", raising=False)
    assert list(data_chunks(3, 5 * MIB, chunk=2 * MIB)) == [
        (0, 2 * MIB),
        (2 * MIB, 2 * MIB),
        (4 * MIB, MIB),
    ]


def test_a_real_sparse_file(tmp_path: Path, holes: None) -> None:
    size = 64 * MIB + 512
    path = sparse(tmp_path / "d.vhd", size, {MIB: b"a", 33 * MIB: b"b" * 8192, size - 512: b"f"})
    assert chunks_of(path) == [(0, CHUNK), (8 * CHUNK, CHUNK), (16 * CHUNK, 512)]
    assert chunks_of(sparse(tmp_path / "empty.vhd", 8 * MIB, {})) == []


class FakeBlob:
    """Records what a BlobClient is asked to do (page writes may come from many threads)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.pages: dict[int, bytes] = {}
        self.fail_at = fail_at
        self.lock = threading.Lock()

    def create_page_blob(self, size: int, metadata: dict[str, str], **kw: Any) -> None:
        self.calls.append(("create", (size, metadata, kw)))

    def upload_page(self, data: bytes, offset: int, length: int) -> None:
        assert length == len(data) and offset % 512 == 0 and length % 512 == 0
        if offset == self.fail_at:
            raise ConnectionError("storage went away")
        with self.lock:
            self.pages[offset] = data

    def set_blob_metadata(self, metadata: dict[str, str]) -> dict[str, Any]:
        self.calls.append(("metadata", metadata))
        return {"etag": '"0x8D-final"'}

    def delete_blob(self) -> None:
        self.calls.append(("delete", None))


def test_upload_creates_writes_data_only_then_says_complete(tmp_path: Path) -> None:
    size = 32 * MIB + 512
    noise = os.urandom(CHUNK)
    path = sparse(
        tmp_path / "d.vhd",
        size,
        {0: b"boot", 2 * CHUNK: noise, 5 * CHUNK: bytes(CHUNK), size - 512: b"conectix"},
    )
    blob = FakeBlob()
    seen: list[tuple[int, int]] = []
    stats = upload_disk(
        blob,
        path,
        {"os": "Linux", "uploadstate": "ignored"},
        workers=3,
        progress=lambda s: seen.append((s.sent, s.covered)),
    )
    assert blob.calls[0] == ("create", (size, {"os": "Linux", "uploadstate": "uploading"}, {}))
    assert blob.calls[-1] == ("metadata", {"os": "Linux", "uploadstate": "complete"})
    # The chunk of zeros written into the file (5) is read but not sent; holes are not read.
    assert sorted(blob.pages) == [0, 2 * CHUNK, 8 * CHUNK]
    assert blob.pages[2 * CHUNK] == noise and blob.pages[8 * CHUNK].startswith(b"conectix")
    assert stats.sent == 2 * CHUNK + 512
    assert (stats.covered, stats.size, stats.etag) == (size, size, '"0x8D-final"')
    assert seen[-1] == (stats.sent, size)
    assert [c for c, _ in seen] == sorted(c for c, _ in seen)  # progress never goes back


def test_a_new_blob_only_unless_overwrite(tmp_path: Path) -> None:
    path = sparse(tmp_path / "d.vhd", MIB, {0: b"x"})
    blob = FakeBlob()
    upload_disk(blob, path, overwrite=False)
    assert blob.calls[0][1][2]["match_condition"].name == "IfMissing"


def test_a_failed_upload_deletes_the_half_written_blob(tmp_path: Path) -> None:
    path = sparse(tmp_path / "d.vhd", 16 * MIB, {i * CHUNK: b"x" for i in range(4)})
    blob = FakeBlob(fail_at=2 * CHUNK)
    with pytest.raises(ConnectionError):
        upload_disk(blob, path, workers=2)
    assert [c for c, _ in blob.calls] == ["create", "delete"]


def test_a_size_that_is_not_whole_pages_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    path = tmp_path / "odd.vhd"
    path.write_bytes(b"x" * 1000)
    blob = FakeBlob()
    with pytest.raises(ValueError, match="multiple of 512"):
        upload_disk(blob, path)
    assert blob.calls == []


def test_upload_page_blob_keeps_the_devtools_signature(tmp_path: Path) -> None:
    from devtools.upload import upload_page_blob as reexported

    assert reexported is upload_page_blob
    path = sparse(tmp_path / "d.vhd", 12 * MIB, {0: b"a", CHUNK: b"b"})
    deltas: list[int] = []
    sent = upload_page_blob(FakeBlob(), path, {"label": "x"}, 4, deltas.append)
    assert sent == sum(deltas) == 2 * CHUNK


def test_the_local_check_is_the_catalogs(corpus_path) -> None:
    check = check_disk(corpus_path("linux_ext4_mbr"))
    assert check.os == "Linux"
    assert "fixed VHD" in check.summary and "MBR" in check.summary
    # Another disk image is read by the catalog's format readers, converted on the way.
    dynamic = check_disk(corpus_path("dynamic_vhd"))
    assert (dynamic.source_format, dynamic.os, dynamic.virtual_size) == (
        "vhd-dynamic",
        None,
        64 * MIB,
    )
    with pytest.raises(BackingFileNotSupported):
        check_disk(corpus_path("differencing_vhd"))
    with pytest.raises(PartitionBeyondDisk):  # what the probe finds rejects too
        check_disk(corpus_path("linux_cut_short"))


def test_storage_defaults_to_the_local_emulator() -> None:
    service = up.blob_service(None, None)
    assert service.url.startswith("http://127.0.0.1:10000/devstoreaccount1")


def qcow2_of(raw: Path) -> Path:
    import subprocess

    out = raw.with_suffix(".qcow2")
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out)],
        check=True,
        capture_output=True,
    )
    return out


def test_a_disk_image_is_converted_on_the_way_data_pages_then_footer_then_complete(
    tmp_path: Path,
) -> None:
    from shared.domain.vhd import parse_footer

    noise = os.urandom(CHUNK)
    size = 40 * MIB + 1000  # not a whole MiB: the VHD is 41 MiB
    raw = sparse(tmp_path / "d.raw", size, {510: b"\x55\xaa", 3 * MIB: noise, size - 8: b"end"})
    blob = FakeBlob()
    order: list[int] = []
    real = blob.upload_page

    def recorded(data: bytes, offset: int, length: int) -> None:
        real(data, offset, length)
        with blob.lock:
            order.append(offset)

    blob.upload_page = recorded  # type: ignore[method-assign]
    stats = up.upload_converted(blob, qcow2_of(raw), {"os": "Linux"}, workers=3)
    create, metadata = blob.calls[0], blob.calls[-1]
    assert create == ("create", (41 * MIB + 512, {"os": "Linux", "uploadstate": "uploading"}, {}))
    assert metadata == ("metadata", {"os": "Linux", "uploadstate": "complete"})
    assert order[-1] == 41 * MIB  # the footer, last
    footer = parse_footer(blob.pages[41 * MIB])
    assert (footer.current_size, footer.disk_type, footer.checksum_ok) == (41 * MIB, 2, True)
    # Only the non-zero pages went: the MBR's, the noise, the end's.
    disk = bytearray(41 * MIB)
    for offset, data in blob.pages.items():
        if offset < 41 * MIB:
            disk[offset : offset + len(data)] = data
    assert bytes(disk[:size]) == raw.read_bytes()
    assert sum(len(d) for o, d in blob.pages.items() if o < 41 * MIB) == 512 + CHUNK + 512
    assert stats.sent == 512 + CHUNK + 512 + 512 and stats.etag == '"0x8D-final"'


def test_a_conversion_that_fails_deletes_its_blob(tmp_path: Path) -> None:
    raw = sparse(tmp_path / "f.raw", 24 * MIB, {510: b"\x55\xaa", 8 * MIB: b"x" * 512})
    blob = FakeBlob(fail_at=8 * MIB)
    with pytest.raises(ConnectionError):
        up.upload_converted(blob, qcow2_of(raw), {})
    assert blob.calls[-1] == ("delete", None)
    assert 24 * MIB not in blob.pages  # no footer: never a VHD
