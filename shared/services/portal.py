"""Serve the portal: index.html (revalidated each time) and hashed assets (cached for good).

Vite names every asset after a digest of its content, so an asset's URL never
changes meaning: it is cached for a year as immutable. index.html, which names
the current assets, is `no-cache`: the browser asks again each time and a
matching ETag costs a 304 with no body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared.adapters.static_files import StaticFile, StaticSite
from shared.domain.errors import NotFound

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# Asset names are Vite's `<name>-<hash>.<ext>` under assets/: nothing else is served there.
ASSET_PATH = re.compile(r"assets/[A-Za-z0-9_.-]{1,200}")


class PortalNotBuilt(NotFound):
    code = "PortalNotBuilt"


class AssetNotFound(NotFound):
    code = "AssetNotFound"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def content_security_policy(blob_endpoint: str) -> str:
    """Only the app's own files run; the page talks to the app and, for uploads, to the
    storage account's blob endpoint (a SAS URL)."""
    u = urlsplit(blob_endpoint)
    storage = f"{u.scheme}://{u.netloc}" if u.scheme and u.netloc else ""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' {storage}".rstrip()
        + "; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _answer(
    f: StaticFile, cache: str, if_none_match: str | None, accept_encoding: str | None
) -> Answer:
    gzip_ok = "gzip" in (accept_encoding or "").lower()
    body, etag, gzipped = f.variant(gzip_ok)
    headers = {
        "Cache-Control": cache,
        "ETag": etag,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if _matches(if_none_match, etag):
        return Answer(304, b"", headers)
    headers["Content-Type"] = f.content_type
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return Answer(200, body, headers)


def index(
    site: StaticSite, blob_endpoint: str, if_none_match: str | None, accept_encoding: str | None
) -> Answer:
    f = site.get("index.html")
    if f is None:
        raise PortalNotBuilt(
            "the portal is not built: run `npm ci && npm run build` (make run does it)"
        )
    answer = _answer(f, REVALIDATE, if_none_match, accept_encoding)
    answer.headers.update(
        {
            "Content-Security-Policy": content_security_policy(blob_endpoint),
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        }
    )
    return answer


def asset(
    site: StaticSite, path: str, if_none_match: str | None, accept_encoding: str | None
) -> Answer:
    rel = f"assets/{path}"
    f = site.get(rel) if ASSET_PATH.fullmatch(rel) else None
    if f is None:
        raise AssetNotFound(f"the portal has no asset '{path[:200]}'")
    return _answer(f, IMMUTABLE, if_none_match, accept_encoding)
