"""What the CLI prints: tables with fixed columns, `key  value` records, JSON, a progress bar.

Text from the service (labels, descriptions) is shown with control characters
replaced, so nothing it holds can move the cursor or recolour the terminal.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _utf8(stream: TextIO) -> bool:
    return (getattr(stream, "encoding", None) or "").lower().replace("-", "") == "utf8"


def clean(value: Any) -> str:
    """One line of printable text for a cell."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return _CONTROL.sub(" ", str(value))


def truncate(text: str, width: int, ellipsis: str = "…") -> str:
    if len(text) <= width:
        return text
    if width <= len(ellipsis):
        return text[:width]
    return text[: width - len(ellipsis)].rstrip() + ellipsis


@dataclass(frozen=True)
class Column:
    header: str
    get: Callable[[dict[str, Any]], Any]
    max_width: int | None = None  # None: never cut (names you type back, dates, numbers)
    right: bool = False  # numbers


def field(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row.get(name)


def date_of(name: str) -> Callable[[dict[str, Any]], Any]:
    """The date part of an ISO timestamp field."""

    def get(row: dict[str, Any]) -> Any:
        value = row.get(name)
        return value[:10] if isinstance(value, str) else value

    return get


def render_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    width: int | None = None,
    ellipsis: str = "…",
) -> str:
    """Columns as wide as their widest cell up to `max_width`; if `width` (the
    terminal's) is given, the truncatable columns shrink further to fit it."""
    cells = [[clean(c.get(row)) for c in columns] for row in rows]
    widths = []
    for i, c in enumerate(columns):
        natural = max([len(c.header), *(len(r[i]) for r in cells)])
        widths.append(natural if c.max_width is None else min(natural, max(c.max_width, 3)))
    if width is not None:
        excess = sum(widths) + 2 * (len(widths) - 1) - width
        # Shrink the widest truncatable column first, never below 8 (or its header).
        while excess > 0:
            shrinkable = [
                i
                for i, c in enumerate(columns)
                if c.max_width is not None and widths[i] > max(8, len(c.header))
            ]
            if not shrinkable:
                break
            i = max(shrinkable, key=lambda j: widths[j])
            widths[i] -= 1
            excess -= 1
    lines = []
    for row in [[c.header for c in columns], *cells]:
        parts = []
        for i, (c, text) in enumerate(zip(columns, row, strict=True)):
            text = truncate(text, widths[i], ellipsis)
            if c.right:
                text = text.rjust(widths[i])
            elif i < len(columns) - 1:
                text = text.ljust(widths[i])
            parts.append(text)
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def flatten(doc: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """(dotted.key[0].path, scalar) pairs of a JSON document, in order."""
    if isinstance(doc, dict):
        if not doc and prefix:
            yield prefix, None
        for k, v in doc.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(doc, list):
        if not doc and prefix:
            yield prefix, "(none)"
        for i, v in enumerate(doc):
            yield from flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, doc


def render_record(
    doc: dict[str, Any],
    width: int | None = None,
    omit: Iterable[str] = (),
    ellipsis: str = "…",
) -> str:
    """`Key  value` lines, nested fields as dotted paths; `omit` keys are summarised."""
    skip = set(omit)
    pairs = [(k, v) for k, v in flatten({k: v for k, v in doc.items() if k not in skip})]
    pairs += [(k, "(see --json)") for k in doc if k in skip and doc[k]]
    if not pairs:
        return ""
    key_width = min(40, max(len(k) for k, _ in pairs))
    lines = []
    for key, value in pairs:
        line = f"{truncate(clean(key), key_width, ellipsis).ljust(key_width)}  {clean(value)}"
        lines.append(truncate(line, width, ellipsis) if width else line)
    return "\n".join(lines)


def dump_json(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False)


class Printer:
    """Where output goes: data on stdout, progress and errors on stderr."""

    def __init__(
        self,
        as_json: bool = False,
        quiet: bool = False,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.as_json = as_json
        self.quiet = quiet
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    @property
    def ellipsis(self) -> str:
        return "…" if _utf8(self.out) else "..."

    def width(self) -> int | None:
        """The terminal's width when stdout is one; None (no fitting) in a pipe."""
        if not self.out.isatty():
            return None
        return shutil.get_terminal_size((100, 24)).columns

    def json(self, doc: Any) -> None:
        print(dump_json(doc), file=self.out)

    def table(self, rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
        if rows:
            print(render_table(rows, columns, self.width(), self.ellipsis), file=self.out)
        elif not self.quiet:
            self.note("(nothing to show)")

    def record(self, doc: dict[str, Any], omit: Iterable[str] = ()) -> None:
        print(render_record(doc, self.width(), omit, self.ellipsis), file=self.out)

    def line(self, text: str) -> None:
        print(text, file=self.out)

    def note(self, text: str) -> None:
        """A remark for a person (stderr), silenced by --quiet."""
        if not self.quiet:
            print(text, file=self.err, flush=True)

    def error(self, code: str, message: str) -> None:
        print(f"vmimage: error: {code}: {message}", file=self.err, flush=True)

    def progress_bar(self, label: str) -> ProgressBar | None:
        if self.quiet or not self.err.isatty():
            return None
        return ProgressBar(label, self.err, unicode=_utf8(self.err))


def mb_per_s(n: int, seconds: float) -> float:
    return n / 1e6 / seconds if seconds > 0 else 0.0


def size_text(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def size_pair(a: float, b: float) -> str:
    """`16.0/320.0 MiB`: both in the unit of the larger."""
    unit, scale = "B", 1
    for name in ("KiB", "MiB", "GiB", "TiB"):
        if max(a, b) < scale * 1024:
            break
        unit, scale = name, scale * 1024
    if unit == "B":
        return f"{a:.0f}/{b:.0f} B"
    return f"{a / scale:.1f}/{b / scale:.1f} {unit}"


class ProgressBar:
    """One line on a terminal, redrawn at most 10 times a second:

    `disk.vhd [██████░░░░░░░░░░]  38% | data 133.0/256.0 MiB | disk 0.4/1.0 TiB | 85.2 MB/s`
    The bar and the percentage are the share of the disk's virtual size covered
    (holes count as covered at once); `data` is what was sent out of what may
    hold data; the rate is data sent per second (MB = 10^6 bytes).
    """

    def __init__(self, label: str, stream: TextIO, unicode: bool = True) -> None:
        self.label = truncate(label, 24, "…" if unicode else "...")
        self.stream = stream
        self.fill, self.empty = ("█", "░") if unicode else ("#", "-")
        self._last = 0.0
        self._shown = False

    def update(self, sent: int, data_total: int, covered: int, size: int, seconds: float) -> None:
        now = time.monotonic()
        if covered < size and now - self._last < 0.1:
            return
        self._last = now
        width = shutil.get_terminal_size((100, 24)).columns - 1
        line = self.render(sent, data_total, covered, size, seconds)
        if len(line) > width:
            line = self.render(sent, data_total, covered, size, seconds, bar=False)
        self.stream.write("\r" + truncate(line, width).ljust(width))
        self.stream.flush()
        self._shown = True

    def render(
        self, sent: int, data_total: int, covered: int, size: int, seconds: float, bar: bool = True
    ) -> str:
        share = covered / size if size else 1.0
        cells = 16
        full = min(cells, int(share * cells))
        drawn = f" [{self.fill * full}{self.empty * (cells - full)}]" if bar else ""
        return (
            f"{self.label}{drawn} {share:4.0%} | data {size_pair(sent, max(data_total, sent))} | "
            f"disk {size_pair(covered, size)} | {mb_per_s(sent, seconds):.1f} MB/s"
        )

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
