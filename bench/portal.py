"""The portal at 100k images: time to a usable page and bytes sent, against a page that
loads the full list.

`python -m bench.portal [--size 100000] [--runs 5]` starts a private Azurite and the app,
grows the catalog with the catalog bench's loader (`bench.catalog`: the rows the catalog
writes, 10k images at a time), then opens pages in Debian's Chromium (Playwright, the
tests' flags) on 127.0.0.1:

- the portal's **All images** page (`/#/images`: 25 images, one request of the API) and a
  **family page** (`/#/images?family=<the largest family>`, newest first), each in a fresh
  browser context (nothing cached) and again in the same context (assets cached, index.html
  revalidated with its ETag);
- the naive way: a page at the same origin that fetches the whole list
  (`/api/images?top=1000`, following every continuation token), then shows the same 25
  rows (the family's newest first for the family page).

"Usable" is when the table's rows are in the page, read in the page as `performance.now()`
(milliseconds since the navigation started) once 25 rows exist. Bytes are what crossed the
wire: response headers and bodies as Chromium counts them (`request.sizes()`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from bench.catalog import CatalogModel, Loader, grow
from bench.common import log, machine_info, write_results
from devtools.apphost import AppHost
from devtools.azurite import ROOT, Azurite
from shared.adapters.storage import StorageAccount, ensure_resources

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
ROWS = 25

# The naive page: every image, then the same first rows (served at the app's origin by
# Playwright, so that its requests are same-origin like the portal's).
NAIVE = """<!doctype html><meta charset="utf-8"><title>naive</title><table><tbody></tbody></table>
<script type="module">
const family = new URLSearchParams(location.search).get("family");
let all = [], token = null;
do {
  const q = new URLSearchParams({ top: "1000" });
  if (token) q.set("continuationToken", token);
  const page = await (await fetch(`/api/images?${q}`)).json();
  all = all.concat(page.Images);
  token = page.ContinuationToken;
} while (token);
let shown = family ? all.filter((i) => i.ImageFamily === family) : all;
if (family) shown.sort((a, b) => b.PublishedDate.localeCompare(a.PublishedDate));
const body = document.querySelector("tbody");
for (const i of shown.slice(0, ROWS)) {
  const tr = body.insertRow();
  for (const v of [i.ImageName, i.Label, i.ImageFamily, i.OS, i.PublishedDate]) {
    tr.insertCell().textContent = v;
  }
}
document.title = `naive: ${all.length} images`;
</script>""".replace("ROWS", str(ROWS))


def open_page(context: BrowserContext, url: str, timeout_s: float) -> tuple[float, int, int, float]:
    """(ms to usable, bytes over the wire, requests, wall seconds) for one navigation."""
    page: Page = context.new_page()
    sizes: list[int] = []

    def finished(request: Any) -> None:
        s = request.sizes()
        sizes.append(s["responseBodySize"] + s["responseHeadersSize"])

    page.on("requestfinished", finished)
    started = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
    page.locator("tbody tr").nth(ROWS - 1).wait_for(timeout=timeout_s * 1000)
    usable_ms = page.evaluate("performance.now()")
    wall = time.perf_counter() - started
    page.wait_for_load_state("networkidle", timeout=timeout_s * 1000)
    page.close()
    return usable_ms, sum(sizes), len(sizes), wall


def measure(
    browser: Browser, base: str, path: str, runs: int, naive: bool, timeout_s: float
) -> dict[str, Any]:
    cold: list[tuple[float, int, int, float]] = []
    warm: list[tuple[float, int, int, float]] = []
    for _ in range(runs):
        context = browser.new_context(base_url=base)
        if naive:
            context.route(
                "**/naive.html*", lambda r: r.fulfill(body=NAIVE, content_type="text/html")
            )
        cold.append(open_page(context, path, timeout_s))
        if not naive:
            warm.append(open_page(context, path, timeout_s))
        context.close()

    def stats(xs: list[tuple[float, int, int, float]]) -> dict[str, Any]:
        return {
            "usable_ms_median": round(statistics.median(x[0] for x in xs), 1),
            "usable_ms_all": [round(x[0], 1) for x in xs],
            "bytes_median": int(statistics.median(x[1] for x in xs)),
            "requests": xs[0][2],
        }

    out = {"cold": stats(cold)}
    if warm:
        out["warm"] = stats(warm)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="images in the catalog")
    parser.add_argument("--runs", type=int, default=5, help="page loads per way")
    parser.add_argument("--naive-runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="loader threads")
    parser.add_argument("--load-budget", type=float, default=1800.0, help="seconds of writing")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per page load")
    parser.add_argument("--seed", type=int, default=20261)
    args = parser.parse_args(argv)
    command = " ".join(["python -m bench.portal", *(sys.argv[1:] if argv is None else argv)])
    model = CatalogModel(seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as tmp_text:
        tmp = Path(tmp_text)
        with (
            Azurite(log_file=tmp / "azurite.log") as azurite,
            open(tmp / "host.log", "wb") as host_log,
        ):
            conn = azurite.connection_string
            storage = StorageAccount.from_env({"AzureWebJobsStorage": conn})
            ensure_resources(storage)
            loader = Loader(conn, storage.settings.images_table, args.threads)
            try:
                log(f"Growing the catalog to {args.size} images ...")
                load = grow(model, loader, args.size, args.load_budget)
            finally:
                loader.close()
            app = AppHost(
                conn,
                keys_file=tmp / "keys.json",
                stdout=host_log,
                extra_env={"AzureFunctionsWebHost__hostid": f"portal-bench-{uuid.uuid4().hex[:8]}"},
            )
            app.start(wait_path="/api/health")
            family = max(model.summaries.values(), key=lambda s: s.count).family
            family_q = quote(family)
            results: dict[str, Any] = {}
            try:
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
                    for name, path, naive in [
                        ("catalog page", "/#/images", False),
                        ("family page", f"/#/images?family={family_q}", False),
                        ("catalog page, naive", "/naive.html", True),
                        ("family page, naive", f"/naive.html?family={family_q}", True),
                    ]:
                        log(f"  {name} ...")
                        runs = args.naive_runs if naive else args.runs
                        results[name] = measure(
                            browser, app.base_url, path, runs, naive, args.timeout
                        )
                        log(f"    {results[name]}")
                    browser.close()
            finally:
                app.stop()
    result = {
        "benchmark": "portal",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": machine_info(),
        "images": model.size,
        "families": len(model.summaries),
        "family": family,
        "family_images": max(s.count for s in model.summaries.values()),
        "load": {k: v for k, v in load.items() if k != "chunks"},
        "results": results,
    }
    write_results(ROOT / "bench" / "results" / "portal.json", result)
    print(markdown(result))
    return 0


def markdown(r: dict[str, Any]) -> str:
    res = r["results"]
    lines = [
        f"{r['images']:,} images, {r['families']:,} families; family page: "
        f"{r['family']} ({r['family_images']} images).",
        "",
        "| page | way | usable (median) | bytes | requests |",
        "|---|---|---:|---:|---:|",
    ]
    for name in ("catalog page", "family page"):
        for label, doc in [
            ("portal, cold cache", res[name]["cold"]),
            ("portal, cached assets", res[name]["warm"]),
            ("naive: the full list", res[f"{name}, naive"]["cold"]),
        ]:
            lines.append(
                f"| {name} | {label} | {doc['usable_ms_median']:,.0f} ms | "
                f"{doc['bytes_median']:,} | {doc['requests']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
