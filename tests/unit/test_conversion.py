"""The pure parts of conversions: which pages are written, where the copy checkpoints,
what the targets are called, how progress reads (the jobs: tests/integration)."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.page_copy import copy_extents, groups
from shared.domain.conversion import (
    MAX_PUT_PAGE,
    ConvertedDisk,
    ImageReader,
    convertible,
    fixed_size,
    new_job,
    nonzero_runs,
    progress,
    target_blob,
)
from shared.domain.images import image_name_from_blob
from shared.domain.uploads import DISK_EXTENSIONS, UploadKind, UploadOutcome, upload_kind
from shared.domain.vhd import (
    DynamicVhdNotSupported,
    InvalidVhdFooterChecksum,
    UnsupportedFormatQcow2,
    UnsupportedFormatVdi,
)

MIB = 1024 * 1024


def rebuilt(data: bytes) -> bytes:
    out = bytearray(-(-len(data) // 512) * 512)
    for offset, run in nonzero_runs(data, 0):
        out[offset : offset + len(run)] = run
    return bytes(out)


@pytest.mark.parametrize("seed", range(20))
def test_the_non_zero_pages_are_all_written_and_nothing_else(seed: int) -> None:
    rnd = random.Random(seed)
    data = bytearray(rnd.choice([1, 511, 4096, 3 * MIB + 100, 9 * MIB]))
    for _ in range(rnd.randrange(0, 40)):
        at = rnd.randrange(len(data))
        n = min(rnd.randrange(1, 70000), len(data) - at)
        data[at : at + n] = rnd.randbytes(n) if rnd.random() < 0.5 else b"\x01" * n
    runs = list(nonzero_runs(bytes(data), 1024))
    assert rebuilt(bytes(data)) == bytes(data).ljust(-(-len(data) // 512) * 512, b"\0")
    for offset, run in runs:
        assert offset % 512 == 0 and len(run) % 512 == 0 and 0 < len(run) <= MAX_PUT_PAGE
        pages = [run[i : i + 512] for i in range(0, len(run), 512)]
        assert all(p.strip(b"\0") for p in pages)  # no zero page is sent


def test_dense_data_goes_in_4_mib_writes_and_zeros_in_none() -> None:
    dense = random.Random(1).randbytes(9 * MIB)
    assert [(o, len(r)) for o, r in nonzero_runs(dense, 0)] == [
        (0, 4 * MIB), (4 * MIB, 4 * MIB), (8 * MIB, MIB),
    ]  # fmt: skip
    assert list(nonzero_runs(bytes(8 * MIB), 0)) == []
    with pytest.raises(ValueError):
        list(nonzero_runs(b"x", 100))


def test_targets_are_named_per_upload_version_and_fit_a_blob_name() -> None:
    a = target_blob("dir/ubuntu.qcow2", '"0x1"')
    assert a.startswith("converted/dir/ubuntu.qcow2~") and a.endswith(".vhd")
    assert a == target_blob("dir/ubuntu.qcow2", "0x1")  # quoted or not, one ETag
    assert a != target_blob("dir/ubuntu.qcow2", "0x2")
    assert target_blob("vm.ova", "e", 1).endswith("-disk1.vhd")
    long = [target_blob("x" * 1024, "e", i) for i in (None, 0, 63)]
    assert all(len(n) <= 1024 for n in long) and len(set(long)) == 3
    assert target_blob("x" * 1024, "e") != target_blob("x" * 1023 + "y", "e")


def test_the_fixed_size_is_rounded_up_to_a_whole_mib() -> None:
    assert [fixed_size(n) for n in (1, MIB, MIB + 1, 40 * MIB + 1000)] == [
        MIB, MIB, 2 * MIB, 41 * MIB,
    ]  # fmt: skip


def test_progress_is_the_share_of_the_file_read_and_the_time_left_follows() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    disk = ConvertedDisk(Format="qcow2", VirtualSize=10 * MIB, Target="t")
    job = new_job([disk], start, 0)
    assert progress(job, 100, start) == (0, None)
    job.BytesRead = 25
    assert progress(job, 100, start + timedelta(seconds=10)) == (25, 30.0)
    job.BytesRead = 130  # tables read twice: never past the total
    assert progress(job, 100, start + timedelta(seconds=10))[0] == 100
    disk.Done = disk.VirtualSize
    assert progress(job, 100, start + timedelta(seconds=20)) == (100, 0.0)


def test_an_outcome_with_a_job_round_trips_through_json() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    job = new_job([ConvertedDisk(Format="vhdx", VirtualSize=MIB, Target="t", Done=512)], now, 7)
    outcome = UploadOutcome(
        BlobName="a.vhdx", Kind=UploadKind.DISK, Status="Converting", Conversion=job,
        FirstSeen=now, LastChecked=now,
    )  # fmt: skip
    back = UploadOutcome.model_validate_json(outcome.model_dump_json(exclude_none=True))
    assert back.Conversion == job and not back.final
    assert back.Conversion.footer_id(0) == job.footer_id(0)


def test_every_disk_extension_is_an_upload_and_names_the_image_without_it() -> None:
    for ext in DISK_EXTENSIONS:
        for name in (f"ubuntu{ext}", f"ubuntu{ext.upper()}"):
            assert upload_kind(name) == UploadKind.DISK
            assert upload_kind(f"vm.image/{name}") == UploadKind.VM_DISK
            assert image_name_from_blob(f"dir/{name}") == "ubuntu"
    assert upload_kind("notes.txt") == UploadKind.OTHER
    assert upload_kind("disk.iso") == UploadKind.OTHER


def test_what_a_vhd_check_refuses_is_converted_only_when_a_reader_can_say_better() -> None:
    assert convertible(DynamicVhdNotSupported("x"))
    assert convertible(UnsupportedFormatQcow2("x"))
    assert not convertible(UnsupportedFormatVdi("x"))
    assert not convertible(InvalidVhdFooterChecksum("x"))


@dataclass
class FakeExtent:
    offset: int
    length: int
    fill: int = 1
    delay: float = 0.0
    fail: bool = False

    @property
    def source_length(self) -> int:
        return self.length

    def data(self) -> bytes:
        time.sleep(self.delay)
        if self.fail:
            raise OSError("read failed")
        return bytes([self.fill]) * self.length


def test_adjacent_extents_make_writes_of_up_to_4_mib() -> None:
    extents = [FakeExtent(i * 64 * 1024, 64 * 1024) for i in range(100)] + [
        FakeExtent(20 * MIB, 512)
    ]
    sizes = [sum(e.length for e in g) for g in groups(extents)]
    assert sizes == [4 * MIB, 100 * 64 * 1024 - 4 * MIB, 512]


def test_the_checkpoint_covers_only_finished_writes_and_a_budget_stops_the_copy() -> None:
    written: dict[int, int] = {}
    lock = threading.Lock()

    def write(offset: int, data: bytes) -> None:
        with lock:
            written[offset] = len(data)

    # Out of order completion: the first extent is the slowest.
    extents = [FakeExtent(i * 8 * MIB, MIB, delay=0.2 if i == 0 else 0.0) for i in range(8)]
    ticks: list[int] = []

    def tick(done: int) -> None:
        ticks.append(done)
        # Whatever the checkpoint says is done is written.
        assert all(e.offset in written for e in extents if e.offset + e.length <= done)

    result = copy_extents(iter(extents), write, start=0, workers=4, budget=3 * MIB, tick=tick)
    assert not result.finished
    assert result.done == 2 * 8 * MIB + MIB and result.written == 3 * MIB
    assert ticks == sorted(ticks)
    resumed = copy_extents(
        (e for e in extents if e.offset >= result.done), write, start=result.done, workers=4
    )
    assert resumed.finished and len(written) == 8


def test_a_failed_read_fails_the_copy() -> None:
    extents = [FakeExtent(0, MIB), FakeExtent(8 * MIB, MIB, fail=True), FakeExtent(16 * MIB, MIB)]
    with pytest.raises(OSError, match="read failed"):
        copy_extents(iter(extents), lambda o, d: None, start=0, workers=2)


class FakeImage:
    virtual_size = 3 * MIB + 1000

    def extents(self, start: int = 0):  # type: ignore[no-untyped-def]
        for e in (FakeExtent(0, 1024, 7), FakeExtent(MIB, 4096, 9), FakeExtent(3 * MIB, 1024, 5)):
            if e.offset + e.length > start:
                yield e


def test_the_image_reader_shows_the_virtual_disk_up_to_a_whole_mib() -> None:
    reader = ImageReader(FakeImage())
    assert reader.size == 4 * MIB
    assert reader.read(512, 1024) == bytes([7]) * 512 + bytes(512)
    assert reader.read(MIB - 2, 4) == bytes(2) + bytes([9, 9])
    assert reader.read(4 * MIB - 10, 100) == bytes(10)
    assert reader.read(5 * MIB, 10) == b""
