"""Conversion jobs against real Azurite: an uploaded disk image becomes a fixed VHD page
blob, step by step, resumable at every step, and the image is registered over it once.

The queue is replaced by a list, so that the tests deliver each step themselves: twice,
out of order, or after a worker was "killed" at a step (a BaseException from the
`before_step` hook, as in test_captures.py)."""

from __future__ import annotations

import subprocess
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.operations_table import Operations
from shared.adapters.uploads_table import UploadOutcomes
from shared.domain.conversion import fixed_size
from shared.domain.vhd import FOOTER_SIZE, validate_vhd
from shared.services.conversion import ConversionPolicy, run_conversion_step
from shared.services.doctor import Doctor
from shared.services.uploads import UploadDeps, UploadPolicy, examine_upload
from tests.integration.test_catalog_table import Killed
from tests.integration.test_disk_claims import killed_at
from tests.vhd_corpus import Corpus, CorpusToolMissing

MIB = 1024 * 1024


class Rechecks:
    def schedule(self, blob_name: str, delay_seconds: float) -> None:
        pass


@dataclass
class Steps:
    """The conversions queue: messages the tests deliver by hand."""

    messages: list[tuple[str, str]] = field(default_factory=list)

    def schedule(self, blob_name: str, etag: str, delay_seconds: float = 0) -> None:
        self.messages.append((blob_name, etag))


@dataclass
class World:
    blobs: BlobServiceClient
    uploads: ContainerClient
    images: ContainerClient
    deps: UploadDeps
    steps: Steps
    operations: Operations

    def drop(self, path: Path, name: str, **metadata: str) -> str:
        client = self.uploads.get_blob_client(name)
        with open(path, "rb") as f:
            client.upload_blob(f, metadata=metadata or None, overwrite=True)
        return client.get_blob_properties().etag

    def examine(self, name: str):  # type: ignore[no-untyped-def]
        return examine_upload(self.uploads.get_blob_client(name), self.deps)

    def deliver(self, limit: int = 200):  # type: ignore[no-untyped-def]
        """Deliver the queued steps, in order, until none is left."""
        for _ in range(limit):
            if not self.steps.messages:
                return
            name, etag = self.steps.messages.pop(0)
            run_conversion_step(name, etag, self.deps)
        raise AssertionError("the job never ended")

    def outcome(self, name: str):  # type: ignore[no-untyped-def]
        return self.deps.outcomes.get(name)

    def converted(self) -> list[str]:
        return sorted(b.name for b in self.images.list_blobs())

    def doctor_problems(self) -> list[str]:
        doctor = Doctor(
            self.deps.catalog,
            self.blobs,
            self.operations,
            [self.uploads.container_name, self.images.container_name],
            self.images.container_name,
            (),
        )
        report = doctor.examine(stuck_after=timedelta(hours=1))
        return [f"{p.Kind} {p.Subject}" for p in report.Problems]


@pytest.fixture
def world(azurite_connection: str) -> World:
    s = uuid.uuid4().hex[:10]
    blobs = BlobServiceClient.from_connection_string(azurite_connection)
    tables = TableServiceClient.from_connection_string(azurite_connection)
    uploads = blobs.create_container(f"cvup{s}")
    images = blobs.create_container(f"cvimg{s}")
    steps = Steps()
    deps = UploadDeps(
        uploads=uploads,
        outcomes=UploadOutcomes(tables.create_table(f"cvout{s}")),
        catalog=ImageCatalog(tables.create_table(f"cvcat{s}")),
        rechecks=Rechecks(),
        policy=UploadPolicy(settle_seconds=0),
        images=images,
        conversions=steps,
        # Small steps and a checkpoint at every advance: many steps on a 64 MiB disk.
        conversion=ConversionPolicy(step_bytes=4 * MIB, checkpoint_seconds=0, workers=3),
    )
    return World(blobs, uploads, images, deps, steps, Operations(tables.create_table(f"cvop{s}")))


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def disks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Linux test disk as raw, and converted by qemu-img into the formats uploaded."""
    tmp = tmp_path_factory.mktemp("conversions")
    try:
        fixed = Corpus(tmp)["linux_ext4_mbr"]
    except CorpusToolMissing as e:
        pytest.fail(str(e))
    raw = tmp / "linux.raw"
    qemu_img("convert", "-f", "vpc", "-O", "raw", str(fixed), str(raw))
    out = {"raw": raw}
    for name, fmt, opts in (
        ("dynamic.vhd", "vpc", "subformat=dynamic,force_size=on"),
        ("disk.vhdx", "vhdx", ""),
        ("disk.qcow2", "qcow2", ""),
    ):
        path = tmp / name
        qemu_img(
            "convert", "-f", "raw", "-O", fmt, *(["-o", opts] if opts else []), str(raw), str(path)
        )
        out[name] = path
    return out


def assert_converted_equals(world: World, target: str, raw: Path) -> None:
    """The converted blob holds the raw disk, rounded up to a whole MiB of zeros, and a
    valid fixed-VHD footer."""
    client = world.images.get_blob_client(target)
    data = client.download_blob().readall()
    source = raw.read_bytes()
    size = fixed_size(len(source))
    assert len(data) == size + FOOTER_SIZE
    assert data[: len(source)] == source
    assert not data[len(source) : size].strip(b"\0")

    class Reader:
        size = len(data)

        def read(self, offset: int, length: int) -> bytes:
            return data[offset : offset + length]

    assert validate_vhd(Reader(), max_size_bytes=2**40).current_size == size


def test_a_dynamic_vhd_block_blob_becomes_a_registered_fixed_vhd_in_steps(world, disks) -> None:
    etag = world.drop(disks["dynamic.vhd"], "ubuntu.vhd", imagefamily="Converted")
    first = world.examine("ubuntu.vhd")
    assert (first.Status, first.SourceFormat) == ("Converting", "vhd-dynamic")
    assert first.BytesTotal == disks["dynamic.vhd"].stat().st_size
    world.deliver()
    done = world.outcome("ubuntu.vhd")
    assert done.Status == "Registered", done
    assert done.Conversion.Steps > 1  # 6 MiB steps
    (target,) = world.converted()
    assert done.ConvertedBlobs == [f"{world.images.container_name}/{target}"]
    assert target.startswith("converted/ubuntu.vhd~")
    assert_converted_equals(world, target, disks["raw"])
    # Read: about the file (its data and tables); written: only the non-zero pages.
    data = disks["dynamic.vhd"].stat().st_size
    assert done.BytesRead <= 1.05 * data + MIB
    raw = disks["raw"].read_bytes()
    nonzero = sum(1 for i in range(0, len(raw), 512) if raw[i : i + 512].strip(b"\0"))
    assert done.BytesWritten == nonzero * 512
    assert (done.BytesDone, done.BytesTotal, done.SecondsLeft) == (data, data, 0.0)
    image = world.deps.catalog.get("ubuntu")
    assert image.OSDiskConfiguration.SourceBlob == done.ConvertedBlobs[0]
    assert image.MediaLink == world.images.get_blob_client(target).url
    assert image.SourceUpload == f"{world.uploads.container_name}/ubuntu.vhd@{etag}"
    assert (image.OS, image.ImageFamily) == ("Linux", "Converted")
    # The upload is untouched and free; the converted disk is what the image holds.
    props = world.uploads.get_blob_client("ubuntu.vhd").get_blob_properties()
    assert (props.etag, props.lease.state) == (etag, "available")
    assert world.images.get_blob_client(target).get_blob_properties().lease.state == "leased"
    assert world.doctor_problems() == []
    # Judged again (another trigger, a late step message): the same outcome, nothing new.
    assert world.examine("ubuntu.vhd").Status == "Registered"
    run_conversion_step("ubuntu.vhd", etag, world.deps)
    assert world.steps.messages == [] and world.converted() == [target]


STEPS = ["Start", "CreateTarget", "Copy", "Checkpoint", "NextStep", "Footer", "Validate",
         "Register", "Complete"]  # fmt: skip


@pytest.mark.parametrize("step", STEPS)
def test_a_worker_killed_at_any_step_resumes_and_registers_one_image(world, disks, step) -> None:
    etag = world.drop(disks["dynamic.vhd"], "k.vhd")
    world.deps.before_step = killed_at(step, nth=2 if step in ("Copy", "Checkpoint") else 1)
    try:
        world.examine("k.vhd")
        world.deliver()
    except Killed:
        pass
    else:
        pytest.fail(f"never got to {step}")
    # What readers see after the crash: no image unless it was registered whole.
    after = world.outcome("k.vhd")
    assert step == "Start" or after.Status in ("Converting", "Registered"), after
    image = world.deps.catalog.find("k")
    assert image is None or step == "Complete"
    # The restarted worker: the trigger fires again (a blob with no receipt) and the
    # message being handled comes back.
    world.deps.before_step = None
    world.examine("k.vhd")
    if not world.steps.messages:
        world.steps.schedule("k.vhd", etag)
    world.deliver()
    done = world.outcome("k.vhd")
    assert done.Status == "Registered", done
    (target,) = world.converted()
    assert_converted_equals(world, target, disks["raw"])
    assert [i.ImageName for i in world.deps.catalog.page(None, {}, 10, None).items] == ["k"]
    assert world.doctor_problems() == []


def test_two_deliveries_of_each_step_at_once_make_one_image(world, disks) -> None:
    world.drop(disks["dynamic.vhd"], "twin.vhd")
    world.examine("twin.vhd")
    for _ in range(100):
        if not world.steps.messages:
            break
        name, etag = world.steps.messages.pop(0)
        threads = [
            threading.Thread(target=run_conversion_step, args=(name, etag, world.deps))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Each twin that checkpointed first queued the next step; the other stopped.
        world.steps.messages = list(dict.fromkeys(world.steps.messages))
    done = world.outcome("twin.vhd")
    assert done.Status == "Registered", done
    (target,) = world.converted()
    assert_converted_equals(world, target, disks["raw"])
    assert world.doctor_problems() == []


def test_an_upload_replaced_mid_conversion_stops_its_job_and_deletes_its_disk(world, disks) -> None:
    world.drop(disks["dynamic.vhd"], "moving.vhd")
    world.examine("moving.vhd")
    name, etag = world.steps.messages.pop(0)
    run_conversion_step(name, etag, world.deps)
    assert len(world.converted()) == 1 and world.steps.messages
    world.drop(disks["raw"], "moving.vhd")  # a new version, not yet judged
    world.deliver()
    stale = world.outcome("moving.vhd")
    assert (stale.Status, stale.Error.Code) == ("Rejected", "UploadChanged")
    assert world.converted() == []
    # The new version is judged (its trigger) and converted on its own.
    world.examine("moving.vhd")
    world.deliver()
    assert world.outcome("moving.vhd").Status == "Registered"
    assert len(world.converted()) == 1


def test_a_step_failing_every_time_rejects_the_upload_and_deletes_its_disk(
    world, disks, monkeypatch
) -> None:
    world.drop(disks["dynamic.vhd"], "flaky.vhd")
    world.examine("flaky.vhd")
    name, etag = world.steps.messages.pop(0)
    run_conversion_step(name, etag, world.deps)  # one step done: a target exists
    assert world.converted()

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("the network is down")

    monkeypatch.setattr("shared.services.conversion.copy_extents", broken)
    name, etag = world.steps.messages.pop(0)
    for attempt in range(1, 5):
        with pytest.raises(OSError):
            run_conversion_step(name, etag, world.deps, attempt=attempt)
    failed = run_conversion_step(name, etag, world.deps, attempt=5)
    assert (failed.Status, failed.Error.Code) == ("Rejected", "ConversionFailed")
    assert "OSError" in failed.Error.Message
    assert world.converted() == [] and world.doctor_problems() == []


def test_a_job_whose_steps_were_lost_is_carried_on_when_the_upload_is_judged_again(
    world, disks
) -> None:
    world.drop(disks["dynamic.vhd"], "lost.vhd")
    world.examine("lost.vhd")
    world.steps.messages.clear()  # the chain of steps is lost
    assert world.examine("lost.vhd").Status == "Converting"
    assert world.steps.messages == []  # not yet: it may just be slow
    later = world.outcome("lost.vhd").Conversion.Updated + timedelta(hours=1)
    world.deps.clock = lambda: later
    world.examine("lost.vhd")
    assert len(world.steps.messages) == 1
    world.deliver()
    assert world.outcome("lost.vhd").Status == "Registered"


def test_what_is_wrong_is_known_before_any_data_moves(world, disks, tmp_path) -> None:
    world.drop(disks["dynamic.vhd"], "named.vhd", imagename="bad name!")
    assert world.examine("named.vhd").Error.Code == "InvalidImageName"
    world.deps = replace(world.deps, policy=replace(world.deps.policy, max_os_disk_bytes=32 * MIB))
    world.drop(disks["dynamic.vhd"], "big.vhd")
    assert world.examine("big.vhd").Error.Code == "DiskTooLarge"
    assert world.steps.messages == [] and world.converted() == []
