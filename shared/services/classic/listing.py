"""List OS Images and List VM Images at scale: XML written as text straight from table rows.

The lists have no paging, so at 100k images they must not build an `Image` (pydantic) or
an ElementTree element per image: both cost more than the table read. Here each row, as
the table returns it with only the columns the XML shows, is written with string
templates and `escape`, in Azure's element order, byte for byte what `images_xml_chunks`
and `vm_images_xml_chunks` write for the same image (tests/unit/test_classic_listing.py
holds them to it). A row this writer can't take as it is (a date stored as text, an
Int64 column, JSON that won't parse) goes the slow way: `Image` and ElementTree, so an old
or odd row is written exactly as before. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from shared.domain.images import (
    CachingMode,
    DiskState,
    Image,
    ImageCategory,
    OSType,
)
from shared.services.classic.xmldoc import NS, iso8601

# Columns each list shows (and List VM Images filters on); the rest of a row is never read.
OS_IMAGE_COLUMNS = (
    "Category",
    "Label",
    "Location",
    "LogicalSizeInGB",
    "MediaLink",
    "OSDiskConfiguration",  # its MediaLink stands in for a missing MediaLink
    "ImageName",
    "OS",
    "Eula",
    "Description",
    "ImageFamily",
    "ShowInGui",
    "PublishedDate",
    "IsPremium",
    "IconUri",
    "PrivacyUri",
    "RecommendedVMSize",
    "PublisherName",
    "PricingDetailLink",
    "SmallIconUri",
)
VM_IMAGE_COLUMNS = (
    *OS_IMAGE_COLUMNS,
    "DataDiskConfigurations",
    "CreatedTime",
)

# What ElementTree escapes in text (&, <, >) and what `xml_text` drops (no XML 1.0 char).
_SPECIAL = re.compile("[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# The Image model's case-insensitive enums, as its validators spell them.
_CANON = {e.value.lower(): e.value for cls in (OSType, DiskState, CachingMode) for e in cls}
_USER = ImageCategory.USER.value
_GENERALIZED = DiskState.GENERALIZED.value
_READ_WRITE = CachingMode.READ_WRITE.value
_NO_CACHING = CachingMode.NONE.value
CHUNK_IMAGES = 256  # images per piece of the body


class _Odd(Exception):
    """A row the text writer can't take as it is: written the slow way instead."""


def escape(text: str) -> str:
    """Text as `xml_text` and ElementTree write it: no XML-illegal characters, &<> escaped."""
    if _SPECIAL.search(text) is None:
        return text
    return _NOT_XML.sub("", text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _text(value: Any) -> str:
    if value.__class__ is str:
        return escape(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value.__class__ is int:
        return str(value)
    if isinstance(value, datetime):
        return iso8601(value)
    raise _Odd  # an Int64 column or another wrapped value: let the model decide


def _el(out: list[str], name: str, value: Any) -> None:
    """`<name>text</name>` (`<name />` when empty, as ElementTree writes it); None: nothing."""
    if value is None:
        return
    text = _text(value)
    out.append(f"<{name}>{text}</{name}>" if text else f"<{name} />")


def _canon(value: Any) -> Any:
    return _CANON.get(value.lower(), value) if isinstance(value, str) else value


def _date(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise _Odd  # a date stored as text: the model parses it
    return value


def _int(value: Any) -> int:
    if value.__class__ is not int:
        raise _Odd
    return value


def _json(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Odd
    try:
        return json.loads(value)
    except ValueError:
        raise _Odd from None


def _os_media_link(row: Mapping[str, Any]) -> Any:
    if row.get("MediaLink"):
        return row["MediaLink"]
    os_disk = _json(row.get("OSDiskConfiguration"))
    if os_disk is None:
        return None
    if not isinstance(os_disk, dict):
        raise _Odd
    return os_disk.get("MediaLink")


def _os_image_text(row: Mapping[str, Any]) -> str:
    g = row.get
    out = ["<OSImage>"]
    _el(out, "Category", g("Category") or _USER)
    _el(out, "Label", g("Label"))
    _el(out, "Location", g("Location"))
    _el(out, "LogicalSizeInGB", _int(g("LogicalSizeInGB")))
    _el(out, "MediaLink", _os_media_link(row))
    _el(out, "Name", g("ImageName"))
    _el(out, "OS", _canon(g("OS")))
    _el(out, "Eula", g("Eula"))
    _el(out, "Description", g("Description"))
    _el(out, "ImageFamily", g("ImageFamily"))
    _el(out, "ShowInGui", True if g("ShowInGui") is None else g("ShowInGui"))
    _el(out, "PublishedDate", _date(g("PublishedDate")))
    _el(out, "IsPremium", g("IsPremium") or False)
    _el(out, "IconUri", g("IconUri"))
    _el(out, "PrivacyUri", g("PrivacyUri"))
    _el(out, "RecommendedVMSize", g("RecommendedVMSize"))
    _el(out, "PublisherName", g("PublisherName"))
    _el(out, "PricingDetailLink", g("PricingDetailLink"))
    _el(out, "SmallIconUri", g("SmallIconUri"))
    out.append("</OSImage>")
    return "".join(out)


def _vm_image_text(row: Mapping[str, Any]) -> str:
    g = row.get
    out = ["<VMImage>"]
    _el(out, "Name", g("ImageName"))
    _el(out, "Label", g("Label"))
    _el(out, "Category", g("Category") or _USER)
    _el(out, "Description", g("Description"))
    os_disk = _json(g("OSDiskConfiguration"))
    if os_disk is None:  # an image without one shows its own OS, MediaLink and size
        os_disk = {"OS": g("OS"), "MediaLink": g("MediaLink")}
        size = _int(g("LogicalSizeInGB"))
    elif not isinstance(os_disk, dict):
        raise _Odd
    else:
        size = _int(os_disk.get("LogicalDiskSizeInGB"))
    out.append("<OSDiskConfiguration>")
    _el(out, "Name", os_disk.get("Name"))
    _el(out, "HostCaching", _canon(os_disk.get("HostCaching") or _READ_WRITE))
    _el(out, "OSState", _canon(os_disk.get("OSState") or _GENERALIZED))
    _el(out, "OS", _canon(os_disk.get("OS")))
    _el(out, "MediaLink", os_disk.get("MediaLink"))
    _el(out, "LogicalDiskSizeInGB", size)
    out.append("</OSDiskConfiguration>")
    disks = _json(g("DataDiskConfigurations")) or []
    if not isinstance(disks, list) or not all(isinstance(d, dict) for d in disks):
        raise _Odd
    if disks:
        out.append("<DataDiskConfigurations>")
        for disk in sorted(disks, key=lambda d: _int(d.get("Lun"))):
            out.append("<DataDiskConfiguration>")
            _el(out, "Name", disk.get("Name"))
            _el(out, "HostCaching", _canon(disk.get("HostCaching") or _NO_CACHING))
            _el(out, "Lun", disk["Lun"])
            _el(out, "MediaLink", disk.get("MediaLink"))
            _el(out, "LogicalDiskSizeInGB", _int(disk.get("LogicalDiskSizeInGB")))
            out.append("</DataDiskConfiguration>")
        out.append("</DataDiskConfigurations>")
    else:
        out.append("<DataDiskConfigurations />")
    _el(out, "Location", g("Location"))
    created = g("CreatedTime")
    # The model stamps a row without one with the time it is read.
    _el(out, "CreatedTime", datetime.now(UTC) if created is None else _date(created))
    _el(out, "ImageFamily", g("ImageFamily"))
    _el(out, "RecommendedVMSize", g("RecommendedVMSize"))
    _el(out, "IsPremium", g("IsPremium") or False)
    _el(out, "Eula", g("Eula"))
    _el(out, "IconUri", g("IconUri"))
    _el(out, "SmallIconUri", g("SmallIconUri"))
    _el(out, "PrivacyUri", g("PrivacyUri"))
    _el(out, "PublisherName", g("PublisherName"))
    _el(out, "PublishedDate", _date(g("PublishedDate")))
    _el(out, "ShowInGui", True if g("ShowInGui") is None else g("ShowInGui"))
    _el(out, "PricingDetailLink", g("PricingDetailLink"))
    out.append("</VMImage>")
    return "".join(out)


def _slow(row: Mapping[str, Any], to_image: Callable[[dict[str, Any]], Image], element: Any) -> str:
    """The row through the model and ElementTree, as the element-at-a-time writer does."""
    image = to_image({k: v for k, v in row.items() if v is not None})
    fragment = ET.tostring(element(image), encoding="unicode", default_namespace=NS)
    return fragment.replace(f' xmlns="{NS}"', "", 1)


def _document(
    root: str,
    rows: Iterable[Mapping[str, Any]],
    fast: Callable[[Mapping[str, Any]], str],
    slow: Callable[[Mapping[str, Any]], str],
) -> Iterator[bytes]:
    yield f'<?xml version="1.0" encoding="utf-8"?>\n<{root} xmlns="{NS}">'.encode()
    piece: list[str] = []
    for row in rows:
        try:
            piece.append(fast(row))
        except (_Odd, KeyError, TypeError, AttributeError):
            piece.append(slow(row))
        if len(piece) >= CHUNK_IMAGES:
            yield "".join(piece).encode("utf-8")
            piece.clear()
    if piece:
        yield "".join(piece).encode("utf-8")
    yield f"</{root}>".encode()


def os_images_xml_rows(
    rows: Iterable[Mapping[str, Any]],
    to_image: Callable[[dict[str, Any]], Image],
    element: Callable[[Image], ET.Element],
) -> Iterator[bytes]:
    """List OS Images' body from table rows (`OS_IMAGE_COLUMNS`), a few hundred images a piece.
    `to_image` and `element` write a row the text writer can't take, as before."""
    return _document("Images", rows, _os_image_text, lambda r: _slow(r, to_image, element))


def vm_images_xml_rows(
    rows: Iterable[Mapping[str, Any]],
    to_image: Callable[[dict[str, Any]], Image],
    element: Callable[[Image], ET.Element],
) -> Iterator[bytes]:
    """List VM Images' body from table rows (`VM_IMAGE_COLUMNS`); see `os_images_xml_rows`."""
    return _document("VMImages", rows, _vm_image_text, lambda r: _slow(r, to_image, element))
