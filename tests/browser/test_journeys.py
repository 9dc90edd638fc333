"""Each journey of the portal end to end in headless Chromium, against the running app
and Azurite: browse, find the newest image of a family, upload a real VHD through the
page (and see a rejected one), capture a VM and watch it, edit and remove an image.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from playwright.sync_api import Page, expect

from devtools.apphost import AppHost
from shared.adapters.storage import StorageAccount
from tests.browser.conftest import KEY_STORAGE, Watch, disk, enter_key, screenshot
from tests.e2e.test_captures import make_vm
from tests.vhd_corpus import Corpus

FAMILY = "Ubuntu Server 22.04 LTS"
pytestmark = pytest.mark.azurite


def api(app: AppHost, path: str) -> requests.Response:
    return requests.get(f"{app.base_url}{path}", timeout=10)


def test_newest_image_of_a_family_in_two_clicks(
    page: Page, catalog_app: AppHost, gallery: None, watch: Watch
) -> None:
    newest = api(catalog_app, f"/api/families/{quote(FAMILY)}/latest").json()["ImageName"]
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Image families")
    screenshot(page, "families")
    page.get_by_role("link", name=FAMILY, exact=True).click()  # click 1: the family
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Images of {FAMILY}")
    first = page.locator("tbody tr").first.get_by_role("link").first
    expect(first).to_have_text(newest)  # newest first
    first.click()  # click 2: the image
    expect(page.locator(".lead")).to_have_text(newest)
    expect(page.get_by_role("heading", name="Disks")).to_be_visible()
    # The family page read one page of the family, never the whole catalog.
    lists = [u for m, u in watch.requests if urlsplit(u).path == "/api/images"]
    assert lists and all(parse_qs(urlsplit(u).query)["top"] == ["25"] for u in lists)
    assert all(parse_qs(urlsplit(u).query)["family"] == [FAMILY] for u in lists)


def test_all_images_filters_and_pages_on_the_server(
    page: Page, catalog_app: AppHost, gallery: None, watch: Watch
) -> None:
    page.goto("/#/images")
    expect(page.get_by_role("heading", level=1)).to_have_text("All images")
    expect(page.locator("tbody tr")).to_have_count(25)
    page.get_by_label("OS").select_option("Linux")
    page.get_by_label("Category").select_option("Public")
    page.get_by_label("Type").select_option("OSImage")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"os=Linux.*category=Public|category=Public.*os=Linux"))
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(25)
    first_page = rows.first.locator("td").first.inner_text()
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td")
        assert cells.nth(3).inner_text() == "Linux"
        assert cells.nth(4).inner_text() == "Public"
    screenshot(page, "images")
    page.get_by_role("button", name="Next page").click()
    expect(page.get_by_text("Page 2")).to_be_visible()
    expect(rows.first.locator("td").first).not_to_have_text(first_page)
    page.get_by_role("button", name="Previous page").click()
    expect(rows.first.locator("td").first).to_have_text(first_page)
    # Each page is one request of 25 with a continuation token: never the whole list.
    lists = [
        parse_qs(urlsplit(u).query) for m, u in watch.requests if urlsplit(u).path == "/api/images"
    ]
    assert all(q["top"] == ["25"] for q in lists)
    assert any("continuationToken" in q for q in lists)
    # Opening an image by its exact name; an unknown one shows the API's {Code, Message}.
    watch.expect_http_error(404)
    page.get_by_label("Image name").fill("no-such-image")
    page.get_by_role("button", name="Open").click()
    expect(page.get_by_role("alert")).to_contain_text("ImageNotFound: ")


def _upload(page: Page, path, blob: str, **fields: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/#/uploads")
    page.get_by_label("Disk file", exact=True).set_input_files(str(path))
    page.get_by_label("Blob name").fill(blob)
    for label, value in fields.items():
        page.get_by_label(label).fill(value)
    page.get_by_role("button", name="Upload", exact=True).click()


def test_upload_a_vhd_through_the_page_and_see_it_registered(
    page: Page,
    catalog_app: AppHost,
    function_key: str,
    storage: StorageAccount,
    corpus: Corpus,
    watch: Watch,
) -> None:
    vhd = disk(corpus, "linux_ext4_mbr")
    tag = uuid.uuid4().hex[:8]
    blob = f"portal-{tag}.vhd"
    _upload(
        page,
        vhd,
        blob,
        **{"Label (optional)": "Ubuntu from the browser", "Family (optional)": f"Portal {tag}"},
    )
    enter_key(page, function_key)  # asked once, when the first change needs it
    expect(page.locator(".outcome .status")).to_have_text("Registered", timeout=90_000)
    expect(page.locator("#u-progress")).to_have_attribute("value", "1")
    outcome = page.locator(".outcome")
    expect(outcome).to_contain_text("Linux")
    expect(outcome).to_contain_text("Ubuntu 22.04")
    expect(outcome).to_contain_text("ext4")
    screenshot(page, "upload", focus="#u-progress")
    # Straight to storage through the SAS: created, only non-zero pages written, then done.
    puts = [u for m, u in watch.requests if m == "PUT" and blob in u]
    pages = [u for u in puts if "comp=page" in u]
    size = vhd.stat().st_size
    assert puts[0].split("?")[0].endswith(f"/uploads/{blob}") and "sig=" in puts[0]
    assert 0 < len(pages) < -(-size // (4 * 1024 * 1024)), "pages of zeros were sent"
    assert "comp=metadata" in puts[-1]
    props = storage.blobs.get_blob_client("uploads", blob).get_blob_properties()
    assert props.blob_type == "PageBlob" and props.metadata["uploadstate"] == "complete"
    assert props.metadata["label"] == "Ubuntu from the browser"
    # The key was kept for the session and never put in a URL.
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") == function_key
    assert not any(function_key in u for _, u in watch.requests)
    # The image's page: every field, the disk, what the probe found, the upload that made it.
    outcome.get_by_role("link", name=f"portal-{tag}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ubuntu from the browser")
    disks = page.get_by_role("region", name="Disks")
    expect(disks).to_contain_text("OS disk (Linux)")
    expect(disks).to_contain_text("ReadWrite")
    expect(disks).to_contain_text(f"uploads/{blob}")
    expect(page.get_by_role("region", name="Partitions")).to_contain_text("ext4")
    expect(page.locator(".probe")).to_contain_text("Ubuntu 22.04")
    expect(page.get_by_role("link", name=blob)).to_be_visible()
    screenshot(page, "image", focus="h2:text-is('Disks')")
    # The uploads page lists it with its live status.
    page.get_by_role("navigation").get_by_role("link", name="Uploads").click()
    row = page.locator("tbody tr", has_text=blob)
    expect(row).to_contain_text("Registered")


def test_a_disk_the_catalog_rejects_shows_its_code_and_message(
    page: Page, catalog_app: AppHost, function_key: str, corpus: Corpus, watch: Watch
) -> None:
    page.goto("/")
    page.evaluate(f"k => sessionStorage.setItem('{KEY_STORAGE}', k)", function_key)
    # A blank disk is a valid fixed VHD, so it is sent; the catalog finds no OS on it.
    blob = f"blank-{uuid.uuid4().hex[:8]}.vhd"
    blank = disk(corpus, "blank_fixed")
    _upload(page, blank, blob)
    expect(page.locator(".outcome .status")).to_have_text("Rejected", timeout=90_000)
    expect(page.locator(".outcome [role=alert]")).to_contain_text("OSNotDetermined: ")
    # Only the last page went: the one that holds the footer; the rest is zeros.
    pages = [u for _, u in watch.requests if blob in u and "comp=page" in u]
    assert len(pages) == 1, "pages of zeros were sent"
    # What the catalog can't take (a VDI) is refused in the page, before anything is sent.
    before = len(watch.requests)
    _upload(page, disk(corpus, "vdi"), f"vdi-{uuid.uuid4().hex[:8]}.img")
    expect(page.get_by_role("alert")).to_contain_text("NotADiskImage: This is a VDI disk")
    assert not [u for m, u in watch.requests[before:] if m in ("POST", "PUT")]


def test_a_qcow2_is_sent_as_it_is_and_converted(
    page: Page, catalog_app: AppHost, function_key: str, corpus: Corpus, watch: Watch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    qcow2 = tmp_path / "ubuntu.qcow2"
    vhd = disk(corpus, "linux_ext4_mbr")
    subprocess.run(
        ["qemu-img", "convert", "-q", "-f", "vpc", "-O", "qcow2", str(vhd), str(qcow2)], check=True
    )
    page.goto("/")
    page.evaluate(f"k => sessionStorage.setItem('{KEY_STORAGE}', k)", function_key)
    blob = f"qcow-{uuid.uuid4().hex[:8]}.qcow2"
    _upload(page, qcow2, blob, **{"Label (optional)": "Converted in the catalog"})
    expect(page.locator(".outcome .status")).to_have_text("Registered", timeout=120_000)
    outcome = page.locator(".outcome")
    expect(outcome).to_contain_text("qcow2")  # converted from
    expect(outcome).to_contain_text("Ubuntu 22.04")
    # As it is: blocks of the file, then the block list with the metadata; no page writes.
    sent = [u for m, u in watch.requests if m == "PUT" and blob in u]
    assert any("comp=block&" in u for u in sent) and "comp=blocklist" in sent[-1]
    assert not any("comp=page" in u for u in sent)


def test_capture_a_vm_and_watch_it_finish(
    page: Page, catalog_app: AppHost, function_key: str, storage: StorageAccount
) -> None:
    service, vm = make_vm(catalog_app, function_key, storage, data=1)
    page.goto("/#/vms")
    page.evaluate(f"k => sessionStorage.setItem('{KEY_STORAGE}', k)", function_key)
    expect(page.get_by_role("heading", level=1)).to_have_text("VM inventory")
    page.get_by_role("button", name=f"Capture {vm}…").click()
    expect(page.get_by_label("VM", exact=True)).to_have_value(f"{service}/{vm}")
    screenshot(page, "vms")
    image = f"cap-{vm}"
    page.get_by_label("OS state").select_option("Specialized")
    page.get_by_label("Image name").fill(image)
    page.get_by_role("button", name="Capture", exact=True).click()
    expect(page).to_have_url(re.compile(r"#/operations/"))
    expect(page.locator(".status")).to_have_text("Succeeded", timeout=90_000)
    page.get_by_role("link", name=image).click()
    expect(page.locator(".lead")).to_have_text(image)
    disks = page.get_by_role("region", name="Disks")
    expect(disks.locator("tbody tr")).to_have_count(2)
    expect(disks).to_contain_text("Data disk")
    expect(page.get_by_text("Captured by operation")).to_be_visible()
    # The operations page lists it, newest first.
    page.get_by_role("navigation").get_by_role("link", name="Operations").click()
    expect(page.locator("tbody tr").first).to_contain_text(image)
    expect(page.locator("tbody tr").first).to_contain_text("Succeeded")
    screenshot(page, "operations")


def test_a_capture_the_api_refuses_shows_code_and_message(
    page: Page, catalog_app: AppHost, function_key: str, storage: StorageAccount, watch: Watch
) -> None:
    make_vm(catalog_app, function_key, storage, data=0)
    watch.expect_http_error(400)
    page.goto("/#/vms")
    page.evaluate(f"k => sessionStorage.setItem('{KEY_STORAGE}', k)", function_key)
    page.locator("tbody tr").first.get_by_role("button").first.click()
    page.get_by_label("Image name").fill("bad name with spaces")
    page.get_by_label("Image name").evaluate("e => e.removeAttribute('pattern')")
    page.get_by_role("button", name="Capture", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text(re.compile(r"^Invalid\w+: "))


def _user_image(catalog_app: AppHost, key: str, storage: StorageAccount) -> tuple[str, list[str]]:
    service, vm = make_vm(catalog_app, key, storage, data=1)
    image = f"rm-{vm}"
    r = requests.post(
        f"{catalog_app.base_url}/api/captures",
        json={"ServiceName": service, "Name": vm, "ImageName": image, "OSState": "Specialized"},
        headers={"x-functions-key": key},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 90
    while api(catalog_app, f"/api/images/{image}").status_code != 200:
        assert time.monotonic() < deadline, "the capture did not finish"
        time.sleep(0.3)
    doc = api(catalog_app, f"/api/images/{image}").json()
    disks = [doc["OSDiskConfiguration"]["SourceBlob"]]
    disks += [d["SourceBlob"] for d in doc["DataDiskConfigurations"]]
    return image, disks


def test_edit_an_image(
    page: Page, catalog_app: AppHost, function_key: str, storage: StorageAccount, watch: Watch
) -> None:
    image, _ = _user_image(catalog_app, function_key, storage)
    watch.expect_http_error(401)
    page.goto(f"/#/images/{image}")
    page.get_by_label("Label", exact=True).fill("Edited in the portal")
    page.get_by_label("Family", exact=True).fill("Portal edits")
    page.get_by_label("Description").fill("Changed from a browser")
    page.get_by_role("button", name="Save changes").click()
    enter_key(page, "wrong-key")  # a wrong key is refused, and asked for again
    expect(page.get_by_role("dialog", name="Function key")).to_contain_text("not accepted")
    enter_key(page, function_key)
    expect(page.get_by_role("heading", level=1)).to_have_text("Edited in the portal")
    doc = api(catalog_app, f"/api/images/{image}").json()
    assert (doc["Label"], doc["ImageFamily"], doc["Description"]) == (
        "Edited in the portal",
        "Portal edits",
        "Changed from a browser",
    )


def test_remove_an_image_with_its_disks_after_a_confirmation(
    page: Page, catalog_app: AppHost, function_key: str, storage: StorageAccount
) -> None:
    image, disks = _user_image(catalog_app, function_key, storage)
    page.goto(f"/#/images/{image}")
    page.evaluate(f"k => sessionStorage.setItem('{KEY_STORAGE}', k)", function_key)
    page.get_by_label("Also delete its disk blobs").check()
    page.get_by_role("button", name="Remove image…").click()
    dialog = page.get_by_role("dialog", name="Remove this image?")
    expect(dialog).to_contain_text(image)
    for d in disks:
        expect(dialog).to_contain_text(d)  # names what will be deleted
    dialog.get_by_role("button", name="Cancel").click()
    assert api(catalog_app, f"/api/images/{image}").status_code == 200  # nothing happened
    page.get_by_role("button", name="Remove image…").click()
    dialog.get_by_role("button", name="Remove", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text(f"The image {image} was removed")
    assert api(catalog_app, f"/api/images/{image}").status_code == 404
    for d in disks:
        container, blob = d.split("/", 1)
        assert not storage.blobs.get_blob_client(container, blob).exists()


def test_retire_an_image_from_the_portal(
    page: Page, catalog_app: AppHost, function_key: str, storage: StorageAccount, watch: Watch
) -> None:
    """Lifecycle from the Edit form: deprecate the newest image of a family in favour of
    the one before it, hold it back, give it an end of life and protect it; "latest" moves
    back, and removing it is refused with the reason."""
    older, _ = _user_image(catalog_app, function_key, storage)
    newer, _ = _user_image(catalog_app, function_key, storage)
    family = f"Portal lifecycle {newer[-8:]}"
    for name in (older, newer):
        r = requests.patch(
            f"{catalog_app.base_url}/api/images/{name}",
            json={"ImageFamily": family},
            headers={"x-functions-key": function_key},
            timeout=10,
        )
        assert r.status_code == 200, r.text
    latest = f"/api/families/{quote(family)}/latest"
    assert api(catalog_app, latest).json()["ImageName"] == newer

    page.goto(f"/#/images/{newer}")
    page.evaluate(f"k => sessionStorage.setItem('{KEY_STORAGE}', k)", function_key)
    page.get_by_label("State").select_option("Deprecated")
    page.get_by_label("Replaced by").fill(older)
    page.get_by_label("End of life").fill("2030-01-31")
    page.get_by_label("Held back from “latest”").check()
    page.get_by_label("Deletion protection").check()
    page.get_by_role("button", name="Save changes").click()
    deadline = time.monotonic() + 30
    while (doc := api(catalog_app, f"/api/images/{newer}").json())["State"] != "Deprecated":
        assert time.monotonic() < deadline, "the change was not saved"
        time.sleep(0.2)
    assert (doc["State"], doc["ReplacedBy"], doc["ExcludeFromLatest"]) == (
        "Deprecated",
        older,
        True,
    )
    assert (doc["EndOfLifeDate"][:10], doc["DeletionProtection"]) == ("2030-01-31", True)
    assert api(catalog_app, latest).json()["ImageName"] == older
    # the form shows what is stored
    page.reload()
    expect(page.get_by_label("State")).to_have_value("Deprecated")
    expect(page.get_by_label("Deletion protection")).to_be_checked()

    watch.expect_http_error(409)
    page.get_by_role("button", name="Remove image…").click()
    page.get_by_role("dialog", name="Remove this image?").get_by_role(
        "button", name="Remove"
    ).click()
    expect(page.get_by_role("alert")).to_contain_text("protect")
    assert api(catalog_app, f"/api/images/{newer}").status_code == 200
