"""Dropping disks into `uploads`, end to end: real disks built with real tools,
uploaded as page blobs to Azurite, judged by the running app, read back over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import ContainerClient

from devtools.apphost import AppHost
from devtools.upload import upload_page_blob
from shared.adapters.storage import StorageAccount
from tests.vhd_corpus import CASES


def drop(
    storage: StorageAccount,
    path: Path,
    name: str,
    metadata: dict[str, str] | None = None,
    page: bool = True,
) -> str:
    client = storage.blobs.get_blob_client(storage.settings.uploads_container, name)
    if page and path.stat().st_size % 512 == 0:
        upload_page_blob(client, path, metadata)
    else:
        with open(path, "rb") as f:
            client.upload_blob(f, metadata=metadata, overwrite=True)
    return client.get_blob_properties().etag


def outcome(app: AppHost, name: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(f"{app.base_url}/api/uploads/{name}", timeout=10)
        if r.status_code == 200 and r.json()["Status"] not in ("Pending", "Converting"):
            return r.json()
        if time.monotonic() > deadline:
            pytest.fail(f"{name} still not judged after {timeout}s: {r.status_code} {r.text}")
        time.sleep(0.2)


def unique(stem: str, ext: str = ".vhd") -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}{ext}"


def test_a_linux_disk_becomes_an_os_image(catalog_app, storage, disk) -> None:
    name = unique("ubuntu")
    etag = drop(storage, disk("linux_ext4_mbr"), name)
    result = outcome(catalog_app, name)
    assert result["Status"] == "Registered", result
    assert result["ImageName"] == name[:-4]
    assert result["Detected"]["osRelease"]["ID"] == "ubuntu"
    assert result["BytesRead"] < 256 * 1024
    image = requests.get(
        f"{catalog_app.base_url}/api/images/{result['ImageName']}", timeout=10
    ).json()
    assert image["ImageType"] == "OSImage"
    assert image["OS"] == "Linux"
    assert image["Category"] == "User"
    assert image["Source"] == "Upload"
    assert image["ImageFamily"] == "Ubuntu 22.04"
    assert image["OSDiskConfiguration"]["OSState"] == "Generalized"
    assert image["LogicalSizeInGB"] == 1
    assert image["MediaLink"].endswith(f"/uploads/{name}")
    assert image["Generation"] == 1
    # The catalog never changed the blob, and now protects it from deletion.
    blob = storage.blobs.get_blob_client("uploads", name)
    assert blob.get_blob_properties().etag == etag
    with pytest.raises(HttpResponseError) as refused:
        blob.delete_blob()
    assert refused.value.status_code == 412


def test_a_windows_gpt_disk_is_windows_generation_2(catalog_app, storage, disk) -> None:
    name = unique("win2022")
    drop(storage, disk("windows_gpt"), name, {"imagefamily": "My Windows", "label": "Win label"})
    result = outcome(catalog_app, name)
    assert result["Status"] == "Registered", result
    image = requests.get(
        f"{catalog_app.base_url}/api/images/{result['ImageName']}", timeout=10
    ).json()
    assert (image["OS"], image["Generation"]) == ("Windows", 2)
    assert (image["ImageFamily"], image["Label"]) == ("My Windows", "Win label")


# Disk images the validator refuses as fixed VHDs but the catalog converts: blank, so
# the converted disk is then refused for want of an OS (or, flattened first, named).
CONVERTED_CODES = {
    "dynamic_vhd": "OSNotDetermined",
    "vhdx": "OSNotDetermined",
    "qcow2": "OSNotDetermined",
    "vmdk": "OSNotDetermined",
    "fixed_without_force_size": "OSNotDetermined",
    "differencing_vhd": "BackingFileNotSupported",
}


@pytest.mark.parametrize(
    "case",
    # raw_disk has an OS: it is converted and registered (tests/e2e/test_conversions.py).
    sorted(c for c, spec in CASES.items() if spec.code is not None and c != "raw_disk"),
)
def test_every_broken_or_unsupported_disk_is_rejected_with_its_code(
    catalog_app, storage, disk, case: str
) -> None:
    name = unique(case)
    etag = drop(storage, disk(case), name)
    result = outcome(catalog_app, name, timeout=60)
    assert result["Status"] == "Rejected"
    assert result["Error"]["Code"] == CONVERTED_CODES.get(case, CASES[case].code), result
    assert len(result["Error"]["Message"]) > 30
    # Rejected blobs stay exactly as uploaded.
    assert storage.blobs.get_blob_client("uploads", name).get_blob_properties().etag == etag


def test_a_disk_cut_short_is_rejected_as_an_os_disk_and_as_a_data_disk(
    catalog_app, storage, disk
) -> None:
    name = unique("cut")
    etag = drop(storage, disk("linux_cut_short"), name, {"os": "Linux"})
    result = outcome(catalog_app, name)
    assert (result["Status"], result["Error"]["Code"]) == ("Rejected", "PartitionBeyondDisk")
    assert "67108864" in result["Error"]["Message"] and "41943040" in result["Error"]["Message"]
    props = storage.blobs.get_blob_client("uploads", name).get_blob_properties()
    assert (props.etag, props.lease.state) == (etag, "available")  # kept as uploaded, not held
    stem = f"cutvm-{uuid.uuid4().hex[:6]}"
    drop(storage, disk("linux_ext4_mbr"), f"{stem}.image/os.vhd")
    drop(storage, disk("linux_cut_short"), f"{stem}.image/data0.vhd")
    _manifest(
        storage,
        f"{stem}.image.json",
        {
            "OSDisk": {"Blob": f"{stem}.image/os.vhd"},
            "DataDisks": [{"Blob": f"{stem}.image/data0.vhd", "Lun": 0}],
        },
    )
    error = outcome(catalog_app, f"{stem}.image.json")["Error"]
    assert error["Code"] == "ManifestDiskInvalid"
    assert "LUN 0" in error["Message"] and "PartitionBeyondDisk" in error["Message"]


def test_a_fixed_vhd_uploaded_as_a_block_blob_is_converted_to_a_page_blob(
    catalog_app, storage, disk
) -> None:
    name = unique("block")
    etag = drop(storage, disk("linux_ext4_mbr"), name, page=False)
    result = outcome(catalog_app, name, timeout=60)
    assert (result["Status"], result["SourceFormat"]) == ("Registered", "vhd-fixed"), result
    (converted,) = result["ConvertedBlobs"]
    assert converted.startswith("images/converted/")
    props = storage.blobs.get_blob_client("uploads", name).get_blob_properties()
    assert (props.etag, props.lease.state) == (etag, "available")


@pytest.mark.parametrize("ext", [".txt", ".iso", ""])
def test_anything_else_dropped_is_rejected_not_ignored(catalog_app, storage, tmp_path, ext) -> None:
    name = unique("notes", ext)
    path = tmp_path / "f"
    path.write_bytes(b"hello\n" * 100)
    drop(storage, path, name, page=False)
    assert outcome(catalog_app, name)["Error"]["Code"] == "UnsupportedFileType"


def test_the_vhd_extension_is_matched_in_any_case(catalog_app, storage, disk) -> None:
    name = unique("UPPER", ".VHD")
    drop(storage, disk("linux_ext4_mbr"), name)
    assert outcome(catalog_app, name)["Status"] == "Registered"


def test_a_blank_disk_needs_a_declared_os(catalog_app, storage, disk) -> None:
    bare = unique("blank")
    drop(storage, disk("blank_fixed"), bare)
    result = outcome(catalog_app, bare)
    assert result["Error"]["Code"] == "OSNotDetermined"
    declared = unique("blank-declared")
    drop(storage, disk("blank_fixed"), declared, {"os": "windows"})
    result = outcome(catalog_app, declared)
    assert result["Status"] == "Registered"
    image = requests.get(f"{catalog_app.base_url}/api/images/{result['ImageName']}", timeout=10)
    assert image.json()["OS"] == "Windows"


def test_a_declared_os_wins_over_the_detected_one_with_a_warning(
    catalog_app, storage, disk
) -> None:
    name = unique("contradiction")
    drop(storage, disk("linux_ext4_mbr"), name, {"os": "Windows"})
    result = outcome(catalog_app, name)
    assert result["Status"] == "Registered"
    assert any("declares os=Windows" in w for w in result["Warnings"])


def test_a_taken_name_is_a_rejection_never_an_overwrite(catalog_app, storage, disk) -> None:
    image_name = f"shared-name-{uuid.uuid4().hex[:6]}"
    first, second = unique("first"), unique("second")
    drop(storage, disk("linux_ext4_mbr"), first, {"imagename": image_name})
    assert outcome(catalog_app, first)["Status"] == "Registered"
    drop(storage, disk("windows_gpt"), second, {"imagename": image_name.upper()})
    result = outcome(catalog_app, second)
    assert result["Error"]["Code"] == "ImageNameTaken"
    image = requests.get(f"{catalog_app.base_url}/api/images/{image_name}", timeout=10).json()
    assert image["OS"] == "Linux"
    # The loser's blob is not left leased.
    storage.blobs.get_blob_client("uploads", second).delete_blob()


def test_an_invalid_declared_name_is_rejected(catalog_app, storage, disk) -> None:
    name = unique("badname")
    drop(storage, disk("linux_ext4_mbr"), name, {"imagename": "no spaces allowed"})
    assert outcome(catalog_app, name)["Error"]["Code"] == "InvalidImageName"


def test_a_2_tib_sparse_disk_registers_reading_under_1_mib(catalog_app, storage, disk) -> None:
    name = unique("huge")
    drop(storage, disk("huge_sparse"), name, {"os": "Linux"})
    result = outcome(catalog_app, name)
    assert result["Status"] == "Registered", result
    assert result["VirtualSizeInBytes"] == 2 * 1024**4
    assert result["BytesRead"] < 1024 * 1024


def test_an_unknown_upload_is_404_with_a_json_error(catalog_app) -> None:
    r = requests.get(f"{catalog_app.base_url}/api/uploads/never-seen.vhd", timeout=10)
    assert r.status_code == 404
    assert r.json()["Code"] == "UploadNotFound"


def _manifest(storage: StorageAccount, name: str, doc: dict[str, Any] | str) -> None:
    body = doc if isinstance(doc, str) else json.dumps(doc)
    storage.blobs.get_blob_client("uploads", name).upload_blob(body.encode(), overwrite=True)


def test_a_manifest_registers_one_vm_image_with_its_data_disks(catalog_app, storage, disk) -> None:
    stem = f"sqlvm-{uuid.uuid4().hex[:6]}"
    drop(storage, disk("linux_ext4_mbr"), f"{stem}.image/os.vhd")
    drop(storage, disk("blank_fixed"), f"{stem}.image/data0.vhd")
    drop(storage, disk("blank_fixed"), f"{stem}.image/data1.vhd")
    _manifest(
        storage,
        f"{stem}.image.json",
        {
            "Label": "SQL VM",
            "ImageFamily": "SQL VMs",
            "OSState": "Specialized",
            "OSDisk": {"Blob": f"{stem}.image/os.vhd"},
            "DataDisks": [
                {"Blob": f"{stem}.image/data0.vhd", "Lun": 0, "HostCaching": "ReadOnly"},
                {"Blob": f"{stem}.image/data1.vhd", "Lun": 1},
            ],
        },
    )
    result = outcome(catalog_app, f"{stem}.image.json")
    assert result["Status"] == "Registered", result
    assert result["ImageName"] == stem
    image = requests.get(f"{catalog_app.base_url}/api/images/{stem}", timeout=10).json()
    assert image["ImageType"] == "VMImage"
    assert image["OSDiskConfiguration"]["OSState"] == "Specialized"
    assert image["OSDiskConfiguration"]["MediaLink"].endswith(f"/uploads/{stem}.image/os.vhd")
    luns = [(d["Lun"], d["HostCaching"]) for d in image["DataDiskConfigurations"]]
    assert luns == [(0, "ReadOnly"), (1, "None")]
    # The disks read as registered too, and none became an OS image on its own.
    disk_outcome = outcome(catalog_app, f"{stem}.image/data0.vhd")
    assert (disk_outcome["Status"], disk_outcome["ImageName"]) == ("Registered", stem)
    assert requests.get(f"{catalog_app.base_url}/api/images/os", timeout=10).status_code == 404


def test_a_manifest_with_a_missing_or_invalid_disk_is_rejected(catalog_app, storage, disk) -> None:
    stem = f"broken-{uuid.uuid4().hex[:6]}"
    drop(storage, disk("linux_ext4_mbr"), f"{stem}.image/os.vhd")
    drop(storage, disk("differencing_vhd"), f"{stem}.image/dyn.vhd")
    _manifest(
        storage,
        f"{stem}-a.image.json",
        {
            "OSDisk": {"Blob": f"{stem}.image/os.vhd"},
            "DataDisks": [{"Blob": f"{stem}.image/gone.vhd", "Lun": 0}],
        },
    )
    _manifest(
        storage,
        f"{stem}-b.image.json",
        {
            "OSDisk": {"Blob": f"{stem}.image/os.vhd"},
            "DataDisks": [{"Blob": f"{stem}.image/dyn.vhd", "Lun": 0}],
        },
    )
    _manifest(storage, f"{stem}-c.image.json", "{not json")
    _manifest(storage, f"{stem}-d.image.json", {"OSDisk": {"Blob": "loose.vhd"}})
    missing = outcome(catalog_app, f"{stem}-a.image.json")
    assert missing["Error"]["Code"] == "ManifestDiskMissing"
    invalid = outcome(catalog_app, f"{stem}-b.image.json")
    assert invalid["Error"]["Code"] == "ManifestDiskInvalid"
    assert "BackingFileNotSupported" in invalid["Error"]["Message"]
    assert outcome(catalog_app, f"{stem}-c.image.json")["Error"]["Code"] == "InvalidManifest"
    assert outcome(catalog_app, f"{stem}-d.image.json")["Error"]["Code"] == "InvalidManifest"


def test_an_upload_without_completion_metadata_is_judged_after_the_settle_window(
    catalog_app, storage, disk
) -> None:
    # What azcopy or `az storage blob upload --type page` do: no metadata at all.
    name = unique("azcopy-style")
    data = disk("linux_ext4_mbr").read_bytes()
    client = storage.blobs.get_blob_client("uploads", name)
    client.create_page_blob(len(data))
    for off in range(0, len(data), 4 * 1024 * 1024):
        chunk = data[off : off + 4 * 1024 * 1024]
        if chunk.strip(b"\0"):
            client.upload_page(chunk, offset=off, length=len(chunk))
    started = time.monotonic()
    result = outcome(catalog_app, name)
    assert result["Status"] == "Registered", result
    # Not before the blob has been quiet for the (local) settle window of 1 s.
    assert time.monotonic() - started >= 0.5


@pytest.fixture
def short_timeout_app(
    azurite_connection: str, storage: StorageAccount, tmp_path: Path
) -> Iterator[tuple[AppHost, ContainerClient]]:
    """An app whose uploads time out after 10 s, with a drop zone and queues of its own:
    the session's app keeps the hour, so no other upload, however slow, times out."""
    suffix = uuid.uuid4().hex[:8]
    container = storage.blobs.create_container(f"uploads-{suffix}")
    checks = storage.queues.create_queue(f"upload-checks-{suffix}")
    env = {
        "UPLOADS_CONTAINER": container.container_name,
        "UPLOAD_CHECKS_QUEUE": checks.queue_name,
        "CAPTURE_QUEUE": f"none-{suffix}",  # never takes the session's captures
        "AzureFunctionsWebHost__hostid": f"timeout-{suffix}",
        "FUNCRUNNER_BLOB_SCAN_SECONDS": "0.3",
        "UPLOAD_TIMEOUT_SECONDS": "10",
    }
    with open(tmp_path / "host.log", "wb") as log:
        app = AppHost(azurite_connection, keys_file=tmp_path / "k.json", extra_env=env, stdout=log)
        app.start(wait_path="/api/health")
        try:
            yield app, container
        finally:
            app.stop()
            container.delete_container()
            checks.delete_queue()


def test_an_abandoned_upload_is_reported_by_the_delayed_recheck(short_timeout_app) -> None:
    # The uploader says it is still writing, then goes away. No write, so no new trigger:
    # only the delayed re-check messages can reach the verdict (as with Event Grid).
    app, container = short_timeout_app
    name = unique("abandoned")
    client = container.get_blob_client(name)
    client.create_page_blob(64 * 1024 * 1024 + 512, metadata={"uploadstate": "uploading"})
    client.upload_page(b"\x01" * 512, offset=0, length=512)
    deadline = time.monotonic() + 10
    pending = None
    while time.monotonic() < deadline and pending is None:
        r = requests.get(f"{app.base_url}/api/uploads/{name}", timeout=10)
        if r.status_code == 200:
            pending = r.json()
        time.sleep(0.2)
    assert pending is not None and pending["Status"] == "Pending"
    assert "uploadstate=complete" in pending["Reason"]
    result = outcome(app, name, timeout=30)
    assert result["Error"]["Code"] == "UploadIncomplete"


def test_an_upload_left_uploading_is_looked_at_less_and_less(catalog_app, storage) -> None:
    # Re-checks back off while the blob is untouched: once they are 8 s apart, only a
    # handful of looks were made (one per settle window would be one a second or so).
    name = unique("left-uploading")
    client = storage.blobs.get_blob_client("uploads", name)
    client.create_page_blob(64 * 1024 * 1024 + 512, metadata={"uploadstate": "uploading"})
    deadline = time.monotonic() + 60
    while True:
        r = requests.get(f"{catalog_app.base_url}/api/uploads/{name}", timeout=10)
        doc = r.json() if r.status_code == 200 else {}
        if doc.get("NextCheck") and doc.get("Status") == "Pending":
            gap = datetime.fromisoformat(doc["NextCheck"]) - datetime.fromisoformat(
                doc["LastChecked"]
            )
            if gap >= timedelta(seconds=8):
                break
        assert time.monotonic() < deadline, f"the re-checks never backed off: {doc}"
        time.sleep(0.2)
    looks = Path(catalog_app.log_path).read_text(errors="replace").count(f"upload {name} (")
    assert 2 <= looks <= 6, looks
    client.delete_blob()


def test_a_long_unicode_blob_name_still_has_a_readable_outcome(
    catalog_app, storage, tmp_path
) -> None:
    # Quoted, this name is far over a table row key's 1 KiB: the key is shortened, not refused.
    name = "é" * 300 + f"-{uuid.uuid4().hex[:6]} notes.txt"
    path = tmp_path / "f"
    path.write_bytes(b"not a disk")
    drop(storage, path, name, page=False)
    result = outcome(catalog_app, name)
    assert (result["BlobName"], result["Error"]["Code"]) == (name, "UnsupportedFileType")


def test_two_manifests_naming_one_disk_make_one_image(catalog_app, storage, disk) -> None:
    """Issue 10: both used to register, two images over one disk."""
    stem = f"shared-{uuid.uuid4().hex[:6]}"
    drop(storage, disk("linux_ext4_mbr"), f"{stem}.image/os.vhd")
    for n in ("a", "b"):
        _manifest(
            storage,
            f"{stem}-{n}.image.json",
            {"ImageName": f"{stem}-{n}", "OS": "Linux", "OSDisk": {"Blob": f"{stem}.image/os.vhd"}},
        )
    results = sorted(
        (outcome(catalog_app, f"{stem}-{n}.image.json") for n in ("a", "b")),
        key=lambda r: r["Status"],
    )
    assert [r["Status"] for r in results] == ["Registered", "Rejected"], results
    winner, loser = results
    assert loser["Error"]["Code"] == "DiskInUse"
    assert winner["ImageName"] in loser["Error"]["Message"]
    assert (
        requests.get(
            f"{catalog_app.base_url}/api/images/{loser['BlobName'][: -len('.image.json')]}",
            timeout=10,
        ).status_code
        == 404
    )
