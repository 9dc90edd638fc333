"""`vmimage` for lifecycle and integrity, as a subprocess against the running app: upload
held back from latest, `set` to let it in, deprecate and protect it; `show`, `families`
and `list --state` show it; `verify` re-hashes the disks and says when one changed."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from azure.storage.blob import BlobLeaseClient

from shared.adapters.storage import StorageAccount
from tests.e2e.test_cli import Cli, cli, corpus, disk  # noqa: F401
from tests.vhd_corpus import Corpus


def wait_for_hash(cli: Cli, name: str, timeout: float = 60) -> dict:  # noqa: F811
    deadline = time.monotonic() + timeout
    while True:
        image = cli.json("show", name)
        if "ContentHash" in image:
            return image
        assert time.monotonic() < deadline, f"no content hash for {name}: {image}"
        time.sleep(0.3)


def test_a_held_back_upload_is_let_in_deprecated_and_protected(
    cli: Cli,  # noqa: F811
    corpus: Corpus,  # noqa: F811
) -> None:
    family = f"CLI lifecycle {uuid.uuid4().hex[:6]}"
    first, held = f"cli-life-a-{uuid.uuid4().hex[:6]}", f"cli-life-b-{uuid.uuid4().hex[:6]}"
    path = disk(corpus, "linux_ext4_mbr")
    for name, extra in ((first, []), (held, ["--exclude-from-latest"])):
        r = cli("upload", str(path), "--name", f"{name}.vhd", "--family", family, *extra)
        assert r.returncode == 0, r.stderr
    assert cli.json("latest", family)["ImageName"] == first
    assert cli.json("latest", family, "--include-excluded")["ImageName"] == held
    r = cli("show", held)
    assert r.returncode == 0
    lines = dict(line.split(None, 1) for line in r.stdout.splitlines() if " " in line)
    assert lines["ExcludeFromLatest"].strip() == "true"
    assert lines["EffectiveState"].strip() == "Active"

    r = cli("set", held, "--include-in-latest")
    assert r.returncode == 0, r.stderr
    assert "ExcludeFromLatest" in r.stdout and "false" in r.stdout
    assert cli.json("latest", family)["ImageName"] == held
    r = cli("families")
    row = next(line for line in r.stdout.splitlines() if line.startswith(family))
    # FAMILY (three words here), IMAGES, ACTIVE, DEPRECATED, DISABLED, LATEST, NEWEST, ...
    assert row.split()[3:9] == ["2", "2", "0", "0", held, held]

    doc = cli.json(
        "set", held, "--state", "deprecated", "--replaced-by", first, "--deletion-protection", "on"
    )
    assert (doc["State"], doc["ReplacedBy"], doc["DeletionProtection"]) == (
        "Deprecated",
        first,
        True,
    )
    assert cli.json("latest", family)["ImageName"] == first
    listed = cli.json("list", "--family", family, "--state", "Deprecated")
    assert [i["ImageName"] for i in listed["Images"]] == [held]
    r = cli("rm", held)
    assert r.returncode == 1
    assert "ImageDeletionProtected" in r.stderr and "deletion protection" in r.stderr
    r = cli("set", held, "--end-of-life", "2020-01-01")
    assert r.returncode == 0, r.stderr  # past its end of life, the protection has lapsed
    assert cli("rm", held).returncode == 0
    r = cli("set", first)
    assert r.returncode == 2 and "NothingToChange" in r.stderr


def test_verify_says_whether_the_disks_still_match(
    cli: Cli,  # noqa: F811
    corpus: Corpus,  # noqa: F811
    storage: StorageAccount,
) -> None:
    name = f"cli-verify-{uuid.uuid4().hex[:6]}"
    r = cli("upload", str(disk(corpus, "linux_ext4_mbr")), "--name", f"{name}.vhd")
    assert r.returncode == 0, r.stderr
    image = wait_for_hash(cli, name)
    r = cli("verify", name)
    assert r.returncode == 0, r.stderr
    assert "match" in r.stdout and "match their content hash" in r.stderr
    doc = cli.json("verify", name)
    assert doc["Match"] is True and doc["Disks"][0]["Computed"] == image["ContentHash"]
    # Change a sector of the registered disk behind the catalog's back (breaking its lease).
    container, _, blob = image["OSDiskConfiguration"]["SourceBlob"].partition("/")
    client = storage.blobs.get_blob_client(container, blob)
    BlobLeaseClient(client).break_lease(lease_break_period=0)  # as an operator could
    client.upload_page(b"\xff" * 512, offset=5 * 1024 * 1024, length=512)
    r = cli("verify", name)
    assert r.returncode == 1
    assert "ContentMismatch" in r.stderr and "DIFFERS" in r.stdout
    assert "4 MiB blocks that changed: 1" in r.stderr
    assert cli("rm", name, "--delete-vhd").returncode == 0  # no disk left unleased


def test_verify_needs_a_hash_to_compare_with(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    r = cli("verify", "no-such-image-anywhere")
    assert r.returncode == 1 and "ImageNotFound" in r.stderr


@pytest.mark.parametrize("args", [["--state", "Retired"], ["--deletion-protection", "maybe"]])
def test_set_refuses_unknown_values(cli: Cli, args: list[str]) -> None:  # noqa: F811
    r = cli("set", "anything", *args)
    assert r.returncode == 2
