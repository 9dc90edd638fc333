"""What registering an upload costs as disks grow, and how long a drop takes end to end.

`python -m bench.uploads` starts a private in-memory Azurite on 127.0.0.1 and:

1. Builds valid fixed VHDs with an MBR + ext4 (Ubuntu os-release) at the
   front, of virtual size 64 MiB (the corpus disk `linux_ext4_mbr`), 16 GiB
   and 1 TiB (its first 64 MiB copied into a sparse file of the larger size,
   with a `build_footer(size)` footer at the end), and uploads each as a page
   blob with `upload_page_blob` (zero chunks are skipped, so this is quick).
2. For each size, median of `--reps` runs of
   - the catalog's way: `validate_vhd` then `probe_disk` through a
     `BlobRangeReader` on the blob (reads, bytes, time), and the whole
     `examine_upload` registration into fresh tables (the lease it takes is
     released after every run);
   - the naive way, what `func.InputStream` does: download the whole blob into
     memory, then validate + probe it with a `BytesReader`, only where the blob
     fits in a 2 GiB budget. For 64 MiB and 16 GiB two whole-blob streaming
     reads (data discarded) are timed as well, each capped at `--stream-cap`
     seconds: the SDK's `download_blob().chunks()`, which zero-fills the
     chunks Get Page Ranges says hold no page without fetching them, and
     sequential 4 MiB ranged GETs, which move every byte over HTTP (what a
     disk full of data costs). Partial reads are extrapolated, and labelled so.
3. Runs the product's function app under the local runner (`AppHost`,
   UPLOAD_SETTLE_SECONDS=1, the local default) and `--drops` times uploads the
   64 MiB disk under a new name, timing from the end of the upload to the first
   `GET /api/uploads/{name}` that says `Registered` (polled every 50 ms): once
   relying on the settle window, once with the uploader setting the metadata
   `uploadstate=complete` when it is done.

Prints a Markdown report and writes bench/results/uploads.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import BlobClient

from bench.common import log, machine_info, write_results
from devtools.apphost import LOCAL_DEFAULTS, AppHost
from devtools.azurite import ROOT, Azurite
from devtools.upload import upload_page_blob
from shared.adapters.blobs import BlobRangeReader, release
from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.storage import StorageAccount, ensure_resources
from shared.adapters.uploads_table import UploadOutcomes
from shared.domain.disk_probe import probe_disk
from shared.domain.ranged import BytesReader, RangeReader
from shared.domain.uploads import UploadStatus
from shared.domain.vhd import FOOTER_SIZE, build_footer, validate_vhd
from shared.services.uploads import UploadDeps, UploadPolicy, examine_upload
from shared.settings import settings_with_defaults
from tests.vhd_corpus import Corpus

RESULTS = ROOT / "bench" / "results" / "uploads.json"
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4
SIZES = [("64 MiB", 64 * MIB), ("16 GiB", 16 * GIB), ("1 TiB", TIB)]
FRONT = 64 * MIB  # the corpus disk's data, copied to the front of the bigger disks
NAIVE_RAM_BUDGET = 2 * GIB  # never hold more than this in memory for the naive way
DENSE_CHUNK = 4 * MIB
POLL_SECONDS = 0.05
MAX_OS_DISK = UploadPolicy().max_os_disk_bytes


# -- disks ---------------------------------------------------------------------------------


def sparse_disk(front: Path, out: Path, size: int) -> Path:
    """A fixed VHD of virtual `size`: `front`'s first 64 MiB, a hole, then the footer."""
    chunk = 64 * 1024
    with open(front, "rb") as src, open(out, "wb") as dst:
        dst.truncate(size + FOOTER_SIZE)
        pos = 0
        while pos < FRONT and (data := src.read(min(chunk, FRONT - pos))):
            if data.strip(b"\0"):
                dst.seek(pos)
                dst.write(data)
            pos += len(data)
        dst.seek(size)
        dst.write(build_footer(size))
    return out


def build_disks(tmp: Path) -> dict[str, Path]:
    corpus_disk = Corpus(tmp / "corpus")["linux_ext4_mbr"]
    if corpus_disk.stat().st_size != 64 * MIB + FOOTER_SIZE:
        raise RuntimeError(f"{corpus_disk} is not a 64 MiB fixed VHD")
    disks = {"64 MiB": corpus_disk}
    for label, size in SIZES[1:]:
        disks[label] = sparse_disk(corpus_disk, tmp / f"linux-{label.replace(' ', '')}.vhd", size)
    return disks


# -- the catalog's way ------------------------------------------------------------------


def validate_and_probe(reader: RangeReader) -> dict[str, Any]:
    footer = validate_vhd(reader, max_size_bytes=MAX_OS_DISK)
    probe = probe_disk(reader, disk_size=footer.current_size)
    if probe.os != "Linux" or probe.os_release.get("ID") != "ubuntu":
        raise RuntimeError(f"the probe did not find Ubuntu: {probe.to_dict()}")
    return {"virtual_size": footer.current_size, "os": probe.os}


def catalog_way(client: BlobClient, reps: int) -> dict[str, Any]:
    props = client.get_blob_properties()
    runs = []
    for _ in range(reps):
        reader = BlobRangeReader(client, props.size, props.etag)
        started = time.perf_counter()
        validate_and_probe(reader)
        elapsed = time.perf_counter() - started
        runs.append({"s": elapsed, "reads": reader.reads, "bytes_read": reader.bytes_read})
    return {
        "reps": reps,
        "median_s": statistics.median(r["s"] for r in runs),
        "reads": runs[-1]["reads"],
        "bytes_read": runs[-1]["bytes_read"],
        "runs": runs,
    }


class _NoRechecks:
    """The benchmark's blobs say uploadstate=complete, so nothing should be re-checked."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[str, float]] = []

    def schedule(self, blob_name: str, delay_seconds: float) -> None:
        self.scheduled.append((blob_name, delay_seconds))


@contextlib.contextmanager
def fresh_tables(storage: StorageAccount) -> Iterator[tuple[Any, Any]]:
    tag = uuid.uuid4().hex[:12]
    names = (f"benchuploads{tag}", f"benchimages{tag}")
    clients = [storage.tables.create_table(n) for n in names]
    try:
        yield clients[0], clients[1]
    finally:
        for n in names:
            with contextlib.suppress(Exception):
                storage.tables.delete_table(n)


def upload_deps(storage: StorageAccount, client: BlobClient, **kwargs: Any) -> UploadDeps:
    """UploadDeps, with the container of the disk where this version of it asks for one."""
    if "uploads" in {f.name for f in dataclasses.fields(UploadDeps)}:
        kwargs["uploads"] = storage.blobs.get_container_client(client.container_name)
    return UploadDeps(**kwargs)


def registration(storage: StorageAccount, client: BlobClient, reps: int) -> dict[str, Any]:
    runs = []
    for _ in range(reps):
        with fresh_tables(storage) as (uploads_table, images_table):
            rechecks = _NoRechecks()
            deps = upload_deps(
                storage,
                client,
                outcomes=UploadOutcomes(uploads_table),
                catalog=ImageCatalog(images_table),
                rechecks=rechecks,
                policy=UploadPolicy(settle_seconds=float(LOCAL_DEFAULTS["UPLOAD_SETTLE_SECONDS"])),
            )
            started = time.perf_counter()
            outcome = examine_upload(client, deps)
            elapsed = time.perf_counter() - started
            release(client)
        if outcome is None or outcome.Status != UploadStatus.REGISTERED:
            raise RuntimeError(f"examine_upload did not register {client.blob_name}: {outcome}")
        if rechecks.scheduled:
            raise RuntimeError(f"unexpected re-checks: {rechecks.scheduled}")
        runs.append({"s": elapsed, "bytes_read": outcome.BytesRead})
    return {
        "reps": reps,
        "median_s": statistics.median(r["s"] for r in runs),
        "bytes_read": runs[-1]["bytes_read"],
        "runs": runs,
    }


# -- the naive way ------------------------------------------------------------------------


def mem_available() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def naive_fits(size: int) -> bool:
    # The bytes, plus headroom for the SDK's buffers while it assembles them.
    return size <= NAIVE_RAM_BUDGET and 2 * size < mem_available()


def naive_in_memory(client: BlobClient, reps: int) -> dict[str, Any]:
    runs = []
    for _ in range(reps):
        wire = 0

        def count(response: Any) -> None:
            nonlocal wire
            if response.http_request.method == "GET":
                wire += int(response.http_response.headers.get("Content-Length", 0))

        started = time.perf_counter()
        data = client.download_blob(raw_response_hook=count).readall()
        downloaded = time.perf_counter()
        validate_and_probe(BytesReader(data))
        done = time.perf_counter()
        runs.append(
            {
                "s": done - started,
                "download_s": downloaded - started,
                "validate_probe_s": done - downloaded,
                "bytes_read": len(data),
                "wire_bytes": wire,
            }
        )
        del data
    return {
        "mode": "in_memory",
        "reps": reps,
        "median_s": statistics.median(r["s"] for r in runs),
        "median_download_s": statistics.median(r["download_s"] for r in runs),
        "median_validate_probe_s": statistics.median(r["validate_probe_s"] for r in runs),
        "bytes_read": runs[-1]["bytes_read"],
        "wire_bytes": runs[-1]["wire_bytes"],
        "runs": runs,
    }


def naive_stream(client: BlobClient, size: int, cap_s: float) -> dict[str, Any]:
    """The SDK's streaming whole-blob read, chunks discarded, for at most `cap_s` seconds.

    For a page blob the SDK asks Get Page Ranges first and zero-fills the chunks
    that hold no page locally, so `wire_bytes` (GET bodies) can be far below
    the bytes it yields.
    """
    wire = 0

    def count(response: Any) -> None:
        nonlocal wire
        if response.http_request.method == "GET":
            wire += int(response.http_response.headers.get("Content-Length", 0))

    streamed = 0
    started = time.perf_counter()
    for chunk in client.download_blob(raw_response_hook=count).chunks():
        streamed += len(chunk)
        if time.perf_counter() - started >= cap_s:
            break
    elapsed = time.perf_counter() - started
    return _stream_result("sdk_stream", cap_s, size, streamed, wire, elapsed)


def dense_stream(client: BlobClient, size: int, cap_s: float) -> dict[str, Any]:
    """Every byte over HTTP: sequential 4 MiB ranged GETs, discarded, for at most `cap_s` s."""
    streamed = 0
    started = time.perf_counter()
    while streamed < size and time.perf_counter() - started < cap_s:
        length = min(DENSE_CHUNK, size - streamed)
        streamed += len(
            client.download_blob(offset=streamed, length=length, max_concurrency=1).readall()
        )
    elapsed = time.perf_counter() - started
    return _stream_result("dense_ranged_gets", cap_s, size, streamed, streamed, elapsed)


def _stream_result(
    mode: str, cap_s: float, size: int, streamed: int, wire: int, elapsed: float
) -> dict[str, Any]:
    rate = streamed / elapsed if elapsed > 0 else 0.0
    return {
        "mode": mode,
        "cap_s": cap_s,
        "bytes_streamed": streamed,
        "wire_bytes": wire,
        "s": elapsed,
        "complete": streamed >= size,
        "bytes_per_s": rate,
        "extrapolated_full_s": size / rate if rate else None,
    }


# -- end to end ---------------------------------------------------------------------------


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def drop_and_wait(
    storage: StorageAccount,
    session: requests.Session,
    base_url: str,
    disk: Path,
    name: str,
    declare_complete: bool,
    timeout: float = 60,
) -> dict[str, Any]:
    client = storage.blobs.get_blob_client(storage.settings.uploads_container, name)
    started = time.perf_counter()
    upload_page_blob(client, disk)
    if declare_complete:
        # Said when the upload is done (not at creation, when no page is written yet).
        client.set_blob_metadata({"uploadstate": "complete"})
    uploaded = time.perf_counter()
    polls = 0
    while True:
        r = session.get(f"{base_url}/api/uploads/{name}", timeout=10)
        now = time.perf_counter()
        polls += 1
        if r.status_code == 200:
            status = r.json()["Status"]
            if status == UploadStatus.REGISTERED:
                break
            if status == UploadStatus.REJECTED:
                raise RuntimeError(f"{name} was rejected: {r.text}")
        if now - uploaded > timeout:
            raise RuntimeError(f"{name} not registered {timeout}s after upload: {r.text}")
        time.sleep(POLL_SECONDS)
    return {"upload_s": uploaded - started, "latency_s": now - uploaded, "polls": polls}


def end_to_end(conn: str, storage: StorageAccount, disk: Path, drops: int, tmp: Path) -> dict:
    extra_env = {
        "UPLOAD_SETTLE_SECONDS": LOCAL_DEFAULTS["UPLOAD_SETTLE_SECONDS"],
        "AzureFunctionsWebHost__hostid": f"uploads-bench-{uuid.uuid4().hex[:8]}",
    }
    result: dict[str, Any] = {"settle_seconds": extra_env["UPLOAD_SETTLE_SECONDS"]}
    with open(tmp / "host.log", "wb") as host_log:
        app = AppHost(conn, keys_file=tmp / "keys.json", stdout=host_log, extra_env=extra_env)
        started = time.perf_counter()
        app.start(wait_path="/api/health")
        result["app_start_s"] = time.perf_counter() - started
        try:
            with requests.Session() as session:
                drop = lambda name, complete: drop_and_wait(  # noqa: E731
                    storage, session, app.base_url, disk, name, complete
                )
                # The first drop warms the worker (imports, clients); reported apart.
                result["warmup"] = drop(f"warmup-{uuid.uuid4().hex[:8]}.vhd", False)
                for label, complete in (("settle", False), ("uploadstate_complete", True)):
                    log(f"  end to end, {label}: {drops} drops ...")
                    runs = [
                        drop(f"e2e-{label}-{i:02d}-{uuid.uuid4().hex[:6]}.vhd", complete)
                        for i in range(drops)
                    ]
                    latencies = [r["latency_s"] for r in runs]
                    result[label] = {
                        "n": len(runs),
                        "p50_s": statistics.median(latencies),
                        "p90_s": nearest_rank(latencies, 0.9),
                        "max_s": max(latencies),
                        "median_upload_s": statistics.median(r["upload_s"] for r in runs),
                        "runs": runs,
                    }
        finally:
            app.stop()
    return result


# -- report -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return machine_info()


def human_bytes(n: float) -> str:
    for unit, scale in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def human_seconds(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    if s >= 1:
        return f"{s:.2f} s"
    return f"{s * 1000:.1f} ms"


def in_memory_cell(n: dict[str, Any]) -> str:
    if n["mode"] == "in_memory":
        return (
            f"{human_bytes(n['bytes_read'])} into memory in {human_seconds(n['median_s'])} "
            f"(download {human_seconds(n['median_download_s'])} + validate+probe "
            f"{human_seconds(n['median_validate_probe_s'])}); "
            f"{human_bytes(n['wire_bytes'])} over HTTP"
        )
    return f"not run: would download {n['size_gib']:g} GiB into memory"


def stream_cell(s: dict[str, Any] | None, size: int, rate: float | None) -> str:
    if s is None:
        if not rate:
            return "not run"
        return f"not run; ≈ {human_seconds(size / rate)} at the 16 GiB rate (extrapolated)"
    done = "all" if s["complete"] else f"{human_bytes(s['bytes_streamed'])} (capped)"
    text = (
        f"{done} in {human_seconds(s['s'])} = {s['bytes_per_s'] / MIB:,.0f} MiB/s; "
        f"{human_bytes(s['wire_bytes'])} over HTTP"
    )
    if not s["complete"]:
        text += f"; whole blob ≈ {human_seconds(s['extrapolated_full_s'])} (extrapolated)"
    return text


def markdown(result: dict[str, Any]) -> str:
    m, e2e, sizes = result["machine"], result["end_to_end"], result["sizes"]
    lines = [
        f"Command: `{result['command']}` (total {human_seconds(result['total_s'])})",
        "",
        f"Machine: {m['cpu_count']} CPUs ({m['cpu_model'] or 'unknown model'}), "
        f"{m['mem_total_gib']} GiB RAM, Python {m['python']}, Azurite {m['azurite']} "
        f"(in memory), {m['platform']}",
        "",
        f"Disks: fixed VHDs, MBR + ext4 with Ubuntu 22.04 in the first 64 MiB, the rest a "
        f"hole, uploaded as sparse page blobs (zero chunks skipped). Median of "
        f"{result['reps']} runs.",
        "",
        "The catalog's way (ranged reads through `BlobRangeReader`):",
        "",
        "| Disk | Blob size | Ranged reads | Bytes read | `validate_vhd` + `probe_disk` "
        "| `examine_upload` (full registration into fresh tables) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in sizes:
        c, reg = r["catalog"], r["examine_upload"]
        lines.append(
            f"| {r['label']} | {r['blob_bytes']:,} B | {c['reads']} | "
            f"{c['bytes_read']:,} B ({human_bytes(c['bytes_read'])}) | "
            f"{human_seconds(c['median_s'])} | {human_seconds(reg['median_s'])} "
            f"({reg['bytes_read']:,} B read) |"
        )
    dense_rate = next(
        (r["naive"]["dense_stream"]["bytes_per_s"] for r in sizes if r["label"] == "16 GiB"),
        None,
    )
    sdk_rate = next(
        (r["naive"]["sdk_stream"]["bytes_per_s"] for r in sizes if r["label"] == "16 GiB"),
        None,
    )
    lines += [
        "",
        "The naive way (what `func.InputStream` does: the whole blob, then validate+probe "
        f"in memory with `BytesReader`; memory budget {NAIVE_RAM_BUDGET // GIB} GiB), and "
        f"whole-blob streaming reads with chunks discarded, each capped at "
        f"{result['stream_cap_s']:g} s:",
        "",
        "| Disk | Whole blob into memory + validate+probe | SDK stream "
        "(`download_blob().chunks()`; zero-fills unwritten pages locally after Get Page "
        "Ranges) | Every byte over HTTP (sequential 4 MiB ranged GETs) |",
        "|---|---|---|---|",
    ]
    for r in sizes:
        n = r["naive"]
        lines.append(
            f"| {r['label']} | {in_memory_cell(n)} | "
            f"{stream_cell(n.get('sdk_stream'), r['blob_bytes'], sdk_rate)} | "
            f"{stream_cell(n.get('dense_stream'), r['blob_bytes'], dense_rate)} |"
        )
    lines += [
        "",
        "Bytes the catalog reads vs the blob's size: "
        + ", ".join(
            f"{r['label']} 1 : {r['blob_bytes'] / r['catalog']['bytes_read']:,.0f}" for r in sizes
        )
        + ". The Python worker's InputStream holds at most ~2 GB, so the naive way cannot "
        "register the 16 GiB or 1 TiB disk at all.",
        "",
        f"End to end through the local runner (product app, UPLOAD_SETTLE_SECONDS="
        f"{e2e['settle_seconds']}, runner defaults: blob scan every "
        f"{os.environ.get('FUNCRUNNER_BLOB_SCAN_SECONDS', '1')} s, queue maxPollingInterval "
        f"{e2e['max_polling_interval']}): the 64 MiB disk uploaded "
        f"{e2e['settle']['n']} times under new names; time from the end of the upload to "
        f"the first `GET /api/uploads/{{name}}` saying `Registered` (polled every "
        f"{POLL_SECONDS * 1000:.0f} ms):",
        "",
        "| Pass | n | p50 | p90 | max | upload itself (median) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in (
        ("settle", "settle window (no metadata)"),
        ("uploadstate_complete", "`uploadstate=complete` set when the upload is done"),
    ):
        p = e2e[key]
        lines.append(
            f"| {label} | {p['n']} | {human_seconds(p['p50_s'])} | {human_seconds(p['p90_s'])} "
            f"| {human_seconds(p['max_s'])} | {human_seconds(p['median_upload_s'])} |"
        )
    lines += [
        "",
        f"First drop after the app started (warm-up, not in the table): "
        f"{human_seconds(e2e['warmup']['latency_s'])}; app start to /api/health: "
        f"{human_seconds(e2e['app_start_s'])}.",
    ]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------


def timed(what: str, fn: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    value = fn()
    log(f"  {what}: {time.perf_counter() - started:.2f} s")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--drops", type=int, default=20)
    parser.add_argument("--stream-cap", type=float, default=60.0, help="seconds")
    args = parser.parse_args(argv)
    command = ".venv/bin/python -m bench.uploads" + (
        " " + " ".join(argv if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:])
        else ""
    )

    begun = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="uploads-bench-") as tmp_text:
        tmp = Path(tmp_text)
        log("Building disks ...")
        disks = timed("disks", lambda: build_disks(tmp))
        log("Starting Azurite on 127.0.0.1 ...")
        with Azurite(log_file=tmp / "azurite.log") as azurite:
            conn = azurite.connection_string
            storage = StorageAccount.from_env(
                {**settings_with_defaults(), "AzureWebJobsStorage": conn}
            )
            ensure_resources(storage)
            container = storage.blobs.get_container_client("bench")
            container.create_container()

            sizes = []
            for label, size in SIZES:
                log(f"{label}:")
                client = container.get_blob_client(f"linux-{label.replace(' ', '')}.vhd")
                sent = timed(
                    "upload",
                    lambda c=client, p=disks[label]: upload_page_blob(
                        c, p, {"uploadstate": "complete"}
                    ),
                )
                blob_bytes = client.get_blob_properties().size
                catalog = timed("catalog way", lambda c=client: catalog_way(c, args.reps))
                reg = timed("examine_upload", lambda c=client: registration(storage, c, args.reps))
                naive: dict[str, Any]
                if naive_fits(blob_bytes):
                    naive = timed("naive", lambda c=client: naive_in_memory(c, args.reps))
                else:
                    naive = {"mode": "not_run", "size_gib": round(blob_bytes / GIB, 3)}
                    naive["reason"] = (
                        f"would download {blob_bytes / GIB:g} GiB into memory "
                        f"(budget {NAIVE_RAM_BUDGET / GIB:g} GiB; the Python worker's "
                        "InputStream cannot hold more than ~2 GB anyway)"
                    )
                naive["size_gib"] = round(blob_bytes / GIB, 3)
                if size <= 16 * GIB:
                    naive["sdk_stream"] = timed(
                        "SDK stream",
                        lambda c=client, b=blob_bytes: naive_stream(c, b, args.stream_cap),
                    )
                    naive["dense_stream"] = timed(
                        "dense stream",
                        lambda c=client, b=blob_bytes: dense_stream(c, b, args.stream_cap),
                    )
                sizes.append(
                    {
                        "label": label,
                        "virtual_size": size,
                        "blob_bytes": blob_bytes,
                        "uploaded_bytes": sent,
                        "catalog": catalog,
                        "examine_upload": reg,
                        "naive": naive,
                    }
                )

            log("End to end through the local runner ...")
            e2e = end_to_end(conn, storage, disks["64 MiB"], args.drops, tmp)
            host_json = json.loads((ROOT / "host.json").read_text())
            e2e["max_polling_interval"] = (
                host_json.get("extensions", {}).get("queues", {}).get("maxPollingInterval", "?")
            )

    result = {
        "benchmark": "uploads",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "total_s": time.perf_counter() - begun,
        "machine": machine(),
        "reps": args.reps,
        "stream_cap_s": args.stream_cap,
        "sizes": sizes,
        "end_to_end": e2e,
    }
    write_results(RESULTS, result)
    print(markdown(result))
    print(f"\n(JSON in {RESULTS.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
