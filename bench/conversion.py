"""Converting uploaded disk images into fixed VHDs: ours, moving only the data, against
the naive way, in the same run.

`python -m bench.conversion` starts a private Azurite (on disk, in a temp directory:
the disks don't fit in its memory) on 127.0.0.1 and:

1. Writes a raw source disk of 16 GiB and one of 1 TiB virtual holding the same data:
   an MBR and `--data-mib` (1024) MiB in 4 MiB runs spread evenly over the disk, half
   random bytes, half text (so compressed formats have something to compress); and a
   dense `--dense-gib` (4) GiB disk, every byte data. `qemu-img convert` makes qcow2,
   VHDX, streamOptimized VMDK and dynamic VHD files of the sparse ones, and a qcow2 of
   the dense one (not timed).
2. For each file: uploads it as a block blob (not timed), then times our way, in a
   child process so that its peak memory (VmHWM) is its own: `examine_upload` judges
   the upload and the conversion job's steps run one after the other (the product's
   step size, 8 GiB or 60 s) until the image is registered over the fixed VHD page
   blob. Bytes read and written are the job's own counts (the outcome).
3. The naive way for the same file: download the whole blob to a local file, `qemu-img
   convert -O vpc -o subformat=fixed,force_size=on`, then upload the fixed VHD as a
   page blob with the SDK (`upload_blob(blob_type="PageBlob")`, which reads every byte
   of the file and skips the all-zero 4 MiB chunks, as `az storage blob upload --type
   page` does). Past `--naive-upload-cap-gib` (4) of fixed VHD, the upload is timed
   over that much of the file and extrapolated to the whole (the data is spread evenly;
   at 1 TiB, reading it all takes hours); labelled so.

Prints a Markdown table and writes bench/results/conversion.json. Needs ~40 GB free in
the temp directory (`--tmp`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import log, machine_info, write_results
from devtools.azurite import ROOT, Azurite

MIB = 1024 * 1024
GIB = 1024 * MIB
TIB = 1024 * GIB
RUN = 4 * MIB  # the data is written in runs of this size
FORMATS = {  # name -> (file extension, qemu-img -O, options)
    "qcow2": ("qcow2", "qcow2", []),
    "VHDX": ("vhdx", "vhdx", []),
    "VMDK (streamOptimized)": ("vmdk", "vmdk", ["-o", "subformat=streamOptimized"]),
    "VHD (dynamic)": ("vhd", "vpc", ["-o", "subformat=dynamic,force_size=on"]),
}


# -- the sources ---------------------------------------------------------------------------


def run_data(index: int) -> bytes:
    """The `index`-th run of data: random bytes, or text that compresses (never a zero page)."""
    rnd = random.Random(index)
    if index % 2 == 0:
        return rnd.randbytes(RUN)
    line = f"run {index}: the quick brown fox jumps over the lazy dog {rnd.random()}\n".encode()
    return (line * (RUN // len(line) + 1))[:RUN]


def write_sparse_source(path: Path, size: int, data_bytes: int) -> int:
    """A raw disk of `size` bytes with `data_bytes` of data in runs spread over it; returns
    the non-zero bytes (whole 512-byte pages) it holds."""
    runs = data_bytes // RUN
    stride = (size - MIB) // runs // MIB * MIB
    with open(path, "wb") as f:
        f.truncate(size)
        mbr = bytearray(512)
        mbr[510:512] = b"\x55\xaa"
        f.write(mbr)
        for i in range(runs):
            f.seek(MIB + i * stride)
            f.write(run_data(i))
    return 512 + runs * RUN


def write_dense_source(path: Path, size: int) -> int:
    with open(path, "wb") as f:
        for i in range(size // RUN):
            chunk = bytearray(run_data(i))
            if i == 0:
                chunk[510:512] = b"\x55\xaa"  # an MBR: a raw disk, for the probe
            f.write(chunk)
    return size


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


# -- our way, in a child process -----------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    """Judge the upload and run the conversion job to its end; print the figures as JSON."""
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient

    from shared.adapters.catalog_table import ImageCatalog
    from shared.adapters.uploads_table import UploadOutcomes
    from shared.services.conversion import ConversionPolicy, run_conversion_step
    from shared.services.uploads import UploadDeps, UploadPolicy, examine_upload

    class Steps:
        def __init__(self) -> None:
            self.messages: list[tuple[str, str]] = []

        def schedule(self, blob_name: str, etag: str, delay_seconds: float = 0) -> None:
            self.messages.append((blob_name, etag))

    class NoRechecks:
        def schedule(self, blob_name: str, delay_seconds: float) -> None:
            raise RuntimeError("a block blob is never re-checked")

    blobs = BlobServiceClient.from_connection_string(args.connection)
    tables = TableServiceClient.from_connection_string(args.connection)
    tag = uuid.uuid4().hex[:10]
    steps = Steps()
    deps = UploadDeps(
        uploads=blobs.get_container_client("uploads"),
        outcomes=UploadOutcomes(tables.create_table(f"benchout{tag}")),
        catalog=ImageCatalog(tables.create_table(f"benchcat{tag}")),
        rechecks=NoRechecks(),
        policy=UploadPolicy(max_os_disk_bytes=2 * TIB),
        images=blobs.get_container_client("images"),
        conversions=steps,
        conversion=ConversionPolicy.from_env({}),  # the product's defaults
    )
    started = time.perf_counter()
    outcome = examine_upload(deps.uploads.get_blob_client(args.child), deps)
    while steps.messages:
        name, etag = steps.messages.pop(0)
        outcome = run_conversion_step(name, etag, deps)
    elapsed = time.perf_counter() - started
    hwm = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    assert outcome is not None
    print(
        json.dumps(
            {
                "status": outcome.Status,
                "error": outcome.Error.model_dump() if outcome.Error else None,
                "format": outcome.SourceFormat,
                "seconds": elapsed,
                "bytes_read": outcome.BytesRead,
                "bytes_written": outcome.BytesWritten,
                "steps": outcome.Conversion.Steps if outcome.Conversion else None,
                "converted": outcome.ConvertedBlobs,
                "peak_rss": hwm,
            }
        )
    )


def ours(connection: str, blob: str) -> dict[str, Any]:
    r = subprocess.run(
        [sys.executable, "-m", "bench.conversion", "--child", blob, "--connection", connection],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        raise RuntimeError(f"our conversion of {blob} failed: {r.stderr[-2000:]}")
    result = json.loads(r.stdout.strip().splitlines()[-1])
    if result["status"] != "Registered":
        raise RuntimeError(f"{blob} was not registered: {result}")
    return result


# -- the naive way -------------------------------------------------------------------------


def naive(blobs: Any, blob: str, work: Path, upload_cap_bytes: int | None) -> dict[str, Any]:
    """Download, qemu-img convert, upload the fixed VHD (its reading extrapolated past
    `upload_cap_bytes` of file)."""
    src = blobs.get_blob_client("uploads", blob)
    local = work / f"naive-{uuid.uuid4().hex[:6]}"
    fixed = work / f"naive-{uuid.uuid4().hex[:6]}.vhd"
    t0 = time.perf_counter()
    with open(local, "wb") as f:
        src.download_blob(max_concurrency=8).readinto(f)
    t1 = time.perf_counter()
    qemu_img("convert", "-O", "vpc", "-o", "subformat=fixed,force_size=on", str(local), str(fixed))
    t2 = time.perf_counter()
    local.unlink()
    size = fixed.stat().st_size
    target = blobs.get_blob_client("images", f"naive/{uuid.uuid4().hex[:8]}.vhd")
    written = 0

    def count(response: Any) -> None:
        nonlocal written
        if response.http_request.method == "PUT" and "comp=page" in response.http_request.url:
            written += int(response.http_request.headers.get("Content-Length", 0))

    extrapolated = upload_cap_bytes is not None and size > upload_cap_bytes + MIB
    with open(fixed, "rb") as f:
        if not extrapolated:
            target.upload_blob(
                f, blob_type="PageBlob", length=size, max_concurrency=8, raw_response_hook=count
            )
            t3 = time.perf_counter()
            upload_s = t3 - t2
        else:
            # What the SDK does, over the first `cap` bytes; the rest of the file is holes
            # it reads the same way (all-zero chunks are read, checked and skipped).
            assert upload_cap_bytes is not None
            target.create_page_blob(size)
            pos = 0
            while pos < upload_cap_bytes:
                chunk = f.read(RUN)
                if any(bytearray(chunk)):  # the SDK's own test for an empty chunk
                    target.upload_page(chunk, offset=pos, length=len(chunk))
                    written += len(chunk)
                pos += len(chunk)
            t3 = time.perf_counter()
            upload_s = (t3 - t2) * size / upload_cap_bytes
    fixed.unlink()
    target.delete_blob()
    return {
        "download_s": t1 - t0,
        "convert_s": t2 - t1,
        "upload_s": upload_s,
        "upload_extrapolated": extrapolated,
        "seconds": (t1 - t0) + (t2 - t1) + upload_s,
        "bytes_read": src.get_blob_properties().size,
        "bytes_written_measured": written,
        "local_disk_bytes": size,
    }


# -- the run -------------------------------------------------------------------------------


def drop(blobs: Any, path: Path, name: str) -> None:
    with open(path, "rb") as f:
        blobs.get_blob_client("uploads", name).upload_blob(
            f, overwrite=True, max_concurrency=8, metadata={"os": "Linux"}
        )


def clean(blobs: Any, names: list[str]) -> None:
    """Free Azurite's disk: the upload and its converted disk (breaking the image's lease)."""
    from azure.storage.blob import BlobLeaseClient

    for path in names:
        container, _, name = path.partition("/")
        client = blobs.get_blob_client(container, name)
        with contextlib.suppress(Exception):
            BlobLeaseClient(client).break_lease(lease_break_period=0)
        with contextlib.suppress(Exception):
            client.delete_blob()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-mib", type=int, default=1024)
    parser.add_argument("--dense-gib", type=int, default=4)
    parser.add_argument("--sizes", default="16G,1T", help="virtual sizes of the sparse disks")
    parser.add_argument(
        "--naive-upload-cap-gib",
        type=float,
        default=4,
        help="the naive upload reads at most this much of a fixed VHD; beyond, extrapolated",
    )
    parser.add_argument("--tmp", type=Path, default=None)
    parser.add_argument("--child")  # internal: our way, in a process of its own
    parser.add_argument("--connection")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sizes = [(s, int(s[:-1]) * (GIB if s.endswith("G") else TIB)) for s in args.sizes.split(",")]
    base = Path(tempfile.mkdtemp(prefix="bench-conversion-", dir=args.tmp))
    rows: list[dict[str, Any]] = []
    try:
        with Azurite(location=base / "azurite") as azurite:
            from azure.storage.blob import BlobServiceClient

            blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
            for c in ("uploads", "images"):
                blobs.create_container(c)
            cases: list[tuple[str, str, int, Path, int]] = []
            for label, size in sizes:
                raw = base / f"source-{label}.raw"
                nonzero = write_sparse_source(raw, size, args.data_mib * MIB)
                for fmt, (ext, qfmt, opts) in FORMATS.items():
                    out = base / f"disk-{label}.{ext}"
                    qemu_img("convert", "-f", "raw", "-O", qfmt, *opts, str(raw), str(out))
                    cases.append((fmt, label, size, out, nonzero))
                raw.unlink()
            dense_raw = base / "dense.raw"
            dense_size = args.dense_gib * GIB
            write_dense_source(dense_raw, dense_size)
            dense = base / "dense.qcow2"
            qemu_img("convert", "-f", "raw", "-O", "qcow2", str(dense_raw), str(dense))
            dense_raw.unlink()
            cases.append(("qcow2 (dense)", f"{args.dense_gib}G", dense_size, dense, dense_size))
            for fmt, label, size, path, nonzero in cases:
                name = f"{label}-{path.name}"
                file_bytes = path.stat().st_size
                log(f"{fmt} {label}: uploading the source ({path.stat().st_size} bytes)")
                drop(blobs, path, name)
                log(f"{fmt} {label}: our way")
                mine = ours(azurite.connection_string, name)
                clean(blobs, mine["converted"])
                cap = int(args.naive_upload_cap_gib * GIB)
                log(f"{fmt} {label}: the naive way")
                theirs = naive(blobs, name, base, cap)
                clean(blobs, [f"uploads/{name}"])
                path.unlink()
                rows.append(
                    {
                        "format": fmt,
                        "virtual": label,
                        "virtual_bytes": size,
                        "file_bytes": file_bytes,
                        "nonzero_bytes": nonzero,
                        "ours": mine,
                        "naive": theirs,
                    }
                )
                log(json.dumps(rows[-1]))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    result = {"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()}}
    result["rows"] = rows
    write_results(ROOT / "bench" / "results" / "conversion.json", result)
    print(report(rows))


def report(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| disk | virtual | file | read (ours) | read / file | written (ours) | written - "
        "non-zero | steps | ours | peak RSS | naive | naive / ours |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        o, n = r["ours"], r["naive"]
        mark = " (upload extrapolated)" if n["upload_extrapolated"] else ""
        lines.append(
            f"| {r['format']} | {r['virtual']} | {r['file_bytes'] / MIB:,.0f} MiB "
            f"| {o['bytes_read'] / MIB:,.0f} MiB | {o['bytes_read'] / r['file_bytes']:.3f} "
            f"| {o['bytes_written'] / MIB:,.0f} MiB "
            f"| {(o['bytes_written'] - r['nonzero_bytes']) / 1024:+,.1f} KiB | {o['steps']} "
            f"| {o['seconds']:.1f} s | {o['peak_rss'] / MIB:.0f} MiB "
            f"| {n['seconds']:.1f} s{mark} | {n['seconds'] / o['seconds']:.1f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    # A SIGTERM (a timeout) unwinds too: Azurite stops and the temp files go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
