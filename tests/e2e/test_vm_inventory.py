"""The VM inventory's list over HTTP: paged with signed tokens, as the image list is."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import requests

from devtools.apphost import AppHost
from shared.adapters.storage import StorageAccount
from shared.services.gallery import load_gallery
from tests.e2e.test_catalog_api import assert_error, catalog_of, flip, get, ok


@pytest.fixture(scope="module")
def three_vms(catalog_app: AppHost, function_key: str, storage: StorageAccount) -> set[str]:
    """Three VMs of a cloud service of this module's own."""
    service = f"inv-{uuid.uuid4().hex[:8]}"
    vhds = f"{storage.blobs.url.rstrip('/')}/{storage.settings.vhds_container}"
    for vm in ("a", "b", "c"):
        body = {
            "State": "Stopped",
            "OSDisk": {"OS": "Linux", "MediaLink": f"{vhds}/{service}-{vm}-os.vhd"},
        }
        r = requests.put(
            f"{catalog_app.base_url}/api/vms/{service}/{vm}",
            json=body,
            headers={"x-functions-key": function_key},
            timeout=10,
        )
        assert r.status_code in (200, 201), r.text
    return {f"{service}/{vm}" for vm in ("a", "b", "c")}


def first_token(app: AppHost) -> str:
    page = ok(get(app, "/api/vms", top=1))
    return str(page["ContinuationToken"])


def test_following_the_tokens_lists_every_vm_once(catalog_app, three_vms) -> None:
    seen: list[str] = []
    params: dict[str, object] = {"top": 1}
    for _ in range(10_000):
        page = ok(get(catalog_app, "/api/vms", **params))
        assert page["Count"] == len(page["VMs"]) <= 1
        seen += [f"{v['ServiceName']}/{v['Name']}" for v in page["VMs"]]
        if "ContinuationToken" not in page:
            break
        params = {"top": 1, "continuationToken": page["ContinuationToken"]}
    assert three_vms <= set(seen)
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("where", [0, 5, 21, 30, -8])
def test_a_tampered_token_is_400(catalog_app, three_vms, where: int) -> None:
    token = first_token(catalog_app)
    tampered = flip(token, where % len(token))
    r = get(catalog_app, "/api/vms", continuationToken=tampered)
    assert_error(r, 400, "InvalidContinuationToken")


def _unsigned(position: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        # What the list used to hand out: the table's position, unsigned.
        _unsigned({"PartitionKey": "!disk|", "RowKey": ""}),
        _unsigned({"PartitionKey": "a", "RowKey": "b"}),
        "x",
        "",
        "A" * 3000,
    ],
)
def test_a_forged_token_is_400(catalog_app, three_vms, token: str) -> None:
    r = get(catalog_app, "/api/vms", continuationToken=token)
    assert_error(r, 400, "InvalidContinuationToken")


def test_a_token_of_the_image_list_is_400_here_and_back(catalog_app, storage, three_vms) -> None:
    load_gallery(catalog_of(storage))
    images_token = ok(get(catalog_app, "/api/images", top=1))["ContinuationToken"]
    r = get(catalog_app, "/api/vms", continuationToken=images_token)
    assert_error(r, 400, "InvalidContinuationToken")
    r = get(catalog_app, "/api/images", continuationToken=first_token(catalog_app))
    assert_error(r, 400, "InvalidContinuationToken")
