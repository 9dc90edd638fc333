"""Content hashes through the running app: every registered image gets one in the
background, equal to `sha256sum` of the disk's data area; an identical second upload is
flagged as a duplicate of the first; `GET /api/images?contentHash=` finds them."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from devtools.apphost import AppHost
from shared.adapters.storage import StorageAccount
from shared.domain.vhd import parse_footer
from tests.e2e.test_catalog_api import Register, assert_error, call, get, make_register, ok
from tests.vhd_corpus import Corpus, CorpusToolMissing


@pytest.fixture(scope="module")
def linux_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return Corpus(tmp_path_factory.mktemp("hash-corpus"))["linux_ext4_mbr"]
    except CorpusToolMissing as e:
        pytest.fail(f"the test command should have installed the disk tools: {e}")


@pytest.fixture(scope="module")
def register(catalog_app: AppHost, storage: StorageAccount, linux_disk: Path) -> Register:
    return make_register(catalog_app, storage, linux_disk)


def sha256sum_of_data_area(path: Path) -> str:
    """`head -c <virtual size> disk.vhd | sha256sum`: the data area, without the footer."""
    with open(path, "rb") as f:
        f.seek(-512, 2)
        size = parse_footer(f.read(512)).current_size
    out = subprocess.run(
        f"head -c {size} '{path}' | sha256sum", shell=True, check=True, capture_output=True
    )
    return out.stdout.decode().split()[0]


def hashed(app: AppHost, name: str, timeout: float = 60) -> dict[str, Any]:
    """The image once its content hash is there (its progress shown until then)."""
    deadline = time.monotonic() + timeout
    while True:
        image = ok(get(app, f"/api/images/{name}"))
        if "ContentHash" in image:
            assert "ContentHashProgress" not in image
            return image
        assert image["ContentHashProgress"]["Status"] in ("Queued", "Running"), image
        if time.monotonic() > deadline:
            pytest.fail(f"{name} has no content hash after {timeout}s: {image}")
        time.sleep(0.3)


def test_every_image_gets_the_sha256_of_its_data_and_a_duplicate_is_flagged(
    catalog_app: AppHost, register: Register, linux_disk: Path, function_key: str
) -> None:
    expected = sha256sum_of_data_area(linux_disk)
    first = register("hash-first")
    image = hashed(catalog_app, first)
    assert image["ContentHash"] == expected
    os_disk = image["OSDiskConfiguration"]
    assert os_disk["ContentHash"] == expected
    assert os_disk["BlockHashes"].startswith("image-hashes/")
    assert not any("Duplicate" in w for w in image.get("Warnings", []))

    second = register("hash-second")  # the same disk again
    image = hashed(catalog_app, second)
    assert image["ContentHash"] == expected
    assert any(f"of the image '{first}'" in w for w in image["Warnings"]), image["Warnings"]
    first_now = ok(get(catalog_app, f"/api/images/{first}"))
    assert any(f"of the image '{second}'" in w for w in first_now["Warnings"])

    found = ok(get(catalog_app, "/api/images", contentHash=expected.upper()))
    assert sorted(i["ImageName"] for i in found["Images"]) >= sorted([first, second])
    page = ok(get(catalog_app, "/api/images", contentHash=expected, top=1, select="ImageName"))
    assert page["Images"][0].keys() == {"ImageName"} and "ContinuationToken" in page
    rest = ok(
        get(
            catalog_app,
            "/api/images",
            contentHash=expected,
            top=1,
            select="ImageName",
            continuationToken=page["ContinuationToken"],
        )
    )
    assert rest["Images"][0]["ImageName"] != page["Images"][0]["ImageName"]

    key = {"x-functions-key": function_key}
    ok(call(catalog_app, "DELETE", f"/api/images/{second}", headers=key))
    found = ok(get(catalog_app, "/api/images", contentHash=expected))
    names = {i["ImageName"] for i in found["Images"]}
    assert first in names and second not in names


def test_nothing_has_a_content_nobody_uploaded(catalog_app: AppHost) -> None:
    body = ok(get(catalog_app, "/api/images", contentHash="0" * 64))
    assert body == {"Images": [], "Count": 0}


@pytest.mark.parametrize("value", ["abc", "g" * 64, "0" * 63, ""])
def test_a_content_hash_that_is_no_sha256_is_400(catalog_app: AppHost, value: str) -> None:
    r = get(catalog_app, "/api/images", contentHash=value)
    assert "contentHash" in assert_error(r, 400, "InvalidParameter")["Message"]


def test_an_image_without_disks_of_ours_has_no_hash_and_no_progress(
    catalog_app: AppHost, storage: StorageAccount
) -> None:
    from shared.services.gallery import load_gallery
    from tests.e2e.test_catalog_api import catalog_of, table_images

    load_gallery(catalog_of(storage))
    platform = next(i for i in table_images(storage) if i.Category == "Public")
    image = ok(get(catalog_app, f"/api/images/{platform.ImageName}"))
    # A gallery image's disks are Azure's, not blobs of ours to read.
    assert "ContentHash" not in image and "ContentHashProgress" not in image
