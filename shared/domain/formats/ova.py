"""OVA: a tar (ustar, pax or GNU) holding an OVF descriptor and the disk files it names.

The tar's headers are walked with one small read each; the OVF (XML, no DTDs or
entities) gives the disks in DiskSection order, the first being the OS disk. Each
disk file is opened in place, through an OffsetReader over its bytes in the tar.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from shared.domain.formats.base import (
    MIB,
    SECTOR,
    DiskImage,
    InvalidOva,
    OvaNotASingleDisk,
)
from shared.domain.ranged import RangeReader
from shared.domain.vhd import VhdRejected

MAX_MEMBERS = 10_000
MAX_OVF = 4 * MIB
MAX_PAX = 1 * MIB
_DECLARATIONS = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class OffsetReader:
    """A RangeReader over [offset, offset+size) of another: one file inside a tar."""

    def __init__(self, inner: RangeReader, offset: int, size: int) -> None:
        self._inner = inner
        self._offset = offset
        self._size = max(0, min(size, inner.size - offset))

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be non-negative")
        length = min(length, self._size - offset)
        if length <= 0:
            return b""
        return self._inner.read(self._offset + offset, length)


@dataclass(frozen=True)
class Member:
    name: str
    offset: int  # of its data in the tar
    size: int


def _number(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for sizes of 8 GiB and more
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise InvalidOva(f"A tar header holds a bad number {text!r}: the OVA is damaged.") from None


def _pax(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    at = 0
    while at < len(data):
        space = data.find(b" ", at)
        if space < 0:
            break
        try:
            length = int(data[at:space])
        except ValueError:
            raise InvalidOva("A pax header record is malformed: the OVA is damaged.") from None
        if length <= 0:
            break
        key, _, value = data[space + 1 : at + length].rstrip(b"\n").partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        at += length
    return records


def tar_members(reader: RangeReader) -> list[Member]:
    """The regular files of a tar, with where their bytes are."""
    members: list[Member] = []
    size = reader.size
    at = 0
    long_name: str | None = None
    pax: dict[str, str] = {}
    for _ in range(MAX_MEMBERS):
        if at + SECTOR > size:
            break
        header = bytes(reader.read(at, SECTOR))
        if header.count(0) == SECTOR:
            break
        stored = _number(header[148:156])
        if stored != sum(header[:148]) + 8 * 32 + sum(header[156:]):
            raise InvalidOva(
                f"The tar header at offset {at} has a bad checksum: the OVA is damaged."
            )
        length = _number(header[124:136])
        kind = header[156:157]
        data = at + SECTOR
        if kind in (b"x", b"L"):
            if length > MAX_PAX:
                raise InvalidOva("A tar extended header is too large: the OVA is damaged.")
            raw = bytes(reader.read(data, length))
            if kind == b"x":
                pax = _pax(raw)
            else:
                long_name = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif kind in (b"0", b"\0", b"7"):
            name = header[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
            if header[257:262] == b"ustar" and header[345:346] != b"\0":
                prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
                name = f"{prefix}/{name}"
            name = pax.get("path") or long_name or name
            if "size" in pax:
                try:
                    length = int(pax["size"])
                except ValueError:
                    raise InvalidOva("A pax size is not a number: the OVA is damaged.") from None
            if data + length > size:
                raise InvalidOva(
                    f"The OVA's file {name!r} runs past the end of the tar ({size} bytes): the "
                    "upload is truncated. Upload the complete file again."
                )
            members.append(Member(name, data, length))
            pax, long_name = {}, None
        else:
            pax, long_name = {}, None
        at = data + -(-length // SECTOR) * SECTOR
    else:
        raise InvalidOva(f"The OVA holds more than {MAX_MEMBERS} files.")
    return members


def find_ovf(reader: RangeReader) -> Member | None:
    """The tar's OVF descriptor (the first `.ovf` file), or None."""
    try:
        members = tar_members(reader)
    except InvalidOva:
        return None
    return next((m for m in members if m.name.lower().endswith(".ovf")), None)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(element: ET.Element, name: str) -> str | None:
    for key, value in element.attrib.items():
        if _local(key) == name:
            return value
    return None


def _parse_ovf(data: bytes) -> ET.Element:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidOva("The OVF descriptor is not UTF-8 text.") from None
    if _DECLARATIONS.search(text):
        raise InvalidOva("The OVF descriptor declares a DTD or entities, which are not accepted.")
    try:
        return ET.fromstring(text)
    except ET.ParseError as e:
        raise InvalidOva(f"The OVF descriptor is not well-formed XML: {e}.") from None


def ovf_disk_files(ovf: bytes) -> list[str]:
    """The file names (hrefs) of the OVF's disks, in DiskSection order."""
    root = _parse_ovf(ovf)
    files: dict[str, ET.Element] = {}
    disks: list[ET.Element] = []
    for element in root.iter():
        tag = _local(element.tag)
        if tag == "File":
            files[_attr(element, "id") or ""] = element
        elif tag == "Disk":
            disks.append(element)
    if not disks:
        raise InvalidOva("The OVF descriptor lists no disks (no DiskSection/Disk).")
    names: list[str] = []
    for disk in disks:
        disk_id = _attr(disk, "diskId") or "?"
        ref = _attr(disk, "fileRef")
        if not ref:
            raise InvalidOva(
                f"The OVF's disk {disk_id!r} has no file: it is an empty disk to be created "
                "at import. Give it a disk file, or remove it from the OVF."
            )
        file = files.get(ref)
        href = _attr(file, "href") if file is not None else None
        if file is None or not href:
            raise InvalidOva(f"The OVF's disk {disk_id!r} names file {ref!r}, which it lacks.")
        compression = _attr(file, "compression")
        if (compression and compression != "identity") or _attr(file, "chunkSize"):
            raise InvalidOva(
                f"The OVA's disk file {href!r} is compressed or chunked inside the OVA. Export "
                "it without compression (e.g. `ovftool --compress=0`), or extract the disk "
                "from the OVA and upload it on its own."
            )
        names.append(href)
    return names


def open_ova(
    reader: RangeReader, *, max_virtual_size: int | None = None
) -> list[tuple[str, DiskImage]]:
    """The OVA's disks as (file name, DiskImage), in OVF order: the first is the OS disk."""
    from shared.domain.formats.sniff import open_disk_image

    members = tar_members(reader)
    ovf = next((m for m in members if m.name.lower().endswith(".ovf")), None)
    if ovf is None:
        raise InvalidOva(
            "This tar holds no .ovf descriptor, so it is not an OVA: extract the disk image "
            "inside and upload that as it is."
        )
    if ovf.size > MAX_OVF:
        raise InvalidOva(f"The OVF descriptor is {ovf.size} bytes, more than {MAX_OVF}.")
    by_name = {m.name: m for m in members}
    by_base = {m.name.rsplit("/", 1)[-1]: m for m in members}
    disks: list[tuple[str, DiskImage]] = []
    for href in ovf_disk_files(bytes(reader.read(ovf.offset, ovf.size))):
        member = by_name.get(href) or by_base.get(href.rsplit("/", 1)[-1])
        if member is None:
            raise InvalidOva(f"The OVF names the disk file {href!r}, which the OVA lacks.")
        try:
            image = open_disk_image(
                OffsetReader(reader, member.offset, member.size),
                href,
                max_virtual_size=max_virtual_size,
            )
        except OvaNotASingleDisk:
            raise InvalidOva(f"The OVA's disk file {href!r} is itself an OVA.") from None
        except VhdRejected as e:
            # Say which of the OVA's disks it is; the code stays the disk's own.
            raise type(e)(f"In the OVA, {e.message}", code=e.code) from None
        disks.append((href, image))
    return disks


__all__ = ["Member", "OffsetReader", "find_ovf", "open_ova", "tar_members"]
