"""A storage outage, end to end: every HTTP endpoint answers 503 with Retry-After.

The app runs against storage ports where nothing listens (as test_health does):
it starts, and each answer says storage is unavailable, in the API's own error
body (JSON, or the classic XML), never a 500.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devtools.apphost import AppHost
from devtools.azurite import connection_string, free_port
from shared.settings import DEFAULTS

SUBSCRIPTION = DEFAULTS["CLASSIC_SUBSCRIPTION_ID"]
NS = "{http://schemas.microsoft.com/windowsazure}"
CLASSIC = {"x-ms-version": "2014-10-01"}
BLOB_PORT = free_port()
# A disk of the (unreachable) account: checked against storage, not refused as elsewhere.
DEAD_LINK = f"http://127.0.0.1:{BLOB_PORT}/devstoreaccount1/vhds/x.vhd"


@pytest.fixture(scope="module")
def down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppHost, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("outage")
    dead = connection_string(BLOB_PORT, free_port(), free_port())
    with open(tmp / "host.log", "wb") as log:
        app = AppHost(dead, keys_file=tmp / "keys.json", stdout=log)
        app.start(wait_path="/admin/host/ping")
        try:
            key = str(app.keys()["hostKeys"]["default"])  # type: ignore[index]
            yield app, {"x-functions-key": key}
        finally:
            app.stop()


def _call(app: AppHost, method: str, path: str, headers: dict[str, str], **kw: Any) -> Any:
    return requests.request(method, f"{app.base_url}{path}", headers=headers, timeout=60, **kw)


def _retry_after(r: requests.Response) -> None:
    assert r.status_code == 503, f"{r.status_code} {r.text[:500]}"
    assert int(r.headers["Retry-After"]) > 0


VM = {"State": "Stopped", "OSDisk": {"OS": "Linux", "MediaLink": DEAD_LINK}}
JSON_CALLS = [
    ("GET", "/api/images", {}),
    ("GET", "/api/images?family=x&top=5", {}),
    ("GET", "/api/images/some-image", {}),
    ("PATCH", "/api/images/some-image", {"json": {"Label": "x"}}),
    ("DELETE", "/api/images/some-image", {}),
    ("GET", "/api/families", {}),
    ("GET", "/api/families/Some%20Family/latest", {}),
    ("GET", "/api/uploads/disk.vhd", {}),
    ("GET", "/api/vms", {}),
    ("GET", "/api/vms/svc/vm1", {}),
    ("PUT", "/api/vms/svc/vm1", {"json": VM}),
    ("DELETE", "/api/vms/svc/vm1", {}),
    ("POST", "/api/captures", {"json": {"ServiceName": "svc", "Name": "vm1", "ImageName": "i"}}),
    ("GET", "/api/operations/some-operation", {}),
]


@pytest.mark.parametrize(("method", "path", "kw"), JSON_CALLS)
def test_json_endpoints_answer_503_with_retry_after(down, method, path, kw) -> None:
    app, key = down
    r = _call(app, method, path, key, **kw)
    _retry_after(r)
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["Code"] == "StorageUnavailable", body
    assert "storage" in body["Message"].lower()


ADD_OS_IMAGE = (
    "<OSImage xmlns='http://schemas.microsoft.com/windowsazure'><Label>l</Label>"
    f"<MediaLink>{DEAD_LINK}</MediaLink><Name>outage-image</Name><OS>Linux</OS></OSImage>"
)
CLASSIC_CALLS = [
    ("GET", "/services/images", None),
    ("GET", "/services/images/some-image", None),
    ("GET", "/services/vmimages", None),
    ("POST", "/services/images", ADD_OS_IMAGE),
    ("DELETE", "/services/images/some-image", None),
    ("GET", "/operations/0123456789abcdef0123456789abcdef", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CLASSIC_CALLS)
def test_classic_endpoints_answer_503_service_unavailable(down, method, path, body) -> None:
    app, key = down
    r = _call(app, method, f"/{SUBSCRIPTION}{path}", {**key, **CLASSIC}, data=body)
    _retry_after(r)
    assert len(r.headers["x-ms-request-id"]) == 32
    assert r.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(r.content)
    assert root.tag == f"{NS}Error"
    assert root.findtext(f"{NS}Code") == "ServiceUnavailable"
    assert "storage" in (root.findtext(f"{NS}Message") or "").lower()


def test_health_says_why_and_when_to_retry(down) -> None:
    app, _ = down
    r = _call(app, "GET", "/api/health", {})
    _retry_after(r)
    assert r.json()["Status"] == "Unhealthy"


def test_bad_input_is_still_400_during_an_outage(down) -> None:
    # Checked before storage is asked: the caller learns what to fix, not to retry.
    app, key = down
    assert _call(app, "GET", "/api/images?top=0", key).status_code == 400
    r = _call(app, "PUT", "/api/vms/svc/vm1", key, json={"State": "Sleeping"})
    assert r.status_code == 400
