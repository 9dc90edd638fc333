"""`vmimage`, the real command line, run as a subprocess against the running app.

Disks are real (built by tests/vhd_corpus.py with real tools) and uploaded by
the CLI to Azurite; the running app judges them. Every test checks the exit
code a script would see.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.apphost import AppHost
from shared.adapters.storage import StorageAccount
from shared.domain.vhd import build_footer
from tests.vhd_corpus import TIB, Corpus, CorpusToolMissing, huge_sparse

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


class Cli:
    def __init__(self, app: AppHost, key: str, connection: str) -> None:
        self.app = app
        self.base = [
            sys.executable,
            "-m",
            "vmimage",
            "--url",
            app.base_url,
            "--key",
            key,
            "--storage-connection-string",
            connection,
        ]

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def json(self, *args: str) -> Any:
        r = self(*args, "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)


@pytest.fixture(scope="module")
def cli(catalog_app: AppHost, function_key: str, azurite_connection: str) -> Cli:
    return Cli(catalog_app, function_key, azurite_connection)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("cli-corpus"))


def disk(corpus: Corpus, case: str) -> Path:
    try:
        return corpus[case]
    except CorpusToolMissing as e:
        pytest.fail(f"the test command should have installed the disk tools: {e}")


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def family(cli: Cli, corpus: Corpus) -> dict[str, Any]:
    """Two images uploaded by the CLI into a family of their own: one waited for, one
    sent with --no-wait and then followed with `status --wait`."""
    fam = f"CLI Family {uuid.uuid4().hex[:6]}"
    first, second = unique("cli-ubuntu"), unique("cli-ubuntu")
    r = cli(
        "upload",
        str(disk(corpus, "linux_ext4_mbr")),
        "--name",
        f"{first}.vhd",
        "--family",
        fam,
        "--label",
        "CLI first",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    outcome = json.loads(r.stdout)
    r = cli(
        "upload",
        str(disk(corpus, "linux_ext4_mbr")),
        "--name",
        f"{second}.vhd",
        "--family",
        fam,
        "--label",
        "CLI second",
        "--no-wait",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Status"] == "Uploaded"
    later = cli.json("status", f"{second}.vhd", "--wait")
    assert later["Status"] == "Registered", later
    return {"family": fam, "first": first, "second": second, "outcome": outcome, "stderr": r.stderr}


def test_upload_registers_a_real_disk_and_exits_0(cli, family, storage) -> None:
    outcome = family["outcome"]
    assert (outcome["Status"], outcome["ImageName"]) == ("Registered", family["first"]), outcome
    assert outcome["Detected"]["os"] == "Linux"
    image = requests.get(f"{cli.app.base_url}/api/images/{family['first']}", timeout=10).json()
    assert (image["ImageFamily"], image["Label"]) == (family["family"], "CLI first")
    # The CLI spoke the uploadstate protocol and left the metadata it was given.
    props = storage.blobs.get_blob_client("uploads", f"{family['first']}.vhd").get_blob_properties()
    assert props.metadata["uploadstate"] == "complete"
    assert props.metadata["imagefamily"] == family["family"]
    assert props.blob_type == "PageBlob"


def test_upload_talks_on_stderr_without_a_progress_bar_when_not_a_terminal(cli, corpus) -> None:
    name = unique("cli-plain")
    r = cli("upload", str(disk(corpus, "linux_ext4_mbr")), "--name", f"{name}.vhd")
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "█" not in r.stderr
    assert "Checked linux.vhd: fixed VHD, 64.0 MiB virtual; MBR; ext4; Linux." in r.stderr
    assert f"Uploaded uploads/{name}.vhd (64.0 MiB)" in r.stderr
    assert "Status              Registered" in r.stdout
    quiet = cli("upload", str(disk(corpus, "linux_ext4_mbr")), "--name", f"{name}-q.vhd", "-q")
    assert (quiet.returncode, quiet.stderr) == (0, "")


def test_a_broken_disk_is_refused_locally_and_nothing_is_uploaded(cli, corpus, storage) -> None:
    name = f"{unique('cli-differencing')}.vhd"
    r = cli("upload", str(disk(corpus, "differencing_vhd")), "--name", name)
    assert r.returncode == 1
    assert r.stderr.startswith("vmimage: error: BackingFileNotSupported: differencing.vhd: ")
    assert "nothing was uploaded" in r.stderr
    assert not storage.blobs.get_blob_client("uploads", name).exists()
    assert requests.get(f"{cli.app.base_url}/api/uploads/{name}", timeout=10).status_code == 404


def test_a_disk_without_an_os_needs_os_declared(cli, corpus) -> None:
    name = unique("cli-blank")
    r = cli("upload", str(disk(corpus, "blank_fixed")), "--name", f"{name}.vhd")
    assert r.returncode == 1
    assert r.stderr.startswith("vmimage: error: OSNotDetermined: ")
    r = cli("upload", str(disk(corpus, "blank_fixed")), "--name", f"{name}.vhd", "--os", "windows")
    assert r.returncode == 0, r.stderr


def test_a_disk_the_catalog_rejects_exits_1_with_its_code(cli, tmp_path) -> None:
    # Valid locally; larger than the catalog's OS disk limit (2 TiB): sparse, so quick.
    path = huge_sparse(tmp_path, size=2 * TIB + MIB)
    name = f"{unique('cli-huge')}.vhd"
    r = cli("upload", str(path), "--name", name, "--json")
    assert r.returncode == 1, r.stderr
    assert "vmimage: error: DiskTooLarge: " in r.stderr
    assert json.loads(r.stdout)["Status"] == "Rejected"
    # A sparse disk sends only its data: tens of MiB for 2 TiB.
    sent = next(line for line in r.stderr.splitlines() if line.startswith("Uploaded"))
    assert "(2.0 TiB)" in sent and " MiB of data sent" in sent


def test_uploading_over_an_existing_blob_or_image_is_refused_before_sending(
    cli, corpus, family
) -> None:
    path = str(disk(corpus, "linux_ext4_mbr"))
    r = cli("upload", path, "--name", f"{family['first']}.vhd", "--image-name", unique("other"))
    assert (r.returncode, r.stderr.splitlines()[-1].split(":")[2].strip()) == (1, "BlobExists")
    r = cli("upload", path, "--name", f"{unique('x')}.vhd", "--image-name", family["first"])
    assert r.returncode == 1 and "vmimage: error: ImageNameTaken: " in r.stderr


def test_list_filters_selects_pages_and_prints_json(cli, family) -> None:
    fam = family["family"]
    r = cli("list", "--family", fam)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "TYPE",
        "OS",
        "CATEGORY",
        "FAMILY",
        "PUBLISHED",
        "GB",
        "LABEL",
    ]
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(
        [family["first"], family["second"]]
    )

    doc = cli.json("list", "--family", fam, "--select", "imagename,label")
    assert doc["Count"] == 2
    assert all(set(i) == {"ImageName", "Label"} for i in doc["Images"])
    r = cli("list", "--family", fam, "--select", "ImageName,Label")
    assert r.stdout.splitlines()[0].split() == ["ImageName", "Label"]

    one = cli("list", "--family", fam, "--top", "1", "--json")
    assert one.returncode == 0 and "--all" in one.stderr
    page = json.loads(one.stdout)
    assert page["Count"] == 1 and page["ContinuationToken"]
    every = cli.json("list", "--family", fam, "--top", "1", "--all")
    assert every["Count"] == 2 and "ContinuationToken" not in every
    token = cli.json(
        "list", "--family", fam, "--top", "1", "--continuation-token", page["ContinuationToken"]
    )
    assert {i["ImageName"] for i in page["Images"] + token["Images"]} == {
        family["first"],
        family["second"],
    }

    users = cli.json("list", "--os", "linux", "--category", "user", "--type", "osimage", "--all")
    assert family["first"] in {i["ImageName"] for i in users["Images"]}
    assert all(i["Category"] == "User" for i in users["Images"])
    bad = cli("list", "--select", "Nope")
    assert bad.returncode == 1 and bad.stderr.startswith("vmimage: error: InvalidParameter: ")


def test_families_show_and_latest(cli, family) -> None:
    fams = {f["ImageFamily"]: f for f in cli.json("families")["Families"]}
    assert fams[family["family"]]["ImageCount"] == 2
    r = cli("families")
    assert r.returncode == 0 and family["family"] in r.stdout

    shown = cli.json("show", family["first"])
    assert (
        shown == requests.get(f"{cli.app.base_url}/api/images/{family['first']}", timeout=10).json()
    )
    r = cli("show", family["first"])
    assert r.returncode == 0
    assert f"ImageName                                {family['first']}" in r.stdout
    assert "OSDiskConfiguration.OSState              Generalized" in r.stdout

    latest = cli.json("latest", family["family"], "--os", "Linux")
    assert latest["ImageName"] == family["second"]  # uploaded last
    r = cli("latest", "No Such Family")
    assert r.returncode == 1 and r.stderr.startswith("vmimage: error: FamilyNotFound: ")
    r = cli("show", "no-such-image")
    assert r.returncode == 1 and r.stderr.startswith("vmimage: error: ImageNotFound: ")


def vm_disks(storage: StorageAccount, vm: str, data: int) -> list[str]:
    links = []
    for role in ["os", *(f"data{i}" for i in range(data))]:
        client = storage.blobs.get_blob_client(storage.settings.vhds_container, f"{vm}-{role}.vhd")
        client.create_page_blob(64 * MIB + 512)
        client.upload_page(build_footer(64 * MIB), offset=64 * MIB, length=512)
        links.append(client.url)
    return links


def test_vm_add_then_capture_with_wait_then_rm_with_its_disks(cli, storage) -> None:
    service, vm, image = "svc-cli", unique("vm"), unique("cli-cap")
    os_disk, data0, data1 = vm_disks(storage, vm, data=2)
    r = cli(
        "vm",
        "add",
        service,
        vm,
        "--state",
        "Stopped",
        "--os",
        "Linux",
        "--os-disk",
        os_disk,
        "--data-disk",
        f"0={data0}",
        "--data-disk",
        f"1:ReadOnly={data1}",
    )
    assert (r.returncode, r.stdout.strip()) == (0, f"Added VM {service}/{vm}."), r.stderr
    shown = cli.json("vm", "show", service, vm)
    assert [(d["Lun"], d["HostCaching"]) for d in shown["DataDisks"]] == [
        (0, "None"),
        (1, "ReadOnly"),
    ]
    listed = cli.json("vm", "list", "--all")
    assert (service, vm) in {(v["ServiceName"], v["Name"]) for v in listed["VMs"]}

    r = cli(
        "capture",
        "--service",
        service,
        "--vm",
        vm,
        "--image",
        image,
        "--os-state",
        "Specialized",
        "--label",
        "Captured by the CLI",
        "--wait",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    op = json.loads(r.stdout)
    assert (op["Status"], op["ImageName"]) == ("Succeeded", image)
    assert op["OperationId"].startswith("cli-")
    assert "Succeeded: Done" in r.stderr  # the steps as they went by

    got = cli.json("show", image)
    assert got["ImageType"] == "VMImage" and len(got["DataDiskConfigurations"]) == 2
    assert got["Label"] == "Captured by the CLI"
    copies = [
        got["OSDiskConfiguration"]["MediaLink"],
        *(d["MediaLink"] for d in got["DataDiskConfigurations"]),
    ]

    r = cli("rm", image, "--delete-vhd")
    assert (r.returncode, r.stdout.strip()) == (0, f"Removed image {image}; its disks deleted.")
    assert cli("show", image).returncode == 1
    for link in copies:
        container, _, blob = link.split("/devstoreaccount1/", 1)[1].partition("/")
        assert not storage.blobs.get_blob_client(container, blob).exists(), link

    # Specialized: the VM stays, until removed from the inventory.
    assert cli("vm", "rm", service, vm).returncode == 0
    r = cli("vm", "show", service, vm)
    assert r.returncode == 1 and r.stderr.startswith("vmimage: error: VmNotFound: ")


def test_a_capture_that_fails_exits_1_with_its_code(cli, storage) -> None:
    service, vm = "svc-cli", unique("running")
    (os_disk,) = vm_disks(storage, vm, data=0)
    assert (
        cli(
            "vm", "add", service, vm, "--state", "running", "--os", "linux", "--os-disk", os_disk
        ).returncode
        == 0
    )
    r = cli("capture", "--service", service, "--vm", vm, "--image", unique("never"), "--wait")
    assert r.returncode == 1
    assert "vmimage: error: VmNotStopped: " in r.stderr


def test_rm_delete_vhd_deletes_an_uploaded_disk(cli, corpus, storage) -> None:
    name = unique("cli-rm")
    assert (
        cli("upload", str(disk(corpus, "linux_ext4_mbr")), "--name", f"{name}.vhd", "-q").returncode
        == 0
    )
    blob = storage.blobs.get_blob_client("uploads", f"{name}.vhd")
    assert blob.exists()
    removed = cli.json("rm", name, "--delete-vhd")
    assert removed["ImageName"] == name
    assert not blob.exists()
    r = cli("rm", name)
    assert r.returncode == 1 and "ImageNotFound" in r.stderr


def test_changes_need_the_key(cli) -> None:
    base = [sys.executable, "-m", "vmimage", "--url", cli.app.base_url, "--key", "wrong"]
    r = subprocess.run(
        [*base, "rm", "anything"], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )
    assert r.returncode == 1
    assert r.stderr.startswith("vmimage: error: Unauthorized: ")


def test_an_unreachable_catalog_exits_3_and_waiting_too_long_exits_4(cli) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = subprocess.run(
        [sys.executable, "-m", "vmimage", "--url", f"http://127.0.0.1:{port}", "list"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert r.returncode == 3
    assert r.stderr.startswith("vmimage: error: Unreachable: cannot reach the catalog at ")

    r = cli("status", f"{unique('never-uploaded')}.vhd", "--wait", "--timeout", "1")
    assert r.returncode == 4
    assert r.stderr.startswith("vmimage: error: Timeout: ")


def test_unreachable_storage_exits_3_after_a_few_retries(cli, corpus) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    name = unique("cli-nostorage")
    r = cli("upload", str(disk(corpus, "linux_ext4_mbr")), "--name", f"{name}.vhd",
            "--storage-connection-string", dead)  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert "vmimage: error: StorageUnreachable: cannot reach the storage account" in r.stderr
