"""Classic List OS Images / List VM Images at scale: made a page at a time vs all at once.

`python -m bench.classic_lists [--sizes 1000,10000,100000]` starts a private
Azurite and the product's app, grows ONE images table through the sizes with
bench/catalog.py's loader, and per size measures List OS Images plus List VM
Images (every image, as classic clients always ask) three ways:

- the product, in process: `iter_images_of_kind` (a page of 1000 rows at a
  time) through `images_xml_chunks` (an element at a time), joined into the
  body, as the function does;
- the old way, in process: every image read into a list first, then one
  ElementTree document of them all, serialized at the end;
- end to end: `GET /{subscription}/services/images` and `.../vmimages` through
  the running app over HTTP with the host key (time to first byte of the
  answer and total), and the app's resident memory afterwards.

Time to first byte in process is when the first piece of the body exists; peak
memory is tracemalloc's peak over a separate run of each way (Python
allocations only: the table client's buffers included, the process baseline
not). Results go to bench/results/classic_lists.json and a Markdown table.
"""

from __future__ import annotations

import argparse
import gc
import os
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
from azure.data.tables import TableServiceClient

from bench.catalog import CatalogModel, Loader, grow, rss_mib
from bench.common import log, machine_info, write_results
from devtools.apphost import AppHost
from devtools.azurite import Azurite
from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.storage import StorageAccount, ensure_resources
from shared.domain.images import ImageKind
from shared.services.classic import images as os_images
from shared.services.classic import vm_images
from shared.services.classic.xmldoc import document, joined, q
from shared.settings import DEFAULTS

RESULTS = Path(__file__).resolve().parent / "results" / "classic_lists.json"
SUB = DEFAULTS["CLASSIC_SUBSCRIPTION_ID"]


def streamed(catalog: ImageCatalog) -> Iterator[bytes]:
    """The product's way: both lists, a page and an element at a time."""
    yield from os_images.images_xml_chunks(os_images.iter_images_of_kind(catalog, ImageKind.OS))
    wanted = vm_images.VmImageFilter()
    yield from vm_images.vm_images_xml_chunks(vm_images.iter_vm_images(catalog, wanted))


def whole(catalog: ImageCatalog) -> Iterator[bytes]:
    """The old way: read every image, build one document of them all, then serialize."""
    for kind, root_name, element in (
        (ImageKind.OS, "Images", os_images._os_image),
        (ImageKind.VM, "VMImages", vm_images._vm_image),
    ):
        images = os_images.list_images_of_kind(catalog, kind)
        root = ET.Element(q(root_name))
        root.extend(element(i) for i in images)
        yield document(root)


def timed(make: Callable[[], Iterator[bytes]]) -> dict[str, Any]:
    started = time.perf_counter()
    chunks = make()
    first = next(chunks)
    ttfb = time.perf_counter() - started
    body = first + joined(chunks)
    total = time.perf_counter() - started
    return {"ttfb_s": round(ttfb, 3), "total_s": round(total, 3), "bytes": len(body)}


def peak_mib(make: Callable[[], Iterator[bytes]]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        body = joined(make())
        del body
        return round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    finally:
        tracemalloc.stop()


def over_http(base: str, key: str) -> dict[str, Any]:
    headers = {"x-functions-key": key, "x-ms-version": "2014-10-01"}
    started = time.perf_counter()
    ttfb, size = None, 0
    for path in ("services/images", "services/vmimages"):
        with requests.get(f"{base}/{SUB}/{path}", headers=headers, stream=True, timeout=600) as r:
            r.raise_for_status()
            for chunk in r.iter_content(65536):
                if ttfb is None:
                    ttfb = time.perf_counter() - started
                size += len(chunk)
    total = time.perf_counter() - started
    return {"ttfb_s": round(ttfb or total, 3), "total_s": round(total, 3), "bytes": size}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| images | way | first byte | total | images/s | peak memory (Python) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for row in result["sizes"]:
        n = row["images"]
        for way, label in (
            ("streamed", "page at a time (product, in process)"),
            ("whole", "all at once (old, in process)"),
            ("http", "product over HTTP (end to end)"),
        ):
            m = row[way]
            peak = (
                f"{m['peak_mib']} MiB" if "peak_mib" in m else f"app RSS {row['app_rss_mib']} MiB"
            )
            lines.append(
                f"| {n:,} | {label} | {m['ttfb_s']:.3f} s | {m['total_s']:.3f} s | "
                f"{n / m['total_s']:,.0f} | {peak} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--threads", type=int, default=4, help="loader threads")
    parser.add_argument("--load-budget", type=float, default=3600.0)
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
            catalog = ImageCatalog(
                TableServiceClient.from_connection_string(conn).get_table_client(table_name)
            )
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
                    log("  measuring ...")
                    row: dict[str, Any] = {"images": len(model.names), "load": load}
                    over_http(app.base_url, key)  # warm-up: imports, connections
                    row["streamed"] = timed(lambda: streamed(catalog))
                    row["whole"] = timed(lambda: whole(catalog))
                    row["http"] = over_http(app.base_url, key)
                    row["app_rss_mib"] = rss_mib(app.process.pid if app.process else None)
                    row["streamed"]["peak_mib"] = peak_mib(lambda: streamed(catalog))
                    row["whole"]["peak_mib"] = peak_mib(lambda: whole(catalog))
                    assert row["streamed"]["bytes"] > 0
                    rows.append(row)
                    log(f"  {row['streamed']} / {row['whole']} / {row['http']}")
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
