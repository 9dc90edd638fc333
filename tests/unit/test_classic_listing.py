"""The classic lists' text writer (shared/services/classic/listing.py) writes, byte for byte,
what the element-at-a-time ElementTree writer writes for the same images: full and sparse
images, VM images with data disks out of LUN order or none, empty and special text, and
rows the text writer hands to the model (a date stored as text)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.adapters.catalog_table import from_entity, image_entity
from shared.domain.images import STORED, Image
from shared.services.classic import listing
from shared.services.classic.images import _os_image, images_xml
from shared.services.classic.vm_images import VmImageFilter, _vm_image, vm_images_xml
from shared.services.classic.xmldoc import joined

T = datetime(2022, 4, 21, 7, 0, tzinfo=UTC)
SPECIAL = "a & b < c > d \"q\" 's' é 中文 😀 ]]> &amp;"


def _image(doc: dict[str, Any]) -> Image:
    # STORED: rows written before today's text rules (control characters) still list.
    return Image.model_validate(doc, context=STORED)


def varied_os_images() -> list[Image]:
    full = {
        "ImageName": "ubuntu-22_04-lts",
        "Label": "Ubuntu 22.04 LTS",
        "Description": "Ubuntu Server & friends",
        "ImageFamily": "Ubuntu 22.04",
        "OS": "Linux",
        "Category": "Public",
        "PublisherName": "Canonical",
        "PublishedDate": T,
        "LogicalSizeInGB": 30,
        "MediaLink": "https://azurevmimages.blob.core.windows.net/images/ubuntu.vhd?a=1&b=2",
        "Eula": "http://www.ubuntu.com/project/about-ubuntu/licensing",
        "IsPremium": True,
        "ShowInGui": False,
        "Location": "East US;West US",
        "IconUri": "Ubuntu-cof-100.png",
        "PrivacyUri": "http://www.canonical.com/privacy-policy",
        "SmallIconUri": "Ubuntu-cof-45.png",
        "RecommendedVMSize": "Small",
        "PricingDetailLink": "https://example.com/pricing?x=<1>",
    }
    return [
        _image(full),
        # the bare minimum: every optional element left out, defaults shown
        _image(
            {
                "ImageName": "bare",
                "Label": "bare",
                "OS": "Windows",
                "PublishedDate": datetime(2020, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
                "LogicalSizeInGB": 0,
            }
        ),
        # special characters everywhere text goes; empty text; text that is only
        # characters XML can't carry (written as an empty element)
        _image(
            {
                **full,
                "ImageName": "special.chars_1",
                "Label": SPECIAL,
                "Description": "",
                "Eula": "\x01\x02",
                "PublisherName": "tab\tnew\nline\rcr \x0b\x7f\x85 end",
                "ImageFamily": SPECIAL,
            }
        ),
        # no MediaLink: the OS disk's stands in
        _image(
            {
                "ImageName": "from-os-disk",
                "Label": "x",
                "OS": "Linux",
                "PublishedDate": T,
                "LogicalSizeInGB": 2,
                "OSDiskConfiguration": {
                    "OS": "Linux",
                    "MediaLink": "https://a/b/os.vhd",
                    "LogicalDiskSizeInGB": 2,
                },
            }
        ),
        # an empty MediaLink and no OS disk: no MediaLink element at all
        _image(
            {
                "ImageName": "no-media",
                "Label": "x",
                "OS": "Linux",
                "PublishedDate": T,
                "LogicalSizeInGB": 2,
                "MediaLink": "",
                "Category": "Community",
            }
        ),
    ]


def varied_vm_images() -> list[Image]:
    base: dict[str, Any] = {
        "ImageName": "sql-2014-oltp",
        "ImageType": "VMImage",
        "Label": "SQL Server 2014 OLTP",
        "Description": SPECIAL,
        "OS": "Windows",
        "Category": "Public",
        "PublisherName": "Microsoft SQL Server Group",
        "PublishedDate": T,
        "CreatedTime": datetime(2014, 8, 22, 7, 0, 0, 500, tzinfo=UTC),
        "LogicalSizeInGB": 127,
        "IsPremium": True,
        "ShowInGui": False,
        "Location": "East US;West US",
        "ImageFamily": "SQL Server 2014",
        "Eula": "e",
        "IconUri": "i.png",
        "SmallIconUri": "s.png",
        "PrivacyUri": "p",
        "RecommendedVMSize": "Large",
        "PricingDetailLink": "https://example.com/?a&b",
        "OSDiskConfiguration": {
            "Name": "sql-os",
            "OS": "Windows",
            "OSState": "Specialized",
            "HostCaching": "ReadOnly",
            "MediaLink": "https://x.blob.core.windows.net/vmimages/sql-os.vhd",
            "LogicalDiskSizeInGB": 127,
        },
        "DataDiskConfigurations": [  # out of LUN order; one without a name or caching
            {"Name": "log & <tmp>", "Lun": 3, "HostCaching": "ReadWrite",
             "LogicalDiskSizeInGB": 1023, "MediaLink": "https://x/vmimages/log.vhd"},
            {"Lun": 0, "LogicalDiskSizeInGB": 10},
            {"Name": "data", "Lun": 1, "HostCaching": "ReadOnly", "LogicalDiskSizeInGB": 5,
             "MediaLink": "https://x/vmimages/data.vhd"},
        ],
    }  # fmt: skip
    return [
        _image(base),
        # no data disks; OS disk with defaults (no name, no caching, no state)
        _image(
            {
                "ImageName": "no-data-disks",
                "ImageType": "VMImage",
                "Label": "",
                "OS": "Linux",
                "PublishedDate": T,
                "CreatedTime": T,
                "LogicalSizeInGB": 8,
                "OSDiskConfiguration": {"OS": "Linux", "LogicalDiskSizeInGB": 8},
            }
        ),
        # no OS disk at all: the image's own OS, MediaLink and size stand in
        _image(
            {
                "ImageName": "no-os-disk",
                "ImageType": "VMImage",
                "Label": "y",
                "OS": "Windows",
                "PublishedDate": T,
                "CreatedTime": T,
                "LogicalSizeInGB": 40,
                "MediaLink": "https://x/vmimages/own.vhd",
                "Category": "User",
                "Location": "North Europe",
            }
        ),
    ]


def rows_of(images: list[Image], columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """The rows as a query with `$select` returns them: only those columns (and the keys)."""
    rows = []
    for image in images:
        entity = image_entity(image, "rev")
        rows.append({k: v for k, v in entity.items() if k in (*columns, "PartitionKey", "RowKey")})
    return rows


def fast_os(rows: list[dict[str, Any]]) -> bytes:
    return joined(listing.os_images_xml_rows(rows, from_entity, _os_image))


def fast_vm(rows: list[dict[str, Any]]) -> bytes:
    return joined(listing.vm_images_xml_rows(rows, from_entity, _vm_image))


def test_os_images_are_written_byte_for_byte_as_the_element_writer_writes_them() -> None:
    images = varied_os_images()
    rows = rows_of(images, listing.OS_IMAGE_COLUMNS)
    assert fast_os(rows) == images_xml([from_entity(r) for r in rows])
    assert fast_os(rows) == images_xml(images)
    assert b"<Description />" in fast_os(rows)  # the empty-text case is really covered


def test_vm_images_are_written_byte_for_byte_as_the_element_writer_writes_them() -> None:
    images = varied_vm_images()
    rows = rows_of(images, listing.VM_IMAGE_COLUMNS)
    assert fast_vm(rows) == vm_images_xml(images)
    assert b"<DataDiskConfigurations />" in fast_vm(rows)
    assert fast_vm(rows[:1]).index(b"<Lun>0</Lun>") < fast_vm(rows[:1]).index(b"<Lun>3</Lun>")


def test_columns_selected_but_absent_come_back_as_none_and_are_left_out() -> None:
    # Azure's $select answers a missing column with null; Azurite leaves it out.
    images = varied_os_images()[1:2]
    rows = rows_of(images, listing.OS_IMAGE_COLUMNS)
    padded = [{c: None for c in listing.OS_IMAGE_COLUMNS} | r for r in rows]
    assert fast_os(padded) == images_xml(images)
    images = varied_vm_images()[2:]
    rows = rows_of(images, listing.VM_IMAGE_COLUMNS)
    padded = [{c: None for c in listing.VM_IMAGE_COLUMNS} | r for r in rows]
    assert fast_vm(padded) == vm_images_xml(images)


def test_stored_spellings_are_written_as_the_model_reads_them() -> None:
    images = varied_vm_images()[:1]
    rows = rows_of(images, listing.VM_IMAGE_COLUMNS)
    rows[0]["OSDiskConfiguration"] = rows[0]["OSDiskConfiguration"].replace(
        '"ReadOnly"', '"readonly"'
    )
    assert b"<HostCaching>ReadOnly</HostCaching>" in fast_vm(rows)
    assert fast_vm(rows) == vm_images_xml([from_entity(r) for r in rows])


def test_defaults_missing_from_a_row_are_the_models() -> None:
    images = varied_vm_images()[:1]
    rows = rows_of(images, listing.VM_IMAGE_COLUMNS)
    disks = json.loads(rows[0]["DataDiskConfigurations"])
    os_disk = json.loads(rows[0]["OSDiskConfiguration"])
    for d in (*disks, os_disk):
        d.pop("HostCaching")
    os_disk.pop("OSState")
    rows[0]["DataDiskConfigurations"] = json.dumps(disks)
    rows[0]["OSDiskConfiguration"] = json.dumps(os_disk)
    for k in ("IsPremium", "ShowInGui", "Category"):
        rows[0].pop(k)
    assert fast_vm(rows) == vm_images_xml([from_entity(r) for r in rows])


@pytest.mark.parametrize("kind", ["os", "vm"])
def test_a_row_the_text_writer_cant_take_goes_through_the_model(kind: str) -> None:
    if kind == "os":
        images, columns, fast, slow = (
            varied_os_images(),
            listing.OS_IMAGE_COLUMNS,
            fast_os,
            images_xml,
        )
    else:
        images, columns, fast, slow = (
            varied_vm_images(),
            listing.VM_IMAGE_COLUMNS,
            fast_vm,
            vm_images_xml,
        )
    rows = rows_of(images, columns)
    rows[0]["PublishedDate"] = "2022-04-21T07:00:00Z"  # a date stored as text
    assert fast(rows) == slow(images)


def test_the_body_comes_in_pieces_of_a_few_hundred_images() -> None:
    image = varied_os_images()[0]
    rows = rows_of([image], listing.OS_IMAGE_COLUMNS) * (2 * listing.CHUNK_IMAGES + 1)
    pieces = list(listing.os_images_xml_rows(rows, from_entity, _os_image))
    assert len(pieces) == 5  # head, 256, 256, 1, tail
    assert b"".join(pieces) == images_xml([image] * len(rows))


def test_the_vm_filter_reads_rows_as_it_reads_images() -> None:
    images = varied_vm_images()
    rows = rows_of(images, listing.VM_IMAGE_COLUMNS)
    for wanted in (
        VmImageFilter(location="west us"),
        VmImageFilter(publisher="MICROSOFT SQL SERVER GROUP"),
        VmImageFilter(category="user"),
        VmImageFilter(),
    ):
        assert [wanted.matches_row(r) for r in rows] == [wanted.matches(i) for i in images]
