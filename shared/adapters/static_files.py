"""The portal's built files (Vite's output in `static/`), read once per worker process.

Each file is kept in memory with its ETag and, when it is text, a gzip copy: the
portal is a few tens of KiB, and answering from memory keeps a page load to a
handful of cheap invocations.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import threading
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent / "static"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
    ".woff2": "font/woff2",
}
_COMPRESSIBLE = (".html", ".js", ".css", ".svg", ".json")


@dataclass(frozen=True)
class StaticFile:
    path: str  # relative to the root, with '/'
    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str  # quoted, strong: a digest of the bytes

    def variant(self, accepts_gzip: bool) -> tuple[bytes, str, bool]:
        """(bytes, ETag, gzipped?) of the copy to send."""
        if accepts_gzip and self.gzipped is not None:
            return self.gzipped, self.etag[:-1] + '-gz"', True
        return self.body, self.etag, False


def load_file(root: Path, rel: str) -> StaticFile:
    body = (root / rel).read_bytes()
    suffix = Path(rel).suffix.lower()
    content_type = _TYPES.get(suffix) or mimetypes.guess_type(rel)[0] or "application/octet-stream"
    packed = gzip.compress(body, compresslevel=9, mtime=0) if suffix in _COMPRESSIBLE else None
    if packed is not None and len(packed) >= len(body):
        packed = None  # tiny files: not worth it
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return StaticFile(rel, body, packed, content_type, etag)


class StaticSite:
    """Every file under `root`, loaded at first use. None from `get` for anything else
    (paths are looked up, never joined onto the file system)."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self._files: dict[str, StaticFile] | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return "index.html" in self._all()

    def get(self, rel: str) -> StaticFile | None:
        return self._all().get(rel)

    def _all(self) -> dict[str, StaticFile]:
        if self._files is None:
            with self._lock:
                if self._files is None:
                    self._files = self._scan()
        return self._files

    def _scan(self) -> dict[str, StaticFile]:
        if not self.root.is_dir():
            return {}
        files = {}
        for p in sorted(self.root.rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                rel = p.relative_to(self.root).as_posix()
                files[rel] = load_file(self.root, rel)
        return files
