"""The portal's files as the app serves them: at `/`, anonymous, cached the right way.

index.html is revalidated on every load (no-cache + ETag, 304 when unchanged); the
assets Vite names after their content are cached for a year as immutable, with ETags
too; text goes gzipped to a client that takes it. The portal's routes take nothing
from the API's or the classic API's paths.
"""

from __future__ import annotations

import gzip
import re

import pytest
import requests

from devtools.apphost import AppHost

pytestmark = pytest.mark.azurite


def get(app: AppHost, path: str, **headers: str) -> requests.Response:
    return requests.get(f"{app.base_url}{path}", headers=headers, timeout=10)


def assets(app: AppHost) -> list[str]:
    html = get(app, "/").text
    found = re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)
    assert any(a.endswith(".js") for a in found) and any(a.endswith(".css") for a in found)
    return found


def test_the_page_is_at_the_root_anonymous_and_revalidated(catalog_app: AppHost) -> None:
    r = get(catalog_app, "/")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["Cache-Control"] == "no-cache"
    assert "<title>VM image catalog</title>" in r.text
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "127.0.0.1" in csp  # the blob endpoint the browser uploads to, and nothing else
    again = get(catalog_app, "/", **{"If-None-Match": r.headers["ETag"]})
    assert (again.status_code, again.content) == (304, b"")
    assert get(catalog_app, "/index.html").content == r.content


def test_assets_are_immutable_with_etags_and_gzipped(catalog_app: AppHost) -> None:
    for path in assets(catalog_app):
        plain = get(catalog_app, path, **{"Accept-Encoding": "identity"})
        assert plain.status_code == 200
        assert plain.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert re.search(r"-[A-Za-z0-9_-]{8}\.(js|css)$", path), "not a content-hashed name"
        packed = requests.get(
            f"{catalog_app.base_url}{path}",
            headers={"Accept-Encoding": "gzip"},
            stream=True,
            timeout=10,
        )
        raw = packed.raw.read()
        assert packed.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(raw) == plain.content and len(raw) < len(plain.content)
        assert packed.headers["ETag"] != plain.headers["ETag"]
        for r, encoding in ((plain, "identity"), (packed, "gzip")):
            again = get(
                catalog_app,
                path,
                **{"If-None-Match": r.headers["ETag"], "Accept-Encoding": encoding},
            )
            assert (again.status_code, again.content) == (304, b"")


def test_unknown_assets_and_paths_are_not_the_portal(catalog_app: AppHost) -> None:
    r = get(catalog_app, "/assets/nope-12345678.js")
    assert r.status_code == 404 and r.json()["Code"] == "AssetNotFound"
    assert get(catalog_app, "/assets/../function_app.py").status_code == 404
    assert get(catalog_app, "/assets/%2e%2e/host.json").status_code == 404
    assert get(catalog_app, "/something-else").status_code == 404
    # The API and the classic API keep their paths.
    assert get(catalog_app, "/api/health").headers["Content-Type"].startswith("application/json")
    classic = get(catalog_app, "/6d1a4c2e-9b3f-4e57-8a10-3c5f7e9d2b41/services/images")
    # The classic API's own credential check answers, not a portal page.
    assert classic.status_code in (401, 403)
    assert not classic.headers.get("Content-Type", "").startswith("text/html")
