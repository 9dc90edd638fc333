"""An image's text fields, end to end: every way in checks them the same way.

A value no image may hold (a control character, a tab in a family, a lone
surrogate, one too long) is refused naming the field, in each way's own terms:
an upload is `Rejected` with `InvalidMetadata` (its blob left as it was), a
manifest with `InvalidManifest`, PATCH and captures with a JSON 400, the classic
API with its XML 400. And every JSON answer is strict JSON: UTF-8, with no lone
surrogate, even when an error repeats what the request said.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests

from devtools.apphost import AppHost
from shared.adapters.storage import StorageAccount
from shared.settings import DEFAULTS
from tests.e2e.test_catalog_api import Register, make_register
from tests.e2e.test_uploads import drop, outcome, unique

_answers: list[requests.Response] = []


def call(app: AppHost, method: str, path: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("timeout", 30)
    r = requests.request(method, f"{app.base_url}{path}", **kwargs)
    _answers.append(r)
    assert r.status_code < 500, f"{method} {path}: {r.status_code} {r.text[:300]}"
    return r


def strict_json(r: requests.Response) -> Any:
    """The answer's document, read as a strict parser would: UTF-8, no lone surrogate."""
    doc = json.loads(r.content.decode("utf-8"))
    json.dumps(doc, ensure_ascii=False).encode("utf-8")  # a lone surrogate can't be encoded
    return doc


def refused(r: requests.Response, field: str, code: str = "InvalidParameter") -> str:
    assert r.status_code == 400, f"{r.status_code} {r.text[:300]}"
    error = strict_json(r)
    assert error["Code"] == code, error
    assert field in error["Message"], error
    return str(error["Message"])


@pytest.fixture(scope="module")
def register(catalog_app: AppHost, storage: StorageAccount, disk: Any) -> Register:
    return make_register(catalog_app, storage, disk("blank_fixed"))


@pytest.fixture(scope="module")
def key(function_key: str) -> dict[str, str]:
    return {"x-functions-key": function_key}


@pytest.fixture(scope="module")
def user_image(register: Register) -> str:
    return register("text-fields", label="Before", imagefamily="Text fields")


# -- uploads -------------------------------------------------------------------------


# Metadata travels in HTTP headers, which carry no control character but the tab.
@pytest.mark.parametrize(
    ("key_", "value", "said"),
    [
        ("imagefamily", "Ubuntu\t22.04", "must not contain a control character (U+0009"),
        ("label", "x" * 7000, "must be at most 4096 characters, not 7000"),
        ("imagefamily", "f" * 257, "must be at most 256 characters, not 257"),
        ("description", "a\tb", "must not contain a control character (U+0009"),
    ],
    ids=["tab-in-family", "label-7000", "family-257", "tab-in-description"],
)
def test_upload_metadata_no_image_may_hold_is_rejected_naming_it(
    catalog_app, storage, disk, key_: str, value: str, said: str
) -> None:
    name = unique("bad-metadata")
    drop(storage, disk("blank_fixed"), name, {"os": "Linux", key_: value})
    result = outcome(catalog_app, name)
    assert result["Status"] == "Rejected", result
    assert result["Error"]["Code"] == "InvalidMetadata"
    assert result["Error"]["Message"].startswith(f"blob metadata {key_}: {said}"), result
    # No image, no family, and the blob is left as it was: there, and not leased.
    stem = name[: -len(".vhd")]
    assert call(catalog_app, "GET", f"/api/images/{stem}").status_code == 404
    families = strict_json(call(catalog_app, "GET", "/api/families"))["Families"]
    assert value not in {f["ImageFamily"] for f in families}
    blob = storage.blobs.get_blob_client(storage.settings.uploads_container, name)
    properties = blob.get_blob_properties()
    assert properties.lease.state == "available"
    assert properties.metadata[key_] == value
    blob.delete_blob()


def test_a_manifest_field_no_image_may_hold_is_rejected_naming_it(catalog_app, storage) -> None:
    stem = f"badtext-{uuid.uuid4().hex[:6]}"
    doc = {"ImageFamily": "SQL\tVMs", "OSDisk": {"Blob": f"{stem}.image/os.vhd"}}
    blob = storage.blobs.get_blob_client(storage.settings.uploads_container, f"{stem}.image.json")
    blob.upload_blob(json.dumps(doc).encode(), overwrite=True)
    result = outcome(catalog_app, f"{stem}.image.json")
    assert result["Error"]["Code"] == "InvalidManifest", result
    assert (
        "ImageFamily: Value error, must not contain a control character"
        in (result["Error"]["Message"])
    )


# -- PATCH ---------------------------------------------------------------------------

BAD_PATCHES = [
    (b'{"Label": "a\\u0000b"}', "Label"),
    (b'{"Label": "\\ud800"}', "Label"),
    (b'{"label": "x\\udc00y"}', "Label"),
    (b'{"ImageFamily": "Ubuntu\\t22.04"}', "ImageFamily"),
    (b'{"Description": "a\\u0085b"}', "Description"),
    (b'{"Eula": "a\\u007fb"}', "Eula"),
    (b'{"RecommendedVMSize": "Small\\uffff"}', "RecommendedVMSize"),
    (b'{"Label": "' + b"x" * 4097 + b'"}', "Label"),
    (b'{"ImageFamily": "' + b"f" * 257 + b'"}', "ImageFamily"),
]


@pytest.mark.parametrize(("body", "field"), BAD_PATCHES, ids=range(len(BAD_PATCHES)))
def test_patch_refuses_a_value_no_image_may_hold(
    catalog_app, user_image, key, body: bytes, field: str
) -> None:
    r = call(catalog_app, "PATCH", f"/api/images/{user_image}", data=body, headers=key)
    refused(r, f"{field}: ")
    image = strict_json(call(catalog_app, "GET", f"/api/images/{user_image}"))
    assert (image["Label"], image["ImageFamily"]) == ("Before", "Text fields")


def test_patch_keeps_what_every_way_in_accepts(catalog_app, register, key) -> None:
    name = register("text-ok")
    changes = {"Label": " " + "é😀" * 2000, "ImageFamily": "f" * 256, "Description": ""}
    r = call(catalog_app, "PATCH", f"/api/images/{name}", json=changes, headers=key)
    assert r.status_code == 200, r.text[:300]
    image = strict_json(r)
    assert (image["Label"], image["ImageFamily"]) == (changes["Label"], changes["ImageFamily"])
    assert "Description" not in image  # "" clears it, as in the classic API
    call(catalog_app, "DELETE", f"/api/images/{name}", params={"deleteVhd": "true"}, headers=key)


# -- the classic API -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("element", "value"),
    [("Label", "a\x7fb"), ("Label", "a\x9fb"), ("ImageFamily", "a&#9;b"), ("Eula", "a\u0085b")],
)
def test_classic_update_refuses_a_control_character(
    catalog_app, user_image, key, element: str, value: str
) -> None:
    body = (
        f"<OSImage xmlns='http://schemas.microsoft.com/windowsazure'>"
        f"<{element}>{value}</{element}></OSImage>"
    ).encode()
    subscription = DEFAULTS["CLASSIC_SUBSCRIPTION_ID"]
    r = requests.put(
        f"{catalog_app.base_url}/{subscription}/services/images/{user_image}",
        data=body,
        headers={**key, "x-ms-version": "2014-10-01", "Content-Type": "application/xml"},
        timeout=30,
    )
    assert r.status_code == 400, r.text[:300]
    assert r.headers["content-type"].startswith("application/xml")
    assert f"{element}: must not contain a control character".encode() in r.content
    image = strict_json(call(catalog_app, "GET", f"/api/images/{user_image}"))
    assert (image["Label"], image["ImageFamily"]) == ("Before", "Text fields")
    assert "Eula" not in image


# -- captures and the VM inventory ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"ImageFamily": "Fam\\tily"}', "ImageFamily"),
        (b'{"ImageLabel": "a\\u0000"}', "ImageLabel"),
        (b'{"Description": "\\ud800"}', "Description"),
        (b'{"ImageLabel": "' + b"x" * 4097 + b'"}', "ImageLabel"),
        # the error repeats the name it refuses: still strict JSON
        (b'{"ImageName": "a\\ud800"}', "ImageName"),
    ],
)
def test_a_capture_request_with_a_bad_text_field_is_400(
    catalog_app, key, body: bytes, field: str
) -> None:
    doc = {"ServiceName": "svc", "Name": "vm", "ImageName": "img", **json.loads(body)}
    raw = json.dumps(doc).encode()  # json.dumps keeps "\ud800" as its escape
    r = call(catalog_app, "POST", "/api/captures", data=raw, headers=key)
    refused(r, field, "InvalidCaptureRequest")


@pytest.mark.parametrize("char", ["\\u0000", "\\u007f", "\\u0090", "\\ud800"])
def test_a_vm_disk_link_with_a_control_character_is_400(catalog_app, key, char: str) -> None:
    link = f"https://acct.blob.core.windows.net/vhds/a{char}.vhd"
    body = f'{{"State": "Stopped", "OSDisk": {{"OS": "Linux", "MediaLink": "{link}"}}}}'
    r = call(catalog_app, "PUT", "/api/vms/text-svc/text-vm", data=body.encode(), headers=key)
    refused(r, "OSDisk.MediaLink")
    assert call(catalog_app, "GET", "/api/vms/text-svc/text-vm").status_code == 404


# -- every answer ----------------------------------------------------------------------


def test_every_json_answer_above_was_strict_json(catalog_app) -> None:
    assert len(_answers) > 20, "the tests above should have run first"
    for r in _answers:
        if r.headers.get("Content-Type", "").startswith("application/json"):
            strict_json(r)
