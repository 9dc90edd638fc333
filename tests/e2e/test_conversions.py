"""Disk images of every accepted format dropped into `uploads`, converted by the running
app into fixed VHD page blobs and registered; each converted disk is compared with its
source by `qemu-img compare`, the reference. Also: a refused format, the CLI converting
on the fly or sending the file as it is, progress while converting, and a worker killed
mid-job (the integration tests kill it at every step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.apphost import AppHost
from devtools.upload import upload_page_blob
from shared.adapters.storage import StorageAccount
from shared.domain.formats import MAX_EXTENT
from tests.disk_formats_corpus import OVF, FormatsCorpus
from tests.vhd_corpus import Corpus, CorpusToolMissing

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def qemu_img(*args: str) -> str:
    r = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


class Disks:
    """The Linux test disk (raw, 64 MiB) and what qemu-img makes of it, built on first use."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        try:
            fixed = Corpus(directory / "corpus")["linux_ext4_mbr"]
        except CorpusToolMissing as e:
            pytest.fail(f"the test command should have installed the disk tools: {e}")
        self.raw = directory / "linux.raw"
        qemu_img("convert", "-f", "vpc", "-O", "raw", str(fixed), str(self.raw))
        self.fixed = fixed
        self._made: dict[str, Path] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self._made:
            self._made[name] = self._make(name)
        return self._made[name]

    def _make(self, name: str) -> Path:
        out = self.dir / name
        convert = {
            "dynamic.vhd": ("vpc", []),  # no force_size: a CHS-rounded size, not whole MiB
            "disk.vhdx": ("vhdx", []),
            "disk.qcow2": ("qcow2", []),
            "compressed.qcow2": ("qcow2", ["-c"]),
            "zstd.qcow2": ("qcow2", ["-c", "-o", "compression_type=zstd"]),
            "sparse.vmdk": ("vmdk", []),
            "stream.vmdk": ("vmdk", ["-o", "subformat=streamOptimized"]),
            "chs.vhd": ("vpc", ["-o", "subformat=fixed"]),
        }
        if name in convert:
            fmt, opts = convert[name]
            qemu_img("convert", "-f", "raw", "-O", fmt, *opts, str(self.raw), str(out))
        elif name == "odd.img":  # a raw disk of any length: 64 MiB and 1000 bytes
            qemu_img("convert", "-f", "raw", "-O", "raw", str(self.raw), str(out))
            os.truncate(out, self.raw.stat().st_size + 1000)
        elif name == "data.raw":  # a data disk: an empty MBR and some data
            with open(out, "wb") as f:
                f.truncate(24 * MIB)
                f.seek(510)
                f.write(b"\x55\xaa")
                f.seek(3 * MIB + 512)
                f.write(os.urandom(MIB) + b"\x01" * 4096)
        elif name == "vm.ova":  # tar: the OVF, then the OS and data disks (streamOptimized)
            disk1, disk2 = self.dir / "vm-disk1.vmdk", self.dir / "vm-disk2.vmdk"
            for src, dst in ((self.raw, disk1), (self["data.raw"], disk2)):
                qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o",
                         "subformat=streamOptimized", str(src), str(dst))  # fmt: skip
            ovf = self.dir / "vm.ovf"
            ovf.write_text(OVF.format(cap1=self.raw.stat().st_size, cap2=24 * MIB))
            with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
                for f in (ovf, disk1, disk2):
                    tar.add(f, arcname=f.name)
        else:
            raise KeyError(name)
        return out


@pytest.fixture(scope="module")
def disks(tmp_path_factory: pytest.TempPathFactory) -> Disks:
    return Disks(tmp_path_factory.mktemp("conversions"))


def unique(name: str) -> str:
    stem, _, ext = name.rpartition(".")
    return f"{stem}-{uuid.uuid4().hex[:8]}.{ext}"


def drop(
    storage: StorageAccount,
    path: Path,
    name: str,
    metadata: dict[str, str] | None = None,
    container: str | None = None,
) -> str:
    client = storage.blobs.get_blob_client(container or storage.settings.uploads_container, name)
    with open(path, "rb") as f:
        client.upload_blob(f, metadata=metadata, overwrite=True, max_concurrency=4)
    return client.get_blob_properties().etag


def outcome(app: AppHost, name: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(f"{app.base_url}/api/uploads/{name}", timeout=10)
        if r.status_code == 200 and r.json()["Status"] not in ("Pending", "Converting"):
            return r.json()
        if time.monotonic() > deadline:
            pytest.fail(f"{name} still not judged after {timeout}s: {r.status_code} {r.text}")
        time.sleep(0.3)


def same_disk(storage: StorageAccount, path: str, source: Path, tmp: Path) -> None:
    """`qemu-img compare` of the source with the converted VHD, downloaded; and it is a
    page blob of a whole MiB plus the footer."""
    container, _, blob = path.partition("/")
    client = storage.blobs.get_blob_client(container, blob)
    props = client.get_blob_properties()
    assert props.blob_type == "PageBlob" and (props.size - 512) % MIB == 0
    local = tmp / f"{uuid.uuid4().hex[:8]}.vhd"
    with open(local, "wb") as f:
        client.download_blob(max_concurrency=4).readinto(f)
    info = json.loads(qemu_img("info", "--output=json", "-f", "vpc", str(local)))
    assert info["virtual-size"] == props.size - 512
    r = subprocess.run(
        ["qemu-img", "compare", "-f", "raw", "-F", "vpc", str(source), str(local)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    local.unlink()


@pytest.mark.parametrize(
    "case",
    [
        "dynamic.vhd",
        "disk.vhdx",
        "disk.qcow2",
        "compressed.qcow2",
        "zstd.qcow2",
        "sparse.vmdk",
        "stream.vmdk",
        "odd.img",
    ],
)
def test_each_format_dropped_as_a_block_blob_is_converted_and_registered(
    catalog_app, storage, disks, tmp_path, case
) -> None:
    name = unique(case)
    source = disks[case]
    etag = drop(storage, source, name, {"imagefamily": "Converted"})
    result = outcome(catalog_app, name)
    assert result["Status"] == "Registered", result
    (converted,) = result["ConvertedBlobs"]
    assert converted.startswith(f"images/converted/{name}~")
    assert result["BytesTotal"] == source.stat().st_size == result["BytesDone"]
    assert result["SecondsLeft"] == 0
    # Moving only the data: read about the file once, write only non-zero pages.
    assert result["BytesRead"] <= 1.05 * source.stat().st_size + MAX_EXTENT
    assert 0 < result["BytesWritten"] <= 8 * MIB  # the Linux disk holds ~1 MiB of data
    same_disk(storage, converted, disks.raw, tmp_path)
    image = requests.get(f"{catalog_app.base_url}/api/images/{result['ImageName']}", timeout=10)
    image = image.json()
    assert image["MediaLink"].endswith(f"/{converted}")
    assert (image["OS"], image["ImageFamily"]) == ("Linux", "Converted")
    upload = storage.blobs.get_blob_client("uploads", name).get_blob_properties()
    assert (upload.etag, upload.lease.state) == (etag, "available")  # kept as uploaded
    leased = storage.blobs.get_blob_client(*converted.split("/", 1)).get_blob_properties()
    assert leased.lease.state == "leased"


@pytest.mark.parametrize("case", ["dynamic.vhd", "chs.vhd"])
def test_a_vhd_page_blob_that_is_dynamic_or_not_a_whole_mib_is_converted(
    catalog_app, storage, disks, tmp_path, case
) -> None:
    name = unique(case)
    upload_page_blob(storage.blobs.get_blob_client("uploads", name), disks[case])
    result = outcome(catalog_app, name)
    assert result["Status"] == "Registered", result
    assert result["SourceFormat"] == ("vhd-dynamic" if case == "dynamic.vhd" else "vhd-fixed")
    same_disk(storage, result["ConvertedBlobs"][0], disks.raw, tmp_path)


def test_an_ova_becomes_a_vm_image_with_its_data_disk(
    catalog_app, storage, disks, tmp_path
) -> None:
    name = unique("vm.ova")
    drop(storage, disks["vm.ova"], name)
    result = outcome(catalog_app, name)
    assert result["Status"] == "Registered", result
    assert result["SourceFormat"] == "ova (vmdk-stream)"
    os_disk, data_disk = result["ConvertedBlobs"]
    assert os_disk.endswith("-disk0.vhd") and data_disk.endswith("-disk1.vhd")
    same_disk(storage, os_disk, disks.raw, tmp_path)
    same_disk(storage, data_disk, disks["data.raw"], tmp_path)
    image = requests.get(f"{catalog_app.base_url}/api/images/{result['ImageName']}", timeout=10)
    image = image.json()
    assert image["ImageType"] == "VMImage"
    assert image["OSDiskConfiguration"]["MediaLink"].endswith(f"/{os_disk}")
    [lun0] = image["DataDiskConfigurations"]
    assert lun0["Lun"] == 0 and lun0["MediaLink"].endswith(f"/{data_disk}")


def test_a_disk_image_in_a_vm_image_folder_is_converted_for_its_manifest(
    catalog_app, storage, disks
) -> None:
    stem = f"cvvm-{uuid.uuid4().hex[:6]}"
    upload_page_blob(storage.blobs.get_blob_client("uploads", f"{stem}.image/os.vhd"), disks.fixed)
    # A raw disk named .qcow2: what it is comes from its bytes.
    drop(storage, disks["data.raw"], f"{stem}.image/data.qcow2")
    manifest = {
        "OSDisk": {"Blob": f"{stem}.image/os.vhd"},
        "DataDisks": [{"Blob": f"{stem}.image/data.qcow2", "Lun": 0}],
    }
    storage.blobs.get_blob_client("uploads", f"{stem}.image.json").upload_blob(
        json.dumps(manifest).encode(), overwrite=True
    )
    result = outcome(catalog_app, f"{stem}.image.json")
    assert result["Status"] == "Registered", result
    disk = outcome(catalog_app, f"{stem}.image/data.qcow2")
    assert (disk["Status"], disk["SourceFormat"]) == ("Registered", "raw")
    image = requests.get(f"{catalog_app.base_url}/api/images/{stem}", timeout=10).json()
    assert image["DataDiskConfigurations"][0]["MediaLink"].endswith(disk["ConvertedBlobs"][0])


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("qcow2_backing", "BackingFileNotSupported"),
        ("qcow2_luks", "EncryptedDiskNotSupported"),
        ("vmdk_descriptor", "VmdkExtentsNotSupported"),
    ],
)
def test_a_format_that_cant_be_converted_is_rejected_and_left_as_it_was(
    catalog_app, storage, tmp_path, case, code
) -> None:
    source = FormatsCorpus(tmp_path)[case]
    name = unique(f"refused.{source.suffix.lstrip('.') or 'img'}")
    etag = drop(storage, source, name)
    result = outcome(catalog_app, name)
    assert (result["Status"], result["Error"]["Code"]) == ("Rejected", code), result
    assert len(result["Error"]["Message"]) > 40
    assert storage.blobs.get_blob_client("uploads", name).get_blob_properties().etag == etag
    images = storage.blobs.get_container_client("images")
    assert list(images.list_blobs(name_starts_with=f"converted/{name}")) == []


# -- the CLI -------------------------------------------------------------------------------


def vmimage(app: AppHost, key: str, connection: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vmimage", "--url", app.base_url, "--key", key,
         "--storage-connection-string", connection, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_the_cli_converts_a_qcow2_on_the_fly_into_a_fixed_vhd_page_blob(
    catalog_app, function_key, azurite_connection, storage, disks, tmp_path
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    r = vmimage(
        catalog_app, function_key, azurite_connection,
        "upload", str(disks["compressed.qcow2"]), "--name", f"{name}.vhd", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Converting compressed.qcow2 (qcow2) to a fixed VHD on the way." in r.stderr
    result = json.loads(r.stdout)
    # The server got a fixed VHD: registered as it is, no conversion there.
    assert (result["Status"], result.get("SourceFormat")) == ("Registered", None)
    props = storage.blobs.get_blob_client("uploads", f"{name}.vhd").get_blob_properties()
    assert props.blob_type == "PageBlob" and props.metadata["uploadstate"] == "complete"
    same_disk(storage, f"uploads/{name}.vhd", disks.raw, tmp_path)


def test_the_cli_sends_the_file_as_it_is_when_told_and_the_catalog_converts_it(
    catalog_app, function_key, azurite_connection, storage, disks
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    r = vmimage(
        catalog_app, function_key, azurite_connection,
        "upload", str(disks["disk.vhdx"]), "--name", f"{name}.vhdx", "--convert-on-server",
        "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert (result["Status"], result["SourceFormat"]) == ("Registered", "vhdx")
    props = storage.blobs.get_blob_client("uploads", f"{name}.vhdx").get_blob_properties()
    assert props.blob_type == "BlockBlob" and props.size == disks["disk.vhdx"].stat().st_size


# -- progress and crashes, in an app of their own with small steps --------------------------


def private_app(azurite_connection: str, storage: StorageAccount, tmp: Path, **env: str):  # type: ignore[no-untyped-def]
    """Settings for an app with its own drop zone and queues (the session's app ignores
    them), conversion steps of 1 MiB."""
    s = uuid.uuid4().hex[:8]
    settings = {
        "UPLOADS_CONTAINER": f"cvdrop-{s}",
        "UPLOAD_CHECKS_QUEUE": f"cvchecks-{s}",
        "UPLOAD_CONVERSIONS_QUEUE": f"cvsteps-{s}",
        "CONVERSION_STEP_MIB": "1",
        "FUNCRUNNER_QUEUE_LEASE_SECONDS": "2",
        "FUNCRUNNER_BLOB_SCAN_SECONDS": "0.3",
        "AzureFunctionsWebHost__hostid": f"cv-{s}",
    }
    storage.blobs.create_container(settings["UPLOADS_CONTAINER"])
    for q in ("UPLOAD_CHECKS_QUEUE", "UPLOAD_CONVERSIONS_QUEUE"):
        storage.queues.create_queue(settings[q])
    return settings, lambda **more: AppHost(
        azurite_connection, keys_file=tmp / "k.json", extra_env={**settings, **env, **more}
    )


def dense_disk(path: Path) -> Path:
    """A qcow2 with 12 MiB of data that doesn't compress, behind an MBR: steps of 1 MiB
    read at most one 4 MiB extent each, so that makes 3 or 4 steps."""
    raw = path.with_suffix(".raw")
    with open(raw, "wb") as f:
        f.truncate(32 * MIB)
        f.seek(510)
        f.write(b"\x55\xaa")
        f.seek(2 * MIB)
        f.write(os.urandom(12 * MIB))
    qemu_img("convert", "-f", "raw", "-O", "qcow2", str(raw), str(path))
    return raw


def test_progress_shows_bytes_done_of_the_total_and_the_time_left(
    azurite_connection, catalog_app, storage, tmp_path
) -> None:
    settings, app = private_app(azurite_connection, storage, tmp_path)
    source = tmp_path / "dense.qcow2"
    raw = dense_disk(source)
    name = unique("progress.qcow2")
    host = app().start()
    try:
        drop(storage, source, name, {"os": "Linux"}, settings["UPLOADS_CONTAINER"])
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            r = requests.get(f"{host.base_url}/api/uploads/{name}", timeout=10)
            doc = r.json() if r.status_code == 200 else {}
            if doc.get("Status") == "Converting":
                seen.append(doc)
            if doc.get("Status") in ("Registered", "Rejected"):
                break
            time.sleep(0.2)
    finally:
        host.stop()
    assert doc.get("Status") == "Registered", doc
    assert doc["Conversion"]["Steps"] >= 3  # a step reads at least one 4 MiB extent
    moving = [d for d in seen if 0 < d["BytesDone"] < d["BytesTotal"]]
    assert moving, seen  # it was seen part of the way
    assert all(d["BytesTotal"] == source.stat().st_size for d in seen)
    assert any(isinstance(d.get("SecondsLeft"), float) for d in moving)
    dones = [d["BytesDone"] for d in seen]
    assert dones == sorted(dones)
    assert doc["BytesWritten"] == 12 * MIB + 512
    same_disk(storage, doc["ConvertedBlobs"][0], raw, tmp_path)


@pytest.mark.parametrize("step", ["Checkpoint", "Register"])
def test_an_app_killed_mid_conversion_finishes_it_after_a_restart(
    azurite_connection, catalog_app, storage, tmp_path, step
) -> None:
    settings, app = private_app(azurite_connection, storage, tmp_path)
    source = tmp_path / "dense.qcow2"
    raw = dense_disk(source)
    name = unique(f"crash-{step}.qcow2")
    doomed = app(FAULT_KILL_CONVERSION_AT=step)
    doomed.start(wait_path=None)
    drop(storage, source, name, {"os": "Linux"}, settings["UPLOADS_CONTAINER"])
    assert doomed.process is not None
    assert doomed.process.wait(timeout=60) == 70  # killed at the step
    half = requests.get(f"{catalog_app.base_url}/api/uploads/{name}", timeout=10).json()
    assert half["Status"] == "Converting", half
    image = name.rsplit(".", 1)[0]
    assert requests.get(f"{catalog_app.base_url}/api/images/{image}", timeout=10).status_code == 404
    survivor = app().start()
    try:
        done = outcome(survivor, name, timeout=120)
    finally:
        survivor.stop()
    assert done["Status"] == "Registered", done
    (converted,) = done["ConvertedBlobs"]
    same_disk(storage, converted, raw, tmp_path)
    images = storage.blobs.get_container_client("images")
    assert len(list(images.list_blobs(name_starts_with=f"converted/{name}~"))) == 1
