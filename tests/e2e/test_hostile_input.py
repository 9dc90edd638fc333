"""Hostile input through the running app: OData injection, NULs, newlines, 10 kB values
and unicode in every parameter and path segment. Each answer is a 400 or an empty/404
result, never other data and never a 5xx; no storage key or SAS ever leaves the app,
in a response or in its log."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import quote

import pytest
import requests

from devtools.apphost import AppHost
from shared.adapters.storage import DEV_KEY, StorageAccount
from shared.services.gallery import load_gallery
from tests.e2e.test_catalog_api import catalog_of

# What an attacker would put in a value that reached an OData $filter, plus the awkward.
HOSTILE = [
    "'",
    "''",
    "' or 1 eq 1",
    "' or '1' eq '1",
    "x' or PartitionKey ne '",
    "or PartitionKey ne ''",
    "' or RowKey gt '",
    "Linux' or OS eq 'Windows",
    "Public' or Category ne 'x",
    "$filter=PartitionKey ne ''",
    "&$filter=PartitionKey ne ''",
    "image|",
    "families|",
    "family|ubuntu server 22.04 lts|",
    "*",
    "%",
    "%00",
    "\x00",
    "a\x00b",
    "a\nb",
    "\r\n\r\nX-Injected: 1",
    "\t",
    "..",
    "../../admin/functions",
    "\\",
    "é",
    "\U0001f600" * 3,
    "\u202e\u0000",
    "x" * 10_000,
    "' or 1 eq 1 " * 800,
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
    "x eq x",
    " ",
    "",
]
IDS = [repr(v)[:24] for v in HOSTILE]
NONEMPTY = [v for v in HOSTILE if v.strip()]
NONEMPTY_IDS = [i for i, v in zip(IDS, HOSTILE, strict=True) if v.strip()]
# Path segments: `..` is a dot segment, which URL parsing resolves (to the parent route),
# so it is tested encoded, in test_raw_encoded_paths_are_400_or_404.
SEGMENTS = [v for v in NONEMPTY if v != ".."]
SEGMENT_IDS = [i for i, v in zip(NONEMPTY_IDS, NONEMPTY, strict=True) if v != ".."]

# Secrets that must never appear: the account key (Azurite's well-known one here),
# connection-string keys and signatures of SAS tokens (a redacted one is fine).
SECRETS = [
    re.compile(re.escape(DEV_KEY[:20])),
    re.compile(r"AccountKey\s*=", re.I),
    re.compile(r"SharedAccessSignature\s*=", re.I),
    re.compile(r"[?&]sig=(?!REDACTED)[A-Za-z0-9%+/=]{8,}", re.I),
]

_seen: list[requests.Response] = []


def call(app: AppHost, method: str, path: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("timeout", 30)
    r = requests.request(method, app.base_url + path, **kwargs)
    _seen.append(r)
    assert r.status_code < 500, f"{method} {path[:200]}: {r.status_code} {r.text[:300]}"
    return r


def seg(value: str) -> str:
    return quote(value, safe="")


def refused_or_empty(r: requests.Response, empty_key: str | None = None) -> None:
    """400 or 404 (with a JSON error when the app answered), or 200 with nothing in it."""
    if r.status_code == 200:
        assert empty_key is not None, f"200 for hostile input: {r.text[:300]}"
        body = r.json()
        assert body[empty_key] == [] and body["Count"] == 0, f"data came back: {r.text[:300]}"
        return
    assert r.status_code in (400, 404), f"{r.status_code} {r.text[:300]}"
    if r.content and r.headers.get("Content-Type", "").startswith("application/json"):
        assert set(r.json()) == {"Code", "Message"}


@pytest.fixture(scope="module", autouse=True)
def gallery(catalog_app: AppHost, storage: StorageAccount) -> None:
    load_gallery(catalog_of(storage))


@pytest.fixture(scope="module")
def key(function_key: str) -> dict[str, str]:
    return {"x-functions-key": function_key}


# -- query parameters --------------------------------------------------------------


@pytest.mark.parametrize("value", HOSTILE, ids=IDS)
def test_a_hostile_family_filter_finds_nothing(catalog_app, value: str) -> None:
    r = call(catalog_app, "GET", "/api/images", params={"family": value})
    refused_or_empty(r, "Images")


@pytest.mark.parametrize("param", ["os", "category", "type", "select", "top"])
@pytest.mark.parametrize("value", HOSTILE, ids=IDS)
def test_a_hostile_enum_select_or_top_is_400(catalog_app, param: str, value: str) -> None:
    r = call(catalog_app, "GET", "/api/images", params={param: value})
    assert r.status_code == 400, r.text[:300]


@pytest.mark.parametrize("value", NONEMPTY, ids=NONEMPTY_IDS)
def test_a_hostile_filter_next_to_a_valid_one_is_400(catalog_app, value: str) -> None:
    # Appended to a legitimate value, as an injection would be.
    for param, valid in (("os", "Linux"), ("category", "Public"), ("type", "OSImage")):
        r = call(catalog_app, "GET", "/api/images", params={param: valid + value})
        assert r.status_code == 400, r.text[:300]


@pytest.mark.parametrize("value", NONEMPTY, ids=NONEMPTY_IDS)
def test_a_hostile_continuation_token_is_400(catalog_app, value: str) -> None:
    r = call(catalog_app, "GET", "/api/images", params={"continuationToken": value})
    assert r.status_code == 400, r.text[:300]


@pytest.mark.parametrize(
    "name", ["$filter", "$select", "$top", "filter", "PartitionKey", "family'", "x" * 300]
)
def test_odata_system_parameters_are_unknown_parameters(catalog_app, name: str) -> None:
    r = call(catalog_app, "GET", "/api/images", params={name: "PartitionKey ne ''"})
    assert r.status_code == 400, r.text[:300]


def test_a_raw_odata_query_string_is_refused(catalog_app) -> None:
    raw = "/api/images?$filter=PartitionKey%20ne%20''&$top=1000&family=x'%20or%20'1'%20eq%20'1"
    assert call(catalog_app, "GET", raw).status_code == 400


@pytest.mark.parametrize("value", HOSTILE, ids=IDS)
def test_a_hostile_os_for_latest_is_400(catalog_app, value: str) -> None:
    r = call(catalog_app, "GET", f"/api/families/{seg('Debian 12 Bookworm')}/latest",
             params={"os": value})  # fmt: skip
    assert r.status_code == 400, r.text[:300]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


FORGED_VM_TOKENS = [
    _b64("{}"),
    _b64('{"PartitionKey": "x\' or 1 eq 1", "RowKey": "\' or \'\'=\'"}'),
    _b64('{"NextPartitionKey": "\' or 1 eq 1", "NextRowKey": "x"}'),
    _b64('{"PartitionKey": 1, "RowKey": null}'),
    _b64("[]"),
    _b64('"x"'),
]


@pytest.mark.parametrize("value", HOSTILE + FORGED_VM_TOKENS, ids=IDS + FORGED_VM_TOKENS)
def test_hostile_vm_paging_is_400_or_a_page(catalog_app, value: str) -> None:
    r = call(catalog_app, "GET", "/api/vms", params={"top": value})
    assert r.status_code == 400
    r = call(catalog_app, "GET", "/api/vms", params={"continuationToken": value})
    assert r.status_code in (200, 400), r.text[:300]


# -- path segments -----------------------------------------------------------------

PATHS = [
    ("GET", "/api/images/{}"),
    ("GET", "/api/families/{}/latest"),
    ("GET", "/api/uploads/{}"),
    ("GET", "/api/operations/{}"),
    ("GET", "/api/vms/{}/vm1"),
    ("GET", "/api/vms/svc1/{}"),
]
WRITES = [
    ("PATCH", "/api/images/{}"),
    ("DELETE", "/api/images/{}"),
    ("PUT", "/api/vms/{}/vm1"),
    ("DELETE", "/api/vms/svc1/{}"),
]


@pytest.mark.parametrize(("method", "template"), PATHS, ids=[p for _, p in PATHS])
@pytest.mark.parametrize("value", SEGMENTS, ids=SEGMENT_IDS)
def test_a_hostile_path_segment_is_400_or_404(catalog_app, method, template, value) -> None:
    r = call(catalog_app, method, template.format(seg(value)))
    refused_or_empty(r)


@pytest.mark.parametrize(("method", "template"), WRITES, ids=[f"{m} {p}" for m, p in WRITES])
@pytest.mark.parametrize("value", SEGMENTS, ids=SEGMENT_IDS)
def test_a_hostile_path_segment_of_a_write_is_400_or_404(
    catalog_app, key, method, template, value
) -> None:
    body = {"Label": "x"} if method == "PATCH" else None
    if method == "PUT":
        body = {"State": "Stopped", "OSDisk": {"OS": "Linux", "MediaLink": "https://a/b/c.vhd"}}
    r = call(catalog_app, method, template.format(seg(value)), json=body, headers=key)
    refused_or_empty(r)


@pytest.mark.parametrize(
    "path",
    [
        "/api/images/x'%20or%20'1'%20eq%20'1",
        "/api/images/%27",
        "/api/images/a%00b",
        "/api/images/a%0Ab",
        "/api/images/..%2F..%2Fadmin",
        "/api/images/%2e%2e",
        "/api/families/x%27%20or%20%271%27%20eq%20%271/latest",
        "/api/uploads/..%2F..%2Fimages%2Fx",
        "/api/uploads/%00",
    ],
)
def test_raw_encoded_paths_are_400_or_404(catalog_app, path: str) -> None:
    refused_or_empty(call(catalog_app, "GET", path))


def test_names_are_validated_not_just_looked_up(catalog_app) -> None:
    for name in ("a'b", "a b", "-x", "x" * 257, "a\x00b", "é"):
        r = call(catalog_app, "GET", f"/api/images/{seg(name)}")
        assert r.status_code == 400 and r.json()["Code"] == "InvalidImageName", (name, r.text)
    r = call(catalog_app, "GET", f"/api/vms/{seg('a b')}/vm1")
    assert r.status_code == 400 and r.json()["Code"] == "InvalidVmName"
    r = call(catalog_app, "GET", f"/api/operations/{seg('x' * 65)}")
    assert r.status_code == 400 and r.json()["Code"] == "InvalidOperationId"


# -- keys and bodies ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["' or 1 eq 1", "*", "x" * 10_000, "%00", "null", "undefined"])
def test_a_hostile_function_key_is_401(catalog_app, value: str) -> None:
    # (A header or request line over 8 KiB is refused by the HTTP server itself: 400.)
    expected = (400, 401) if len(value) > 8000 else (401,)
    headers = {"x-functions-key": value}
    assert call(catalog_app, "DELETE", "/api/images/x", headers=headers).status_code in expected
    r = call(catalog_app, "DELETE", "/api/images/x", params={"code": value})
    assert r.status_code in expected


HOSTILE_BODIES = [
    b"' or 1 eq 1",
    b'{"Label": "x", "PartitionKey": "catalog", "RowKey": "image|x"}',
    b'{"ImageFamily": "x\' or PartitionKey ne \'"}',
    b'{"Label": "\\u0000", "ServiceName": "\\u0000"}',
    b"\x00\xff\xfe",
    b"[" * 10_000,  # json.loads raises RecursionError here, not ValueError: was a 500
    b"[" * 10_000 + b"]" * 10_000,
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b'{"Label": "' + b"x" * 20_000 + b'"}',
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_hostile_bodies_are_400_never_500(catalog_app, key, body: bytes) -> None:
    name = "b39f27a8b8c64d52b05eac6a62ebad85__Ubuntu-22_04_5-LTS-amd64-server-20240911-en-us-30GB"
    r = call(catalog_app, "PATCH", f"/api/images/{name}", data=body, headers=key)
    assert r.status_code in (400, 403), r.text[:300]
    image = call(catalog_app, "GET", f"/api/images/{name}").json()
    assert image["Category"] == "Public" and "PartitionKey" not in image
    r = call(catalog_app, "POST", "/api/captures", data=body, headers=key)
    assert r.status_code == 400, r.text[:300]
    r = call(catalog_app, "PUT", "/api/vms/hostile-svc/hostile-vm", data=body, headers=key)
    assert r.status_code == 400, r.text[:300]


def test_hostile_capture_requests_are_400(catalog_app, key) -> None:
    for doc in (
        {"ServiceName": "' or 1 eq 1", "Name": "vm", "ImageName": "img"},
        {"ServiceName": "svc", "Name": "vm\x00", "ImageName": "img"},
        {"ServiceName": "svc", "Name": "vm", "ImageName": "img", "OperationId": "../x"},
        {"ServiceName": "svc", "Name": "vm", "ImageName": "x' or '1' eq '1"},
    ):
        r = call(catalog_app, "POST", "/api/captures", json=doc, headers=key)
        assert r.status_code == 400, r.text[:300]


# -- nothing secret ever leaves ----------------------------------------------------


def _leaks(text: str) -> list[str]:
    return [p.pattern for p in SECRETS if p.search(text)]


def test_ordinary_answers_hold_no_secret(catalog_app, key) -> None:
    # The answers most likely to carry storage details: media links, upload outcomes,
    # health, the document, a VM's disks, errors of every kind.
    for method, path in [
        ("GET", "/api/health"),
        ("GET", "/api/images?top=1000"),
        ("GET", "/api/images?select=MediaLink,OSDiskConfiguration,DataDiskConfigurations"),
        ("GET", "/api/families"),
        ("GET", "/api/openapi.json"),
        ("GET", "/api/vms"),
        ("GET", "/api/uploads/nothing.vhd"),
        ("GET", "/api/images/nothing"),
        ("DELETE", "/api/images/nothing"),
    ]:
        call(catalog_app, method, path, headers=key)
    r = call(catalog_app, "PUT", "/api/vms/leak-svc/leak-vm", headers=key, json={
        "State": "Stopped",
        "OSDisk": {"OS": "Linux", "MediaLink": "https://acct.blob.core.windows.net/vhds/a.vhd?sig=abcdefghijkl"},
    })  # fmt: skip
    assert r.status_code == 400  # a SAS is refused, and not echoed back
    assert "abcdefghijkl" not in r.text


def test_no_response_held_a_storage_key_or_sas(catalog_app) -> None:
    assert _seen, "the tests above should have run first"
    for r in _seen:
        where = f"{r.request.method} {r.request.url[:120]}"
        assert not _leaks(r.text), (where, _leaks(r.text), r.text[:300])
        headers = "\n".join(f"{k}: {v}" for k, v in r.headers.items())
        assert not _leaks(headers), (where, headers)


def test_the_app_log_holds_no_storage_key_or_sas(catalog_app) -> None:
    log = catalog_app.log_path.read_text(encoding="utf-8", errors="replace")
    assert log, "the app wrote no log?"
    assert not _leaks(log), [line for line in log.splitlines() if _leaks(line)][:5]
