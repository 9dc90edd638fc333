"""Capturing VMs against real Azurite blobs and tables: semantics, idempotency, and a
worker killed at every step of a capture, then restarted."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.operations_table import Operations
from shared.adapters.vms_table import VmInventory
from shared.domain.captures import CaptureRequest
from shared.domain.images import DiskInUse
from shared.domain.vhd import build_footer
from shared.domain.vms import VirtualMachine
from shared.services.captures import CaptureDeps, handle_capture_message, run_capture

MIB = 1024 * 1024
STEPS = ["ReadVM", "CopyDisks", "VerifyCopies", "CompareHashes", "Publish", "PostCapture"]


class Killed(BaseException):
    """Stands for the worker process dying: nothing after it runs."""


@dataclass
class World:
    deps: CaptureDeps
    blobs: BlobServiceClient
    vhds: str
    images: str

    def disk(self, name: str, size: int = 64 * MIB) -> str:
        client = self.blobs.get_blob_client(self.vhds, name)
        client.create_page_blob(size + 512)
        client.upload_page(b"\x55" * 512, offset=0, length=512)
        client.upload_page(build_footer(size), offset=size, length=512)
        return client.url

    def vm(self, name: str, state: str = "Stopped", data_disks: int = 2) -> VirtualMachine:
        vm = VirtualMachine(
            ServiceName="svc",
            Name=name,
            State=state,
            OSDisk={"OS": "Linux", "MediaLink": self.disk(f"{name}-os.vhd")},
            DataDisks=[
                {"Lun": i, "MediaLink": self.disk(f"{name}-data{i}.vhd")} for i in range(data_disks)
            ],
        )
        self.deps.vms.put(vm)
        return vm

    def blob_names(self, container: str, snapshots: bool = False) -> list[str]:
        c = self.blobs.get_container_client(container)
        include = ["snapshots"] if snapshots else None
        return sorted(
            f"{b.name}@{b.snapshot}" if b.snapshot else b.name
            for b in c.list_blobs(include=include)
        )


@pytest.fixture
def world(azurite_connection: str) -> World:
    s = uuid.uuid4().hex[:10]
    blobs = BlobServiceClient.from_connection_string(azurite_connection)
    tables = TableServiceClient.from_connection_string(azurite_connection)
    blobs.create_container(f"vhds{s}")
    blobs.create_container(f"images{s}")
    deps = CaptureDeps(
        blobs=blobs,
        images_container=f"images{s}",
        vm_disk_containers=(f"vhds{s}",),
        catalog=ImageCatalog(tables.create_table(f"img{s}")),
        vms=VmInventory(tables.create_table(f"vms{s}")),
        operations=Operations(tables.create_table(f"ops{s}")),
    )
    return World(deps, blobs, f"vhds{s}", f"images{s}")


def request(vm: str, image: str, state: str | None = None, op: str | None = None) -> CaptureRequest:
    return CaptureRequest(
        ServiceName="svc", Name=vm, ImageName=image, OSState=state, OperationId=op
    )


def test_no_os_state_captures_an_os_image_and_deletes_the_vm(world: World) -> None:
    world.vm("vm1")
    op = run_capture(request("vm1", "img1"), "op1", world.deps)
    assert (op.Status, op.ImageName) == ("Succeeded", "img1")
    image = world.deps.catalog.get("img1")
    assert image.ImageType == "OSImage" and image.DataDiskConfigurations == []
    assert image.OSDiskConfiguration.SourceBlob == f"{world.images}/img1/op1/os.vhd"
    assert image.SourceVM == "svc/vm1" and image.Source == "Capture"
    assert world.blob_names(world.images, snapshots=True) == ["img1/op1/os.vhd"]
    # The VM and all its disks are gone (PostCaptureAction=Delete).
    assert world.blob_names(world.vhds, snapshots=True) == []
    with pytest.raises(Exception, match="no VM"):
        world.deps.vms.get("svc", "vm1")


@pytest.mark.parametrize("state", ["Generalized", "Specialized"])
def test_os_state_captures_a_vm_image_with_every_data_disk(world: World, state: str) -> None:
    world.vm("vm2", data_disks=4)
    op = run_capture(request("vm2", "img2", state), "op2", world.deps)
    assert op.Status == "Succeeded", op.Error
    image = world.deps.catalog.get("img2")
    assert image.ImageType == "VMImage"
    assert image.OSDiskConfiguration.OSState == state
    assert [d.Lun for d in image.DataDiskConfigurations] == [0, 1, 2, 3]
    assert world.blob_names(world.images, snapshots=True) == [
        "img2/op2/lun0.vhd",
        "img2/op2/lun1.vhd",
        "img2/op2/lun2.vhd",
        "img2/op2/lun3.vhd",
        "img2/op2/os.vhd",
    ]
    vm_disks = world.blob_names(world.vhds, snapshots=True)
    if state == "Specialized":  # the VM stays, with its disks, and no snapshot is left behind
        assert world.deps.vms.get("svc", "vm2").State == "Stopped"
        assert len(vm_disks) == 5
    else:
        assert vm_disks == []


def test_captured_disks_are_protected(world: World) -> None:
    world.vm("vm3", data_disks=0)
    run_capture(request("vm3", "img3"), "op3", world.deps)
    copy = world.blobs.get_blob_client(world.images, "img3/op3/os.vhd")
    assert copy.get_blob_properties().lease.state == "leased"


def test_a_running_vm_fails_and_is_left_untouched(world: World) -> None:
    world.vm("run", state="Running")
    before = world.blob_names(world.vhds, snapshots=True)
    op = run_capture(request("run", "imgr", "Generalized"), "opr", world.deps)
    assert (op.Status, op.Error.Code) == ("Failed", "VmNotStopped")
    assert world.blob_names(world.vhds, snapshots=True) == before
    assert world.blob_names(world.images) == []
    assert world.deps.vms.get("svc", "run").State == "Running"


def test_each_missing_piece_fails_with_its_own_code(world: World) -> None:
    assert run_capture(request("ghost", "i"), "a", world.deps).Error.Code == "VmNotFound"
    world.vm("nodisk", data_disks=1)
    world.blobs.get_blob_client(world.vhds, "nodisk-data0.vhd").delete_blob()
    op = run_capture(request("nodisk", "i", "Generalized"), "b", world.deps)
    assert op.Error.Code == "DiskBlobNotFound"
    world.vm("other", data_disks=0)
    run_capture(request("other", "taken"), "c", world.deps)
    world.vm("second", data_disks=0)
    op = run_capture(request("second", "TAKEN"), "d", world.deps)
    assert op.Error.Code == "ImageNameTaken"
    assert world.blob_names(world.images, snapshots=True) == ["taken/c/os.vhd"]


def test_the_same_request_twice_in_a_row_yields_one_image(world: World) -> None:
    world.vm("twice")
    first = run_capture(request("twice", "once", "Generalized"), "same", world.deps)
    second = run_capture(request("twice", "once", "Generalized"), "same", world.deps)
    assert first.Status == second.Status == "Succeeded"
    assert first.CompletedTime == second.CompletedTime
    assert world.deps.catalog.page(None, {}, 10, None).items[0].ImageName == "once"


def test_the_same_request_twice_at_the_same_time_yields_one_image(world: World) -> None:
    world.vm("race", data_disks=2)
    results: list[object] = []

    def deliver() -> None:
        results.append(run_capture(request("race", "raced", "Generalized"), "race-op", world.deps))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = world.deps.operations.get("race-op")
    assert final.Status == "Succeeded", final.Error
    assert [i.ImageName for i in world.deps.catalog.page(None, {}, 10, None).items] == ["raced"]
    assert world.blob_names(world.images, snapshots=True) == [
        "raced/race-op/lun0.vhd", "raced/race-op/lun1.vhd", "raced/race-op/os.vhd",
    ]  # fmt: skip


@pytest.mark.parametrize("step", STEPS)
def test_a_worker_killed_at_any_step_finishes_on_restart_without_orphans(
    world: World, step: str
) -> None:
    world.vm("crash", data_disks=2)

    def kill(at: str) -> None:
        if at == step:
            raise Killed(at)

    world.deps.before_step = kill
    with pytest.raises(Killed):
        run_capture(request("crash", "phoenix", "Generalized"), "crash-op", world.deps)
    # What readers see after the crash: InProgress, and the image only once fully published.
    assert world.deps.operations.get("crash-op").Status == "InProgress"
    image = world.deps.catalog.find("phoenix")
    assert image is None or step == "PostCapture"
    world.deps.before_step = None  # the restarted worker gets the message again
    op = run_capture(request("crash", "phoenix", "Generalized"), "crash-op", world.deps)
    assert op.Status == "Succeeded", op.Error
    assert world.blob_names(world.images, snapshots=True) == [
        "phoenix/crash-op/lun0.vhd", "phoenix/crash-op/lun1.vhd", "phoenix/crash-op/os.vhd",
    ]  # fmt: skip
    assert world.blob_names(world.vhds, snapshots=True) == []


def test_a_failure_after_copying_leaves_no_orphan_copies(world: World) -> None:
    world.vm("late", data_disks=1)
    # Someone else takes the name while the disks are being copied.
    other = request("late", "contested")

    def steal(at: str) -> None:
        if at == "Publish":
            world.deps.before_step = None
            world.vm("thief", data_disks=0)
            run_capture(request("thief", "contested"), "thief-op", world.deps)

    world.deps.before_step = steal
    op = run_capture(other.model_copy(update={"OSState": "Generalized"}), "late-op", world.deps)
    assert op.Error.Code == "ImageNameTaken"
    assert world.blob_names(world.images, snapshots=True) == ["contested/thief-op/os.vhd"]
    assert world.deps.catalog.get("contested").SourceVM == "svc/thief"
    # The failed capture's VM is untouched, with no snapshot left behind.
    assert world.blob_names(world.vhds, snapshots=True) == ["late-data0.vhd", "late-os.vhd"]


def test_invalid_messages_fail_at_once_and_keep_their_text(world: World) -> None:
    out = handle_capture_message(b"{not json", "m1", 1, world.deps, 5)
    assert (out.operation.Status, out.operation.Error.Code) == ("Failed", "InvalidCaptureRequest")
    assert out.operation.OperationId == "msg-m1"
    assert out.keep_raw == "{not json"
    bad = json.dumps(
        {"ServiceName": "svc", "Name": "x", "ImageName": "bad name", "OperationId": "o-7"}
    )
    out = handle_capture_message(bad.encode(), "m2", 1, world.deps, 5)
    assert out.operation.OperationId == "o-7"
    assert "ImageName" in out.operation.Error.Message
    assert world.deps.operations.get("o-7").Request == bad


def test_base64_and_plain_json_messages_are_both_understood(world: World) -> None:
    world.vm("b64", data_disks=0)
    doc = {"ServiceName": "svc", "Name": "b64", "ImageName": "from-b64"}
    encoded = base64.b64encode(json.dumps(doc).encode())
    out = handle_capture_message(encoded, "m3", 1, world.deps, 5)
    assert out.operation.Status == "Succeeded" and out.keep_raw is None
    assert out.operation.OperationId == "msg-m3"


def test_a_transient_error_is_retried_until_the_last_attempt(world: World) -> None:
    world.vm("flaky", data_disks=0)
    doc = json.dumps({"ServiceName": "svc", "Name": "flaky", "ImageName": "flaky-img"}).encode()

    def storage_down(at: str) -> None:
        raise ConnectionError("storage unreachable")

    world.deps.before_step = storage_down
    with pytest.raises(ConnectionError):
        handle_capture_message(doc, "m4", 1, world.deps, 3)
    out = handle_capture_message(doc, "m4", 3, world.deps, 3)
    assert (out.operation.Status, out.operation.Error.Code) == ("Failed", "CaptureRetriesExhausted")


def test_a_capture_takes_only_vm_disks_and_touches_nothing_else(world: World) -> None:
    """Before any snapshot: a blob outside the VM disk containers (a blob receipt), or a
    page blob that is not a fixed VHD, fails the capture, and the blob is left as it was."""
    receipts = f"hosts{uuid.uuid4().hex[:8]}"
    world.blobs.create_container(receipts)
    receipt = world.blobs.get_blob_client(receipts, "blobreceipts/x/etag")
    receipt.upload_blob(b"{}")
    not_vhd = world.blobs.get_blob_client(world.vhds, "plain.vhd")
    not_vhd.create_page_blob(1024 * 1024)
    for name, link in [("receipt", receipt.url), ("novhd", not_vhd.url)]:
        world.deps.vms.put(
            VirtualMachine(
                ServiceName="svc",
                Name=name,
                State="Stopped",
                OSDisk={"OS": "Linux", "MediaLink": link},
            )
        )
        op = run_capture(request(name, f"img-{name}"), f"op-{name}", world.deps)
        assert (op.Status, op.Error.Code) == ("Failed", "NotAVmDisk"), op
    assert receipt.download_blob().readall() == b"{}"
    assert world.blob_names(world.vhds, snapshots=True) == ["plain.vhd"]
    assert world.blob_names(world.images) == []


def test_a_vm_disk_another_record_or_an_image_uses_survives_the_vms_deletion(
    world: World,
) -> None:
    world.vm("owner", data_disks=0)
    owner_disk = world.deps.vms.get("svc", "owner").OSDisk.MediaLink
    held = world.blobs.get_blob_client(world.vhds, "held.vhd")
    held.create_page_blob(64 * MIB + 512)
    held.upload_page(build_footer(64 * MIB), offset=64 * MIB, length=512)
    from shared.adapters.blobs import BlobDiskGuard
    from shared.services.registration import publish
    from tests.integration.test_disk_claims import image

    publish(world.deps.catalog, BlobDiskGuard.of_account(world.blobs), image("keeps", held))
    # A record written before the inventory refused shared disks: straight into the table.
    greedy = VirtualMachine(
        ServiceName="svc",
        Name="greedy",
        State="Stopped",
        OSDisk={"OS": "Linux", "MediaLink": world.disk("greedy-os.vhd")},
        DataDisks=[{"Lun": 0, "MediaLink": owner_disk}, {"Lun": 1, "MediaLink": held.url}],
    )
    world.deps.vms.table.upsert_entity(
        {
            "PartitionKey": "svc",
            "RowKey": "greedy",
            "State": "Stopped",
            "Vm": greedy.model_dump_json(),
        }
    )
    op = run_capture(request("greedy", "greedy-img", "Generalized"), "op-greedy", world.deps)
    assert op.Status == "Succeeded", op.Error
    # Its own disk went with it; the other VM's disk and the image's disk stayed.
    assert world.blob_names(world.vhds) == ["held.vhd", "owner-os.vhd"]
    assert world.deps.catalog.holder(f"{world.vhds}/held.vhd") == "keeps"


def test_two_vm_records_cannot_name_one_disk(world: World) -> None:
    world.vm("first", data_disks=0)
    link = world.deps.vms.get("svc", "first").OSDisk.MediaLink
    second = VirtualMachine(
        ServiceName="svc", Name="second", State="Stopped", OSDisk={"OS": "Linux", "MediaLink": link}
    )
    with pytest.raises(DiskInUse, match="svc/first"):
        world.deps.vms.put(second)
    world.deps.vms.delete("svc", "first")  # once the first is gone, the disk is free
    world.deps.vms.put(second)
    assert world.deps.vms.users_of(link) == [("svc", "second")]


def test_a_repeated_post_is_not_sent_again_unless_its_message_looks_lost(world: World) -> None:
    from datetime import timedelta

    from shared.services.captures import RESEND_AFTER, submit_capture

    world.vm("once", data_disks=0)
    doc = {"ServiceName": "svc", "Name": "once", "ImageName": "once-img", "OperationId": "o-1"}
    sent: list[object] = []
    submit_capture(doc, world.deps, sent.append)
    submit_capture(doc, world.deps, sent.append)  # a repeat: the same operation, no twin
    assert len(sent) == 1
    op = world.deps.operations.get("o-1")
    stale = op.UpdatedTime - RESEND_AFTER - timedelta(seconds=1)
    world.deps.operations.save(op.model_copy(update={"UpdatedTime": stale}))
    submit_capture(doc, world.deps, sent.append)  # nothing moved for a while: sent again
    assert len(sent) == 2
