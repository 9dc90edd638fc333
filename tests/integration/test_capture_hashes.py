"""A capture compares each copy's 4 MiB block hashes with its snapshot's before it
publishes (against Azurite): a copy that differs fails the capture, publishes nothing
and leaves no copy behind."""

from __future__ import annotations

from shared.domain.vhd import build_footer
from shared.services.captures import TAG, run_capture
from tests.integration.test_captures import MIB, World, request, world  # noqa: F401


def test_a_copy_that_differs_from_its_snapshot_is_never_published(world: World) -> None:  # noqa: F811
    world.vm("vmx", data_disks=1)

    def tamper(step: str) -> None:
        if step == "CompareHashes":  # copied and checked complete: then it changes
            # (Azurite shares a copy's pages with its snapshot, so the copy is made anew:
            # same name, size and tag, its first sector and one more sector different.)
            copy = world.blobs.get_blob_client(world.images, "imgx/opx/lun0.vhd")
            copy.create_page_blob(64 * MIB + 512, metadata={TAG: "opx"})
            copy.upload_page(b"\x01" * 512, offset=9 * MIB, length=512)
            copy.upload_page(build_footer(64 * MIB), offset=64 * MIB, length=512)

    world.deps.before_step = tamper
    op = run_capture(request("vmx", "imgx", "Specialized"), "opx", world.deps)
    assert op.Status == "Failed" and op.Error is not None
    assert op.Error.Code == "CopyFailed"
    assert "lun0 disk differs from its snapshot in 2 block(s)" in op.Error.Message
    assert "the first at byte 0" in op.Error.Message
    assert world.deps.catalog.find("imgx") is None
    assert world.blob_names(world.images) == []  # its copies were discarded
    # The VM and its disks are untouched; without tampering the capture goes through.
    world.deps.before_step = None
    op = run_capture(request("vmx", "imgx", "Specialized"), "opx2", world.deps)
    assert op.Status == "Succeeded", op.Error
