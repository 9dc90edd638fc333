"""Capture cost vs disk size: a VM with an OS disk and four data disks, 64 MiB vs 1 TiB each.

Run: `.venv/bin/python -m bench.captures`. Starts its own Azurite (in memory, on free
loopback ports) and calls the capture service in-process, so the figures are the
function's own: wall time, and CPU time of this process (what a Functions worker
would bill), per capture, median of several. The disks are sparse page blobs (a
boot sector and a footer), so Azurite holds them in kilobytes; the capture copies
server-side and must not depend on the size. Compared in the same run with the
naive way: streaming every disk's bytes through the function (download + upload),
which is only run at 64 MiB (1 TiB x 5 would move 5 TiB).
"""

from __future__ import annotations

import json
import statistics
import time
import uuid

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from bench.common import machine_info
from devtools.azurite import ROOT, Azurite
from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.operations_table import Operations
from shared.adapters.vms_table import VmInventory
from shared.domain.captures import CaptureRequest
from shared.domain.vhd import build_footer
from shared.domain.vms import VirtualMachine
from shared.services.captures import CaptureDeps, run_capture

MIB = 1024**2
TIB = 1024**4
REPEATS = 5


def make_vm(
    blobs: BlobServiceClient, vhds: str, inventory: VmInventory, name: str, size: int
) -> None:
    links = []
    for role in ("os", "d0", "d1", "d2", "d3"):
        client = blobs.get_blob_client(vhds, f"{name}-{role}.vhd")
        client.create_page_blob(size + 512)
        boot = bytearray(512)
        boot[510:512] = b"\x55\xaa"
        client.upload_page(bytes(boot), offset=0, length=512)
        client.upload_page(build_footer(size), offset=size, length=512)
        links.append(client.url)
    inventory.put(
        VirtualMachine(
            ServiceName="bench",
            Name=name,
            State="Stopped",
            OSDisk={"OS": "Linux", "MediaLink": links[0]},
            DataDisks=[{"Lun": i, "MediaLink": link} for i, link in enumerate(links[1:])],
        )
    )


def naive_copy(blobs: BlobServiceClient, vhds: str, images: str, name: str) -> None:
    """Streams each disk through the function: what the capture must not do."""
    for role in ("os", "d0", "d1", "d2", "d3"):
        src = blobs.get_blob_client(vhds, f"{name}-{role}.vhd")
        data = src.download_blob().readall()
        blobs.get_blob_client(images, f"naive/{name}/{role}.vhd").upload_blob(
            data, blob_type="PageBlob", overwrite=True
        )


def machine() -> str:
    m = machine_info()
    return (
        f"{m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}, "
        f"Azurite {m['azurite']} (in memory)"
    )


def main() -> None:
    results: dict[str, dict[str, float]] = {}
    with Azurite() as az:
        blobs = BlobServiceClient.from_connection_string(az.connection_string)
        tables = TableServiceClient.from_connection_string(az.connection_string)
        s = uuid.uuid4().hex[:8]
        vhds, images = f"vhds{s}", f"images{s}"
        blobs.create_container(vhds)
        blobs.create_container(images)
        deps = CaptureDeps(
            blobs=blobs,
            images_container=images,
            catalog=ImageCatalog(tables.create_table(f"img{s}")),
            vms=VmInventory(tables.create_table(f"vms{s}")),
            operations=Operations(tables.create_table(f"ops{s}")),
        )
        for label, size in (("64 MiB", 64 * MIB), ("1 TiB", TIB)):
            walls, cpus = [], []
            for i in range(REPEATS + 1):
                vm = f"vm{size}-{i}"
                make_vm(blobs, vhds, deps.vms, vm, size)
                req = CaptureRequest(
                    ServiceName="bench", Name=vm, ImageName=f"img-{size}-{i}", OSState="Generalized"
                )
                wall0, cpu0 = time.perf_counter(), time.process_time()
                op = run_capture(req, f"op-{size}-{i}", deps)
                wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
                assert op.Status == "Succeeded", op.Error
                if i:  # the first one warms up clients and connections
                    walls.append(wall)
                    cpus.append(cpu)
            results[label] = {
                "wall_ms": statistics.median(walls) * 1000,
                "cpu_ms": statistics.median(cpus) * 1000,
            }
        make_vm(blobs, vhds, deps.vms, "naive", 64 * MIB)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        naive_copy(blobs, vhds, images, "naive")
        results["naive 64 MiB"] = {
            "wall_ms": (time.perf_counter() - wall0) * 1000,
            "cpu_ms": (time.process_time() - cpu0) * 1000,
        }
    ratio = results["1 TiB"]["wall_ms"] / results["64 MiB"]["wall_ms"]
    lines = [
        "Command: `.venv/bin/python -m bench.captures`",
        "",
        f"Machine: {machine()}",
        "",
        "A VM with an OS disk and four data disks (sparse page blobs), captured as a "
        f"Generalized VM image in-process; median of {REPEATS}.",
        "",
        "| Disks | Capture wall time | Function CPU time |",
        "|---|---:|---:|",
        *(
            f"| {name} | {results[key]['wall_ms']:.0f} ms | {results[key]['cpu_ms']:.0f} ms |"
            for name, key in (
                ("5 x 64 MiB", "64 MiB"),
                ("5 x 1 TiB", "1 TiB"),
                ("naive: stream 5 x 64 MiB through the function", "naive 64 MiB"),
            )
        ),
        "",
        f"1 TiB / 64 MiB capture time: {ratio:.2f}x (target < 1.5x). The naive way is not run "
        "at 1 TiB: it would move 5 TiB through the function.",
    ]
    print("\n".join(lines))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "captures.json").write_text(json.dumps({"results": results, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
