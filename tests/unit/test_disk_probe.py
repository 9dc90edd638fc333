"""Tests for shared.domain.disk_probe: partition tables, file systems, os-release.

Real disks come from tests/vhd_corpus.py. Property tests feed arbitrary bytes,
synthesised structures and real disks with random byte mutations (at the
exact places the probe reads) to check that only `CatalogError`s escape the
readers and that `probe_disk` always returns.
"""

from __future__ import annotations

import contextlib
import os
import random
import struct
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shared.domain.disk_probe as dp
from shared.domain.disk_probe import (
    GPT_TYPES,
    DiskProbe,
    Ext4Reader,
    FileNotFoundOnDisk,
    InvalidPartitionTable,
    NoPartitionTable,
    PartitionBeyondDisk,
    ProbeLimitExceeded,
    ProbeLimits,
    check_partitions_fit,
    detect_filesystem,
    parse_os_release,
    probe_disk,
    read_ext4_file,
    read_gpt,
    read_mbr,
)
from shared.domain.errors import CatalogError
from shared.domain.ranged import BytesReader, CountingReader, FileReader
from shared.domain.vhd import FOOTER_SIZE, MIB

CorpusPath = Callable[[str], Path]
FAST = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
BIG_FILE = random.Random(7).randbytes(300_000)  # /usr/lib/big-file.bin in the corpus trees
LINUX_DISKS = [
    "linux_ext4_mbr",
    "linux_with_swap",
    "linux_ext2_absolute_symlink",
    "linux_ext3",
    "linux_htree",
    "linux_logical",
    "linux_meta_bg",
]


class PatchedReader:
    """A RangeReader over a file (pread on one handle) with byte patches applied."""

    def __init__(self, path: Path, patches: dict[int, int] | None = None) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._size = os.fstat(self._fd).st_size
        self.patches = patches or {}

    def close(self) -> None:
        os.close(self._fd)

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        data = bytearray(os.pread(self._fd, length, offset))
        for at, value in self.patches.items():
            if offset <= at < offset + len(data):
                data[at - offset] = value
        return bytes(data)


def _probe(path: Path) -> tuple[DiskProbe, CountingReader]:
    reader = CountingReader(FileReader(str(path)))
    return probe_disk(reader, disk_size=reader.size - FOOTER_SIZE), reader


def _root_fs(path: Path, index: int = 1) -> Ext4Reader:
    reader = FileReader(str(path))
    table = read_mbr(reader, disk_size=reader.size - FOOTER_SIZE)
    part = next(p for p in table.partitions if p.index == index)
    return Ext4Reader(reader, offset=part.start, size=part.size)


# --------------------------------------------------------------------------------------
# Real disks.


def test_linux_disk(corpus_path: CorpusPath) -> None:
    probe, reader = _probe(corpus_path("linux_ext4_mbr"))
    assert probe.partition_style == "MBR"
    assert [(p.index, p.type, p.type_name) for p in probe.partitions] == [(1, "0x83", "Linux")]
    root = probe.partitions[0]
    assert root.start == MIB and root.size == 63 * MIB and root.bootable
    assert root.filesystem == "ext4" and root.label == "cloudimg-rootfs"
    assert probe.filesystems == ["ext4"]
    assert probe.os == "Linux"
    assert probe.os_release["ID"] == "ubuntu"
    assert probe.os_release["VERSION_ID"] == "22.04"
    assert probe.os_release["PRETTY_NAME"] == "Ubuntu 22.04.4 LTS"
    assert probe.os_release_partition == 1
    assert probe.generation == 1
    assert probe.warnings == []
    assert reader.reads <= 40
    assert reader.bytes_read < 256 * 1024
    assert (probe.reads, probe.bytes_read) == (reader.reads, reader.bytes_read)
    assert probe.to_dict()["osRelease"]["ID"] == "ubuntu"


def test_windows_disk(corpus_path: CorpusPath) -> None:
    probe, reader = _probe(corpus_path("windows_gpt"))
    assert probe.partition_style == "GPT"
    names = [(p.type_name, p.filesystem, p.name) for p in probe.partitions]
    assert names == [
        ("EFI system", "fat32", "EFI system partition"),
        ("Microsoft reserved", None, "Microsoft reserved partition"),
        ("Microsoft basic data", "ntfs", "Basic data partition"),
    ]
    assert probe.partitions[0].label == "SYSTEM"
    assert set(probe.filesystems) == {"fat32", "ntfs"}
    assert probe.os == "Windows"
    assert probe.generation == 2
    assert probe.os_release == {}
    assert probe.warnings == []
    assert reader.bytes_read < 256 * 1024


def test_swap_partition_warns(corpus_path: CorpusPath) -> None:
    probe, _ = _probe(corpus_path("linux_with_swap"))
    assert [p.filesystem for p in probe.partitions] == ["ext4", "swap"]
    assert probe.os == "Linux" and probe.os_release["ID"] == "ubuntu"
    assert any("swap" in w and "resource disk" in w for w in probe.warnings)


def test_blank_disk(corpus_path: CorpusPath) -> None:
    probe, reader = _probe(corpus_path("blank_fixed"))
    assert probe.partition_style is None
    assert probe.partitions == [] and probe.filesystems == []
    assert probe.os is None and probe.generation is None
    assert any("blank" in w for w in probe.warnings)
    assert reader.bytes_read < 64 * 1024


@pytest.mark.parametrize("case", LINUX_DISKS)
def test_linux_variants_probe_within_budget(case: str, corpus_path: CorpusPath) -> None:
    probe, reader = _probe(corpus_path(case))
    assert probe.os == "Linux"
    assert probe.os_release["ID"] in ("ubuntu", "debian")
    assert reader.bytes_read < 256 * 1024
    assert reader.reads <= 40


def test_ext2_slow_absolute_symlink(corpus_path: CorpusPath) -> None:
    path = corpus_path("linux_ext2_absolute_symlink")
    probe, _ = _probe(path)
    assert probe.filesystems == ["ext2"]
    assert probe.os_release["ID"] == "debian" and probe.os_release["VERSION_ID"] == "12"
    fs = _root_fs(path)
    target = fs.read_link("/etc/os-release")
    assert target.startswith("/usr/./lib/../lib/") and len(target) >= 60  # a slow symlink


def test_logical_partitions(corpus_path: CorpusPath) -> None:
    probe, _ = _probe(corpus_path("linux_logical"))
    parts = [(p.index, p.logical, p.filesystem, p.bootable) for p in probe.partitions]
    assert parts == [(1, False, "ext2", True), (5, True, "ext4", False), (6, True, "swap", False)]
    # /boot (bootable, no /etc) is tried first; the root is the logical partition 5.
    assert probe.os_release_partition == 5 and probe.os_release["ID"] == "ubuntu"


def test_unpartitioned_filesystem(corpus_path: CorpusPath) -> None:
    probe, _ = _probe(corpus_path("linux_unpartitioned"))
    assert probe.partition_style is None and probe.partitions == []
    assert probe.filesystems == ["ext4"]
    assert probe.os_release_partition == 0 and probe.os_release["ID"] == "ubuntu"
    assert any("no partition table" in w for w in probe.warnings)


def test_htree_directory_is_scanned_completely(corpus_path: CorpusPath) -> None:
    fs = _root_fs(corpus_path("linux_htree"))
    assert fs.block_size == 4096
    etc = fs.read_inode(fs.lookup("/etc"))
    assert etc.flags & 0x1000  # EXT4_INDEX_FL: a hashed (htree) directory
    assert etc.size > 4 * fs.block_size
    names = fs.list_dir("/etc")
    assert sum(n.startswith("config-file-number-") for n in names) == 1500
    for i in (0, 777, 1499):
        assert fs.read_file(f"/etc/config-file-number-{i:04d}.conf") == f"setting = {i}\n".encode()


def test_meta_bg_group_descriptors(corpus_path: CorpusPath) -> None:
    fs = _root_fs(corpus_path("linux_meta_bg"))
    per_meta_group = fs.block_size // fs.desc_size * fs.inodes_per_group
    number = fs.lookup("/etc/config-file-number-0599.conf")
    assert number > 2 * per_meta_group  # its descriptor lives in a later meta block group
    assert fs.read_file("/etc/config-file-number-0599.conf") == b"setting = 599\n"


@pytest.mark.parametrize(
    "case",
    ["linux_ext4_mbr", "linux_ext2_absolute_symlink", "linux_ext3", "linux_htree", "linux_meta_bg"],
)
def test_multi_block_file_contents(case: str, corpus_path: CorpusPath) -> None:
    fs = _root_fs(corpus_path(case))
    # 300,000 bytes: extents, or with 1 KiB blocks on ext2/3 double-indirect pointers.
    assert fs.read_file("/usr/lib/big-file.bin", max_bytes=400_000) == BIG_FILE
    with pytest.raises(ProbeLimitExceeded):
        fs.read_file("/usr/lib/big-file.bin")  # over the default 64 KiB file limit


def test_ext4_reader_errors(corpus_path: CorpusPath) -> None:
    path = corpus_path("linux_ext4_mbr")
    fs = _root_fs(path)
    assert fs.read_link("/etc/os-release") == "../usr/lib/os-release"
    assert b"ID=ubuntu" in fs.read_file("/etc/os-release")
    assert fs.read_file("/etc/../etc/./hostname") == b"imagebuilder\n"
    with pytest.raises(ProbeLimitExceeded):
        fs.read_file("/etc/loop-a")
    with pytest.raises(FileNotFoundOnDisk):
        fs.read_file("/etc/dangling")
    with pytest.raises(FileNotFoundOnDisk):
        fs.read_file("/etc/missing")
    with pytest.raises(FileNotFoundOnDisk):
        fs.read_file("/etc/hostname/x")
    with pytest.raises(FileNotFoundOnDisk):
        fs.read_file("/etc")
    data = read_ext4_file(FileReader(str(path)), "/usr/lib/os-release", offset=MIB)
    assert data.startswith(b'PRETTY_NAME="Ubuntu')


def test_readers_directly(corpus_path: CorpusPath) -> None:
    windows = FileReader(str(corpus_path("windows_gpt")))
    size = windows.size - FOOTER_SIZE
    mbr = read_mbr(windows, disk_size=size)
    assert mbr.protective and not mbr.hybrid and mbr.partitions == []
    gpt = read_gpt(windows, disk_size=size)
    assert not gpt.used_backup and len(gpt.partitions) == 3
    assert uuid.UUID(gpt.disk_guid)
    assert next(GPT_TYPES[p.type] for p in gpt.partitions) == "EFI system"
    esp, _, data = gpt.partitions
    assert detect_filesystem(windows, esp.start, esp.size) == "fat32"
    assert detect_filesystem(windows, data.start, data.size) == "ntfs"
    linux = FileReader(str(corpus_path("linux_ext4_mbr")))
    with pytest.raises(NoPartitionTable):
        read_gpt(linux, disk_size=linux.size - FOOTER_SIZE)
    with pytest.raises(NoPartitionTable):
        read_mbr(FileReader(str(corpus_path("blank_fixed"))))


def test_gpt_falls_back_to_backup(corpus_path: CorpusPath) -> None:
    reader = PatchedReader(corpus_path("windows_gpt"), {512 + 60: 0x55})  # break the header CRC
    try:
        gpt = read_gpt(reader, disk_size=reader.size - FOOTER_SIZE)
        assert gpt.used_backup and len(gpt.partitions) == 3
        probe = probe_disk(reader, disk_size=reader.size - FOOTER_SIZE)
        assert probe.os == "Windows" and any("backup GPT" in w for w in probe.warnings)
        reader.patches[reader.size - FOOTER_SIZE - 512 + 60] = 0x55  # and the backup's
        with pytest.raises(InvalidPartitionTable):
            read_gpt(reader, disk_size=reader.size - FOOTER_SIZE)
    finally:
        reader.close()


def test_missing_protective_mbr_warns(corpus_path: CorpusPath) -> None:
    reader = PatchedReader(corpus_path("windows_gpt"), {510: 0, 511: 0})
    try:
        probe = probe_disk(reader, disk_size=reader.size - FOOTER_SIZE)
    finally:
        reader.close()
    assert probe.partition_style == "GPT" and probe.os == "Windows"
    assert any("protective MBR missing" in w for w in probe.warnings)


def test_a_disk_cut_short_is_rejected_naming_the_partition_and_both_sizes(
    corpus_path: CorpusPath,
) -> None:
    probe, _ = _probe(corpus_path("linux_cut_short"))
    assert probe.disk_size == 40 * MIB
    assert [(p.index, p.end) for p in probe.partitions] == [(1, 64 * MIB)]
    with pytest.raises(PartitionBeyondDisk) as cut:
        check_partitions_fit(probe)
    assert (cut.value.code, cut.value.status) == ("PartitionBeyondDisk", 400)
    message = cut.value.message
    assert "partition 1 (Linux, 0x83) ends at byte 67108864" in message
    assert "the disk is only 41943040 bytes" in message
    assert "cut short" in message and "upload the complete file" in message


def test_a_cut_gpt_disk_is_read_from_its_primary_header_and_rejected(
    corpus_path: CorpusPath,
) -> None:
    # The backup GPT went with the cut; the primary header still describes the whole disk.
    reader = FileReader(str(corpus_path("windows_gpt")))
    probe = probe_disk(reader, disk_size=64 * MIB)
    assert probe.partition_style == "GPT" and len(probe.partitions) == 3
    assert any("written for a larger disk" in w for w in probe.warnings)
    with pytest.raises(
        PartitionBeyondDisk, match="partition 3 \\(Microsoft basic data 'Basic data partition'"
    ) as cut:
        check_partitions_fit(probe)
    assert "partition 1 " not in cut.value.message  # the ESP and MSR still fit


def test_partitions_starting_past_the_end_are_named_too(corpus_path: CorpusPath) -> None:
    # Cut before the swap partition (56..64 MiB): it starts past the end of the disk.
    reader = FileReader(str(corpus_path("linux_with_swap")))
    probe = probe_disk(reader, disk_size=40 * MIB)
    assert [p.index for p in probe.partitions] == [1, 2]
    with pytest.raises(PartitionBeyondDisk) as cut:
        check_partitions_fit(probe)
    assert "partition 1 (Linux, 0x83)" in cut.value.message
    assert "partition 2 (Linux swap, 0x82)" in cut.value.message


@pytest.mark.parametrize("case", [*LINUX_DISKS, "windows_gpt", "blank_fixed", "huge_sparse"])
def test_whole_disks_fit(case: str, corpus_path: CorpusPath) -> None:
    probe, _ = _probe(corpus_path(case))
    check_partitions_fit(probe)


def test_probe_budget_stops_cleanly(corpus_path: CorpusPath) -> None:
    reader = FileReader(str(corpus_path("linux_ext4_mbr")))
    probe = probe_disk(
        reader, disk_size=reader.size - FOOTER_SIZE, limits=ProbeLimits(max_bytes_read=8192)
    )
    assert probe.bytes_read <= 8192
    assert any("stopped early" in w for w in probe.warnings)


def test_parse_os_release() -> None:
    text = (
        "# comment\n"
        'NAME="Fancy \\"Linux\\""\n'
        "ID=fancy\n"
        "VERSION_ID='1.0'\n"
        'PRETTY_NAME="Costs \\$5 \\\\ \\`x\\`"\n'
        "not a line\n"
        "  SPACED = value  \n"
        "EMPTY=\n"
    )
    assert parse_os_release(text) == {
        "NAME": 'Fancy "Linux"',
        "ID": "fancy",
        "VERSION_ID": "1.0",
        "PRETTY_NAME": "Costs $5 \\ `x`",
        "SPACED": "value",
        "EMPTY": "",
    }


# --------------------------------------------------------------------------------------
# Properties: arbitrary and synthesised structures.


@FAST
@given(st.binary(min_size=0, max_size=8192), st.booleans())
def test_readers_on_arbitrary_bytes(data: bytes, signed: bool) -> None:
    if signed and len(data) >= 512:
        data = data[:510] + b"\x55\xaa" + data[512:]
    reader = BytesReader(data)
    for call in (
        lambda: read_mbr(reader),
        lambda: read_gpt(reader),
        lambda: detect_filesystem(reader, 0) if data else None,
        lambda: Ext4Reader(reader).read_file("/etc/os-release"),
    ):
        with contextlib.suppress(CatalogError):
            call()
    probe = probe_disk(reader, disk_size=len(data))
    assert isinstance(probe, DiskProbe)


def _mbr_entry(status: int, ptype: int, start: int, count: int) -> bytes:
    return bytes([status, 0, 0, 0, ptype, 0, 0, 0]) + struct.pack("<II", start, count)


@FAST
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 0x80, 0x01]),
            st.sampled_from([0, 0x05, 0x0F, 0x07, 0x83, 0x82, 0xEE, 0x42]),
            st.integers(0, 300),
            st.integers(0, 300),
        ),
        min_size=4,
        max_size=4,
    ),
    st.lists(
        st.tuples(
            st.integers(1, 299),  # EBR sector
            st.integers(0, 300),  # logical partition start, relative to the EBR
            st.integers(0, 300),  # its size
            st.sampled_from([0, 0x05, 0x0F, 0x83]),  # type of the link to the next EBR
            st.integers(0, 300),  # next EBR, relative to the extended partition
        ),
        max_size=8,
    ),
    st.integers(0, 2**32),
)
def test_read_mbr_synthesised(
    entries: list[tuple[int, int, int, int]],
    ebrs: list[tuple[int, int, int, int, int]],
    seed: int,
) -> None:
    data = bytearray(random.Random(seed).randbytes(512 * 300))
    data[:512] = bytes(446) + b"".join(_mbr_entry(*e) for e in entries) + b"\x55\xaa"
    for lba, start, count, link, next_ebr in ebrs:
        at = lba * 512 + 446
        data[at : at + 32] = _mbr_entry(0, 0x83, start, count) + _mbr_entry(0, link, next_ebr, 8)
        data[lba * 512 + 510 : lba * 512 + 512] = b"\x55\xaa"
    reader = BytesReader(bytes(data))
    try:
        table = read_mbr(reader)
    except CatalogError:
        pass
    else:
        assert all(p.start > 0 and p.size > 0 for p in table.partitions)
    assert isinstance(probe_disk(reader, disk_size=len(data)), DiskProbe)


def _gpt(
    total: int,
    entries_lba: int,
    num_entries: int,
    entry_size: int,
    header_size: int,
    first_usable: int,
    last_usable: int,
    array: bytes,
) -> bytes:
    disk = bytearray(total * 512)
    disk[0:512] = bytes(446) + _mbr_entry(0, 0xEE, 1, total - 1) + bytes(48) + b"\x55\xaa"
    array = array.ljust(min(num_entries * entry_size, 65536), b"\0")
    at = entries_lba * 512
    chunk = array[: max(0, len(disk) - at)]
    disk[at : at + len(chunk)] = chunk
    header = bytearray(
        struct.pack(
            "<8sIIIIQQQQ16sQIII",
            b"EFI PART",
            0x00010000,
            header_size,
            0,
            0,
            1,
            total - 1,
            first_usable,
            last_usable,
            uuid.uuid4().bytes,
            entries_lba,
            num_entries,
            entry_size,
            zlib.crc32(array[: num_entries * entry_size]),
        )
    ).ljust(512, b"\0")
    header[16:20] = struct.pack("<I", zlib.crc32(bytes(header[:header_size])))
    disk[512:1024] = header
    return bytes(disk)


@FAST
@given(
    entries_lba=st.integers(0, 80),
    num_entries=st.integers(0, 300) | st.integers(0, 2**32 - 1),
    entry_size=st.sampled_from([0, 64, 128, 136, 256, 4096, 2**32 - 1]),
    header_size=st.sampled_from([0, 91, 92, 128, 512]),
    first_usable=st.integers(0, 200),
    last_usable=st.integers(0, 200) | st.integers(0, 2**64 - 1),
    array=st.binary(max_size=4096),
)
def test_read_gpt_synthesised(
    entries_lba: int,
    num_entries: int,
    entry_size: int,
    header_size: int,
    first_usable: int,
    last_usable: int,
    array: bytes,
) -> None:
    data = _gpt(
        160, entries_lba, num_entries, entry_size, header_size, first_usable, last_usable, array
    )
    reader = BytesReader(data)
    try:
        table = read_gpt(reader)
    except CatalogError:
        pass
    else:
        assert all(p.size > 0 for p in table.partitions)
    assert isinstance(probe_disk(reader, disk_size=len(data)), DiskProbe)


@FAST
@given(
    log_block=st.integers(0, 8),
    inodes_per_group=st.integers(0, 70000),
    blocks_per_group=st.integers(0, 70000),
    inodes_count=st.integers(0, 2**32 - 1),
    blocks_count=st.integers(0, 2**32 - 1),
    inode_size=st.sampled_from([0, 100, 128, 256, 384, 1024, 65535]),
    desc_size=st.sampled_from([0, 16, 32, 64, 128, 65535]),
    incompat=st.integers(0, 2**32 - 1) | st.sampled_from([0x2C2, 0x2D2, 0x8002]),
    rev=st.sampled_from([0, 1]),
    first_data_block=st.sampled_from([0, 1, 7]),
    noise=st.binary(min_size=0, max_size=4096),
    noise_at=st.integers(0, 60 * 1024),
)
def test_ext4_reader_synthesised_superblock(
    log_block: int,
    inodes_per_group: int,
    blocks_per_group: int,
    inodes_count: int,
    blocks_count: int,
    inode_size: int,
    desc_size: int,
    incompat: int,
    rev: int,
    first_data_block: int,
    noise: bytes,
    noise_at: int,
) -> None:
    disk = bytearray(64 * 1024)
    disk[noise_at : noise_at + len(noise)] = noise
    sb = bytearray(1024)
    struct.pack_into("<II", sb, 0, inodes_count, blocks_count)
    struct.pack_into("<III", sb, 20, first_data_block, log_block, log_block)
    struct.pack_into("<I", sb, 32, blocks_per_group)
    struct.pack_into("<I", sb, 40, inodes_per_group)
    struct.pack_into("<H", sb, 56, 0xEF53)
    struct.pack_into("<I", sb, 76, rev)
    struct.pack_into("<H", sb, 88, inode_size)
    struct.pack_into("<I", sb, 96, incompat)
    struct.pack_into("<H", sb, 254, desc_size)
    disk[1024:2048] = sb
    reader = BytesReader(bytes(disk))
    with contextlib.suppress(CatalogError):
        Ext4Reader(reader).read_file("/etc/os-release")
    assert isinstance(probe_disk(reader, disk_size=len(disk)), DiskProbe)


# --------------------------------------------------------------------------------------
# Properties: real disks with bytes changed where the probe looks.


def _recorded_ranges(path: Path) -> list[tuple[int, int]]:
    """The exact (offset, length) structure reads a clean probe makes."""
    seen: list[tuple[int, int]] = []
    original = dp._DiskView.read

    def recording(self: dp._DiskView, offset: int, length: int) -> bytes:
        seen.append((offset, length))
        return original(self, offset, length)

    dp._DiskView.read = recording  # type: ignore[method-assign]
    try:
        reader = FileReader(str(path))
        probe_disk(reader, disk_size=reader.size - FOOTER_SIZE)
    finally:
        dp._DiskView.read = original  # type: ignore[method-assign]
    return sorted(set(seen))


@pytest.fixture(scope="module")
def mutation_targets(corpus_path: CorpusPath) -> Iterator[dict[str, tuple[Path, list]]]:
    targets = {}
    for case in ("linux_ext4_mbr", "windows_gpt", "linux_ext2_absolute_symlink", "linux_htree"):
        path = corpus_path(case)
        targets[case] = (path, _recorded_ranges(path))
    yield targets


MUTATIONS = st.lists(
    st.tuples(st.integers(0, 2**16), st.integers(0, 2**16), st.integers(0, 255)),
    min_size=1,
    max_size=6,
)


@pytest.mark.parametrize(
    "case", ["linux_ext4_mbr", "windows_gpt", "linux_ext2_absolute_symlink", "linux_htree"]
)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutations=MUTATIONS)
def test_probe_survives_mutated_real_disks(
    case: str, mutations: list[tuple[int, int, int]], mutation_targets: dict
) -> None:
    path, ranges = mutation_targets[case]
    patches = {}
    for which, where, value in mutations:
        offset, length = ranges[which % len(ranges)]
        patches[offset + where % max(length, 1)] = value
    reader = PatchedReader(path, patches)
    try:
        disk_size = reader.size - FOOTER_SIZE
        probe = probe_disk(reader, disk_size=disk_size)
        assert isinstance(probe, DiskProbe)
        assert probe.bytes_read <= ProbeLimits().max_bytes_read
        for call in (
            lambda: read_mbr(reader, disk_size=disk_size),
            lambda: read_gpt(reader, disk_size=disk_size),
            lambda: read_ext4_file(reader, "/etc/os-release", offset=MIB, size=63 * MIB),
        ):
            with contextlib.suppress(CatalogError):
                call()
    finally:
        reader.close()
