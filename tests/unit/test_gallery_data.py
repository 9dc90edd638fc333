"""Checks on the shipped platform/community gallery (``shared/data/gallery.json``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GALLERY = ROOT / "shared" / "data" / "gallery.json"
GENERATOR = ROOT / "devtools" / "gen_gallery.py"

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$")
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
HASH_NAME_RE = re.compile(r"^[0-9a-f]{32}__.+$")

REQUIRED = {
    "ImageName": str,
    "ImageType": str,
    "Label": str,
    "Description": str,
    "ImageFamily": str,
    "OS": str,
    "Category": str,
    "PublisherName": str,
    "PublishedDate": str,
    "LogicalSizeInGB": int,
    "Eula": str,
    "IsPremium": bool,
    "ShowInGui": bool,
    "Location": str,
    "OSDiskConfiguration": dict,
    "DataDiskConfigurations": list,
}

BRIEF_FAMILIES = [
    "Windows Server 2008 R2 SP1",
    "Windows Server 2012 Datacenter",
    "Windows Server 2012 R2 Datacenter",
    "Windows Server 2016 Datacenter",
    "Windows Server 2019 Datacenter",
    "Windows Server 2022 Datacenter",
    "Ubuntu Server 12.04 LTS",
    "Ubuntu Server 14.04 LTS",
    "Ubuntu Server 16.04 LTS",
    "Ubuntu Server 18.04 LTS",
    "Ubuntu Server 20.04 LTS",
    "Ubuntu Server 22.04 LTS",
    "Ubuntu Server 24.04 LTS",
]
BRIEF_FAMILY_PREFIXES = [
    "OpenLogic CentOS 6.",
    "OpenLogic CentOS 7.",
    "SUSE Linux Enterprise Server",
    "openSUSE",
    "Oracle Linux",
    "Debian",
    "SQL Server",
]


@pytest.fixture(scope="module")
def images() -> list[dict]:
    data = json.loads(GALLERY.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    assert isinstance(data.get("images"), list)
    return data["images"]


def families(images: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for image in images:
        out[image["ImageFamily"]].append(image)
    return out


def parse_date(value: str) -> datetime:
    assert ISO_RE.match(value), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")


def test_file_parses_and_is_sized_like_a_gallery(images):
    assert 150 <= len(images) <= 250


def test_file_is_regenerated_byte_for_byte():
    result = subprocess.run(
        [sys.executable, str(GENERATOR)], capture_output=True, check=True, cwd=ROOT
    )
    assert result.stdout == GALLERY.read_bytes()


def test_required_fields_and_values(images):
    for image in images:
        name = image.get("ImageName")
        for field, kind in REQUIRED.items():
            assert field in image, (name, field)
            assert isinstance(image[field], kind), (name, field)
        assert NAME_RE.match(name), name
        assert HASH_NAME_RE.match(name), name
        assert image["ImageType"] in {"OSImage", "VMImage"}, name
        assert image["OS"] in {"Windows", "Linux"}, name
        assert image["Category"] in {"Public", "Community"}, name
        assert image["Label"].strip() and image["Description"].strip(), name
        assert image["ImageFamily"].strip() and image["PublisherName"].strip(), name
        parse_date(image["PublishedDate"])
        assert image["LogicalSizeInGB"] > 0, name
        assert all(u.startswith(("http://", "https://")) for u in image["Eula"].split(";")), name
        assert all(loc.strip() for loc in image["Location"].split(";")), name
        if image["IsPremium"]:
            assert image.get("PricingDetailLink", "").startswith("http"), name

        os_disk = image["OSDiskConfiguration"]
        assert os_disk["OS"] == image["OS"], name
        assert os_disk["OSState"] == "Generalized", name
        assert os_disk["HostCaching"] == "ReadWrite", name
        assert os_disk["MediaLink"].startswith("https://"), name
        assert os_disk["MediaLink"].lower().endswith(".vhd"), name
        assert isinstance(os_disk["LogicalDiskSizeInGB"], int), name
        assert os_disk["Name"], name


def test_names_are_unique(images):
    names = [image["ImageName"] for image in images]
    assert len(names) == len(set(names))


def test_each_family_has_several_distinctly_dated_versions(images):
    for family, members in families(images).items():
        dates = [image["PublishedDate"] for image in members]
        assert len(members) >= 3, family
        assert len(set(dates)) == len(dates), family
        assert len({image["ImageType"] for image in members}) == 1, family
        assert len({image["OS"] for image in members}) == 1, family


def test_families_from_the_brief_are_present(images):
    names = set(families(images))
    for family in BRIEF_FAMILIES:
        assert family in names, family
    for prefix in BRIEF_FAMILY_PREFIXES:
        assert any(name.startswith(prefix) for name in names), prefix
    sql = [i for i in images if i["ImageFamily"].startswith("SQL Server")]
    assert all(i["IsPremium"] and i["PublisherName"] == "Microsoft SQL Server Group" for i in sql)
    assert any(i["Category"] == "Community" for i in images)
    assert len({i["ImageFamily"] for i in images if i["Category"] == "Community"}) >= 2


def test_os_images_have_one_disk(images):
    os_images = [i for i in images if i["ImageType"] == "OSImage"]
    assert os_images
    for image in os_images:
        name = image["ImageName"]
        assert image["DataDiskConfigurations"] == [], name
        assert image["MediaLink"] == image["OSDiskConfiguration"]["MediaLink"], name
        assert image["LogicalSizeInGB"] == image["OSDiskConfiguration"]["LogicalDiskSizeInGB"]


def test_vm_images_carry_data_disks(images):
    vm_images = [i for i in images if i["ImageType"] == "VMImage"]
    assert len(vm_images) >= 6
    for image in vm_images:
        name = image["ImageName"]
        assert "MediaLink" not in image, name
        disks = image["DataDiskConfigurations"]
        assert 1 <= len(disks) <= 16, name
        luns = [disk["Lun"] for disk in disks]
        assert len(set(luns)) == len(luns), name
        media = [disk["MediaLink"] for disk in disks] + [image["OSDiskConfiguration"]["MediaLink"]]
        assert len(set(media)) == len(media), name
        for disk in disks:
            assert isinstance(disk["Lun"], int) and 0 <= disk["Lun"] <= 63, name
            assert disk["HostCaching"] in {"None", "ReadOnly", "ReadWrite"}, name
            assert disk["MediaLink"].startswith("https://"), name
            assert isinstance(disk["LogicalDiskSizeInGB"], int), name
            assert disk["LogicalDiskSizeInGB"] > 0, name
            assert disk["Name"], name
