"""Upload tickets (`POST /api/uploads`): a SAS for one new blob in the drop zone that may
only create and write it, for about 15 minutes; and the CORS rule that lets the portal's
page use it from the browser."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from devtools.apphost import AppHost
from shared.adapters.storage import StorageAccount
from shared.domain.vhd import MIB, build_footer
from shared.openapi import EXAMPLE_IMAGE
from shared.services.gallery import load_gallery
from tests.e2e.test_catalog_api import catalog_of

pytestmark = pytest.mark.azurite


def ticket(app: AppHost, key: str | None, body: object) -> requests.Response:
    headers = {"x-functions-key": key} if key else {}
    return requests.post(f"{app.base_url}/api/uploads", json=body, headers=headers, timeout=10)


def test_a_ticket_writes_one_new_blob_and_nothing_else(
    catalog_app: AppHost, function_key: str, storage: StorageAccount
) -> None:
    name = f"ticket-{uuid.uuid4().hex[:8]}.vhd"
    assert ticket(catalog_app, None, {"BlobName": name}).status_code == 401
    r = ticket(catalog_app, function_key, {"BlobName": name})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["BlobName"] == name and doc["ImageName"] == name[:-4]
    url = doc["Url"]
    sas = parse_qs(urlsplit(url).query)
    assert sas["sp"] == ["cw"] and sas["sr"] == ["b"]
    expires = datetime.fromisoformat(sas["se"][0].replace("Z", "+00:00"))
    assert timedelta(minutes=14) < expires - datetime.now(UTC) <= timedelta(minutes=15)
    assert urlsplit(url).path.endswith(f"/{storage.settings.uploads_container}/{name}")
    v = {"x-ms-version": "2023-11-03"}
    size = MIB
    made = requests.put(
        url,
        headers={**v, "x-ms-blob-type": "PageBlob", "x-ms-blob-content-length": str(size + 512)},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    page = requests.put(
        f"{url}&comp=page",
        data=build_footer(size),
        headers={**v, "x-ms-page-write": "update", "x-ms-range": f"bytes={size}-{size + 511}"},
        timeout=10,
    )
    assert page.status_code == 201, page.text
    # It can't read, list or delete, nor write any other blob.
    assert requests.get(url, headers=v, timeout=10).status_code == 403
    assert requests.delete(url, headers=v, timeout=10).status_code == 403
    other = url.replace(f"/{name}?", f"/other-{name}?")
    denied = requests.put(
        other, headers={**v, "x-ms-blob-type": "BlockBlob"}, data=b"x", timeout=10
    )
    assert denied.status_code == 403
    blob = storage.blobs.get_blob_client(storage.settings.uploads_container, name)
    assert blob.get_blob_properties().size == size + 512
    # The blob exists now: a second ticket for it is refused before a byte is sent.
    again = ticket(catalog_app, function_key, {"BlobName": name})
    assert (again.status_code, again.json()["Code"]) == (409, "UploadExists")


@pytest.mark.parametrize(
    "body",
    [
        {"BlobName": "folder/disk.vhd"},
        {"BlobName": "vm.image.json"},
        {"BlobName": "notes.txt"},
        {"BlobName": "../x.vhd"},
        {"BlobName": "ok.vhd", "ImageName": "bad name"},
        {"BlobName": "ok.vhd", "Extra": 1},
        ["ok.vhd"],
    ],
)
def test_a_ticket_is_only_for_a_disk_at_the_top_of_the_drop_zone(
    catalog_app: AppHost, function_key: str, body: object
) -> None:
    r = ticket(catalog_app, function_key, body)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"Code", "Message"}


def test_a_taken_image_name_is_refused_before_the_upload(
    catalog_app: AppHost, function_key: str, storage: StorageAccount
) -> None:
    load_gallery(catalog_of(storage))
    body = {"BlobName": f"fresh-{uuid.uuid4().hex[:8]}.vhd", "ImageName": EXAMPLE_IMAGE.upper()}
    r = ticket(catalog_app, function_key, body)
    assert (r.status_code, r.json()["Code"]) == (409, "ImageNameTaken")


def test_the_portal_origin_may_call_the_blob_endpoint(
    catalog_app: AppHost, storage: StorageAccount
) -> None:
    url = storage.blobs.get_blob_client(storage.settings.uploads_container, "x.vhd").url

    def preflight(origin: str) -> requests.Response:
        return requests.options(
            url,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "x-ms-blob-type,x-ms-meta-label,x-ms-version",
            },
            timeout=10,
        )

    ok = preflight(catalog_app.base_url)
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == catalog_app.base_url
    assert preflight("http://127.0.0.1:1").status_code == 403
