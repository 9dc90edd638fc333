"""The disk format readers (shared/domain/formats) against qemu, the reference.

Each corpus image (tests/disk_formats_corpus.py, made with qemu-img at test time) is
read extent by extent, the gaps filled with zeros, and compared byte for byte with
`qemu-img convert -O raw` of the same file. Property tests feed arbitrary and
mutated bytes: only typed rejections may come out, and reads stay bounded.
"""

from __future__ import annotations

import io
import os
import struct
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.domain.errors import CatalogError
from shared.domain.formats import (
    FORMAT_REJECTION_CODES,
    MAX_EXTENT,
    DiskImage,
    InvalidOva,
    OvaNotASingleDisk,
    open_disk_image,
    open_disks,
    open_ova,
    sniff_format,
)
from shared.domain.ranged import BytesReader, CountingReader, FileReader, RangeReader
from shared.domain.vhd import DiskTooLarge, VhdRejected
from tests.disk_formats_corpus import (
    ACCEPTED,
    OVF,
    REJECTED,
    SECTOR,
    SOURCE_SIZE,
    CorpusToolMissing,
    FormatsCorpus,
    oracle_raw,
    partially_present_expected,
    write_source,
)

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> FormatsCorpus:
    return FormatsCorpus(tmp_path_factory.mktemp("formats-corpus"))


def _build(corpus: FormatsCorpus, name: str) -> Path:
    try:
        return corpus[name]
    except CorpusToolMissing as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def read_all(image: DiskImage, start: int = 0) -> bytes:
    """The virtual disk from `start` as the extents give it, gaps as zeros; checks each
    extent's promises on the way (aligned, bounded, in order, `data()` of its length)."""
    size = -(-image.virtual_size // SECTOR) * SECTOR
    out = bytearray(size)
    previous = start - start % SECTOR
    for extent in image.extents(start):
        assert extent.offset % SECTOR == 0 and extent.length % SECTOR == 0, extent
        assert 0 < extent.length <= MAX_EXTENT, extent
        assert extent.offset >= previous and extent.end <= size, extent
        data = extent.data()
        assert len(data) == extent.length, extent
        out[extent.offset : extent.end] = data
        previous = extent.end
    return bytes(out)


def _same(got: bytes, want: bytes) -> None:
    """`got` is `want` padded with zeros to a whole sector (asserting without a huge diff)."""
    assert len(got) == -(-len(want) // SECTOR) * SECTOR
    if got[: len(want)] != want:
        first = next(i for i in range(len(want)) if got[i] != want[i])
        pytest.fail(f"bytes differ from qemu's from offset {first}")
    assert not got[len(want) :].strip(b"\0")


# --------------------------------------------------------------------------------------
# Byte for byte against qemu.


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_reads_what_qemu_reads(case: str, corpus: FormatsCorpus) -> None:
    path = _build(corpus, case)
    reader = CountingReader(FileReader(str(path)))
    assert sniff_format(reader) == ACCEPTED[case].format
    image = open_disk_image(reader, path.name)
    assert image.format == ACCEPTED[case].format
    want = corpus.oracle(case)
    # qemu rounds a raw file up to a whole sector; the reader keeps its exact length.
    assert image.virtual_size == (path.stat().st_size if case == "raw_odd" else len(want))
    _same(read_all(image), want)
    # Only the allocated data and the tables are read (the merged reads' small gaps too).
    assert reader.bytes_read <= path.stat().st_size * 1.05 + 64 * 1024
    assert image.allocated_bytes() <= len(want) + SECTOR


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_resumes_at_any_offset(case: str, corpus: FormatsCorpus) -> None:
    """extents(start) gives the same bytes from `start` on, wherever start falls."""
    path = _build(corpus, case)
    image = open_disk_image(FileReader(str(path)))
    whole = read_all(image)
    for start in (1, 4096 + 7, 2 * MIB + 100_000, image.virtual_size // 2, image.virtual_size - 1):
        cut = start - start % SECTOR
        tail = read_all(image, start)
        assert not tail[:cut].strip(b"\0")
        assert tail[cut:] == whole[cut:], f"from {start}"


def test_source_is_what_the_corpus_says(tmp_path: Path) -> None:
    """The source the cases are made from has data, zeros and an odd tail, as meant."""
    data = write_source(tmp_path / "s.raw").read_bytes()
    assert len(data) == SOURCE_SIZE and data[510:512] == b"\x55\xaa"
    assert data[-100:].strip(b"\0") and not data[8 * MIB : 8 * MIB + 4096].strip(b"\0")


def test_compressed_qcow2_mixes_compressed_and_plain_clusters(corpus: FormatsCorpus) -> None:
    """qemu keeps incompressible clusters plain: both kinds are read (and the file is small)."""
    path = _build(corpus, "qcow2_compressed")
    assert path.stat().st_size < SOURCE_SIZE // 2
    image = open_disk_image(FileReader(str(path)))
    kinds = {e.source_length < e.length for e in image.extents()}
    assert kinds == {True, False}


def test_vhdx_partially_present_block_reads_only_its_present_sectors(
    corpus: FormatsCorpus,
) -> None:
    path = _build(corpus, "vhdx_partially_present")
    image = open_disk_image(FileReader(str(path)))
    source = write_source(path.with_name("again.raw")).read_bytes()
    _same(read_all(image), partially_present_expected(source))


def test_ova_gives_its_disks_in_ovf_order(corpus: FormatsCorpus) -> None:
    path = _build(corpus, "ova")
    reader = CountingReader(FileReader(str(path)))
    assert sniff_format(reader) == "ova"
    disks = open_ova(reader)
    assert [name for name, _ in disks] == ["vm-disk1.vmdk", "vm-disk2.vmdk"]
    for name, image in disks:
        assert image.format == "vmdk-stream"
        want = oracle_raw(path.with_name(name))
        _same(read_all(image), want)
    assert disks[0][1].virtual_size == SOURCE_SIZE and disks[1][1].virtual_size == 2 * MIB
    assert [n for n, _ in open_disks(FileReader(str(path)))] == ["vm-disk1.vmdk", "vm-disk2.vmdk"]
    with pytest.raises(OvaNotASingleDisk):
        open_disk_image(FileReader(str(path)))


def _tar(files: dict[str, bytes], fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_ova_in_pax_and_gnu_tars_with_long_names(corpus: FormatsCorpus) -> None:
    disk = _build(corpus, "vmdk_stream").read_bytes()
    long = "a-very-long-directory-name-" * 5 + "/disk.vmdk"
    ovf = OVF.replace("vm-disk1.vmdk", long).replace(
        '<File ovf:id="file2" ovf:href="vm-disk2.vmdk"/>', ""
    )
    ovf = ovf.replace(ovf[ovf.index('    <Disk ovf:diskId="vmdisk2"') : ovf.index("  </Disk")], "")
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        blob = _tar({"vm.ovf": ovf.format(cap1=SOURCE_SIZE).encode(), long: disk}, fmt)
        disks = open_ova(BytesReader(blob))
        assert [n for n, _ in disks] == [long]
        _same(read_all(disks[0][1]), corpus.oracle("vmdk_stream"))


@pytest.mark.parametrize(
    ("ovf", "why"),
    [
        ('<!DOCTYPE x [<!ENTITY a "b">]><Envelope/>', "DTD"),
        ("<Envelope><DiskSection>", "well-formed"),
        ("<Envelope/>", "no disks"),
        ('<Envelope xmlns:o="urn:x"><Disk o:diskId="d"/></Envelope>', "empty disk"),
        ('<Envelope xmlns:o="u"><Disk o:diskId="d" o:fileRef="f"/></Envelope>', "lacks"),
        (
            '<Envelope xmlns:o="u"><References><File o:id="f" o:href="d.vmdk" '
            'o:compression="gzip"/></References><Disk o:diskId="d" o:fileRef="f"/></Envelope>',
            "compressed",
        ),
        (
            '<Envelope xmlns:o="u"><References><File o:id="f" o:href="gone.vmdk"/>'
            '</References><Disk o:diskId="d" o:fileRef="f"/></Envelope>',
            "lacks",
        ),
    ],
)
def test_bad_ovf_is_invalid_ova(ovf: str, why: str) -> None:
    blob = _tar({"vm.ovf": ovf.encode(), "d.vmdk": b"KDMV" + bytes(1020)})
    with pytest.raises(InvalidOva) as info:
        open_ova(BytesReader(blob))
    assert why in info.value.message


def test_tar_without_ovf_is_an_archive_not_a_disk() -> None:
    with pytest.raises(VhdRejected) as info:
        open_disk_image(BytesReader(_tar({"readme.txt": b"hello"})))
    assert info.value.code == "CompressedArchive"


# --------------------------------------------------------------------------------------
# Rejections: a specific code, and a message that says what to do.


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_rejected_variant_gives_its_code(case: str, corpus: FormatsCorpus) -> None:
    path = _build(corpus, case)
    with pytest.raises(VhdRejected) as info:
        image = open_disk_image(FileReader(str(path)), path.name)
        read_all(image)
    assert info.value.code == REJECTED[case].code, info.value.message
    if case in ("differencing_vhd", "vhdx_differencing"):
        # qemu-img reads a differencing VHD without its parent: Hyper-V merges it.
        assert "Convert-VHD" in info.value.message
    elif info.value.code in ("BackingFileNotSupported", "VmdkExtentsNotSupported"):
        assert "qemu-img convert" in info.value.message


def test_every_format_code_is_documented() -> None:
    for code, cls in FORMAT_REJECTION_CODES.items():
        assert cls.code == code and cls.summary and issubclass(cls, CatalogError)


def test_virtual_size_above_the_maximum_is_disk_too_large(corpus: FormatsCorpus) -> None:
    path = _build(corpus, "qcow2_v3")
    with pytest.raises(DiskTooLarge):
        open_disk_image(FileReader(str(path)), max_virtual_size=4 * MIB)
    assert open_disk_image(FileReader(str(path)), max_virtual_size=SOURCE_SIZE)


def test_qcow2_cluster_inflating_past_its_size_is_corrupt(corpus: FormatsCorpus) -> None:
    """A compressed cluster whose stream holds more than a cluster is refused."""
    import zlib

    data = bytearray(_build(corpus, "qcow2_compressed").read_bytes())
    image = open_disk_image(BytesReader(bytes(data)))
    cluster = next(e for e in image.extents() if e.source_length < e.length)
    # Re-point that extent's first L2 entry at a bomb: 2 clusters of zeros, deflated.
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = bomb.compress(bytes(2 * 65536)) + bomb.flush()
    at = len(data)
    data += body + bytes(-len(body) % SECTOR)
    l2 = _qcow2_l2_entry_offset(bytes(data), cluster.offset)
    sectors = -(-len(body) // SECTOR) - 1
    entry = (1 << 62) | (sectors << (62 - 8)) | at
    data[l2 : l2 + 8] = struct.pack(">Q", entry)
    with pytest.raises(VhdRejected) as info:
        read_all(open_disk_image(BytesReader(bytes(data))))
    assert info.value.code == "CorruptDiskImage" and "past its size" in info.value.message


def _qcow2_l2_entry_offset(data: bytes, virtual: int) -> int:
    cluster = 1 << struct.unpack_from(">I", data, 20)[0]
    l1 = struct.unpack_from(">Q", data, 40)[0]
    per_l2 = cluster // 8
    l2 = struct.unpack_from(">Q", data, l1 + virtual // (cluster * per_l2) * 8)[0]
    return (l2 & 0x00FF_FFFF_FFFF_FE00) + (virtual // cluster % per_l2) * 8


def test_shared_data_clusters_are_corrupt(corpus: FormatsCorpus) -> None:
    """Every L2 entry pointing at one data cluster: a small file mapping a huge disk."""
    data = bytearray(_build(corpus, "qcow2_v3").read_bytes())
    first = _qcow2_l2_entry_offset(bytes(data), 0)
    entry = data[first : first + 8]
    per_l2 = 65536 // 8
    data[first : first + per_l2 * 8] = bytes(entry) * per_l2
    reader = CountingReader(BytesReader(bytes(data)))
    with pytest.raises(VhdRejected) as info:
        read_all(open_disk_image(reader))
    assert info.value.code == "CorruptDiskImage"
    assert reader.bytes_read <= 2 * len(data)


# --------------------------------------------------------------------------------------
# Property tests: arbitrary and mutated bytes give only typed errors, with bounded reads.


class GuardedReader:
    """Counts reads and stops a runaway parser: more than `max_reads` reads or
    `max_bytes` bytes fails the test (an AssertionError is not a typed rejection)."""

    def __init__(self, inner: RangeReader, max_bytes: int, max_reads: int = 20_000) -> None:
        self._inner = inner
        self.max_bytes = max_bytes
        self.max_reads = max_reads
        self.bytes_read = 0
        self.reads = 0

    @property
    def size(self) -> int:
        return self._inner.size

    def read(self, offset: int, length: int) -> bytes:
        assert offset >= 0 and length >= 0, (offset, length)
        data = self._inner.read(offset, length)
        self.reads += 1
        self.bytes_read += len(data)
        assert self.reads <= self.max_reads, "unbounded number of reads"
        assert self.bytes_read <= self.max_bytes, "unbounded bytes read"
        return data


def _exercise(blob: bytes) -> None:
    """Open and read everything; only VhdRejected may escape; reads stay bounded."""
    reader = GuardedReader(BytesReader(blob), max_bytes=4 * len(blob) + MIB)
    try:
        for _, image in open_disks(reader):
            assert image.virtual_size > 0
            for extent in image.extents():
                assert extent.length <= MAX_EXTENT
                assert len(extent.data()) == extent.length
    except VhdRejected:
        pass


MAGICS = [
    b"",
    b"QFI\xfb\x00\x00\x00\x03",
    b"QFI\xfb\x00\x00\x00\x02",
    b"KDMV\x03\x00\x00\x00",
    b"vhdxfile",
    b"conectix",
    b"# Disk DescriptorFile\n",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(MAGICS), body=st.binary(max_size=4096), pad=st.integers(0, 70_000))
def test_arbitrary_bytes_give_only_typed_errors(prefix: bytes, body: bytes, pad: int) -> None:
    _exercise(prefix + body + bytes(pad))


# Small images for mutation: their bytes are mutated where the readers look.
MUTATION_CASES = [
    "qcow2_v2",
    "qcow2_compressed",
    "qcow2_zstd",
    "qcow2_extended_l2",
    "vhd_dynamic",
    "vhdx_zero_blocks",
    "vhdx_dirty_log",
    "vmdk_sparse",
    "vmdk_stream",
    "vmdk_stream_footer",
    "ova",
]


class RecordingReader:
    """Records the reads of headers and tables (those made outside `Extent.data()`)."""

    def __init__(self, inner: RangeReader) -> None:
        self._inner = inner
        self.ranges: list[tuple[int, int]] = []
        self.in_data = False

    @property
    def size(self) -> int:
        return self._inner.size

    def read(self, offset: int, length: int) -> bytes:
        if not self.in_data:
            self.ranges.append((offset, length))
        return self._inner.read(offset, length)


@pytest.fixture(scope="module")
def mutation_sources(corpus: FormatsCorpus) -> dict[str, tuple[bytes, list[int]]]:
    """Each case's bytes and the offsets its reader looks at (where mutations bite)."""
    sources = {}
    for case in MUTATION_CASES:
        blob = _build(corpus, case).read_bytes()
        recorder = RecordingReader(BytesReader(blob))
        for _, image in open_disks(recorder):
            for extent in image.extents():
                recorder.in_data = True
                extent.data()
                recorder.in_data = False
        # Fields sit near the start of each header or table read: mutate there.
        spots = sorted({o + i for o, n in recorder.ranges for i in range(0, min(n, 96), 4)})
        sources[case] = (blob, spots)
    return sources


VALUES = st.one_of(
    st.sampled_from([b"\x00" * 8, b"\xff" * 8, b"\xff" * 2, b"\x01", b"\x80"]),
    st.binary(min_size=1, max_size=8),
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    case=st.sampled_from(MUTATION_CASES),
    draw=st.data(),
    truncate=st.sampled_from([None, None, None, 0.5, 0.9, 0.999]),
)
def test_mutated_images_give_only_typed_errors(
    mutation_sources: dict[str, tuple[bytes, list[int]]],
    case: str,
    draw: st.DataObject,
    truncate: float | None,
) -> None:
    blob, spots = mutation_sources[case]
    data = bytearray(blob)
    mutations = draw.draw(
        st.lists(
            st.tuples(st.sampled_from(spots), st.integers(0, 7), VALUES), min_size=1, max_size=4
        )
    )
    for spot, shift, value in mutations:
        at = min(spot + shift, len(data) - len(value))
        data[at : at + len(value)] = value
    if truncate is not None:
        del data[int(len(data) * truncate) :]
    _exercise(bytes(data))


def test_guard_catches_a_runaway_reader() -> None:
    """The property tests' guard itself: it fails once the budget is spent."""
    reader = GuardedReader(BytesReader(bytes(4096)), max_bytes=8192)
    reader.read(0, 4096)
    reader.read(0, 4096)
    with pytest.raises(AssertionError):
        reader.read(0, 1)
