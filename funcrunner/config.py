"""What the host reads before it starts: host.json and the app settings.

App settings come from `local.settings.json` ("Values", as Core Tools reads
it) and are overridden by the environment, as on Azure where app settings
are environment variables. `AzureWebJobsStorage` defaults to
`UseDevelopmentStorage=true`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

DEV_ACCOUNT = "devstoreaccount1"
# The well-known, public Azurite/emulator key (documented by Microsoft; not a secret).
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class HostConfigError(ValueError):
    """host.json or the settings are not something the host would start with."""


def parse_timespan(value: str | int | float | None, default: timedelta) -> timedelta:
    """host.json timespans: "hh:mm:ss", "d.hh:mm:ss", "00:00:00.500"; -1 means unbounded."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    text = str(value).strip()
    if text == "-1":
        return timedelta.max
    m = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?", text)
    if not m:
        raise HostConfigError(f"'{value}' is not a timespan (expected hh:mm:ss)")
    days, hours, minutes, seconds, frac = m.groups()
    return timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds),
        microseconds=int((frac or "0")[:6].ljust(6, "0")),
    )


@dataclass(frozen=True)
class QueueOptions:
    """`extensions.queues`, with the host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int | None = None
    max_polling_interval: timedelta = timedelta(minutes=1)
    visibility_timeout: timedelta = timedelta(0)
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @property
    def effective_new_batch_threshold(self) -> int:
        return (
            self.new_batch_threshold
            if self.new_batch_threshold is not None
            else self.batch_size // 2
        )


@dataclass(frozen=True)
class BlobOptions:
    """`extensions.blobs`, with the host's defaults."""

    max_degree_of_parallelism: int = 8
    poison_blob_threshold: int = 5


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)
    blobs: BlobOptions = field(default_factory=BlobOptions)
    function_timeout: timedelta = timedelta(minutes=30)


def _int_in(section: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise HostConfigError(f"host.json: {key} must be an integer in [{lo}, {hi}]")
    return value


def load_host_config(path: Path) -> HostConfig:
    if not path.exists():
        return HostConfig()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise HostConfigError(f"{path.name} is not valid JSON: {e}") from e
    if doc.get("version") != "2.0":
        raise HostConfigError(f'{path.name}: "version" must be "2.0"')
    ext = doc.get("extensions", {}) or {}
    http = ext.get("http", {}) or {}
    q = ext.get("queues", {}) or {}
    b = ext.get("blobs", {}) or {}
    encoding = str(q.get("messageEncoding", "base64")).lower()
    if encoding not in ("base64", "none"):
        raise HostConfigError("host.json: queues.messageEncoding must be base64 or none")
    batch = _int_in(q, "batchSize", 16, 1, 32)
    queues = QueueOptions(
        batch_size=batch,
        new_batch_threshold=(
            _int_in(q, "newBatchThreshold", 0, 0, 10_000) if "newBatchThreshold" in q else None
        ),
        max_polling_interval=parse_timespan(q.get("maxPollingInterval"), timedelta(minutes=1)),
        visibility_timeout=parse_timespan(q.get("visibilityTimeout"), timedelta(0)),
        max_dequeue_count=_int_in(q, "maxDequeueCount", 5, 1, 10_000),
        message_encoding=encoding,
    )
    blobs = BlobOptions(
        max_degree_of_parallelism=_int_in(b, "maxDegreeOfParallelism", 8, 1, 1000),
        poison_blob_threshold=_int_in(b, "poisonBlobThreshold", 5, 1, 10_000),
    )
    prefix = http.get("routePrefix", "api")
    if not isinstance(prefix, str):
        raise HostConfigError("host.json: http.routePrefix must be a string")
    return HostConfig(
        route_prefix=prefix.strip("/"),
        queues=queues,
        blobs=blobs,
        function_timeout=parse_timespan(doc.get("functionTimeout"), timedelta(minutes=30)),
    )


def load_app_settings(app_dir: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """local.settings.json Values, then the environment on top, then defaults."""
    env = dict(os.environ if environ is None else environ)
    settings: dict[str, str] = {}
    local = app_dir / "local.settings.json"
    if local.exists():
        try:
            values = json.loads(local.read_text(encoding="utf-8")).get("Values", {})
        except json.JSONDecodeError as e:
            raise HostConfigError(f"local.settings.json is not valid JSON: {e}") from e
        settings.update({k: str(v) for k, v in values.items()})
    settings.update(env)
    settings.setdefault("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    settings.setdefault("FUNCTIONS_WORKER_RUNTIME", "python")
    return settings


def expand_connection_string(value: str) -> str:
    """Expand `UseDevelopmentStorage=true` to the emulator's full connection string."""
    parts = dict(p.split("=", 1) for p in value.split(";") if "=" in p)
    if parts.get("UseDevelopmentStorage", "").lower() != "true":
        return value
    proxy = parts.get("DevelopmentStorageProxyUri", "http://127.0.0.1").rstrip("/")
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint={proxy}:10000/{DEV_ACCOUNT};"
        f"QueueEndpoint={proxy}:10001/{DEV_ACCOUNT};"
        f"TableEndpoint={proxy}:10002/{DEV_ACCOUNT};"
    )


def connection_string(settings: dict[str, str], connection: str | None) -> str:
    """The connection string a binding's `connection` names (the host's lookup)."""
    name = connection or "AzureWebJobsStorage"
    for candidate in (name, f"AzureWebJobs{name}", f"ConnectionStrings:{name}"):
        if settings.get(candidate):
            return expand_connection_string(settings[candidate])
    raise HostConfigError(
        f"the connection '{name}' is not an app setting; set {name} to a storage "
        "connection string (the local runner does not use identity-based connections)"
    )
