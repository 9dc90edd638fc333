"""Image lifecycle through the running app: held back from latest at upload, deprecated,
past its end of life, protected from removal; the families list and the state filter.

Each test works in a family of its own, over small real disks dropped into `uploads`.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from devtools.apphost import AppHost
from devtools.upload import upload_page_blob
from shared.adapters.storage import StorageAccount
from tests.e2e.test_catalog_api import (
    Register,
    assert_error,
    call,
    get,
    make_register,
    ok,
    seg,
)
from tests.e2e.test_uploads import outcome
from tests.vhd_corpus import Corpus, CorpusToolMissing


@pytest.fixture(scope="module")
def blank_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return Corpus(tmp_path_factory.mktemp("lifecycle-corpus"))["blank_fixed"]
    except CorpusToolMissing as e:
        pytest.fail(f"the test command should have installed the disk tools: {e}")


@pytest.fixture(scope="module")
def register(catalog_app: AppHost, storage: StorageAccount, blank_disk: Path) -> Register:
    return make_register(catalog_app, storage, blank_disk)


@pytest.fixture(scope="module")
def key(function_key: str) -> dict[str, str]:
    return {"x-functions-key": function_key}


@pytest.fixture
def family() -> str:
    return f"Lifecycle {uuid.uuid4().hex[:8]}"


def patch(app: AppHost, name: str, body: Any, key: dict[str, str]) -> Any:
    return call(app, "PATCH", f"/api/images/{seg(name)}", json=body, headers=key)


def latest(app: AppHost, family: str, **params: Any) -> Any:
    return get(app, f"/api/families/{seg(family)}/latest", **params)


def listed(app: AppHost, family: str) -> dict[str, Any]:
    body = ok(get(app, "/api/families"))
    return next(f for f in body["Families"] if f["ImageFamily"] == family)


def test_an_upload_held_back_from_latest_stays_out_until_let_in(
    catalog_app: AppHost, register: Register, key: dict[str, str], family: str
) -> None:
    first = register("life-first", imagefamily=family)
    time.sleep(1.1)  # published dates are blob Last-Modified times, whole seconds: no tie
    held = register("life-held", imagefamily=family, excludefromlatest="true")
    image = ok(get(catalog_app, f"/api/images/{held}"))
    assert image["ExcludeFromLatest"] is True and image["EffectiveState"] == "Active"
    assert ok(latest(catalog_app, family))["ImageName"] == first
    assert ok(latest(catalog_app, family, includeExcluded="true"))["ImageName"] == held
    summary = listed(catalog_app, family)
    assert summary["ExcludedFromLatest"] == 1
    assert summary["Latest"]["ImageName"] == first
    assert summary["Newest"]["ImageName"] == held  # newest is newest, whatever its state
    ok(patch(catalog_app, held, {"ExcludeFromLatest": False}, key))
    assert ok(latest(catalog_app, family))["ImageName"] == held
    assert listed(catalog_app, family)["ExcludedFromLatest"] == 0


def test_deprecating_the_newest_moves_latest_back_and_names_the_replacement(
    catalog_app: AppHost, register: Register, key: dict[str, str], family: str
) -> None:
    old = register("life-old", imagefamily=family)
    time.sleep(1.1)  # distinct published seconds
    new = register("life-new", imagefamily=family)
    assert ok(latest(catalog_app, family))["ImageName"] == new
    body = ok(patch(catalog_app, new, {"state": "deprecated", "ReplacedBy": old.upper()}, key))
    assert (body["State"], body["EffectiveState"], body["ReplacedBy"]) == (
        "Deprecated",
        "Deprecated",
        old,  # the replacement's own spelling
    )
    assert ok(latest(catalog_app, family))["ImageName"] == old
    counts = listed(catalog_app, family)["StateCounts"]
    assert counts == {"Active": 1, "Deprecated": 1, "Disabled": 0}
    # The old one disabled too: nothing may be offered, the family is still there.
    ok(patch(catalog_app, old, {"State": "Disabled"}, key))
    assert_error(latest(catalog_app, family), 404, "NoLatestImage")
    assert listed(catalog_app, family)["Latest"] is None
    # Active again, without an end of life: ReplacedBy no longer applies and goes.
    body = ok(patch(catalog_app, new, {"State": "Active"}, key))
    assert "ReplacedBy" not in body
    assert ok(latest(catalog_app, family))["ImageName"] == new


def test_past_its_end_of_life_an_image_counts_as_deprecated(
    catalog_app: AppHost, register: Register, key: dict[str, str], family: str
) -> None:
    old = register("life-eol-old", imagefamily=family)
    time.sleep(1.1)  # distinct published seconds
    new = register("life-eol-new", imagefamily=family)
    body = ok(patch(catalog_app, new, {"EndOfLifeDate": "2001-02-03"}, key))
    assert body["EndOfLifeDate"] == "2001-02-03T00:00:00Z"
    assert (body["State"], body["EffectiveState"]) == ("Active", "Deprecated")
    assert ok(latest(catalog_app, family))["ImageName"] == old
    deprecated = ok(get(catalog_app, "/api/images", family=family, state="Deprecated"))
    assert [i["ImageName"] for i in deprecated["Images"]] == [new]
    active = ok(
        get(
            catalog_app,
            "/api/images",
            family=family,
            state="active",
            select="ImageName,EffectiveState",
        )
    )
    assert active["Images"] == [{"ImageName": old, "EffectiveState": "Active"}]
    # A date to come: active until then.
    body = ok(patch(catalog_app, new, {"EndOfLifeDate": "2999-01-01T10:00:00+02:00"}, key))
    assert (body["EndOfLifeDate"], body["EffectiveState"]) == ("2999-01-01T08:00:00Z", "Active")
    assert ok(latest(catalog_app, family))["ImageName"] == new
    body = ok(patch(catalog_app, new, {"EndOfLifeDate": None}, key))
    assert "EndOfLifeDate" not in body


def test_a_protected_image_refuses_removal_until_turned_off_or_past_its_end_of_life(
    catalog_app: AppHost,
    register: Register,
    key: dict[str, str],
    family: str,
    classic_client: Any,
) -> None:
    name = register("life-protected", imagefamily=family)
    ok(patch(catalog_app, name, {"DeletionProtection": True}, key))
    r = call(catalog_app, "DELETE", f"/api/images/{name}", headers=key)
    body = assert_error(r, 409, "ImageDeletionProtected")
    assert f"'{name}' has deletion protection (until it is turned off)" in body["Message"]
    # The classic API refuses it too (Delete OS Image).
    with pytest.raises(Exception, match="deletion protection"):
        classic_client.delete_os_image(name)
    ok(get(catalog_app, f"/api/images/{name}"))
    # Protection until an end of life that has passed no longer holds.
    ok(patch(catalog_app, name, {"EndOfLifeDate": "2030-01-01"}, key))
    body = assert_error(call(catalog_app, "DELETE", f"/api/images/{name}", headers=key), 409)
    assert "until its end of life on 2030-01-01T00:00:00Z" in body["Message"]
    ok(patch(catalog_app, name, {"EndOfLifeDate": "2020-01-01"}, key))
    ok(call(catalog_app, "DELETE", f"/api/images/{name}", headers=key))
    assert_error(get(catalog_app, f"/api/images/{name}"), 404, "ImageNotFound")

    other = register("life-protected-off", imagefamily=family)
    ok(patch(catalog_app, other, {"DeletionProtection": True}, key))
    ok(patch(catalog_app, other, {"DeletionProtection": False}, key))
    ok(call(catalog_app, "DELETE", f"/api/images/{other}", headers=key))


@pytest.mark.parametrize(
    "body,code",
    [
        ({"State": "Retired"}, "InvalidParameter"),
        ({"State": 1}, "InvalidParameter"),
        ({"ExcludeFromLatest": "yes"}, "InvalidParameter"),
        ({"DeletionProtection": None}, "InvalidParameter"),
        ({"EndOfLifeDate": "tomorrow"}, "InvalidParameter"),
        ({"EndOfLifeDate": "3100-01-01"}, "InvalidParameter"),
        ({"ReplacedBy": "no-such-image-at-all"}, "InvalidReplacement"),
        ({"ReplacedBy": "bad name"}, "InvalidParameter"),
        ({"State": "Deprecated", "ReplacedBy": "SELF"}, "InvalidReplacement"),
    ],
)
def test_bad_lifecycle_changes_are_400_naming_the_field(
    catalog_app: AppHost, register: Register, key: dict[str, str], body: Any, code: str
) -> None:
    name = _one_image(register)
    if body.get("ReplacedBy") == "SELF":
        body = {**body, "ReplacedBy": name}
    error = assert_error(patch(catalog_app, name, body, key), 400, code)
    assert any(field in error["Message"] for field in body), error
    assert ok(get(catalog_app, f"/api/images/{name}"))["State"] == "Active"


def test_a_replacement_needs_an_image_being_retired(
    catalog_app: AppHost, register: Register, key: dict[str, str]
) -> None:
    name = _one_image(register)
    other = register("life-replacement")
    r = patch(catalog_app, name, {"ReplacedBy": other}, key)
    assert "set State (or EndOfLifeDate)" in assert_error(r, 400, "InvalidReplacement")["Message"]
    body = ok(patch(catalog_app, name, {"EndOfLifeDate": "2999-01-01", "ReplacedBy": other}, key))
    assert body["ReplacedBy"] == other and body["State"] == "Active"
    ok(patch(catalog_app, name, {"EndOfLifeDate": None}, key))


_made: list[str] = []


def _one_image(register: Register) -> str:
    if not _made:
        _made.append(register("life-bad"))
    return _made[0]


def test_a_bad_excludefromlatest_rejects_the_upload(
    catalog_app: AppHost, storage: StorageAccount, blank_disk: Path
) -> None:
    blob = f"life-badflag-{uuid.uuid4().hex[:8]}.vhd"
    client = storage.blobs.get_blob_client(storage.settings.uploads_container, blob)
    upload_page_blob(client, blank_disk, {"os": "Linux", "excludefromlatest": "maybe"})
    result = outcome(catalog_app, blob)
    assert result["Status"] == "Rejected"
    assert result["Error"]["Code"] == "InvalidMetadata"
    assert "excludefromlatest must be true or false" in result["Error"]["Message"]
