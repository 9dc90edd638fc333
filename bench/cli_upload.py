"""Upload throughput of the CLI's uploader (`vmimage.upload.upload_disk`) vs the naive way.

`.venv/bin/python -m bench.cli_upload` starts a private in-memory Azurite on free
loopback ports (no function app needed) and uploads, as page blobs:

(a) a fixed VHD of 256 MiB full of random data (nothing to skip: this measures
    the parallel page writes), reported as MB/s of data sent;
(b) a sparse fixed VHD of 1 TiB holding 64 MiB of random data in 16 extents of
    4 MiB spread over the disk, reported as MB/s of virtual size covered (and
    of data sent).

Next to it, in the same run, the naive way: `BlobClient.upload_blob(f,
blob_type="PageBlob")`, which reads and sends every byte, with the SDK's default
`max_concurrency=1` and with 8 (the uploader's worker count), on (a) only; for
(b) it is not run: it would read the whole 1 TiB and test every 4 MiB chunk for
zeros in Python (the SDK does skip zero chunks, but only after reading them); its
time is estimated by scaling one naive upload of a 4 GiB sparse disk (b').

Each figure is the median of `--reps` runs (5), the ways interleaved after a
warm-up round; every blob is checked once (content, or pages and footer for the
sparse disk) and deleted after each run. MB = 10^6 bytes. Prints
Markdown (command, machine) and writes bench/results/cli_upload.json.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobClient, ContainerClient

from bench.common import log, machine_info, write_results
from devtools.azurite import ROOT, Azurite
from shared.domain.vhd import build_footer
from vmimage.upload import CHUNK, data_chunks, upload_disk

RESULTS = ROOT / "bench" / "results" / "cli_upload.json"
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4
DENSE_SIZE = 256 * MIB
SPARSE_SIZE = TIB
SPARSE_EXTENTS = 16  # x 4 MiB = 64 MiB of data
SAMPLE_SIZE = 4 * GIB  # 1/256 of the sparse disk, for the naive way's estimate
DENSE_LABEL = "(a) 256 MiB, all random data"
SPARSE_LABEL = "(b) 1 TiB sparse, 64 MiB of data"
SAMPLE_LABEL = "(b') 4 GiB sparse, 4 MiB of data"


def build_dense(path: Path) -> Path:
    with open(path, "wb") as f:
        for _ in range(DENSE_SIZE // CHUNK):
            f.write(os.urandom(CHUNK))
        f.write(build_footer(DENSE_SIZE))
    return path


def build_sparse(path: Path, size: int = SPARSE_SIZE, extents: int = SPARSE_EXTENTS) -> Path:
    """`extents` x 4 MiB of random data spread evenly over a sparse fixed VHD."""
    with open(path, "wb") as f:
        f.truncate(size + 512)
        for i in range(extents):
            f.seek(i * (size // extents))
            f.write(os.urandom(CHUNK))
        f.seek(size)
        f.write(build_footer(size))
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(CHUNK):
            h.update(data)
    return h.hexdigest()


def sha256_blob(client: BlobClient) -> str:
    h = hashlib.sha256()
    for chunk in client.download_blob(max_concurrency=4).chunks():
        h.update(chunk)
    return h.hexdigest()


def page_bytes(client: BlobClient) -> int:
    ranges, _ = client.get_page_ranges()
    return sum(r["end"] - r["start"] + 1 for r in ranges)


def upload_once(
    container: ContainerClient, way: str, path: Path, name: str, workers: int
) -> tuple[float, int, BlobClient]:
    """One upload by `way` ("cli", or "naive<concurrency>"): (seconds, bytes sent, blob)."""
    client = container.get_blob_client(name)
    if way == "cli":
        stats = upload_disk(client, path, {"bench": "cli"}, workers=workers, overwrite=False)
        return stats.seconds, stats.sent, client
    began = time.perf_counter()
    with open(path, "rb") as f:
        client.upload_blob(f, blob_type="PageBlob", max_concurrency=int(way[len("naive") :]))
    seconds = time.perf_counter() - began
    return seconds, page_bytes(client), client  # the SDK skips chunks of zeros too


def measure(
    container: ContainerClient, ways: list[str], path: Path, reps: int, workers: int
) -> dict[str, dict[str, Any]]:
    """`reps` timed runs of each way, interleaved (the order rotates every round) after one
    untimed warm-up round, so that Azurite warming up or slowing down weighs on all alike.
    The first timed blob of each way is checked; every blob is deleted after its run."""
    times: dict[str, list[float]] = {w: [] for w in ways}
    sent: dict[str, int] = {}
    for rep in range(-1, reps):
        order = ways[rep % len(ways) :] + ways[: rep % len(ways)]
        for way in order:
            seconds, n, client = upload_once(
                container, way, path, f"{way}-{path.stem}-{rep + 1}.vhd", workers
            )
            if rep >= 0:
                times[way].append(seconds)
                sent[way] = n
            if rep == 0:
                check(client, path)
            client.delete_blob()
    return {w: summary(times[w], sent[w], path.stat().st_size) for w in ways}


def check(client: BlobClient, path: Path) -> None:
    """The blob holds the file: the same bytes (dense), or pages exactly where the file has
    non-zero 4 MiB chunks and the same footer (sparse)."""
    size = path.stat().st_size
    assert client.get_blob_properties().size == size
    if size <= DENSE_SIZE + 512:  # the dense disk: every byte
        assert sha256_blob(client) == sha256_file(path), f"{client.blob_name}: content differs"
        return
    with open(path, "rb") as f:
        nonzero = sum(
            n for off, n in data_chunks(f.fileno(), size) if any(os.pread(f.fileno(), n, off))
        )
        footer = os.pread(f.fileno(), 512, size - 512)
    assert page_bytes(client) == nonzero, f"{client.blob_name}: pages differ from the data"
    assert client.download_blob(offset=size - 512, length=512).readall() == footer


def summary(times: list[float], sent: int, size: int) -> dict[str, Any]:
    median = statistics.median(times)
    return {
        "runs_s": [round(t, 4) for t in times],
        "median_s": round(median, 4),
        "bytes_sent": sent,
        "size_bytes": size,
        "mb_per_s_data": round(sent / 1e6 / median, 1),
        "mb_per_s_virtual": round(size / 1e6 / median, 1),
    }


def machine() -> dict[str, Any]:
    return machine_info()


def size_text(n: int) -> str:
    for unit, scale in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        "### vmimage upload throughput (`vmimage.upload.upload_disk`) vs `upload_blob`",
        "",
        f"Command: `{doc['command']}` ({doc['date']}, median of {doc['reps']} runs each)",
        "",
        f"Machine: {m['cpu_count']} CPUs ({m['cpu_model'] or 'unknown model'}), Python "
        f"{m['python']}, {m['platform']}, Azurite {m['azurite']} (in memory, on 127.0.0.1)",
        "",
        "| Disk | Way | Data sent | Time | MB/s of data | MB/s of virtual size |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in doc["rows"]:
        r = row["result"]
        if r is None:
            lines.append(f"| {row['disk']} | {row['way']} | not run: {row['reason']} | | | |")
            continue
        lines.append(
            f"| {row['disk']} | {row['way']} | {size_text(r['bytes_sent'])} | "
            f"{r['median_s']:.2f} s | {r['mb_per_s_data']:,.1f} | {r['mb_per_s_virtual']:,.1f} |"
        )
    lines += [
        "",
        "MB = 10^6 bytes. The uploader creates the blob with `uploadstate=uploading`, writes "
        f"{doc['workers']} pages of 4 MiB at a time, skips holes (SEEK_DATA) and zero chunks, "
        "then sets `uploadstate=complete`; its time includes those calls.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    command = ".venv/bin/python -m bench.cli_upload" + ("".join(f" {a}" for a in given))

    with tempfile.TemporaryDirectory(prefix="cli-upload-bench-") as tmp_text:
        tmp = Path(tmp_text)
        log("Building a 256 MiB random disk and a sparse 1 TiB disk with 64 MiB of data ...")
        dense = build_dense(tmp / "dense-256MiB.vhd")
        sparse = build_sparse(tmp / "sparse-1TiB.vhd")
        sample = build_sparse(tmp / "sparse-4GiB.vhd", SAMPLE_SIZE, extents=1)
        log("Starting Azurite on 127.0.0.1 (in memory) ...")
        with Azurite(log_file=tmp / "azurite.log") as azurite:
            container = ContainerClient.from_connection_string(
                azurite.connection_string, "bench-cli-upload"
            )
            container.create_container()
            rows: list[dict[str, Any]] = []

            naive_way = 'naive `upload_blob(f, blob_type="PageBlob")`'
            ways = ["cli", "naive1", f"naive{args.workers}"]
            log(f"(a) 256 MiB: {', '.join(ways)}, {args.reps} runs each, interleaved ...")
            dense_results = measure(container, ways, dense, args.reps, args.workers)
            names = {
                "cli": f"vmimage uploader ({args.workers} workers)",
                "naive1": f"{naive_way} (SDK default: max_concurrency=1)",
                f"naive{args.workers}": f"{naive_way}, max_concurrency={args.workers}",
            }
            for way in ways:
                rows.append({"disk": DENSE_LABEL, "way": names[way], "result": dense_results[way]})

            log(f"(b) sparse 1 TiB: cli, {args.reps} runs ...")
            sparse_cli = measure(container, ["cli"], sparse, args.reps, args.workers)["cli"]
            rows.append({"disk": SPARSE_LABEL, "way": names["cli"], "result": sparse_cli})

            log("(b') sparse 4 GiB sample: naive with the SDK default, once ...")
            sample_naive = measure(container, ["naive1"], sample, 1, args.workers)["naive1"]
            hours = sample_naive["median_s"] * SPARSE_SIZE / SAMPLE_SIZE / 3600
            rows.append(
                {
                    "disk": SPARSE_LABEL,
                    "way": naive_way,
                    "result": None,
                    "reason": (
                        f"it reads all 1 TiB and tests each 4 MiB chunk for zeros in Python "
                        f"before skipping it: about {hours:.1f} h, scaled from the 4 GiB "
                        "sample below"
                    ),
                    "estimated_hours": round(hours, 2),
                }
            )
            rows.append(
                {"disk": SAMPLE_LABEL, "way": names["naive1"] + ", 1 run", "result": sample_naive}
            )

    doc = {
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "reps": args.reps,
        "workers": args.workers,
        "machine": machine(),
        "rows": rows,
    }
    write_results(RESULTS, doc)
    print(markdown(doc))
    log(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
