"""Classic List OS Images / List VM Images at scale: the product against a whole document.

`python -m bench.classic_lists [--sizes 1000,10000,100000]` starts a private
Azurite and the product's app, grows ONE images table through the sizes with
bench/catalog.py's loader, and per size lists every image (List OS Images plus
List VM Images, as classic clients always ask) these ways:

- **product, in process**: `list_os_images_body` / `list_vm_images_body`: the rows of
  one kind through ONE query (pages of 1000 following its continuation tokens), only
  the listed columns, written as text a few hundred images a piece, joined once;
- **naive, in process**: the whole table read (`list_entities`, a full scan) for each
  list, every image of the kind validated into an `Image`, one ElementTree document;
- **page at a time (before)**: a new query per page of 1000 (`ImageCatalog.page`),
  an `Image` and an element per image (sizes up to `--paged-upto` only: each page is
  a query that Azurite answers by scanning the whole table);
- **table read only**: the product's two queries, rows counted and dropped (what
  Azurite alone allows), with the time of each page of 1000;
- **serializer only**: the product's writer over rows already in memory (no storage);
- **end to end**: `GET /{subscription}/services/images` and `.../vmimages` through the
  running app over HTTP with the host key (time to first byte and total), and the
  app's peak resident memory so far (VmHWM): first just after the catalog's version
  changed (the lists are built from the table and kept as snapshots), then three times
  more from the snapshots (median reported) in a restarted app (its own VmHWM), as
  requests asks (gzip) and as a client without gzip would (identity).

Time to first byte in process is when the first piece holding an image exists;
peak memory is tracemalloc's peak over a separate run of each way (Python
allocations only, the table client's buffers included). Results go to
bench/results/classic_lists.json and a Markdown table.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests
from azure.data.tables import TableClient, TableServiceClient

from bench.catalog import CatalogModel, Loader, grow
from bench.common import log, machine_info, write_results
from devtools.apphost import AppHost
from devtools.azurite import Azurite
from shared.adapters.catalog_table import (
    IMAGE,
    IMAGE_ROW,
    LISTING,
    VERSION_ROW,
    ImageCatalog,
    from_entity,
)
from shared.adapters.storage import StorageAccount, ensure_resources
from shared.domain.images import ImageKind
from shared.services.classic import images as os_images
from shared.services.classic import listing, vm_images
from shared.services.classic.xmldoc import document, joined, q
from shared.settings import DEFAULTS

RESULTS = Path(__file__).resolve().parent / "results" / "classic_lists.json"
SUB = DEFAULTS["CLASSIC_SUBSCRIPTION_ID"]


def product(catalog: ImageCatalog) -> Iterator[bytes]:
    """The product's way: both lists, one query each, written as text."""
    yield from os_images.list_os_images_body(catalog)
    yield from vm_images.list_vm_images_body(catalog, vm_images.VmImageFilter())


KINDS = (
    (ImageKind.OS, "Images", os_images._os_image),
    (ImageKind.VM, "VMImages", vm_images._vm_image),
)


def naive(table: TableClient) -> Iterator[bytes]:
    """The naive way: per list, the whole table, every image of the kind, one document."""
    for kind, root_name, element in KINDS:
        images = [
            from_entity(e)
            for e in table.list_entities()
            if e["PartitionKey"].startswith(IMAGE)
            and e["RowKey"] == IMAGE_ROW
            and e.get("ImageType") == kind.value
        ]
        root = ET.Element(q(root_name))
        root.extend(element(i) for i in images)
        yield document(root)


def paged(catalog: ImageCatalog) -> Iterator[bytes]:
    """Before: a new query per page of 1000, an Image and an element per image."""
    yield from os_images.images_xml_chunks(os_images.iter_images_of_kind(catalog, ImageKind.OS))
    wanted = vm_images.VmImageFilter()
    yield from vm_images.vm_images_xml_chunks(vm_images.iter_vm_images(catalog, wanted))


def timed(make: Callable[[], Iterator[bytes]]) -> dict[str, Any]:
    """Time to the first piece holding an image (a document's head alone doesn't count)."""
    started = time.perf_counter()
    ttfb, size, pieces = None, 0, []
    for piece in make():
        pieces.append(piece)
        size += len(piece)
        if ttfb is None and (b"<OSImage>" in piece or b"<VMImage>" in piece):
            ttfb = time.perf_counter() - started
    body = b"".join(pieces)
    total = time.perf_counter() - started
    return {"ttfb_s": round(ttfb or total, 3), "total_s": round(total, 3), "bytes": len(body)}


def peak_mib(make: Callable[[], Iterator[bytes]], keep_body: bool = True) -> float:
    """tracemalloc's peak while the body is made (and joined, unless `keep_body` is False:
    then each piece is dropped, which leaves what the way holds besides the body)."""
    gc.collect()
    tracemalloc.start()
    try:
        if keep_body:
            body = joined(make())
            del body
        else:
            for _ in make():
                pass
        return round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    finally:
        tracemalloc.stop()


def table_read(catalog: ImageCatalog) -> dict[str, Any]:
    """The product's two queries alone: rows counted, each page of 1000 timed."""
    pages: list[float] = []
    rows = 0
    started = time.perf_counter()
    for kind, columns in (
        (ImageKind.OS, listing.OS_IMAGE_COLUMNS),
        (ImageKind.VM, listing.VM_IMAGE_COLUMNS),
    ):
        query = catalog.select_images({"ImageType": kind.value}, columns)
        t = time.perf_counter()
        for page in query.by_page():  # type: ignore[attr-defined]
            rows += sum(1 for _ in page)
            now = time.perf_counter()
            pages.append(now - t)
            t = now
    total = time.perf_counter() - started
    ms = sorted(p * 1000 for p in pages)
    return {
        "rows": rows,
        "total_s": round(total, 3),
        "pages": len(pages),
        "page_ms_first": round(pages[0] * 1000, 1) if pages else None,
        "page_ms_median": round(statistics.median(ms), 1) if ms else None,
        "page_ms_last": round(pages[-1] * 1000, 1) if pages else None,
    }


def serializer_only(catalog: ImageCatalog) -> dict[str, Any]:
    """The product's writer over the rows already read (no storage in the timing)."""
    os_rows = list(catalog.select_images({"ImageType": "OSImage"}, listing.OS_IMAGE_COLUMNS))
    vm_rows = list(catalog.select_images({"ImageType": "VMImage"}, listing.VM_IMAGE_COLUMNS))
    started = time.perf_counter()
    body = joined(listing.os_images_xml_rows(os_rows, from_entity, os_images._os_image))
    body += joined(listing.vm_images_xml_rows(vm_rows, from_entity, vm_images._vm_image))
    total = time.perf_counter() - started
    return {"images": len(os_rows) + len(vm_rows), "total_s": round(total, 3), "bytes": len(body)}


def over_http(base: str, key: str, accept: str = "gzip, deflate") -> dict[str, Any]:
    """Both lists as a client gets them: `accept` is its Accept-Encoding (requests sends
    "gzip, deflate"; "identity" for a client without gzip). The XML is decoded as it
    comes, as a client would; `wire_bytes` is what crossed the connection."""
    headers = {"x-functions-key": key, "x-ms-version": "2014-10-01", "Accept-Encoding": accept}
    started = time.perf_counter()
    ttfb, size, wire = None, 0, 0
    for path in ("services/images", "services/vmimages"):
        with requests.get(f"{base}/{SUB}/{path}", headers=headers, stream=True, timeout=900) as r:
            r.raise_for_status()
            for chunk in r.iter_content(65536):
                if ttfb is None:
                    ttfb = time.perf_counter() - started
                size += len(chunk)
            wire += r.raw.tell()
    total = time.perf_counter() - started
    return {
        "ttfb_s": round(ttfb or total, 3),
        "total_s": round(total, 3),
        "bytes": size,
        "wire_bytes": wire,
    }


def warm_up(base: str, key: str) -> None:
    """Imports and connections, without building a list: Get OS Image of a missing one."""
    headers = {"x-functions-key": key, "x-ms-version": "2014-10-01"}
    requests.get(f"{base}/{SUB}/services/images/no-such-image", headers=headers, timeout=60)


def new_version(table: TableClient) -> None:
    """What every commit does (`ImageCatalog.version`): kept lists are no longer current."""
    table.upsert_entity(
        {"PartitionKey": LISTING, "RowKey": VERSION_ROW, "Version": uuid.uuid4().hex}
    )


def peak_rss_mib(pid: int | None) -> float | None:
    """The process's peak resident memory so far (VmHWM)."""
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


WAYS = (
    ("product", "product: one query per list, text writer (in process)"),
    ("naive", "naive: full scan, whole ElementTree document (in process)"),
    ("paged", "before: a query per page of 1000, element writer (in process)"),
    ("http", "product end to end over HTTP, built (the catalog changed since the last list)"),
    ("http_snapshot", "product end to end over HTTP, from the snapshots, gzip (median of 3)"),
    ("http_snapshot_plain", "the same, a client without gzip (median of 3)"),
)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| images | way | first byte | total | images/s | peak memory |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for row in result["sizes"]:
        n = row["images"]
        for way, label in WAYS:
            m = row.get(way)
            if m is None:
                continue
            peak = (
                f"{m['peak_mib']} MiB (Python)"
                if "peak_mib" in m
                else f"app VmHWM {row['app_peak_rss_mib' + way[4:]]} MiB"
            )
            if m.get("wire_bytes") and m["wire_bytes"] != m["bytes"]:
                peak += f"; {m['wire_bytes'] / 1e6:,.1f} MB sent for {m['bytes'] / 1e6:,.1f} MB"
            if "peak_without_body_mib" in m:
                peak += f"; {m['peak_without_body_mib']} MiB without the body"
            lines.append(
                f"| {n:,} | {label} | {m['ttfb_s']:.3f} s | {m['total_s']:.3f} s | "
                f"{n / m['total_s']:,.0f} | {peak} |"
            )
        t, w = row["table_read"], row["serializer"]
        lines.append(
            f"| {n:,} | table read only (the product's queries, rows dropped) | | "
            f"{t['total_s']:.3f} s | {t['rows'] / t['total_s']:,.0f} | |"
        )
        lines.append(
            f"| {n:,} | serializer only (rows in memory, no storage) | | "
            f"{w['total_s']:.3f} s | {w['images'] / w['total_s']:,.0f} | |"
        )
    lines += [
        "",
        "| images | pages | first page | median page | last page |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in result["sizes"]:
        t = row["table_read"]
        lines.append(
            f"| {row['images']:,} | {t['pages']} | {t['page_ms_first']} ms | "
            f"{t['page_ms_median']} ms | {t['page_ms_last']} ms |"
        )
    return "\n".join(lines)


def measure(
    n: int, catalog: ImageCatalog, table: TableClient, app: AppHost, key: str, with_paged: bool
) -> dict[str, Any]:
    row: dict[str, Any] = {"images": n}
    warm_up(app.base_url, key)
    new_version(table)  # the loader writes rows directly: what snapshots there are are stale
    row["product"] = timed(lambda: product(catalog))
    log(f"  product {row['product']}")
    row["table_read"] = table_read(catalog)
    log(f"  table read {row['table_read']}")
    row["serializer"] = serializer_only(catalog)
    log(f"  serializer {row['serializer']}")
    new_version(table)
    row["http"] = over_http(app.base_url, key)  # built (and kept as the snapshots)
    row["app_peak_rss_mib"] = peak_rss_mib(app.process.pid if app.process else None)
    log(f"  http {row['http']} app VmHWM {row['app_peak_rss_mib']} MiB")
    for way, accept in (("http_snapshot", "gzip, deflate"), ("http_snapshot_plain", "identity")):
        app.stop()  # a new process, so that its VmHWM is this way's alone
        app.start(wait_path="/api/health")
        warm_up(app.base_url, key)
        served = [over_http(app.base_url, key, accept) for _ in range(3)]  # from the snapshots
        row[way] = sorted(served, key=lambda m: m["total_s"])[1]
        row["app_peak_rss_mib" + way[4:]] = peak_rss_mib(app.process.pid if app.process else None)
        log(f"  {way} {served} app VmHWM {row['app_peak_rss_mib' + way[4:]]} MiB")
        assert all(m["bytes"] == row["http"]["bytes"] for m in served)
    row["naive"] = timed(lambda: naive(table))
    log(f"  naive {row['naive']}")
    if with_paged:
        row["paged"] = timed(lambda: paged(catalog))
        log(f"  paged {row['paged']}")
    assert row["product"]["bytes"] == row["naive"]["bytes"] == row["http"]["bytes"]
    row["product"]["peak_mib"] = peak_mib(lambda: product(catalog))
    row["product"]["peak_without_body_mib"] = peak_mib(lambda: product(catalog), False)
    row["naive"]["peak_mib"] = peak_mib(lambda: naive(table))
    if with_paged:
        row["paged"]["peak_mib"] = peak_mib(lambda: paged(catalog))
    log(
        f"  peaks product {row['product']['peak_mib']} "
        f"(without the body {row['product']['peak_without_body_mib']}) "
        f"naive {row['naive']['peak_mib']} MiB"
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--threads", type=int, default=4, help="loader threads")
    parser.add_argument("--load-budget", type=float, default=3600.0)
    parser.add_argument("--paged-upto", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=20261)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    os.environ.setdefault("NODE_OPTIONS", "--max-old-space-size=8192")
    model = CatalogModel(seed=args.seed)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="classic-bench-") as tmp_text:
        tmp = Path(tmp_text)
        with Azurite(log_file=tmp / "azurite.log") as azurite, open(tmp / "host.log", "wb") as hl:
            conn = azurite.connection_string
            storage = StorageAccount.from_env({"AzureWebJobsStorage": conn})
            ensure_resources(storage)
            table_name = storage.settings.images_table
            table = TableServiceClient.from_connection_string(conn).get_table_client(table_name)
            catalog = ImageCatalog(table)
            app = AppHost(
                conn,
                keys_file=tmp / "keys.json",
                stdout=hl,
                extra_env={"AzureFunctionsWebHost__hostid": f"classic-{uuid.uuid4().hex[:8]}"},
            )
            app.start(wait_path="/api/health")
            key = str(app.keys()["hostKeys"]["default"])  # type: ignore[index]
            loader = Loader(conn, table_name, args.threads)
            spent = 0.0
            try:
                for target in sizes:
                    log(f"Growing the catalog to {target} images ...")
                    load = grow(model, loader, target, args.load_budget - spent)
                    spent += load["write_s"]
                    n = len(model.names)
                    log(f"  measuring at {n} images ({model.rows} table rows) ...")
                    row = measure(n, catalog, table, app, key, n <= args.paged_upto)
                    row["table_rows"] = model.rows
                    row["load"] = {k: v for k, v in load.items() if k != "chunks"}
                    rows.append(row)
                    if load.get("stopped_by_budget"):
                        log("  the load budget is spent: stopping here")
                        break
            finally:
                loader.close()
                app.stop()
    result = {
        "command": " ".join(["python -m bench.classic_lists", *(argv or sys.argv[1:])]),
        "machine": machine_info(),
        "sizes": rows,
    }
    write_results(RESULTS, result)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
