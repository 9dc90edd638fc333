"""What every benchmark shares: the machine it ran on, percentiles, progress lines."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def machine_info() -> dict[str, Any]:
    """CPUs, memory, Python, platform and the Azurite version in node_modules."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    azurite = "unknown"
    with contextlib.suppress(OSError, ValueError, KeyError):
        pkg = json.loads((ROOT / "node_modules" / "azurite" / "package.json").read_text())
        azurite = pkg["version"]
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "mem_total_gib": round(memory, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "azurite": azurite,
    }


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile with linear interpolation between ranks."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary_ms(seconds: list[float], digits: int = 3) -> dict[str, Any]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), digits),
        "p99_ms": round(percentile(ms, 99), digits),
        "mean_ms": round(statistics.fmean(ms), digits),
        "max_ms": round(max(ms), digits),
    }


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_results(path: Path, result: dict[str, Any]) -> None:
    """The raw figures as JSON under bench/results/ (git-ignored)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
