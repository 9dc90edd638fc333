"""Content hashes: a 1 TiB disk holding 1 GiB of data against a dense 1 GiB disk.

Run: `.venv/bin/python -m bench.hashing` (add `--full` to also run the exact whole-disk
SHA-256 of the 1 TiB disk end to end: that feeds 1 TiB of zeros through SHA-256, some
20 to 40 minutes of one core). Starts its own Azurite (in memory, on free loopback
ports), writes the two disks as page blobs (the sparse one: 512 extents of 2 MiB spread
over the terabyte, each across a 4 MiB block boundary), and times in the same run:

- the dense 1 GiB disk: the job's hashing (every block read, block hashes and the whole
  SHA-256), the reference;
- the 1 TiB disk: its block hashes (Get Page Ranges, then only the ranges that hold
  data: what duplicates, captures and `vmimage verify` compare), and its whole-disk
  SHA-256 (the same reads, plus 1 TiB - 1 GiB of zeros fed in: CPU, no reads),
  extrapolated from the zeros' measured rate unless `--full`;
- the naive way: read every byte of the 1 TiB disk and hash it, extrapolated from
  reading and hashing its first 1 GiB (which is mostly holes: Azurite sends zeros).

Targets (issue 14): bytes read <= the data + 1 MiB; the 1 TiB disk within 1.5x the
time of the dense 1 GiB one.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time

from azure.storage.blob import BlobClient, BlobServiceClient

from bench.common import ROOT, log, machine_info, write_results
from devtools.azurite import Azurite
from shared.adapters.disk_hashing import DiskHasher, data_ranges
from shared.adapters.resumable_sha256 import Sha256Stream
from shared.domain.content_hash import BLOCK_SIZE
from shared.domain.vhd import build_footer

MIB = 1024**2
GIB = 1024**3
TIB = 1024**4
EXTENTS = 512
EXTENT = 2 * MIB


def sparse_disk(client: BlobClient, size: int, rnd: random.Random, straddling: bool) -> int:
    """1 GiB of data spread over the disk; returns its bytes. `straddling`: 512 extents of
    2 MiB, each across a 4 MiB block boundary (1024 blocks half full), else 256 whole
    blocks of 4 MiB."""
    client.create_page_blob(size + 512)
    count, length = (EXTENTS, EXTENT) if straddling else (256, BLOCK_SIZE)
    step = size // count
    for i in range(count):
        offset = i * step + (BLOCK_SIZE - length // 2 if straddling else 0)
        for start in range(0, length, 4 * MIB):
            piece = min(4 * MIB, length - start)
            client.upload_page(rnd.randbytes(piece), offset=offset + start, length=piece)
    client.upload_page(build_footer(size), offset=size, length=512)
    return count * length


def dense_disk(client: BlobClient, size: int, rnd: random.Random) -> int:
    client.create_page_blob(size + 512)
    for offset in range(0, size, 4 * MIB):
        client.upload_page(rnd.randbytes(4 * MIB), offset=offset, length=4 * MIB)
    client.upload_page(build_footer(size), offset=size, length=512)
    return size


def timed(label: str, fn):  # type: ignore[no-untyped-def]
    log(f"  {label} ...")
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall, used = time.perf_counter() - start, time.process_time() - cpu
    log(f"  {label}: {wall:.1f} s wall, {used:.1f} s CPU")
    return result, wall, used


def zeros_rate(sample: int = 8 * GIB) -> float:
    """Bytes of zeros SHA-256 takes per second here (the whole-disk hash of holes)."""
    stream = Sha256Stream()
    start = time.perf_counter()
    stream.update_zeros(sample)
    return sample / (time.perf_counter() - start)


def naive_read(client: BlobClient, length: int) -> float:
    """Read and hash `length` bytes from the start, every byte (seconds)."""
    start = time.perf_counter()
    h = hashlib.sha256()
    for offset in range(0, length, 4 * MIB):
        h.update(client.download_blob(offset=offset, length=4 * MIB, max_concurrency=4).readall())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="hash the 1 TiB disk end to end")
    args = parser.parse_args()
    rnd = random.Random(14)
    azurite = Azurite().start()
    sparse: dict[str, dict[str, object]] = {}
    try:
        blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
        container = blobs.create_container("bench")
        log("writing the disks (1 GiB of data each) ...")
        dense = container.get_blob_client("dense-1gib.vhd")
        dense_data = dense_disk(dense, GIB, rnd)
        disks = {}
        for layout in ("aligned", "straddling"):
            disks[layout] = container.get_blob_client(f"sparse-1tib-{layout}.vhd")
            data = sparse_disk(disks[layout], TIB, rnd, layout == "straddling")
            ranges = sum(e - s for s, e in data_ranges(disks[layout], 0, TIB))
            sparse[layout] = {"data_bytes": data, "page_range_bytes": ranges}

        log("dense 1 GiB disk, the job's hashing (block hashes and whole SHA-256):")
        run, dense_wall, dense_cpu = timed(
            "dense", lambda: DiskHasher(dense, GIB, whole=True).run()
        )
        dense_read = run.bytes_read
        for layout, client in disks.items():
            log(f"1 TiB disk holding 1 GiB ({layout}), block hashes (page ranges, data only):")
            run, wall, cpu = timed(layout, lambda c=client: DiskHasher(c, TIB, whole=False).run())
            sparse[layout].update(
                wall_s=round(wall, 2),
                cpu_s=round(cpu, 2),
                bytes_read=run.bytes_read,
                blocks_read=len(run.digests),
                vs_dense=round(wall / dense_wall, 2),
                bytes_read_within_data_plus_1mib=run.bytes_read
                <= int(sparse[layout]["data_bytes"]) + MIB,  # type: ignore[call-overload]
            )

        log("SHA-256 of zeros, the whole-disk hash of holes (8 GiB sample):")
        rate = zeros_rate()
        log(f"  {rate / 1e9:.2f} GB/s")
        aligned_wall = float(sparse["aligned"]["wall_s"])  # type: ignore[arg-type]
        whole_estimate = aligned_wall + (TIB - GIB) / rate
        whole = None
        if args.full:
            log("1 TiB disk (aligned), the whole-disk SHA-256 end to end (this takes a while):")
            run, whole_wall, whole_cpu = timed(
                "whole", lambda: DiskHasher(disks["aligned"], TIB, whole=True).run()
            )
            whole = {"wall_s": round(whole_wall, 1), "cpu_s": round(whole_cpu, 1)}

        log("naive: read and hash every byte, the first 1 GiB of the 1 TiB disk:")
        naive_gib = naive_read(disks["aligned"], GIB)
        log(f"  {naive_gib:.1f} s per GiB")
    finally:
        azurite.stop()

    result = {
        "machine": machine_info(),
        "dense_1gib": {
            "data_bytes": dense_data,
            "wall_s": round(dense_wall, 2),
            "cpu_s": round(dense_cpu, 2),
            "bytes_read": dense_read,
        },
        "sparse_1tib_block_hashes": sparse,
        "sparse_1tib_whole_sha256": {
            "zeros_gb_per_s": round(rate / 1e9, 3),
            "estimated_wall_s": round(whole_estimate, 1),
            "vs_dense": round(whole_estimate / dense_wall, 1),
            "measured": whole,
        },
        "naive_1tib_extrapolated": {
            "per_gib_s": round(naive_gib, 2),
            "wall_s": round(naive_gib * 1024, 1),
            "bytes_read": TIB,
        },
    }
    write_results(ROOT / "bench" / "results" / "hashing.json", result)
    lines = [f"dense 1 GiB: {dense_wall:.1f} s, {dense_read / MIB:.0f} MiB read"]
    for layout, r in sparse.items():
        lines.append(
            f"1 TiB ({layout}) block hashes: {r['wall_s']} s ({r['vs_dense']}x dense), "
            f"{int(r['bytes_read']) / MIB:.1f} MiB read for {int(r['data_bytes']) / MIB:.0f} "  # type: ignore[call-overload]
            f"MiB of data in {r['blocks_read']} blocks"
        )
    lines.append(
        f"1 TiB whole SHA-256: ~{whole_estimate:.0f} s ({whole_estimate / dense_wall:.0f}x, "
        f"zeros at {rate / 1e9:.2f} GB/s)" + (f", measured {whole['wall_s']} s" if whole else "")
    )
    lines.append(f"naive full read and hash: ~{naive_gib * 1024:.0f} s (extrapolated)")
    log("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
