"""MediaLinks: one parser for every way a disk's URL comes in (classic API, captures, VMs)."""

from __future__ import annotations

import json

import pytest
from azure.storage.blob import BlobServiceClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.domain.disks import (
    MAX_LINK,
    MEDIA_LINK,
    InvalidMediaLink,
    MediaLinkElsewhere,
    check_media_link,
    parse_media_link,
)
from shared.domain.vms import STORED, VirtualMachine, VmBody
from shared.services import classic as cx

AZURITE = "http://127.0.0.1:10000/devstoreaccount1"
AZURE = "https://acct.blob.core.windows.net/"


@pytest.mark.parametrize(
    ("account", "link", "container", "blob"),
    [
        (AZURITE, f"{AZURITE}/vhds/x.vhd", "vhds", "x.vhd"),
        (AZURITE, "http://127.0.0.1:10000/DevStoreAccount1/vhds/x.vhd", "vhds", "x.vhd"),
        (AZURITE, f"{AZURITE}/vhds/disk%201.vhd", "vhds", "disk 1.vhd"),
        (AZURITE, f"{AZURITE}/vhds/%C3%A9t%C3%A9.vhd", "vhds", "été.vhd"),
        (AZURITE, f"{AZURITE}/vhds/été.vhd", "vhds", "été.vhd"),
        (AZURITE, f"{AZURITE}/vhds/a/b/c.vhd", "vhds", "a/b/c.vhd"),
        (AZURITE, f"{AZURITE}/vhds/...vhd", "vhds", "...vhd"),
        (AZURITE, f"{AZURITE}/vhds/.hidden/x..vhd", "vhds", ".hidden/x..vhd"),
        (AZURITE, f"{AZURITE}/vhds/a%252F..%252Fb.vhd", "vhds", "a%2F..%2Fb.vhd"),  # literal
        (AZURITE, f"{AZURITE}/my-disks-2/x.vhd", "my-disks-2", "x.vhd"),
        (AZURE, "http://ACCT.blob.core.windows.net/uploads/a/b.vhd", "uploads", "a/b.vhd"),
        (AZURE, "https://acct.blob.core.windows.net/abc/x.vhd", "abc", "x.vhd"),
        (AZURE, f"https://acct.blob.core.windows.net/{'c' * 63}/x.vhd", "c" * 63, "x.vhd"),
    ],
)
def test_a_link_of_our_account_names_its_container_and_blob(
    account: str, link: str, container: str, blob: str
) -> None:
    assert parse_media_link(link, account) == (container, blob)
    client = cx.blob_for_media_link(BlobServiceClient(account), link)
    assert (client.container_name, client.blob_name) == (container, blob)


@pytest.mark.parametrize(
    "link",
    [
        "https://other.blob.core.windows.net/vhds/a.vhd",
        "http://127.0.0.1:10001/devstoreaccount1/vhds/a.vhd",  # another port
        "http://localhost:10000/devstoreaccount1/vhds/a.vhd",
        "http://127.0.0.1:10000/otheraccount/vhds/a.vhd",
    ],
)
def test_a_link_elsewhere_is_told_apart(link: str) -> None:
    with pytest.raises(MediaLinkElsewhere) as e:
        parse_media_link(link, AZURITE)
    assert e.value.code == "InvalidMediaLink" and e.value.status == 400
    assert AZURITE in e.value.message


TRAVERSALS = [
    "vhds%2F..%2Fuploads/x.vhd",
    "vhds%2f..%2fuploads/x.vhd",
    "vhds/a%2Fb.vhd",
    "vhds/a%5Cb.vhd",
    "vhds/a%5cb.vhd",
    "vhds/a\\b.vhd",
    "vhds/../uploads/x.vhd",
    "vhds/./x.vhd",
    "vhds/%2E%2E/uploads/x.vhd",
    "vhds/.%2e/uploads/x.vhd",
    "vhds/%2e/x.vhd",
    "vhds/x/..",
    "vhds//x.vhd",
    "vhds/x.vhd/",
    "..%2Fuploads/x.vhd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_segment_steps_out_or_hides_a_separator(path: str) -> None:
    link = f"{AZURITE}/{path}"
    with pytest.raises(InvalidMediaLink) as e:
        parse_media_link(link, AZURITE)
    assert not isinstance(e.value, MediaLinkElsewhere)
    with pytest.raises(InvalidMediaLink):
        check_media_link(link)  # the rule needs no account
    with pytest.raises(InvalidMediaLink):
        cx.blob_for_media_link(BlobServiceClient(AZURITE), link)


@pytest.mark.parametrize(
    "link",
    [
        f"{AZURITE}/vhds/x.vhd?sv=2020&sig=x",
        f"{AZURITE}/vhds/x.vhd?",
        f"{AZURITE}/vhds/x.vhd#top",
        f"{AZURITE}/vhds/x\x00.vhd",
        f"{AZURITE}/vhds/x\t.vhd",
        f"{AZURITE}/vhds/x\n",
        f"{AZURITE}/vhds/x\x85.vhd",
        f"{AZURITE}/vhds/x .vhd",
        f"{AZURITE}/vhds/x\u2028.vhd",
        f"{AZURITE}/vhds/x\ud800.vhd",
        f"{AZURITE}/vhds/x\uffff.vhd",
        f"{AZURITE}/vhds/x%00.vhd",
        f"{AZURITE}/vhds/x%1F.vhd",
        f"{AZURITE}/vhds/x%7f.vhd",
        f"{AZURITE}/vhds/x%C2%85.vhd",  # a C1 control, in UTF-8
        f"{AZURITE}/vhds/x%EF%BF%BF.vhd",  # U+FFFF
        f"{AZURITE}/vhds/x%80.vhd",  # not UTF-8
        f"{AZURITE}/vhds/x%C3.vhd",
        f"{AZURITE}/vhds/x%zz.vhd",
        f"{AZURITE}/vhds/x%4",
        f"{AZURITE}/vhds/x%",
        "ftp://127.0.0.1:10000/devstoreaccount1/vhds/a.vhd",
        "HTTP://127.0.0.1:10000/devstoreaccount1/vhds/a.vhd",
        "vhds/a.vhd",
        "http:///devstoreaccount1/vhds/a.vhd",
        "http://user@127.0.0.1:10000/devstoreaccount1/vhds/a.vhd",
        "http://127.0.0.1%3A10000/devstoreaccount1/vhds/a.vhd",
        "",
    ],
)
def test_a_link_that_is_no_plain_blob_url_is_refused(link: str) -> None:
    with pytest.raises(InvalidMediaLink) as e:
        parse_media_link(link, AZURITE)
    assert not isinstance(e.value, MediaLinkElsewhere)
    assert e.value.status == 400
    # The message can go into JSON and XML as it is: no control character is echoed.
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in e.value.message)
    assert "\ud800" not in e.value.message and "\uffff" not in e.value.message


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("vhds", "names no blob"),
        ("", "names no blob"),
        ("ab/x.vhd", "not a container name"),
        (f"{'c' * 64}/x.vhd", "not a container name"),
        ("Vhds/x.vhd", "not a container name"),
        ("-vhds/x.vhd", "not a container name"),
        ("vhds-/x.vhd", "not a container name"),
        ("vh--ds/x.vhd", "not a container name"),
        ("$root/x.vhd", "not a container name"),
        ("vh%20ds/x.vhd", "not a container name"),
        (f"vhds/{'b' * 1025}", "at most 1024"),
        ("vhds/" + "/".join(["b"] * 255), "254 segments"),
    ],
)
def test_the_container_and_blob_names_keep_azures_rules(path: str, why: str) -> None:
    with pytest.raises(InvalidMediaLink, match=why):
        parse_media_link(f"{AZURITE}/{path}".rstrip("/"), AZURITE)


def test_an_over_long_link_and_a_non_string_are_refused() -> None:
    with pytest.raises(InvalidMediaLink, match=str(MAX_LINK)):
        check_media_link(f"{AZURITE}/vhds/{'b' * MAX_LINK}")
    with pytest.raises(InvalidMediaLink):
        check_media_link(42)  # type: ignore[arg-type]


def test_the_account_free_check_gives_the_host_and_decoded_segments() -> None:
    assert check_media_link("http://a/b") == ["a", "b"]
    assert check_media_link(f"{AZURITE}/vhds/a%20b/c.vhd") == [
        "127.0.0.1:10000",
        "devstoreaccount1",
        "vhds",
        "a b",
        "c.vhd",
    ]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40))
def test_any_path_parses_to_a_clean_name_or_is_refused(path: str) -> None:
    """Never another exception, and never a name that steps out of its container."""
    try:
        container, blob = parse_media_link(f"{AZURITE}/vhds/{path}", AZURITE)
    except InvalidMediaLink:
        return
    assert container == "vhds"
    parts = blob.split("/")
    assert all(p not in ("", ".", "..") for p in parts)
    assert "\\" not in blob
    assert not any(ord(c) < 0x20 for c in blob)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(MEDIA_LINK, fullmatch=True))
def test_what_the_pattern_admits_the_check_admits_unless_an_escape_is_no_text(
    link: str,
) -> None:
    """The OpenAPI document states MEDIA_LINK; the code adds only the escapes' decoding."""
    try:
        check_media_link(link)
    except InvalidMediaLink as e:
        lone_surrogate = any("\ud800" <= c <= "\udfff" for c in link)  # no ECMA class says it
        assert "percent-encoded" in e.message or len(link) > MAX_LINK or lone_surrogate


# -- the VM inventory ------------------------------------------------------------------


def _vm_body(link: str) -> dict[str, object]:
    return {"State": "Stopped", "OSDisk": {"OS": "Linux", "MediaLink": link}}


@pytest.mark.parametrize("path", ["vhds%2F..%2Fuploads/x.vhd", "vhds/../x.vhd", "vhds/a%5Cb"])
def test_a_vm_body_refuses_a_link_no_account_could_hold(path: str) -> None:
    with pytest.raises(ValidationError, match="MediaLink"):
        VmBody.model_validate(_vm_body(f"{AZURITE}/{path}"))
    data = {"State": "Stopped", "OSDisk": {"OS": "Linux", "MediaLink": f"{AZURITE}/vhds/x.vhd"}}
    data["DataDisks"] = [{"Lun": 0, "MediaLink": f"{AZURITE}/{path}"}]
    with pytest.raises(ValidationError, match="DataDisks"):
        VmBody.model_validate(data)


def test_a_stored_vm_record_reads_back_with_the_links_it_was_stored_with() -> None:
    link = f"{AZURITE}/vhds%2F..%2Fuploads/x.vhd"
    record = json.dumps({**_vm_body(link), "ServiceName": "svc", "Name": "vm"})
    vm = VirtualMachine.model_validate_json(record, context=STORED)
    assert vm.OSDisk.MediaLink == link
    with pytest.raises(ValidationError):
        VirtualMachine.model_validate_json(record)
