"""Tests for shared.domain.vhd: footer parsing/writing and strict VHD validation.

Real images come from tests/vhd_corpus.py (built with qemu-img and friends);
property tests feed arbitrary and mutated bytes to make sure only typed
rejections ever escape.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.domain.disk_probe import probe_disk
from shared.domain.errors import CatalogError, UploadRejected
from shared.domain.ranged import BytesReader, CountingReader, FileReader
from shared.domain.vhd import (
    DEFAULT_MIN_SIZE_BYTES,
    FOOTER_SIZE,
    MIB,
    REJECTION_CODES,
    DiskTooLarge,
    DiskTooSmall,
    InvalidVhdFooter,
    MissingVhdFooter,
    VhdRejected,
    build_footer,
    footer_checksum,
    parse_footer,
    validate_vhd,
)
from tests.vhd_corpus import CASES

TIB = 1024**4
MAX = 2 * TIB

CorpusPath = Callable[[str], Path]


class OverlayReader:
    """A sparse RangeReader: zeros except for the given (offset -> bytes) patches."""

    def __init__(self, size: int, patches: dict[int, bytes]) -> None:
        self._size = size
        self._patches = patches

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self._size)
        if end <= offset:
            return b""
        out = bytearray(end - offset)
        for at, data in self._patches.items():
            lo, hi = max(at, offset), min(at + len(data), end)
            if lo < hi:
                out[lo - offset : hi - offset] = data[lo - at : hi - at]
        return bytes(out)


def _fixed(size: int, **footer: object) -> OverlayReader:
    return OverlayReader(size + FOOTER_SIZE, {size: build_footer(size, **footer)})  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# The corpus: each case gives exactly its code, with few small reads.


@pytest.mark.parametrize("case", sorted(CASES))
def test_corpus_case_gives_its_code(case: str, corpus_path: CorpusPath) -> None:
    reader = CountingReader(FileReader(str(corpus_path(case))))
    expected = CASES[case].code
    if expected is None:
        footer = validate_vhd(reader, max_size_bytes=MAX)
        assert footer.disk_type == 2
        assert footer.current_size == reader.size - FOOTER_SIZE
    else:
        with pytest.raises(VhdRejected) as info:
            validate_vhd(reader, max_size_bytes=MAX)
        assert info.value.code == expected, info.value.message
        assert type(info.value) is REJECTION_CODES[expected]
        assert isinstance(info.value, UploadRejected)
        assert len(info.value.message) > 40
    assert reader.reads <= 4
    assert reader.bytes_read < 64 * 1024


def test_valid_footer_fields_from_qemu(corpus_path: CorpusPath) -> None:
    path = corpus_path("linux_ext4_mbr")
    footer = validate_vhd(FileReader(str(path)), max_size_bytes=MAX)
    assert footer.cookie == b"conectix"
    assert footer.creator_app == "qem2"
    assert footer.creator_host_os == "Wi2k"
    assert footer.current_size == footer.original_size == 64 * MIB
    assert footer.disk_type_name == "fixed"
    assert footer.checksum_ok
    assert footer.geometry == (65535, 16, 255)  # force_size: CHS says nothing about the size
    assert footer.chs_size != footer.current_size
    assert footer.format_version == 0x00010000
    assert isinstance(footer.unique_id, uuid.UUID)
    assert abs((datetime.now(UTC) - footer.timestamp).total_seconds()) < 3600
    assert footer.to_dict()["diskType"] == "fixed"


def test_build_footer_reproduces_qemu_footer_byte_for_byte(corpus_path: CorpusPath) -> None:
    path = corpus_path("blank_fixed")
    with open(path, "rb") as f:
        f.seek(-FOOTER_SIZE, 2)
        raw = f.read()
    qemu = parse_footer(raw)
    rebuilt = build_footer(
        qemu.current_size,
        creator_app=b"qem2",
        creator_version=qemu.creator_version,
        creator_host_os=b"Wi2k",
        timestamp=qemu.timestamp,
        geometry=qemu.geometry,
        unique_id=qemu.unique_id,
    )
    assert rebuilt == raw


def test_build_footer_round_trip() -> None:
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    raw = build_footer(30 * MIB, creator_app=b"win ", timestamp=when, unique_id=uid)
    footer = parse_footer(raw)
    assert len(raw) == FOOTER_SIZE
    assert footer.checksum_ok and footer.checksum == footer_checksum(raw)
    assert footer.timestamp == when
    assert footer.unique_id == uid
    assert footer.creator_app == "win "
    assert footer.data_offset == 0xFFFF_FFFF_FFFF_FFFF
    assert footer.chs_size <= 30 * MIB
    dynamic = parse_footer(build_footer(30 * MIB, disk_type=3))
    assert dynamic.data_offset == 512 and dynamic.disk_type_name == "dynamic"


def test_azure_wording_for_sizes_not_whole_mib(corpus_path: CorpusPath) -> None:
    with pytest.raises(VhdRejected) as info:
        validate_vhd(FileReader(str(corpus_path("fixed_without_force_size"))), max_size_bytes=MAX)
    assert (
        "unsupported virtual size of 67125248 bytes. The size must be a whole number (in MBs)."
        in info.value.message
    )
    assert "Upload the file as it is" in info.value.message
    assert "68157440 bytes (65 MiB)" in info.value.message


def test_dynamic_rejection_says_how_to_convert(corpus_path: CorpusPath) -> None:
    with pytest.raises(VhdRejected) as info:
        validate_vhd(FileReader(str(corpus_path("dynamic_vhd"))), max_size_bytes=MAX)
    message = info.value.message
    assert "Upload the file as it is" in message and "vmimage upload" in message


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_rejection_advises_a_command_that_fails(case: str, corpus_path: CorpusPath) -> None:
    """`qemu-img convert ... subformat=fixed,force_size=on` keeps a size that is not a whole
    MiB (then VirtualSizeNotWholeMiB) and drops a differencing disk's parent: never advised."""
    if CASES[case].code is None:
        return
    with pytest.raises(VhdRejected) as info:
        validate_vhd(FileReader(str(corpus_path(case))), max_size_bytes=MAX)
    assert "force_size" not in info.value.message
    assert "qemu-img convert -f vpc" not in info.value.message


def test_size_mismatch_message_has_the_numbers(corpus_path: CorpusPath) -> None:
    with pytest.raises(VhdRejected) as info:
        validate_vhd(FileReader(str(corpus_path("size_mismatch"))), max_size_bytes=MAX)
    assert "33554432" in info.value.message and "67108864" in info.value.message


def test_size_limits() -> None:
    four_tib = _fixed(4 * TIB)
    with pytest.raises(DiskTooLarge) as info:
        validate_vhd(four_tib, max_size_bytes=MAX)
    assert str(4 * TIB) in info.value.message and str(MAX) in info.value.message
    assert validate_vhd(four_tib, max_size_bytes=8 * TIB).current_size == 4 * TIB
    with pytest.raises(DiskTooSmall):
        validate_vhd(_fixed(MIB), max_size_bytes=MAX)
    assert validate_vhd(_fixed(MIB), max_size_bytes=MAX, min_size_bytes=MIB)
    assert validate_vhd(_fixed(DEFAULT_MIN_SIZE_BYTES), max_size_bytes=MAX)


def test_two_tib_sparse_vhd_validates_and_probes_under_one_mib(corpus_path: CorpusPath) -> None:
    path = corpus_path("huge_sparse")
    reader = CountingReader(FileReader(str(path)))
    assert reader.size == 2 * TIB + FOOTER_SIZE
    footer = validate_vhd(reader, max_size_bytes=MAX)
    probe = probe_disk(reader, disk_size=footer.current_size)
    assert probe.partition_style == "MBR"
    assert probe.os == "Linux" and probe.os_release["ID"] == "ubuntu"
    assert reader.bytes_read < 1024 * 1024
    with pytest.raises(DiskTooLarge):
        validate_vhd(reader, max_size_bytes=TIB)


def test_rejection_codes_are_stable_and_documented() -> None:
    assert len(REJECTION_CODES) == len(set(REJECTION_CODES))
    for code, cls in REJECTION_CODES.items():
        assert cls.code == code == cls.__name__
        assert issubclass(cls, UploadRejected)
        assert cls.summary and cls.summary != VhdRejected.summary
    expected = {case.code for case in CASES.values() if case.code}
    assert expected <= set(REJECTION_CODES)
    for code in (
        "EmptyBlob",
        "NotSectorAligned",
        "MissingVhdFooter",
        "UnsupportedFormatVhdx",
        "UnsupportedFormatQcow2",
        "UnsupportedFormatVmdk",
        "UnsupportedFormatVdi",
        "UnsupportedFormatIso",
        "RawDiskWithoutFooter",
        "CompressedArchive",
        "NotADisk",
        "InvalidVhdFooterChecksum",
        "DynamicVhdNotSupported",
        "DifferencingVhdNotSupported",
        "InvalidVhdDiskType",
        "VirtualSizeNotWholeMiB",
        "VhdSizeMismatch",
        "DiskTooLarge",
        "DiskTooSmall",
    ):
        assert code in REJECTION_CODES


def test_parse_footer_typed_errors() -> None:
    with pytest.raises(InvalidVhdFooter):
        parse_footer(b"")
    with pytest.raises(InvalidVhdFooter):
        parse_footer(b"conectix" + bytes(100))
    with pytest.raises(MissingVhdFooter):
        parse_footer(bytes(512))
    legacy = parse_footer(build_footer(MIB)[:511])
    assert legacy.current_size == MIB


def test_small_blobs() -> None:
    for data in (b"\0", b"conectix", bytes(512), b"conectix" + bytes(504), b"x" * 511):
        with pytest.raises(VhdRejected):
            validate_vhd(BytesReader(data), max_size_bytes=MAX)


# --------------------------------------------------------------------------------------
# Properties: only typed rejections, whatever the bytes.

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(min_size=0, max_size=600))
def test_parse_footer_never_crashes(raw: bytes) -> None:
    try:
        footer = parse_footer(raw)
    except CatalogError:
        return
    assert footer.cookie == b"conectix"


@FAST
@given(st.binary(min_size=0, max_size=5000))
def test_validate_arbitrary_bytes_only_rejects(data: bytes) -> None:
    try:
        validate_vhd(BytesReader(data), max_size_bytes=MAX, min_size_bytes=0)
    except VhdRejected as exc:
        assert exc.code in REJECTION_CODES
    else:
        pytest.fail("arbitrary bytes validated")


@FAST
@given(
    st.lists(st.tuples(st.integers(0, FOOTER_SIZE - 1), st.integers(0, 255)), max_size=8),
    st.booleans(),
)
def test_validate_mutated_footer(mutations: list[tuple[int, int]], fix_checksum: bool) -> None:
    size = 4 * MIB
    footer = bytearray(build_footer(size))
    for at, value in mutations:
        footer[at] = value
    if fix_checksum:
        footer[64:68] = footer_checksum(bytes(footer)).to_bytes(4, "big")
    reader = OverlayReader(size + FOOTER_SIZE, {size: bytes(footer)})
    try:
        result = validate_vhd(reader, max_size_bytes=MAX, min_size_bytes=0)
    except VhdRejected as exc:
        assert exc.code in REJECTION_CODES
        return
    assert result.checksum_ok and result.current_size == size and result.disk_type == 2


@FAST
@given(
    current=st.integers(0, 2**64 - 1) | st.sampled_from([MIB, 3 * MIB, 3 * MIB + 512]),
    disk_type=st.integers(0, 6) | st.integers(0, 2**32 - 1),
    data_offset=st.sampled_from([None, 0, 512, 2**64 - 1]),
    blob_mib=st.integers(0, 5),
    extra=st.sampled_from([0, 1, 100, 511, 512, 1024]),
)
def test_validate_structured_footers(
    current: int, disk_type: int, data_offset: int | None, blob_mib: int, extra: int
) -> None:
    footer = build_footer(current, disk_type=disk_type, data_offset=data_offset)
    size = blob_mib * MIB + extra + FOOTER_SIZE
    reader = OverlayReader(size, {size - FOOTER_SIZE: footer})
    try:
        result = validate_vhd(reader, max_size_bytes=MAX, min_size_bytes=MIB)
    except VhdRejected as exc:
        assert exc.code in REJECTION_CODES
        return
    assert result.current_size == size - FOOTER_SIZE and result.current_size % MIB == 0
    assert result.disk_type == 2 and result.data_offset == 2**64 - 1
