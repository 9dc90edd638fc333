"""How the catalog's reads scale with its size in Azurite, against reading the whole table.

`python -m bench.catalog [--sizes 1000,10000,100000]` starts a private Azurite
on 127.0.0.1 and the product's function app under the local runner
(`AppHost`), then grows ONE images table through the sizes (load the first
size, measure, add up to the next, measure, ...). Per size it measures five
reads:

1. get by name                `GET /api/images/{name}`            (random existing names)
2. newest of a family         `GET /api/families/{family}/latest` (random families)
3. the families list          `GET /api/families`
4. one family, first page     `GET /api/images?family=X&top=100`  (random families)
5. the first page of all      `GET /api/images?top=100`

three ways:

- through the running app over HTTP (one keep-alive `requests.Session`,
  sequential, after a warm-up), up to `--requests` per query; a slow query
  stops after `--budget` seconds, but never before `--min-requests`;
- in-process: the same service calls (`shared.services.catalog`, hence
  `ImageCatalog`) on a `TableClient` in this process: no runner, no HTTP, no
  JSON encoding, so the difference is what those add. HTTP and in-process
  calls alternate (same targets), so both see the same load on the machine;
- naively: `table.list_entities()` (every row of the table) and the answer
  computed in Python. The scan is the same for all five queries, so each
  repetition scans once (timed) and then computes each answer (timed); a
  query's naive time is scan + its own computation. The first scan also
  serves to check the app's answers against the naive ones.

Two extra readings explain the results: a control point read (`get_entity`
of an image row in a separate table of 100 image rows, so Azurite's
per-request cost without the catalog's rows), and the first page of all sent
raw - the query `ImageCatalog.page(None, {}, 100, None)` sends, a range of
image partitions - with `results_per_page=1000` and `101` (what the catalog
asks for: top + 1).

Loading: `ImageCatalog.add` marks the family summary, creates the image row,
writes the copy and settles the summary (several requests per image), far too
slow for 100k images. The bench builds the rows the catalog would have written -
`image_entity(image, rev)` (partition `image|<name>`), `copy_entity(image, rev)`
(partition `family|<family>`), and one `FamilySummary` row per family touched
(partition `families`) folded with the catalog's own rule, no change pending -
and writes them 10k images at a time from a pool of threads. An entity-group
transaction may only hold rows of one partition (up to 100), and every image
row is a partition of its own, so image rows go one `create_entity` each; the
copies go in `submit_transaction` batches of up to 100 per family partition;
the summaries are upserted in batches after the rows they count.

Why the layout matters here: Azurite (LokiJS) finds a {PartitionKey, RowKey}
through its PartitionKey index and then compares the RowKeys of that partition
one by one, so the size of the partition, not of the table, drives the cost of
a point read and of an insert. The catalog once kept every row in one
partition, so each insert and each get by name cost more as the table grew
and loading slowed to a crawl long before 100k images. Now an image partition
holds one row and a family partition only that family's copies (~80 per family
at 100k images), so neither cost should follow the table's size; one request
per image row is the price of that. `--load-budget` still caps the seconds of
writing over all sizes: should it run out, the last size is measured where the
load got to (and get/latest projected to the target along a straight line,
labelled so).

Data: the 205 gallery images (shared/data/gallery.json) and clones of them:
cloned families are named `<Org> <gallery family> r<k>`, ~100 families at 1k
images growing as 100*(n/1000)^0.55 (355 at 10k, ~1,260 at 100k); each image
is a gallery image of the family's source, renamed and re-dated (newer images
later), with its own disks, in a mix of Public/Community/User, Windows/Linux,
OS/VM images; User images carry no marketplace links (rows of ~1.2-3 KB).

Azurite runs in memory by default: its Loki store holds every row in Node's
heap either way, and with `--azurite disk` it also rewrites the whole table
file every 5 s while the table changes, which slows the load further.

Prints a Markdown report and writes bench/results/catalog.json.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from azure.core.exceptions import (
    ResourceExistsError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import (
    TableClient,
    TableServiceClient,
    TableTransactionError,
    UpdateMode,
)

from bench.common import log, machine_info, summary_ms, write_results
from devtools.apphost import AppHost
from devtools.azurite import ROOT, Azurite
from shared.adapters.catalog_table import (
    FAMILIES,
    FAMILY,
    IMAGE,
    IMAGE_RANGE,
    IMAGE_ROW,
    FamilySummary,
    ImageCatalog,
    _rev,
    _with,
    copy_entity,
    family_key,
    from_entity,
    image_entity,
    image_partition,
)
from shared.adapters.storage import StorageAccount, ensure_resources
from shared.domain.images import Image, ImageCategory, ImageSource
from shared.services import catalog as service
from shared.services.gallery import GALLERY

RESULTS = ROOT / "bench" / "results" / "catalog.json"
DEFAULT_SIZES = "1000,10000,100000"
BATCH = 100  # the most operations one entity-group transaction (one partition) may hold
WRITE_TRIES = 5
CHUNK_IMAGES = 10_000  # write (and check the load budget) this many images at a time
CONTROL_TABLE = "benchcontrol"
CONTROL_ROWS = 100
TOP = 100
QUERIES = {
    "get": ("Get by name", "GET /api/images/{name}"),
    "latest": ("Newest of a family", "GET /api/families/{family}/latest"),
    "families": ("The families list", "GET /api/families"),
    "family": ("One family, first page", "GET /api/images?family=X&top=100"),
    "all": ("First page of all", "GET /api/images?top=100"),
}
ORGS = ["Contoso", "Fabrikam", "Northwind", "Tailspin", "Woodgrove", "Litware", "Proseware"]
USER_DROPS = ("Eula", "IconUri", "SmallIconUri", "PrivacyUri", "PricingDetailLink")
REGIONS = ["West Europe", "North Europe", "East US", "East US 2", "West US", "Southeast Asia"]
CLONE_EPOCH = datetime(2016, 1, 1, tzinfo=UTC)
GROWTH_TARGET = 1.5  # get/latest p50 may grow at most this much from 10k to 100k
NAIVE_TARGET = 20.0  # every query at least this many times faster than the naive way


def family_target(n_images: int) -> int:
    """~100 families at 1k images, ~355 at 10k, ~1,260 at 100k."""
    return max(1, round(100 * (n_images / 1000) ** 0.55))


# -- data ----------------------------------------------------------------------------------


@dataclass
class FamilySpec:
    name: str
    templates: list[dict[str, Any]]  # the gallery images of the family it was cloned from
    category: str
    publisher: str | None
    org: str | None  # None: a gallery family itself


@dataclass
class CatalogModel:
    """The catalog's contents as the bench built them (the source of truth for checks)."""

    seed: int
    gallery: list[dict[str, Any]] = field(default_factory=list)
    families: list[FamilySpec] = field(default_factory=list)
    summaries: dict[str, FamilySummary] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    copies: int = 0  # rows in the family partitions
    entity_bytes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.gallery = json.loads(GALLERY.read_text(encoding="utf-8"))["images"]
        by_family: dict[str, list[dict[str, Any]]] = {}
        for doc in self.gallery:
            by_family.setdefault(doc["ImageFamily"], []).append(doc)
        self.sources = sorted(by_family.items())
        for name, docs in self.sources:
            self.families.append(
                FamilySpec(name, docs, docs[0]["Category"], docs[0].get("PublisherName"), None)
            )

    @property
    def size(self) -> int:
        return len(self.names)

    @property
    def rows(self) -> int:
        """The table's rows: image rows, family copies and family summaries."""
        return self.size + self.copies + len(self.summaries)

    def _new_family(self) -> FamilySpec:
        k = len(self.families)
        source, docs = self.sources[self.rng.randrange(len(self.sources))]
        org = ORGS[k % len(ORGS)]
        roll = self.rng.random()
        category = (
            ImageCategory.USER if roll < 0.7 else ImageCategory.COMMUNITY if roll < 0.9 else None
        )
        return FamilySpec(
            name=f"{org} {source} r{k}",
            templates=docs,
            category=str(category or docs[0]["Category"]),
            publisher=f"{org} IT" if category == ImageCategory.USER else org,
            org=org.lower(),
        )

    def _clone(self, spec: FamilySpec, index: int) -> Image:
        template = self.rng.choice(spec.templates)
        doc = copy.deepcopy(template)
        stem = template["ImageName"].removesuffix(".vhd")[:150]
        name = f"{stem}-{spec.org or 'g'}-{index:07d}"
        published = CLONE_EPOCH + timedelta(seconds=index * 3000 + self.rng.randrange(1800))
        account = f"{spec.org}images" if spec.org else "azurevmimages"
        base = f"https://{account}.blob.core.windows.net/images/{name}"
        doc.update(
            ImageName=name,
            ImageFamily=spec.name,
            Category=spec.category,
            Label=f"{spec.name}, {published:%B %Y} (build {index})",
            PublishedDate=published.isoformat(),
            Source=(
                ImageSource.PLATFORM
                if spec.category == ImageCategory.PUBLIC
                else self.rng.choice([ImageSource.UPLOAD, ImageSource.CAPTURE, ImageSource.API])
            ),
        )
        if spec.publisher:
            doc["PublisherName"] = spec.publisher
        if spec.category == ImageCategory.USER:  # own builds: no marketplace links or icons
            for key in USER_DROPS:
                doc.pop(key, None)
            doc.update(
                Description=f"{template['ImageFamily']} with {spec.org} baseline, build {index}",
                Location=self.rng.choice(REGIONS),
                IsPremium=False,
                ShowInGui=True,
            )
        if "MediaLink" in doc:
            doc["MediaLink"] = base + ".vhd"
        if doc.get("OSDiskConfiguration"):
            doc["OSDiskConfiguration"].update(Name=f"{name}-os", MediaLink=f"{base}-os.vhd")
        for disk in doc.get("DataDiskConfigurations", []):
            lun = disk["Lun"]
            disk.update(Name=f"{name}-data-{lun}", MediaLink=f"{base}-data-{lun}.vhd")
        return Image.model_validate(doc)

    def plan(self, target: int) -> list[Image]:
        """The images that take the catalog from its size to `target`, oldest first."""
        new: list[Image] = []
        if self.size == 0:  # the gallery itself comes first, as shipped
            for doc in self.gallery[:target]:
                new.append(Image.model_validate({**doc, "Source": ImageSource.PLATFORM}))
        first_new_family = len(self.families)
        while len(self.families) < family_target(target):
            self.families.append(self._new_family())
        fresh = list(range(first_new_family, len(self.families)))  # each gets one image first
        for index in range(self.size + len(new), target):
            spec_i = fresh.pop() if fresh else self.rng.randrange(len(self.families))
            new.append(self._clone(self.families[spec_i], index))
        return new

    def commit(self, images: list[Image]) -> Rows:
        """Take `images` into the model; the rows to write, as the catalog would have.

        Per image its image row (partition `image|<name>`) and, with a family, its copy
        (partition `family|<family>`); per family touched its summary (partition
        `families`), folded with the catalog's own rule. One revision for the lot: a
        bulk load has no concurrent writers, each row only has to carry one.
        """
        rev = _rev()
        rows: list[dict[str, Any]] = []
        touched: dict[str, FamilySummary] = {}
        for image in images:
            rows.append(image_entity(image, rev))
            self.names.append(image.ImageName)
            if image.ImageFamily:
                rows.append(copy_entity(image, rev))
                self.copies += 1
                key = family_key(image.ImageFamily)
                summary = self.summaries.get(key) or FamilySummary(image.ImageFamily)
                self.summaries[key] = touched[key] = _with(summary, image)
        for row in rows[:: max(1, len(rows) // 100)]:  # a sample, for the report
            self.entity_bytes.append(len(json.dumps(row, default=str)))
        self.rng.shuffle(rows)  # arrival order is not key order
        return Rows(
            images=[e for e in rows if e["PartitionKey"].startswith(IMAGE)],
            copies=[e for e in rows if not e["PartitionKey"].startswith(IMAGE)],
            summaries=[s.to_entity() for s in touched.values()],
        )


@dataclass
class Rows:
    """One chunk's rows, by how they are written."""

    images: list[dict[str, Any]]  # one partition each: one request each
    copies: list[dict[str, Any]]  # grouped by family partition into batches
    summaries: list[dict[str, Any]]  # all in partition `families`: batches, after the rest

    def __len__(self) -> int:
        return len(self.images) + len(self.copies) + len(self.summaries)


# -- loading -------------------------------------------------------------------------------


class Loader:
    """Writes a chunk's rows from a pool of threads, each request as the table allows.

    An entity-group transaction holds at most 100 rows of ONE partition. Image rows
    are each in their own partition, so each is one `create_entity`; a family's
    copies share a partition, so they go in `submit_transaction` batches of up to
    100; the summaries (partition `families`) are upserted in batches last, after
    the rows they count.
    """

    def __init__(self, conn: str, table_name: str, threads: int) -> None:
        self.conn, self.table_name, self.threads = conn, table_name, threads
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="loader")
        self.retries = 0
        self.lock = threading.Lock()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _client(self, fresh: bool = False) -> TableClient:
        if fresh or not hasattr(self.local, "table"):
            self.local.table = TableClient.from_connection_string(self.conn, self.table_name)
        return self.local.table

    def _before_resend(self, attempt: int) -> None:
        """Azurite now and then resets a connection under load: count it, wait a little."""
        with self.lock:
            self.retries += 1
        time.sleep(1 + attempt)

    def _create(self, rows: list[dict[str, Any]]) -> None:
        """One `create_entity` per row (rows of different partitions), one after another."""
        for row in rows:
            for attempt in range(WRITE_TRIES):
                try:
                    self._client(fresh=attempt > 0).create_entity(row)
                    break
                except (ServiceRequestError, ServiceResponseError):
                    if attempt == WRITE_TRIES - 1:
                        raise
                    self._before_resend(attempt)
                except ResourceExistsError:
                    if attempt == 0:
                        raise
                    break  # a resend of a create that had in fact landed

    def _submit(self, ops: list[Any]) -> None:
        """One entity-group transaction: every row of `ops` in one partition."""
        for attempt in range(WRITE_TRIES):
            try:
                self._client(fresh=attempt > 0).submit_transaction(ops)
                return
            except (ServiceRequestError, ServiceResponseError):
                if attempt == WRITE_TRIES - 1:
                    raise
                self._before_resend(attempt)
            except TableTransactionError as e:
                # A resent batch that had in fact committed (batches are atomic).
                first = ops[0][1]
                if attempt == 0 or e.error_code != "EntityAlreadyExists":
                    raise
                self._client().get_entity(first["PartitionKey"], first["RowKey"])
                return

    def _run(self, call: Callable[[list[Any]], None], parts: list[list[Any]]) -> None:
        futures = [self.pool.submit(call, part) for part in parts]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        for f in done:
            f.result()  # raise the first error, if any

    def batches(self, op: str, rows: list[dict[str, Any]], **kwargs: Any) -> None:
        """`rows` as transactions of up to BATCH rows, each of one partition."""
        by_partition: dict[str, list[Any]] = {}
        for row in rows:
            by_partition.setdefault(row["PartitionKey"], []).append(
                (op, row, kwargs) if kwargs else (op, row)
            )
        parts = [
            ops[i : i + BATCH] for ops in by_partition.values() for i in range(0, len(ops), BATCH)
        ]
        self._run(self._submit, parts)

    def creates(self, rows: list[dict[str, Any]]) -> None:
        """`rows`, each of its own partition, one request each (a task takes BATCH of them)."""
        self._run(self._create, [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)])

    def write_chunk(self, rows: Rows) -> dict[str, float]:
        """Image rows, then the copies, then the summaries; seconds per kind of row."""
        spent: dict[str, float] = {}
        t0 = time.perf_counter()
        self.creates(rows.images)
        t1 = time.perf_counter()
        self.batches("create", rows.copies)
        t2 = time.perf_counter()
        self.batches("upsert", rows.summaries, mode=UpdateMode.REPLACE)
        t3 = time.perf_counter()
        spent.update(images_s=t1 - t0, copies_s=t2 - t1, summaries_s=t3 - t2)
        return spent


def next_chunk_s(chunks: list[dict[str, Any]]) -> float:
    """The next chunk's write time, guessed from the last two (they grow with the table)."""
    last = chunks[-1]["write_s"]
    growth = last / chunks[-2]["write_s"] if len(chunks) >= 2 and chunks[-2]["write_s"] else 1.2
    return last * max(1.2, growth)


def grow(model: CatalogModel, loader: Loader, target: int, budget_left_s: float) -> dict[str, Any]:
    """Grow the table to `target` images in chunks; stop early when the load budget is spent."""
    started = time.perf_counter()
    images = model.plan(target)
    build_s = time.perf_counter() - started
    write_s = 0.0
    written = added = 0
    chunks: list[dict[str, Any]] = []
    retries_before = loader.retries
    stopped = False
    for i in range(0, len(images), CHUNK_IMAGES):
        if budget_left_s <= 0 or (chunks and write_s + next_chunk_s(chunks) > budget_left_s):
            stopped = True
            break
        part = images[i : i + CHUNK_IMAGES]
        t0 = time.perf_counter()
        rows_before = model.rows
        rows = model.commit(part)
        t1 = time.perf_counter()
        by_kind = loader.write_chunk(rows)
        t2 = time.perf_counter()
        build_s += t1 - t0
        write_s += t2 - t1
        n = len(rows)
        written += n
        added += len(part)
        chunks.append({
            "table_rows_before": rows_before, "rows": n, "write_s": round(t2 - t1, 2),
            "rows_per_s": round(n / (t2 - t1), 1),
            "image_rows": len(rows.images), "copy_rows": len(rows.copies),
            "summary_rows": len(rows.summaries),
            **{k: round(v, 2) for k, v in by_kind.items()},
        })  # fmt: skip
        log(
            f"  {model.size} images: +{n} rows in {t2 - t1:.1f} s ({n / (t2 - t1):.0f} rows/s, "
            f"table had {rows_before} rows): {len(rows.images)} image rows "
            f"{by_kind['images_s']:.1f} s, {len(rows.copies)} copies {by_kind['copies_s']:.1f} s, "
            f"{len(rows.summaries)} summaries {by_kind['summaries_s']:.1f} s"
        )
    return {
        "target_images": target,
        "images_added": added,
        "entities_written": written,
        "threads": loader.threads,
        "connection_retries": loader.retries - retries_before,
        "build_s": round(build_s, 2),
        "write_s": round(write_s, 2),
        "entities_per_s": round(written / write_s, 1) if write_s else None,
        "images_per_s": round(added / write_s, 1) if write_s else None,
        "stopped_by_budget": stopped,
        "chunks": chunks,
    }


# -- timing --------------------------------------------------------------------------------


def timed_runs(
    call: Callable[[int], None], warmup: int, n_max: int, n_min: int, budget_s: float
) -> dict[str, Any]:
    """Sequential calls `call(i)`; stop at n_max, or past budget_s once n_min are done."""
    for i in range(warmup):
        call(-1 - i)
    samples: list[float] = []
    started = time.perf_counter()
    for i in range(n_max):
        t0 = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - t0)
        if len(samples) >= n_min and time.perf_counter() - started > budget_s:
            break
    result = summary_ms(samples)
    result["capped_by_budget"] = len(samples) < n_max
    return result


def timed_pairs(
    calls: dict[str, Callable[[int], Any]], warmup: int, n_max: int, n_min: int, budget_s: float
) -> dict[str, dict[str, Any]]:
    """Like `timed_runs` for several ways of asking, alternated call by call (same targets,
    order swapped every round), so that every way sees the same machine load."""
    for i in range(warmup):
        for call in calls.values():
            call(-1 - i)
    samples: dict[str, list[float]] = {k: [] for k in calls}
    ways = list(calls.items())
    started = time.perf_counter()
    for i in range(n_max):
        for k, call in ways if i % 2 == 0 else ways[::-1]:
            t0 = time.perf_counter()
            call(i)
            samples[k].append(time.perf_counter() - t0)
        if i + 1 >= n_min and time.perf_counter() - started > budget_s:
            break
    return {k: {**summary_ms(v), "capped_by_budget": len(v) < n_max} for k, v in samples.items()}


@dataclass
class Targets:
    """The random names and families each query asks for (drawn once per size)."""

    names: list[str]
    families: list[str]

    @classmethod
    def draw(cls, model: CatalogModel, rng: random.Random, n: int) -> Targets:
        families = [s.family for s in model.summaries.values()]
        return cls(
            names=[rng.choice(model.names) for _ in range(n)],
            families=[rng.choice(families) for _ in range(n)],
        )

    def name(self, i: int) -> str:
        return self.names[i % len(self.names)]

    def family(self, i: int) -> str:
        return self.families[i % len(self.families)]


def http_calls(session: requests.Session, base: str, t: Targets) -> dict[str, Callable[[int], Any]]:
    def get(url: str) -> Any:
        r = session.get(url, timeout=120)
        if r.status_code != 200:
            raise RuntimeError(f"GET {url} -> {r.status_code}: {r.text[:300]}")
        return r.json()

    return {
        "get": lambda i: get(f"{base}/api/images/{quote(t.name(i), safe='')}"),
        "latest": lambda i: get(f"{base}/api/families/{quote(t.family(i), safe='')}/latest"),
        "families": lambda i: get(f"{base}/api/families"),
        "family": lambda i: get(
            f"{base}/api/images?family={quote(t.family(i), safe='')}&top={TOP}"
        ),
        "all": lambda i: get(f"{base}/api/images?top={TOP}"),
    }


def in_process_calls(catalog: ImageCatalog, t: Targets) -> dict[str, Callable[[int], Any]]:
    return {
        "get": lambda i: service.get_image(catalog, t.name(i)),
        "latest": lambda i: service.latest_in_family(catalog, t.family(i), None),
        "families": lambda i: service.list_families(catalog),
        "family": lambda i: service.list_images(
            catalog, service.parse_list_query({"family": t.family(i), "top": str(TOP)})
        ),
        "all": lambda i: service.list_images(catalog, service.parse_list_query({"top": str(TOP)})),
    }


# -- the naive way: read every row, answer in Python --------------------------------------


def _newest_key(e: dict[str, Any]) -> tuple[float, str]:
    """The order of a family's page: newest first, a tie by name (as the catalog's)."""
    return (-e["PublishedDate"].timestamp(), e["ImageName"].lower())


def is_image_row(e: dict[str, Any]) -> bool:
    """An image row (partition `image|<name>`), not a family copy or a family summary."""
    return e["PartitionKey"].startswith(IMAGE) and e["RowKey"] == IMAGE_ROW


def naive_answers(rows: list[Any], name: str, family: str) -> dict[str, Callable[[], Any]]:
    """Each query answered from the full list of rows (only the image rows count)."""

    def images() -> list[Any]:
        return [e for e in rows if is_image_row(e)]

    def of_family() -> list[Any]:
        wanted = family.lower()
        return [e for e in images() if (e.get("ImageFamily") or "").lower() == wanted]

    def get() -> Image:
        wanted = name.lower()
        return from_entity(next(e for e in images() if e["ImageName"].lower() == wanted))

    def latest() -> Image:
        return from_entity(min(of_family(), key=_newest_key))

    def families() -> list[dict[str, Any]]:
        groups: dict[str, list[Any]] = {}
        for e in images():
            if e.get("ImageFamily"):
                groups.setdefault(e["ImageFamily"].lower(), []).append(e)
        out = []
        for members in groups.values():
            newest = min(members, key=_newest_key)
            out.append({"ImageFamily": newest["ImageFamily"], "ImageCount": len(members),
                        "Newest": newest["ImageName"]})  # fmt: skip
        return sorted(out, key=lambda f: family_key(f["ImageFamily"]))

    def one_family() -> list[Image]:
        members = sorted(of_family(), key=_newest_key)[:TOP]
        return [from_entity(e) for e in members]

    def first_page() -> list[Image]:
        return [from_entity(e) for e in sorted(images(), key=lambda e: e["PartitionKey"])[:TOP]]

    return {"get": get, "latest": latest, "families": families, "family": one_family,
            "all": first_page}  # fmt: skip


def naive_runs(
    table: TableClient, t: Targets, reps: int, first_rows: Callable[[list[Any]], Any]
) -> tuple[dict[str, Any], Any]:
    """`reps` full scans, each answering all five queries; `first_rows` sees the first scan."""
    scans: list[float] = []
    per_query: dict[str, list[float]] = {q: [] for q in QUERIES}
    rows_seen = 0
    seen: Any = None
    for rep in range(reps):
        started = time.perf_counter()
        rows = list(table.list_entities(results_per_page=1000))
        scan_s = time.perf_counter() - started
        scans.append(scan_s)
        rows_seen = len(rows)
        for q, answer in naive_answers(rows, t.name(rep), t.family(rep)).items():
            t0 = time.perf_counter()
            answer()
            per_query[q].append(scan_s + time.perf_counter() - t0)
        if rep == 0:
            seen = first_rows(rows)
        del rows
        log(f"    naive scan {rep + 1}/{reps}: {scan_s:.2f} s ({rows_seen} rows)")
    result = {
        "reps": reps,
        "rows_scanned": rows_seen,
        "scan": summary_ms(scans),
        "queries": {q: summary_ms(v) for q, v in per_query.items()},
    }
    return result, seen


# -- correctness checks: the app's answers against the naive answers ------------------------


def check_answers(
    session: requests.Session, base: str, rows: list[Any], model: CatalogModel
) -> dict[str, Any]:
    rng = random.Random(model.seed * 7 + model.size)
    t = Targets.draw(model, rng, 5)
    calls = http_calls(session, base, t)
    problems: list[str] = []
    for i in range(len(t.names)):
        naive = naive_answers(rows, t.name(i), t.family(i))
        got = calls["get"](i)
        if got["ImageName"] != t.name(i):
            problems.append(f"get {t.name(i)} returned {got['ImageName']}")
        got = calls["latest"](i)
        want = naive["latest"]().ImageName
        if got["ImageName"] != want:
            problems.append(f"latest of {t.family(i)}: {got['ImageName']} != {want}")
        got = [d["ImageName"] for d in calls["family"](i)["Images"]]
        want = [im.ImageName for im in naive["family"]()]
        if got != want:
            problems.append(f"family page of {t.family(i)} differs from the naive answer")
    naive = naive_answers(rows, t.name(0), t.family(0))
    got_f = calls["families"](0)
    want_f = naive["families"]()
    got_pairs = sorted((f["ImageFamily"], f["ImageCount"], f["Newest"]["ImageName"])
                       for f in got_f["Families"])  # fmt: skip
    want_pairs = sorted((f["ImageFamily"], f["ImageCount"], f["Newest"]) for f in want_f)
    if got_pairs != want_pairs:
        problems.append(f"families list: {got_f['Count']} families vs {len(want_f)} naive")
    got_all = [d["ImageName"] for d in calls["all"](0)["Images"]]
    if got_all != [im.ImageName for im in naive["all"]()]:
        problems.append("first page of all differs from the naive answer")
    kinds = {"image": 0, "copy": 0, "summary": 0, "other": 0}
    for e in rows:
        pk = e["PartitionKey"]
        kind = (
            "image" if is_image_row(e)
            else "copy" if pk.startswith(FAMILY)
            else "summary" if pk == FAMILIES
            else "other"
        )  # fmt: skip
        kinds[kind] += 1
    expected = {"image": model.size, "copy": model.copies, "summary": len(model.summaries),
                "other": 0}  # fmt: skip
    for kind, n in kinds.items():
        if n != expected[kind]:
            problems.append(f"{n} {kind} rows in the table, {expected[kind]} expected")
    return {"ok": not problems, "problems": problems, "families": got_f["Count"]}


# -- diagnosis: the first page of all with a page size that fits it --------------------------


def page_size_diagnosis(table: TableClient, args: argparse.Namespace) -> dict[str, Any]:
    """The query `ImageCatalog.page(None, {}, 100, None)` sends, raw, at two page sizes.

    The catalog asks Table storage for top + 1 = 101 rows per page (the image rows
    in name order: a range of partitions); this times the same filter with
    `results_per_page` 1000 and 101 (bench code, not the product's), to show what
    the page size costs.
    """
    flt = "PartitionKey ge @lo and PartitionKey lt @hi and RowKey eq @row"
    params = {"lo": IMAGE_RANGE[0], "hi": IMAGE_RANGE[1], "row": IMAGE_ROW}

    def run(per_page: int) -> Callable[[int], Any]:
        def call(_: int) -> Any:
            rows = table.query_entities(flt, parameters=params, results_per_page=per_page)
            return list(islice(rows, TOP + 1))

        return call

    n = min(args.requests, 100)
    return {
        f"results_per_page_{per_page}": timed_runs(run(per_page), 3, n, 30, args.budget / 2)
        for per_page in (1000, TOP + 1)
    }


def make_control(conn: str, gallery: list[dict[str, Any]]) -> tuple[TableClient, list[str]]:
    """A separate table of 100 image rows, laid out as the catalog's (one partition each, so
    one request each): Azurite's point-read cost without the catalog's other rows."""
    table = TableServiceClient.from_connection_string(conn).create_table(CONTROL_TABLE)
    images = [Image.model_validate(doc) for doc in gallery[:CONTROL_ROWS]]
    rev = _rev()
    for im in images:
        table.create_entity(image_entity(im, rev))
    return table, [image_partition(im.ImageName) for im in images]


def wait_persisted(location: Path | None, quiet_s: float = 7.0, limit_s: float = 300.0) -> float:
    """With on-disk Azurite, wait until its table DB file stops changing (autosave is 5 s)."""
    if location is None:
        return 0.0
    started = time.monotonic()
    last: tuple[Any, ...] | None = None
    stable_since = started
    while time.monotonic() - started < limit_s:
        with contextlib.suppress(OSError):
            last_now = tuple(
                (p.name, p.stat().st_mtime_ns, p.stat().st_size)
                for p in sorted(location.glob("*table*"))
            )
            now = time.monotonic()
            if last_now != last:
                last, stable_since = last_now, now
            elif now - stable_since >= quiet_s:
                break
        time.sleep(0.5)
    return time.monotonic() - started


# -- machine -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    node = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        node = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    import azure.data.tables as tables_sdk

    return {**machine_info(), "node": node, "azure_data_tables": tables_sdk.__version__}


def rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def dir_mib(path: Path | None) -> float | None:
    if path is None:
        return None
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return round(total / 2**20, 1)


# -- report --------------------------------------------------------------------------------


def _ms(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    return f"{v:.1f} ms" if v >= 10 else f"{v:.2f} ms"


def _k(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def verdicts(result: dict[str, Any]) -> dict[str, Any]:
    sizes = result["sizes"]
    out: dict[str, Any] = {}
    if len(sizes) >= 2:
        a, b = sizes[-2], sizes[-1]
        growth = {}
        for q in ("get", "latest"):
            for mode in ("http", "in_process"):
                growth[f"{q}_{mode}"] = round(b[mode][q]["p50_ms"] / a[mode][q]["p50_ms"], 2)
        growth["control_point_read"] = round(
            b["control_point_read"]["p50_ms"] / a["control_point_read"]["p50_ms"], 2
        )
        out["growth"] = {
            "from": a["images"],
            "to": b["images"],
            "p50_ratio": growth,
            "target": GROWTH_TARGET,
            "met": all(growth[f"{q}_http"] < GROWTH_TARGET for q in ("get", "latest")),
        }
    last = sizes[-1]
    target = last["load"]["target_images"]
    if result["load_budget_hit"] and len(sizes) >= 2 and target > last["images"]:
        # Straight line through the last two sizes (p50 against table rows), to the target.
        a, b = sizes[-2], sizes[-1]
        rows_at_target = 2 * target + family_target(target)
        projected = {}
        for q in ("get", "latest"):
            for mode in ("http", "in_process"):
                ya, yb = a[mode][q]["p50_ms"], b[mode][q]["p50_ms"]
                slope = (yb - ya) / (b["table_rows"] - a["table_rows"])
                at = yb + slope * (rows_at_target - b["table_rows"])
                projected[f"{q}_{mode}"] = {
                    "p50_ms": round(at, 2),
                    "growth_from_previous": round(at / ya, 2),
                    "ms_per_10k_rows": round(slope * 10_000, 3),
                }
        out["projection"] = {
            "from": a["images"], "to": target, "rows_at_target": rows_at_target,
            "p50": projected,
        }  # fmt: skip
    speedup = {
        q: round(last["naive"]["queries"][q]["p50_ms"] / last["http"][q]["p50_ms"], 1)
        for q in QUERIES
    }
    out["vs_naive"] = {
        "at": last["images"],
        "naive_over_http_p50": speedup,
        "target": NAIVE_TARGET,
        "met": all(v >= NAIVE_TARGET for v in speedup.values()),
        "failing": [q for q, v in speedup.items() if v < NAIVE_TARGET],
    }
    return out


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    sizes = result["sizes"]
    lines = [
        f"Command: `{result['command']}`",
        "",
        f"Machine: {m['cpu_count']} CPUs ({m['cpu_model'] or 'unknown model'}), "
        f"{m['mem_total_gib']} GiB RAM, Python {m['python']}, Azurite {m['azurite']} "
        f"(Node {m['node']}, {result['azurite_persistence']}), "
        f"azure-data-tables {m['azure_data_tables']}, {m['platform']}. "
        "The machine was shared with other work: see the load average per size.",
        "",
        "Catalog per size (one table grown in place; an image is an image row in its own "
        "partition + a copy in its family's partition, plus one summary row per family):",
        "",
        "| images | families | table rows | avg row | rows written | write time | rows/s | "
        "Azurite RSS | load avg (1 min) | HTTP answers vs naive |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in sizes:
        ld = s["load"]
        check = "same" if s["check"]["ok"] else "DIFFER: " + "; ".join(s["check"]["problems"])
        rss = f"{s['azurite_rss_mib']:.0f} MiB" if s["azurite_rss_mib"] else "?"
        reached = "" if s["images"] == ld["target_images"] else f" (of {_k(ld['target_images'])})"
        lines.append(
            f"| {_k(s['images'])}{reached} | {s['families']} | {s['table_rows']} | "
            f"{s['avg_row_bytes']} B | +{ld['entities_written']} | {ld['write_s']:.1f} s | "
            f"{ld['entities_per_s']:.0f} | {rss} | {s['loadavg_1m_before']:.1f} / "
            f"{s['loadavg_1m_after']:.1f} | {check} |"
        )
    load = result["load_total"]
    chunks = [c for s in sizes for c in s["load"]["chunks"]]
    lines += [
        "",
        f"Load: {load['entities_written']} rows in {load['write_s']:.1f} s = "
        f"**{load['entities_per_s']:.0f} rows/s** ({load['images_per_s']:.0f} images/s) "
        f"overall from {load['threads']} threads: image rows one `create_entity` each, "
        f"copies in `submit_transaction` batches of up to {BATCH} per family partition, then "
        f"the summaries upserted in batches ({load['connection_retries']} requests resent "
        f"after a connection reset); building the rows in Python took "
        f"{load['build_s']:.1f} s more. The rate by table size:",
        "",
        "| table rows before | rows written | seconds | rows/s | image rows | copies | summaries |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {c['table_rows_before']} | {c['rows']} | {c['write_s']:.1f} | "
            f"{c['rows_per_s']:.0f} | {c['image_rows']} in {c['images_s']:.1f} s | "
            f"{c['copy_rows']} in {c['copies_s']:.1f} s | "
            f"{c['summary_rows']} in {c['summaries_s']:.1f} s |"
            for c in chunks
        ),
    ]
    if result["load_budget_hit"]:
        lines += [
            "",
            f"**The load budget ({result['load_budget_s']:.0f} s of writing) ran out**: the "
            f"last size was measured at {_k(sizes[-1]['images'])} images, not "
            f"{_k(sizes[-1]['load']['target_images'])}.",
        ]
    for i, (q, (title, route)) in enumerate(QUERIES.items(), 1):
        lines += [
            "",
            f"### {i}. {title} - `{route}`",
            "",
            "| images | HTTP p50 | HTTP p99 | n | in-process p50 | in-process p99 | "
            "runner+HTTP share of p50 | naive p50 | naive / HTTP |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in sizes:
            h, d, nv = s["http"][q], s["in_process"][q], s["naive"]["queries"][q]
            share = max(0.0, 1 - d["p50_ms"] / h["p50_ms"])
            lines.append(
                f"| {_k(s['images'])} | {_ms(h['p50_ms'])} | {_ms(h['p99_ms'])} | {h['n']} | "
                f"{_ms(d['p50_ms'])} | {_ms(d['p99_ms'])} | {share:.0%} | "
                f"{_ms(nv['p50_ms'])} | {nv['p50_ms'] / h['p50_ms']:.0f}x |"
            )
        if q == "get":
            control = ", ".join(
                f"{_k(s['images'])}: {_ms(s['control_point_read']['p50_ms'])}" for s in sizes
            )
            lines += [
                "",
                f"Control: `get_entity` of an image row in a separate table of "
                f"{CONTROL_ROWS} image rows, in-process, p50 - {control}.",
            ]
        if q == "all":
            diag = ", ".join(
                f"{_k(s['images'])}: {_ms(s['diagnosis']['results_per_page_1000']['p50_ms'])}"
                f" vs {_ms(s['diagnosis'][f'results_per_page_{TOP + 1}']['p50_ms'])}"
                for s in sizes
            )
            lines += [
                "",
                f"Diagnosis: the same query raw (SDK only), `results_per_page=1000` vs "
                f"`results_per_page={TOP + 1}` as the catalog sends it, p50 - {diag}.",
            ]
    v = result["verdicts"]
    lines += ["", "### Targets", ""]
    if "growth" in v:
        g = v["growth"]
        r = g["p50_ratio"]
        lines.append(
            f"- p50 growth from {_k(g['from'])} to {_k(g['to'])} images (target < "
            f"{g['target']}x): get by name {r['get_http']}x over HTTP ({r['get_in_process']}x "
            f"in-process), latest {r['latest_http']}x over HTTP ({r['latest_in_process']}x "
            f"in-process); the control point read {r['control_point_read']}x - "
            f"**{'met' if g['met'] else 'NOT met'}**"
        )
    if "projection" in v:
        pr = v["projection"]
        parts = [
            f"{q} {pr['p50'][f'{q}_http']['p50_ms']:.1f} ms over HTTP "
            f"({pr['p50'][f'{q}_http']['growth_from_previous']}x of {_k(pr['from'])}; "
            f"+{pr['p50'][f'{q}_http']['ms_per_10k_rows']:.2f} ms per 10k rows)"
            for q in ("get", "latest")
        ]
        lines.append(
            f"- projected, not measured (a straight line through the last two sizes, to "
            f"{pr['rows_at_target']} rows = {_k(pr['to'])} images): " + "; ".join(parts)
        )
    nv = v["vs_naive"]
    detail = ", ".join(f"{q} {x:.0f}x" for q, x in nv["naive_over_http_p50"].items())
    lines.append(
        f"- every query >= {nv['target']:.0f}x faster than the naive way at "
        f"{_k(nv['at'])} (naive p50 / HTTP p50): {detail} - **"
        + ("met" if nv["met"] else f"NOT met ({', '.join(nv['failing'])})")
        + "**"
    )
    naive_scans = ", ".join(
        f"{_k(s['images'])}: {_ms(s['naive']['scan']['p50_ms'])} for {s['naive']['rows_scanned']}"
        f" rows (x{s['naive']['reps']})"
        for s in sizes
    )
    lines += [
        "",
        f"Naive = `list_entities()` of the whole table, then the answer in Python; the scan "
        f"alone (p50): {naive_scans}. HTTP = keep-alive `requests.Session` through the local "
        f"runner, sequential, after {result['warmup']} warm-up requests; a slow query stops "
        f"after {result['budget_s']:.0f} s but never before {result['min_requests']} requests. "
        f"In-process = the same service calls on a `TableClient` in the bench process "
        f"(no runner, no HTTP, no JSON encoding), alternated call by call with the HTTP "
        f"requests.",
    ]
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------


def measure_size(
    model: CatalogModel,
    session: requests.Session,
    base: str,
    catalog: ImageCatalog,
    control: tuple[TableClient, list[str]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    size = model.size
    rng = random.Random(model.seed * 1000 + size)
    t = Targets.draw(model, rng, args.requests + args.warmup + 16)
    result: dict[str, Any] = {"loadavg_1m_before": round(os.getloadavg()[0], 2)}
    result["http"], result["in_process"] = {}, {}
    http, direct = http_calls(session, base, t), in_process_calls(catalog, t)
    for q in QUERIES:
        r = timed_pairs(
            {"http": http[q], "in_process": direct[q]},
            args.warmup, args.requests, args.min_requests, args.budget,
        )  # fmt: skip
        for mode in ("http", "in_process"):
            result[mode][q] = r[mode]
            log(
                f"    {mode:10} {q:8} n={r[mode]['n']:3} p50 {_ms(r[mode]['p50_ms'])}  "
                f"p99 {_ms(r[mode]['p99_ms'])}"
            )
    table, keys = control
    r = timed_runs(
        lambda i: table.get_entity(keys[i % len(keys)], IMAGE_ROW),
        args.warmup, args.requests, args.min_requests, args.budget,
    )  # fmt: skip
    result["control_point_read"] = r
    log(f"    control point read p50 {_ms(r['p50_ms'])}")
    result["diagnosis"] = page_size_diagnosis(catalog.table, args)
    for k, r in result["diagnosis"].items():
        log(f"    diagnosis  {k}: n={r['n']} p50 {_ms(r['p50_ms'])}  p99 {_ms(r['p99_ms'])}")
    reps = args.naive_reps if size < 50_000 else args.naive_reps_large
    result["naive"], result["check"] = naive_runs(
        catalog.table, t, reps, lambda rows: check_answers(session, base, rows, model)
    )
    log(f"  HTTP answers vs naive: {'same' if result['check']['ok'] else result['check']}")
    result["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="image counts, ascending")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per query")
    parser.add_argument("--min-requests", type=int, default=50)
    parser.add_argument(
        "--budget", type=float, default=50.0, help="seconds per query (both ways together)"
    )
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--naive-reps", type=int, default=5, help="below 50k images")
    parser.add_argument("--naive-reps-large", type=int, default=3, help="from 50k images")
    parser.add_argument("--threads", type=int, default=4, help="loader threads")
    parser.add_argument(
        "--load-budget", type=float, default=900.0, help="seconds of writing, all sizes"
    )
    parser.add_argument("--seed", type=int, default=20261)
    parser.add_argument(
        "--azurite",
        choices=("memory", "disk"),
        default="memory",
        help="Azurite persistence (Loki holds every row in memory either way; "
        "disk also rewrites the whole table file every 5 s while it changes)",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or sizes != sorted(set(sizes)) or sizes[0] < 1:
        parser.error("--sizes must be positive and strictly ascending")
    command = " ".join(["python -m bench.catalog", *(sys.argv[1:] if argv is None else argv)])

    # Loki keeps every row in Node's heap: give Azurite room for 200k+ rows.
    os.environ.setdefault("NODE_OPTIONS", "--max-old-space-size=8192")
    model = CatalogModel(seed=args.seed)
    per_size: list[dict[str, Any]] = []
    budget_hit = False
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="catalog-bench-") as tmp_text:
        tmp = Path(tmp_text)
        location = tmp / "azurite" if args.azurite == "disk" else None
        log(f"Starting Azurite ({args.azurite}) and the app on 127.0.0.1 ...")
        with (
            Azurite(location=location, log_file=tmp / "azurite.log") as azurite,
            open(tmp / "host.log", "wb") as host_log,
        ):
            conn = azurite.connection_string
            storage = StorageAccount.from_env({"AzureWebJobsStorage": conn})
            ensure_resources(storage)
            table_name = storage.settings.images_table
            catalog = ImageCatalog(
                TableServiceClient.from_connection_string(conn).get_table_client(table_name)
            )
            control = make_control(conn, model.gallery)
            hostid = f"catalog-bench-{uuid.uuid4().hex[:8]}"
            app = AppHost(
                conn,
                keys_file=tmp / "keys.json",
                stdout=host_log,
                extra_env={"AzureFunctionsWebHost__hostid": hostid},
            )
            app.start(wait_path="/api/health")
            loader = Loader(conn, table_name, args.threads)
            try:
                with requests.Session() as session:
                    for target in sizes:
                        spent = sum(s["load"]["write_s"] for s in per_size)
                        log(f"Growing the catalog to {target} images ...")
                        load = grow(model, loader, target, args.load_budget - spent)
                        load["persist_wait_s"] = round(wait_persisted(location), 1)
                        log("  measuring ...")
                        measured = measure_size(
                            model, session, app.base_url, catalog, control, args
                        )
                        per_size.append(
                            {
                                "images": model.size,
                                "families": len(model.summaries),
                                "table_rows": measured["naive"]["rows_scanned"],
                                "avg_row_bytes": round(statistics.fmean(model.entity_bytes)),
                                "load": load,
                                "azurite_rss_mib": rss_mib(
                                    azurite.process.pid if azurite.process else None
                                ),
                                "azurite_disk_mib": dir_mib(location),
                                **measured,
                            }
                        )
                        if load["stopped_by_budget"]:
                            budget_hit = True
                            log("  the load budget is spent: no bigger size")
                            break
            finally:
                loader.close()
                app.stop()

    loads = [s["load"] for s in per_size]
    written = sum(ld["entities_written"] for ld in loads)
    write_s = sum(ld["write_s"] for ld in loads)
    images = sum(ld["images_added"] for ld in loads)
    result: dict[str, Any] = {
        "benchmark": "catalog",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": machine(),
        "azurite_persistence": "on disk (--location)" if args.azurite == "disk" else "in memory",
        "requests": args.requests,
        "min_requests": args.min_requests,
        "budget_s": args.budget,
        "warmup": args.warmup,
        "seed": args.seed,
        "load_budget_s": args.load_budget,
        "load_budget_hit": budget_hit,
        "load_total": {
            "entities_written": written,
            "images": images,
            "write_s": round(write_s, 2),
            "build_s": round(sum(ld["build_s"] for ld in loads), 2),
            "entities_per_s": round(written / write_s, 1),
            "images_per_s": round(images / write_s, 1),
            "threads": args.threads,
            "connection_retries": sum(ld["connection_retries"] for ld in loads),
        },
        "sizes": per_size,
        "total_s": round(time.perf_counter() - started, 1),
    }
    result["verdicts"] = verdicts(result)
    write_results(RESULTS, result)
    print(markdown(result))
    print(f"\n(JSON in {RESULTS.relative_to(ROOT)}; the whole run took {result['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
