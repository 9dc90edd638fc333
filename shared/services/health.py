"""Is the catalog's storage reachable, and does it hold what the app uses?"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from azure.core.exceptions import AzureError, ResourceNotFoundError

from shared.adapters.storage import StorageAccount


@dataclass
class HealthReport:
    healthy: bool
    checks: dict[str, str] = field(default_factory=dict)
    duration_ms: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "Status": "Healthy" if self.healthy else "Unhealthy",
            "Checks": self.checks,
            "DurationMs": round(self.duration_ms, 1),
        }


def check_storage(account: StorageAccount) -> HealthReport:
    s = account.settings
    checks: dict[str, str] = {}
    started = time.perf_counter()

    def table() -> None:
        found = account.tables.query_tables("TableName eq @n", parameters={"n": s.images_table})
        if next(iter(found), None) is None:
            raise ResourceNotFoundError(f"table '{s.images_table}' does not exist")

    blobs = account.blobs.get_container_client(s.uploads_container)
    queue = account.queues.get_queue_client(s.capture_queue)
    probes = {
        "blob": blobs.get_container_properties,
        "queue": queue.get_queue_properties,
        "table": table,
    }
    for name, probe in probes.items():
        try:
            probe()
            checks[name] = "ok"
        except ResourceNotFoundError as e:
            checks[name] = f"reachable, but missing: {str(e).splitlines()[0]}"
        except AzureError as e:
            checks[name] = f"unreachable: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    healthy = all(v == "ok" for v in checks.values())
    return HealthReport(healthy, checks, (time.perf_counter() - started) * 1000)


_probe_account: StorageAccount | None = None
_lock = threading.Lock()


def probe_account() -> StorageAccount:
    """Clients that fail fast (no retries, short timeouts): health must answer quickly."""
    global _probe_account
    with _lock:
        if _probe_account is None:
            _probe_account = StorageAccount.from_env(
                retry_total=0, connection_timeout=2, read_timeout=3
            )
    return _probe_account
