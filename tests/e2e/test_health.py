"""GET /api/health through the running app: 200 with storage up, 503 with the reason when not."""

from __future__ import annotations

import requests

from devtools.apphost import AppHost
from devtools.azurite import connection_string, free_port


def test_health_is_anonymous_and_healthy(catalog_app: AppHost) -> None:
    r = requests.get(f"{catalog_app.base_url}/api/health", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["Status"] == "Healthy"
    assert body["Checks"] == {"blob": "ok", "queue": "ok", "table": "ok"}


def test_health_is_503_with_the_reason_when_storage_is_down(tmp_path) -> None:
    # Storage ports where nothing listens: the app starts, health says why it is unhealthy.
    dead = connection_string(free_port(), free_port(), free_port())
    app = AppHost(dead, keys_file=tmp_path / "keys.json")
    app.start(wait_path="/admin/host/ping")
    try:
        r = requests.get(f"{app.base_url}/api/health", timeout=20)
        assert r.status_code == 503
        body = r.json()
        assert body["Status"] == "Unhealthy"
        assert body["Checks"]["blob"].startswith("unreachable")
        assert body["Checks"]["table"].startswith("unreachable")
    finally:
        app.stop()
