"""The classic Service Management XML API, end to end, driven by the unmodified classic client.

The platform gallery is loaded into the running app's catalog; the
`azure-servicemanagement-legacy` client is pointed at the local runner over
plain http with the function key as its credential (PLATFORM.md). User images
come from small real disks: dropped into `uploads` (registered by the blob
trigger) or put in `vhds` and registered with Add OS Image.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
import requests
from azure.common import AzureConflictHttpError, AzureHttpError, AzureMissingResourceHttpError
from azure.core.exceptions import HttpResponseError
from azure.servicemanagement import (
    DataDiskConfiguration,
    OSDiskConfiguration,
    OSImage,
    ServiceManagementService,
    VMImage,
)

from devtools.apphost import AppHost
from devtools.upload import upload_page_blob
from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.storage import StorageAccount
from shared.services.gallery import GALLERY, load_gallery
from shared.settings import DEFAULTS
from tests.e2e.test_uploads import drop, outcome, unique

SUBSCRIPTION = DEFAULTS["CLASSIC_SUBSCRIPTION_ID"]
NS = "{http://schemas.microsoft.com/windowsazure}"
GALLERY_IMAGES: list[dict[str, Any]] = json.loads(GALLERY.read_text(encoding="utf-8"))["images"]
GALLERY_OS = [d for d in GALLERY_IMAGES if d["ImageType"] == "OSImage"]
GALLERY_VM = [d for d in GALLERY_IMAGES if d["ImageType"] == "VMImage"]


@pytest.fixture(scope="module")
def gallery(storage: StorageAccount) -> None:
    load_gallery(ImageCatalog(storage.tables.get_table_client(storage.settings.images_table)))


@pytest.fixture(scope="module")
def sms(classic_client: ServiceManagementService, gallery: None) -> ServiceManagementService:
    return classic_client


def api(app: AppHost, path: str, **params: Any) -> Any:
    r = requests.get(f"{app.base_url}{path}", params=params, timeout=30)
    r.raise_for_status()
    return r.json()


def succeeded(sms: ServiceManagementService, result: Any) -> None:
    """Follow an asynchronous call's request id with Get Operation Status to Succeeded."""
    assert result is not None and result.request_id, "no x-ms-request-id on an async call"
    deadline = time.monotonic() + 30
    while (op := sms.get_operation_status(result.request_id)).status == "InProgress":
        assert time.monotonic() < deadline, "the operation never finished"
        time.sleep(0.2)
    assert (op.id, op.status, op.http_status_code) == (result.request_id, "Succeeded", "200")


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


# -- reading the catalog ---------------------------------------------------------------


def test_os_and_vm_images_by_family_agree_with_the_json_api(catalog_app, sms) -> None:
    # Retried a few times: an upload from another test may still be registering.
    for attempt in range(5):
        os_images, vm_images = sms.list_os_images(), sms.list_vm_images()
        classic = Counter(
            i.image_family.lower() for i in [*os_images, *vm_images] if i.image_family
        )
        families = api(catalog_app, "/api/families")["Families"]
        json_api = {f["ImageFamily"].lower(): f["ImageCount"] for f in families}
        if classic == json_api or attempt == 4:
            break
        time.sleep(1)
    assert classic == json_api
    names = {i.name for i in os_images}
    assert {d["ImageName"] for d in GALLERY_OS} <= names
    assert not names & {d["ImageName"] for d in GALLERY_VM}  # VM images are listed apart
    assert {i.category for i in os_images} <= {"Public", "Community", "User"}
    assert {"Public", "Community"} <= {i.category for i in os_images}

    # One family in detail: the same images with the same fields.
    family = Counter(d["ImageFamily"] for d in GALLERY_OS).most_common(1)[0][0]
    ours = {i.name: i for i in os_images if i.image_family == family}
    theirs = api(catalog_app, "/api/images", family=family, type="OSImage", top=1000)["Images"]
    assert len(ours) > 3
    assert set(ours) == {j["ImageName"] for j in theirs}
    for j in theirs:
        i = ours[j["ImageName"]]
        assert (i.label, i.os, i.category, i.logical_size_in_gb, i.media_link) == (
            j["Label"],
            j["OS"],
            j["Category"],
            j["LogicalSizeInGB"],
            j["MediaLink"],
        )
        assert (i.is_premium, i.show_in_gui, i.publisher_name) == (
            j["IsPremium"],
            j["ShowInGui"],
            j["PublisherName"],
        )
        assert (i.location, i.eula, i.description) == (
            j.get("Location"),
            j.get("Eula"),
            j.get("Description"),
        )
        assert when(i.published_date) == when(j["PublishedDate"])


def test_one_os_image_is_read_and_other_names_are_not_found(catalog_app, sms) -> None:
    name = GALLERY_OS[0]["ImageName"]
    image = sms.get_os_image(name)
    j = api(catalog_app, f"/api/images/{name}")
    assert (image.name, image.label, image.image_family) == (name, j["Label"], j["ImageFamily"])
    assert (image.icon_uri, image.small_icon_uri, image.privacy_uri) == (
        j["IconUri"],
        j["SmallIconUri"],
        j["PrivacyUri"],
    )
    with pytest.raises(AzureMissingResourceHttpError, match="ResourceNotFound"):
        sms.get_os_image("no-such-image-anywhere")
    with pytest.raises(AzureMissingResourceHttpError, match="is a VMImage, not an OSImage"):
        sms.get_os_image(GALLERY_VM[0]["ImageName"])


def test_os_image_details_add_where_the_image_is_replicated(catalog_app, sms) -> None:
    doc = GALLERY_OS[0]
    details = sms.get_os_image_details(doc["ImageName"])
    assert (details.name, details.label, details.image_family) == (
        doc["ImageName"],
        doc["Label"],
        doc["ImageFamily"],
    )
    assert [(r.location, r.progress) for r in details.replication_progress] == [
        (where, 100) for where in doc["Location"].split(";")
    ]
    with pytest.raises(AzureMissingResourceHttpError, match="is a VMImage, not an OSImage"):
        sms.get_os_image_details(GALLERY_VM[0]["ImageName"])


def test_one_vm_image_reads_as_it_is_listed(catalog_app, function_key, sms) -> None:
    doc = GALLERY_VM[0]
    headers = {"x-functions-key": function_key, "x-ms-version": "2014-10-01"}
    base = f"{catalog_app.base_url}/{SUBSCRIPTION}/services/vmimages"
    one = requests.get(f"{base}/{doc['ImageName']}", headers=headers, timeout=30)
    assert one.status_code == 200, one.text
    listed = ET.fromstring(requests.get(base, headers=headers, timeout=30).content)
    same = [e for e in listed if e.findtext(f"{NS}Name") == doc["ImageName"]]
    assert len(same) == 1 and ET.tostring(ET.fromstring(one.content)) == ET.tostring(same[0])
    os_image = requests.get(f"{base}/{GALLERY_OS[0]['ImageName']}", headers=headers, timeout=30)
    assert os_image.status_code == 404
    assert ET.fromstring(os_image.content).findtext(f"{NS}Code") == "ResourceNotFound"


def test_vm_images_come_with_their_os_and_data_disks(catalog_app, sms) -> None:
    vms = {i.name: i for i in sms.list_vm_images()}
    assert {d["ImageName"] for d in GALLERY_VM} <= set(vms)
    assert any(len(d["DataDiskConfigurations"]) >= 2 for d in GALLERY_VM)
    for doc in GALLERY_VM:
        vm = vms[doc["ImageName"]]
        assert (vm.label, vm.category, vm.is_premium) == (doc["Label"], "Public", doc["IsPremium"])
        osd, want = vm.os_disk_configuration, doc["OSDiskConfiguration"]
        assert (osd.os, osd.os_state, osd.host_caching, osd.media_link) == (
            want["OS"],
            want["OSState"],
            want["HostCaching"],
            want["MediaLink"],
        )
        assert osd.logical_disk_size_in_gb == want["LogicalDiskSizeInGB"]
        disks = [
            (d.lun, d.host_caching, d.media_link, d.logical_disk_size_in_gb)
            for d in vm.data_disk_configurations
        ]
        assert disks == [
            (d["Lun"], d["HostCaching"], d["MediaLink"], d["LogicalDiskSizeInGB"])
            for d in sorted(doc["DataDiskConfigurations"], key=lambda d: d["Lun"])
        ]


def test_vm_images_are_filtered_by_location_publisher_and_category(sms) -> None:
    everything = sms.list_vm_images()

    def names(images: Any) -> set[str]:
        return {i.name for i in images}

    in_australia = {
        i.name
        for i in everything
        if "australia east" in {p.strip().lower() for p in (i.location or "").split(";")}
    }
    assert in_australia and in_australia != names(everything)
    assert names(sms.list_vm_images(location="Australia East")) == in_australia
    sql = {i.name for i in everything if i.publisher_name == "Microsoft SQL Server Group"}
    assert sql
    assert names(sms.list_vm_images(publisher="Microsoft SQL Server Group")) == sql
    assert names(sms.list_vm_images(category="Public")) == {
        i.name for i in everything if i.category == "Public"
    }
    assert len(sms.list_vm_images(location="Atlantis")) == 0


# -- changing it -----------------------------------------------------------------------


def test_add_update_and_delete_an_os_image_over_a_disk_of_ours(
    catalog_app, storage, sms, disk
) -> None:
    blob = storage.blobs.get_blob_client(storage.settings.vhds_container, unique("added"))
    upload_page_blob(blob, disk("linux_ext4_mbr"))
    name = f"classic-added-{uuid.uuid4().hex[:8]}"
    succeeded(sms, sms.add_os_image("Added the classic way", blob.url, name, "Linux"))

    image = sms.get_os_image(name)
    assert (image.label, image.category, image.os) == ("Added the classic way", "User", "Linux")
    assert (image.logical_size_in_gb, image.media_link) == (1, blob.url)
    j = api(catalog_app, f"/api/images/{name}")
    assert (j["Source"], j["ImageType"], j["OSDiskConfiguration"]["OSState"]) == (
        "Api",
        "OSImage",
        "Generalized",
    )
    # The disk is protected now, and can't back a second image.
    with pytest.raises(HttpResponseError) as refused:
        blob.delete_blob()
    assert refused.value.status_code == 412
    with pytest.raises(AzureConflictHttpError, match="ConflictError"):
        sms.add_os_image("Again", blob.url, name.upper(), "Linux")
    with pytest.raises(AzureConflictHttpError, match=f"belongs to the image '{name}'"):
        sms.add_os_image("Again", blob.url, f"{name}-2", "Linux")

    # Update from the image as read, the way the client's docs suggest ...
    reference = sms.get_os_image(name)
    reference.label = "Relabelled"
    reference.description = "Described over the classic API"
    reference.image_family = f"Classic family {name}"
    succeeded(sms, sms.update_os_image_from_image_reference(name, reference))
    j = api(catalog_app, f"/api/images/{name}")
    assert (j["Label"], j["Description"], j["ImageFamily"]) == (
        "Relabelled",
        "Described over the classic API",
        f"Classic family {name}",
    )
    family = api(catalog_app, f"/api/families/{j['ImageFamily']}/latest")
    assert family["ImageName"] == name
    # ... and the older way, which sends Label, MediaLink, Name and OS.
    succeeded(sms, sms.update_os_image(name, "Relabelled again", blob.url, name, "Linux"))
    assert sms.get_os_image(name).label == "Relabelled again"

    # Deleting without ?comp=media releases the disk and keeps it.
    succeeded(sms, sms.delete_os_image(name))
    with pytest.raises(AzureMissingResourceHttpError):
        sms.get_os_image(name)
    assert blob.get_blob_properties().lease.state == "available"
    blob.delete_blob()


def test_the_lists_follow_every_change_and_go_gzipped_to_clients_that_accept_it(
    catalog_app, storage, function_key, sms, disk
) -> None:
    """The lists come from snapshots kept per catalog version: each change shows at once."""

    def labels() -> dict[str, str]:
        return {i.name: i.label for i in sms.list_os_images()}

    labels()  # a snapshot is kept
    blob = storage.blobs.get_blob_client(storage.settings.vhds_container, unique("listed"))
    upload_page_blob(blob, disk("linux_ext4_mbr"))
    name = f"classic-listed-{uuid.uuid4().hex[:8]}"
    succeeded(sms, sms.add_os_image("Listed at once", blob.url, name, "Linux"))
    assert labels()[name] == "Listed at once"
    assert labels()[name] == "Listed at once"  # the same from its snapshot
    succeeded(sms, sms.update_os_image(name, "Listed, then changed", blob.url, name, "Linux"))
    assert labels()[name] == "Listed, then changed"

    url = f"{catalog_app.base_url}/{SUBSCRIPTION}/services/images"
    headers = {"x-functions-key": function_key, "x-ms-version": "2014-10-01"}
    plain = requests.get(url, headers={**headers, "Accept-Encoding": "identity"}, timeout=60)
    with requests.get(
        url, headers={**headers, "Accept-Encoding": "gzip"}, stream=True, timeout=60
    ) as zipped:
        raw = zipped.raw.read(decode_content=False)
    assert plain.status_code == zipped.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert (zipped.headers["Content-Encoding"], zipped.headers["Vary"]) == (
        "gzip",
        "Accept-Encoding",
    )
    assert gzip.decompress(raw) == plain.content and len(raw) * 4 < len(plain.content)
    assert ET.fromstring(plain.content).tag == f"{NS}Images"

    succeeded(sms, sms.delete_os_image(name))
    assert name not in labels()
    blob.delete_blob()


def test_add_os_image_refuses_a_disk_cut_short(catalog_app, storage, sms, disk) -> None:
    blob = storage.blobs.get_blob_client(storage.settings.vhds_container, unique("cut"))
    upload_page_blob(blob, disk("linux_cut_short"))
    name = f"classic-cut-{uuid.uuid4().hex[:8]}"
    with pytest.raises(AzureHttpError, match=r"partition 1 .* ends at byte 67108864") as refused:
        sms.add_os_image("Cut short", blob.url, name, "Linux")
    assert refused.value.status_code == 400
    assert requests.get(f"{catalog_app.base_url}/api/images/{name}", timeout=10).status_code == 404
    assert blob.get_blob_properties().lease.state == "available"
    blob.delete_blob()


@pytest.mark.parametrize("delete_vhd", [False, True], ids=["keep-vhd", "comp-media"])
def test_deleting_an_uploaded_os_image_keeps_or_deletes_its_vhd(
    catalog_app, storage, sms, disk, delete_vhd: bool
) -> None:
    blob_name = unique("classic-delete")
    drop(storage, disk("linux_ext4_mbr"), blob_name)
    registered = outcome(catalog_app, blob_name)
    assert registered["Status"] == "Registered", registered
    name = registered["ImageName"]
    assert sms.get_os_image(name).category == "User"

    succeeded(sms, sms.delete_os_image(name, delete_vhd=delete_vhd))
    gone = requests.get(f"{catalog_app.base_url}/api/images/{name}", timeout=10)
    assert gone.status_code == 404
    blob = storage.blobs.get_blob_client(storage.settings.uploads_container, blob_name)
    if delete_vhd:
        assert not blob.exists()
    else:
        assert blob.get_blob_properties().lease.state == "available"
        blob.delete_blob()  # no longer protected


def uploaded_vm_image(catalog_app, storage, disk) -> tuple[str, list[str]]:
    """A User VM image registered from a manifest: its name and its three disk blobs."""
    stem = f"classic-vm-{uuid.uuid4().hex[:6]}"
    paths = [f"{stem}.image/os.vhd", f"{stem}.image/data0.vhd", f"{stem}.image/data1.vhd"]
    drop(storage, disk("linux_ext4_mbr"), paths[0])
    drop(storage, disk("blank_fixed"), paths[1])
    drop(storage, disk("blank_fixed"), paths[2])
    manifest = {
        "Label": "Classic VM image",
        "OSState": "Generalized",
        "OSDisk": {"Blob": paths[0]},
        "DataDisks": [
            {"Blob": paths[1], "Lun": 0, "HostCaching": "ReadOnly"},
            {"Blob": paths[2], "Lun": 3},
        ],
    }
    uploads = storage.blobs.get_container_client(storage.settings.uploads_container)
    uploads.upload_blob(f"{stem}.image.json", json.dumps(manifest).encode(), overwrite=True)
    assert outcome(catalog_app, f"{stem}.image.json")["Status"] == "Registered"
    return stem, paths


def test_deleting_an_uploaded_vm_image_with_its_disks(catalog_app, storage, sms, disk) -> None:
    stem, paths = uploaded_vm_image(catalog_app, storage, disk)
    uploads = storage.blobs.get_container_client(storage.settings.uploads_container)
    (vm,) = [i for i in sms.list_vm_images(category="User") if i.name == stem]
    assert [(d.lun, d.host_caching) for d in vm.data_disk_configurations] == [
        (0, "ReadOnly"),
        (3, "None"),
    ]
    assert vm.os_disk_configuration.media_link.endswith(f"/{paths[0]}")
    with pytest.raises(AzureMissingResourceHttpError, match="is a VMImage, not an OSImage"):
        sms.delete_os_image(stem)

    succeeded(sms, sms.delete_vm_image(stem, delete_vhd=True))
    assert stem not in {i.name for i in sms.list_vm_images()}
    assert not any(uploads.get_blob_client(p).exists() for p in paths)


def test_update_vm_image_changes_fields_and_disk_caching(catalog_app, storage, sms, disk) -> None:
    stem, _ = uploaded_vm_image(catalog_app, storage, disk)
    family = f"Classic VM family {uuid.uuid4().hex[:6]}"
    (vm,) = [i for i in sms.list_vm_images(category="User") if i.name == stem]
    vm.label, vm.description, vm.image_family = "Relabelled VM", "now described", family
    vm.os_disk_configuration.host_caching = "ReadOnly"
    vm.data_disk_configurations[1].host_caching = "ReadWrite"  # the disk at LUN 3
    succeeded(sms, sms.update_vm_image(stem, vm))

    (after,) = [i for i in sms.list_vm_images(category="User") if i.name == stem]
    assert (after.label, after.description, after.image_family) == (
        "Relabelled VM",
        "now described",
        family,
    )
    assert after.os_disk_configuration.host_caching == "ReadOnly"
    assert [(d.lun, d.host_caching) for d in after.data_disk_configurations] == [
        (0, "ReadOnly"),
        (3, "ReadWrite"),
    ]
    j = api(catalog_app, f"/api/images/{stem}")
    assert (j["Label"], j["ImageFamily"]) == ("Relabelled VM", family)
    assert j["OSDiskConfiguration"]["HostCaching"] == "ReadOnly"
    latest = api(catalog_app, f"/api/families/{family}/latest")
    assert latest["ImageName"] == stem

    # A disk the image doesn't have, a LUN moved, or a caching mode that doesn't exist: 400.
    for lun, caching, message in [
        (7, "None", "has no data disk"),
        (None, "Sometimes", "HostCaching must be one of"),
    ]:
        (vm,) = [i for i in sms.list_vm_images(category="User") if i.name == stem]
        vm.data_disk_configurations[0].host_caching = caching
        if lun is not None:
            vm.data_disk_configurations[0].lun = lun
        with pytest.raises(AzureHttpError, match=message) as refused:
            sms.update_vm_image(stem, vm)
        assert refused.value.status_code == 400
    assert api(catalog_app, f"/api/images/{stem}")["Label"] == "Relabelled VM"


def new_vm_image(name: str, state: str, os_link: str, caching: str | None = None) -> VMImage:
    """A Create VM Image request as the client's models build one (no constructor args)."""
    vm = VMImage(name=name, label=name)
    osd = OSDiskConfiguration()
    osd.os_state, osd.os, osd.media_link, osd.host_caching = state, "Linux", os_link, caching
    vm.os_disk_configuration = osd
    return vm


def data_disk(lun: int, link: str, caching: str | None = None) -> DataDiskConfiguration:
    d = DataDiskConfiguration()
    d.lun, d.media_link, d.host_caching = lun, link, caching
    return d


def test_create_vm_image_over_disks_of_ours_then_delete_it(catalog_app, storage, sms, disk):
    blobs = {}
    for role, corpus in [("os", "linux_ext4_mbr"), ("d0", "blank_fixed"), ("d2", "blank_fixed")]:
        blobs[role] = storage.blobs.get_blob_client(storage.settings.vhds_container, unique(role))
        upload_page_blob(blobs[role], disk(corpus))
    name = f"classic-created-{uuid.uuid4().hex[:8]}"
    family = f"Created VM family {name}"

    def request(image_name: str, data: list[tuple[int, str]]) -> VMImage:
        vm = new_vm_image(image_name, "Specialized", blobs["os"].url, "ReadOnly")
        vm.label, vm.image_family = "Created the classic way", family
        vm.data_disk_configurations = [
            data_disk(lun, blobs[role].url, "ReadWrite") for lun, role in data
        ]
        return vm

    succeeded(sms, sms.create_vm_image(request(name, [(2, "d2"), (0, "d0")])))
    (vm,) = [i for i in sms.list_vm_images(category="User") if i.name == name]
    assert (vm.label, vm.image_family) == ("Created the classic way", family)
    osd = vm.os_disk_configuration
    assert (osd.os, osd.os_state, osd.host_caching, osd.media_link) == (
        "Linux",
        "Specialized",
        "ReadOnly",
        blobs["os"].url,
    )
    assert [(d.lun, d.media_link, d.host_caching) for d in vm.data_disk_configurations] == [
        (0, blobs["d0"].url, "ReadWrite"),
        (2, blobs["d2"].url, "ReadWrite"),
    ]
    j = api(catalog_app, f"/api/images/{name}")
    assert (j["ImageType"], j["Source"], j["Category"]) == ("VMImage", "Api", "User")
    assert api(catalog_app, f"/api/families/{family}/latest")["ImageName"] == name
    # Every disk is protected now, and none can back a second image.
    for blob in blobs.values():
        with pytest.raises(HttpResponseError) as refused:
            blob.delete_blob()
        assert refused.value.status_code == 412
    with pytest.raises(AzureConflictHttpError, match=f"belongs to the image '{name}'"):
        sms.create_vm_image(request(f"{name}-2", []))

    succeeded(sms, sms.delete_vm_image(name, delete_vhd=True))
    assert not any(blob.exists() for blob in blobs.values())


def test_create_vm_image_refusals_lease_nothing(catalog_app, storage, sms, disk) -> None:
    good = storage.blobs.get_blob_client(storage.settings.vhds_container, unique("good"))
    upload_page_blob(good, disk("linux_ext4_mbr"))
    bad = storage.blobs.get_blob_client(storage.settings.vhds_container, unique("bad"))
    upload_page_blob(bad, disk("dynamic_vhd"))

    def attempt(data: list[tuple[int, str]]) -> None:
        vm = new_vm_image(f"refused-{uuid.uuid4().hex[:8]}", "Generalized", good.url)
        vm.data_disk_configurations = [data_disk(lun, url) for lun, url in data]
        sms.create_vm_image(vm)

    for data, message in [
        ([(1, bad.url)], "data disk at LUN 1"),  # not a fixed VHD: named, and why
        ([(1, good.url)], "more than once"),  # the OS disk again
        ([(1, good.url + "-none")], "no blob exists"),
        ([(64, bad.url)], "Lun must be"),
    ]:
        with pytest.raises(AzureHttpError, match=message) as refused:
            attempt(data)
        assert refused.value.status_code == 400
    assert good.get_blob_properties().lease.state != "leased"
    assert bad.get_blob_properties().lease.state != "leased"


def test_platform_images_can_be_neither_changed_nor_deleted(catalog_app, sms) -> None:
    os_doc, vm_doc = GALLERY_OS[0], GALLERY_VM[0]
    (platform_vm,) = [i for i in sms.list_vm_images() if i.name == vm_doc["ImageName"]]
    platform_vm.label = "Mine now"
    attempts = [
        lambda: sms.update_vm_image(vm_doc["ImageName"], platform_vm),
        lambda: sms.delete_os_image(os_doc["ImageName"], delete_vhd=True),
        lambda: sms.delete_vm_image(vm_doc["ImageName"]),
        lambda: sms.update_os_image(
            os_doc["ImageName"], "Mine now", os_doc["MediaLink"], os_doc["ImageName"], "Windows"
        ),
    ]
    for attempt in attempts:
        with pytest.raises(AzureHttpError) as refused:
            attempt()
        assert refused.value.status_code == 403
        assert "<Code>ForbiddenError</Code>" in str(refused.value)
    assert api(catalog_app, f"/api/images/{os_doc['ImageName']}")["Label"] == os_doc["Label"]
    assert api(catalog_app, f"/api/images/{vm_doc['ImageName']}")["Label"] == vm_doc["Label"]


def test_a_refused_call_leaves_a_failed_operation(catalog_app, function_key, sms) -> None:
    r = requests.delete(
        f"{catalog_app.base_url}/{SUBSCRIPTION}/services/images/{GALLERY_OS[1]['ImageName']}",
        headers={"x-functions-key": function_key, "x-ms-version": "2014-10-01"},
        timeout=10,
    )
    assert r.status_code == 403
    op = sms.get_operation_status(r.headers["x-ms-request-id"])
    assert (op.status, op.http_status_code) == ("Failed", "403")
    assert op.error.code == "PlatformImageReadOnly"
    assert "platform image" in op.error.message


def test_unknown_names_are_the_clients_not_found_error(sms) -> None:
    with pytest.raises(AzureMissingResourceHttpError):
        sms.delete_os_image("no-such-image-anywhere", delete_vhd=True)
    with pytest.raises(AzureMissingResourceHttpError):
        sms.delete_vm_image("no-such-vm-image-anywhere")
    reference = OSImage()
    reference.label = "x"
    with pytest.raises(AzureMissingResourceHttpError):
        sms.update_os_image_from_image_reference("no-such-image-anywhere", reference)
    with pytest.raises(AzureMissingResourceHttpError):
        sms.get_operation_status(uuid.uuid4().hex)


# -- the protocol, over raw HTTP ---------------------------------------------------------


def _error(r: requests.Response) -> tuple[int, str]:
    """Every error is Azure's <Error> XML, with a request id."""
    assert len(r.headers["x-ms-request-id"]) == 32
    assert r.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(r.content)
    assert root.tag == f"{NS}Error"
    assert [c.tag for c in root] == [f"{NS}Code", f"{NS}Message"]
    assert root.findtext(f"{NS}Message")
    return r.status_code, root.findtext(f"{NS}Code") or ""


def test_raw_requests_get_azures_statuses_and_error_xml(
    catalog_app, storage, function_key, sms
) -> None:
    base = f"{catalog_app.base_url}/{SUBSCRIPTION}"
    key = {"x-functions-key": function_key}
    v = {**key, "x-ms-version": "2014-10-01"}

    def call(method: str, url: str, headers: dict[str, str], body: bytes | None = None) -> Any:
        return requests.request(method, url, headers=headers, data=body, timeout=30)

    ok = call("GET", f"{base}/services/images", v)
    assert ok.status_code == 200 and len(ok.headers["x-ms-request-id"]) == 32
    assert ET.fromstring(ok.content).tag == f"{NS}Images"
    # The key may also come as ?code=, as on Azure.
    by_code = call(
        "GET", f"{base}/services/vmimages?code={function_key}", {"x-ms-version": v["x-ms-version"]}
    )
    assert by_code.status_code == 200

    other = f"{catalog_app.base_url}/00000000-0000-0000-0000-000000000000"
    never_uploaded = f"{storage.blobs.url.rstrip('/')}/{storage.settings.vhds_container}/none.vhd"
    add = (
        "<OSImage xmlns='http://schemas.microsoft.com/windowsazure'><Label>l</Label>"
        "<MediaLink>{link}</MediaLink><Name>{name}</Name><OS>Linux</OS></OSImage>"
    )
    doctype = b'<!DOCTYPE OSImage [<!ENTITY e "x">]><OSImage><Label>&e;</Label></OSImage>'
    cases = [
        (("GET", f"{base}/services/images", key), (400, "MissingOrIncorrectVersionHeader")),
        (
            ("GET", f"{base}/services/vmimages", {**key, "x-ms-version": "2013-03-01"}),
            (400, "MissingOrIncorrectVersionHeader"),
        ),
        (("GET", f"{other}/services/images", v), (403, "ForbiddenError")),
        (("GET", f"{other}/operations/{uuid.uuid4().hex}", v), (403, "ForbiddenError")),
        (("POST", f"{base}/services/images", v, doctype), (400, "BadRequest")),
        (("POST", f"{base}/services/images", v, b"<OSImage>" + b" " * 70000), (400, "BadRequest")),
        (("POST", f"{base}/services/images", v, b"<OSImage><Label>"), (400, "BadRequest")),
        (
            ("POST", f"{base}/services/images", v, b"<OSImage><Label>l</Label></OSImage>"),
            (400, "BadRequest"),
        ),
        (
            (
                "POST",
                f"{base}/services/images",
                v,
                add.format(link=never_uploaded, name="x").encode(),
            ),
            (400, "BadRequest"),
        ),
        (
            (
                "POST",
                f"{base}/services/images",
                v,
                add.format(link="https://elsewhere.example/c/b.vhd", name="y").encode(),
            ),
            (400, "BadRequest"),
        ),
        (("GET", f"{base}/services/images/bad%20name", v), (400, "BadRequest")),
        (("DELETE", f"{base}/services/images/whatever?comp=disks", v), (400, "BadRequest")),
        (
            (
                "PUT",
                f"{base}/services/images/no-such-image",
                v,
                b"<OSImage><Label>l</Label></OSImage>",
            ),
            (404, "ResourceNotFound"),
        ),
        (("GET", f"{base}/operations/{uuid.uuid4().hex}", v), (404, "ResourceNotFound")),
        (("GET", f"{base}/operations/not!an!id", v), (400, "BadRequest")),
    ]
    for args, expected in cases:
        assert _error(call(*args)) == expected, args

    # No credential, or a key the host refuses: Azure's 403, from the function (the classic
    # routes are anonymous to the host so that a management certificate alone gets in).
    for headers in ({}, {"x-functions-key": "not-a-key"}):
        no = call("GET", f"{base}/services/images", {"x-ms-version": "2014-10-01", **headers})
        assert _error(no) == (403, "ForbiddenError")


def test_operation_status_sends_both_ID_and_Id(catalog_app, function_key) -> None:
    headers = {"x-functions-key": function_key, "x-ms-version": "2014-10-01"}
    base = f"{catalog_app.base_url}/{SUBSCRIPTION}"
    refused = requests.delete(
        f"{base}/services/vmimages/no-such-vm-image", headers=headers, timeout=10
    )
    assert refused.status_code == 404
    rid = refused.headers["x-ms-request-id"]
    r = requests.get(f"{base}/operations/{rid}", headers=headers, timeout=10)
    root = ET.fromstring(r.content)
    assert root.tag == f"{NS}Operation"
    assert (root.findtext(f"{NS}ID"), root.findtext(f"{NS}Id")) == (rid, rid)
    assert (root.findtext(f"{NS}Status"), root.findtext(f"{NS}HttpStatusCode")) == ("Failed", "404")
    assert root.findtext(f"{NS}Error/{NS}Code") == "ImageNotFound"
    assert r.headers["x-ms-request-id"] != rid


def test_concurrent_add_os_image_over_one_disk_makes_one_image(catalog_app, storage, sms, disk):
    """Issue 10: ten concurrent Add OS Image calls with one MediaLink made six images."""
    from concurrent.futures import ThreadPoolExecutor

    blob = storage.blobs.get_blob_client(storage.settings.vhds_container, unique("contended"))
    upload_page_blob(blob, disk("linux_ext4_mbr"))
    names = [f"contended-{uuid.uuid4().hex[:8]}" for _ in range(10)]

    def add(name: str) -> str:
        try:
            succeeded(sms, sms.add_os_image("Contended", blob.url, name, "Linux"))
            return "ok"
        except AzureConflictHttpError as e:
            assert (
                "DiskInUse" in str(e)
                or "belongs to the image" in str(e)
                or "being registered" in str(e)
            ), e
            return "conflict"

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(add, names))
    assert results.count("ok") == 1, results
    made = [
        n for n in names if requests.get(f"{catalog_app.base_url}/api/images/{n}", timeout=10).ok
    ]
    assert len(made) == 1
    sms.delete_os_image(made[0], delete_vhd=True)
    assert not blob.exists()


def test_deletes_and_misses_answer_as_azure_did(catalog_app, storage, function_key, disk) -> None:
    """Delete OS Image 200; Delete VM Image 202 with x-ms-request-id and an operation to
    poll; ?comp=media deletes the disks; a missing image is 404 ResourceNotFound."""
    v = {"x-functions-key": function_key, "x-ms-version": "2014-10-01"}
    base = f"{catalog_app.base_url}/{SUBSCRIPTION}/services"
    blob = storage.blobs.get_blob_client(storage.settings.vhds_container, unique("az"))
    upload_page_blob(blob, disk("linux_ext4_mbr"))
    name = f"classic-az-{uuid.uuid4().hex[:8]}"
    add = (
        f"<OSImage xmlns='http://schemas.microsoft.com/windowsazure'><Label>l</Label>"
        f"<MediaLink>{blob.url}</MediaLink><Name>{name}</Name><OS>Linux</OS></OSImage>"
    )
    assert requests.post(f"{base}/images", data=add, headers=v, timeout=60).status_code == 200
    os_delete = requests.delete(f"{base}/images/{name}", headers=v, timeout=60)
    assert (os_delete.status_code, os_delete.content) == (200, b"")
    assert len(os_delete.headers["x-ms-request-id"]) == 32
    assert blob.exists()  # no ?comp=media: the disk stays
    blob.delete_blob()

    stem, paths = uploaded_vm_image(catalog_app, storage, disk)
    vm_delete = requests.delete(f"{base}/vmimages/{stem}?comp=media", headers=v, timeout=60)
    assert vm_delete.status_code == 202
    rid = vm_delete.headers["x-ms-request-id"]
    op = requests.get(
        f"{catalog_app.base_url}/{SUBSCRIPTION}/operations/{rid}", headers=v, timeout=30
    )
    root = ET.fromstring(op.content)
    assert (root.findtext(f"{NS}ID"), root.findtext(f"{NS}Status")) == (rid, "Succeeded")
    uploads = storage.blobs.get_container_client(storage.settings.uploads_container)
    assert not any(uploads.get_blob_client(p).exists() for p in paths)

    for path in (f"images/{name}", f"vmimages/{stem}", f"images/{name}/details"):
        missing = requests.get(f"{base}/{path}", headers=v, timeout=30)
        assert _error(missing) == (404, "ResourceNotFound"), path
