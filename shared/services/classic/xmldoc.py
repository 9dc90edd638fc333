"""The classic API's XML on the wire: writing documents, reading request bodies safely.

Azure's classic API (`management.core.windows.net/<subscription-id>/...`) speaks
XML in the namespace `http://schemas.microsoft.com/windowsazure`. Request bodies
are parsed with a real parser (namespaced or not), after refusing bodies over
64 KiB and any DTD or entity declaration; every element is checked against what
the operation accepts. Pure: no I/O.
"""

from __future__ import annotations

import codecs
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from shared.domain.errors import InvalidParameter
from shared.domain.images import TEXT, TextRule, check_text

NS = "http://schemas.microsoft.com/windowsazure"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
# Requests may use the namespace as the client writes it, as newer docs spell it, or none.
ACCEPTED_NAMESPACES = frozenset({NS, "https://schemas.microsoft.com/windowsazure", ""})
MAX_BODY_BYTES = 64 * 1024


class InvalidXmlBody(InvalidParameter):
    code = "InvalidXmlBody"


# -- Writing XML ---------------------------------------------------------------------

# Characters XML 1.0 cannot carry; a stray one must not make the whole answer unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def iso8601(value: datetime) -> str:
    v = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return v.isoformat().replace("+00:00", "Z")


def xml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso8601(value)
    return _NOT_XML.sub("", str(value))


def q(name: str) -> str:
    return f"{{{NS}}}{name}"


def add(parent: ET.Element, name: str, value: Any) -> None:
    if value is not None:
        ET.SubElement(parent, q(name)).text = xml_text(value)


def add_all(parent: ET.Element, pairs: Iterable[tuple[str, Any]]) -> None:
    for name, value in pairs:
        add(parent, name, value)


def document(root: ET.Element) -> bytes:
    body = ET.tostring(root, encoding="utf-8", default_namespace=NS)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


def list_document(root: str, elements: Iterable[ET.Element]) -> Iterator[bytes]:
    """A list document a piece at a time: the declaration and the root's start tag, each
    element as soon as it is made (so the elements are never all in memory at once),
    then the end tag. Equal, as XML, to `document` of a root holding them all."""
    yield f'<?xml version="1.0" encoding="utf-8"?>\n<{root} xmlns="{NS}">'.encode()
    declared = f' xmlns="{NS}"'  # on each fragment's start tag; the root has it already
    for el in elements:
        yield (
            ET.tostring(el, encoding="unicode", default_namespace=NS)
            .replace(declared, "", 1)
            .encode("utf-8")
        )
    yield f"</{root}>".encode()


def joined(chunks: Iterable[bytes]) -> bytes:
    """The pieces of a body as one (the runtime's HttpResponse takes a whole body). Written
    into a BytesIO, whose value is handed over without a copy: the body is in memory once,
    not also as the list of its pieces (b"".join needs both at once: twice the body)."""
    buffer = io.BytesIO()
    for chunk in chunks:
        buffer.write(chunk)
    return buffer.getvalue()


def error_xml(code: str, message: str) -> bytes:
    root = ET.Element(q("Error"))
    add(root, "Code", code)
    add(root, "Message", message)
    return document(root)


# -- Reading XML ---------------------------------------------------------------------

_DECLARATIONS = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _decode(body: bytes) -> str:
    try:
        if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return body.decode("utf-16")
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidXmlBody(f"the body is not UTF-8 (or UTF-16) text: {e.reason}") from None


def split_tag(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def read_root(body: bytes, root: str) -> ET.Element:
    """The `<root>` element of a request body, refusing what no body of ours may hold.

    Refuses (InvalidXmlBody, 400) bodies over 64 KiB, DTDs and entity
    declarations (searched in the decoded text, so no encoding hides one),
    malformed XML, and another root or namespace.
    """
    if len(body) > MAX_BODY_BYTES:
        raise InvalidXmlBody(f"the body is larger than {MAX_BODY_BYTES // 1024} KiB")
    text = _decode(body)
    if not text.strip():
        raise InvalidXmlBody(f"send an <{root}> XML body")
    if _DECLARATIONS.search(text):
        raise InvalidXmlBody("DTDs and entity declarations are not accepted in request bodies")
    try:
        doc = ET.fromstring(text)
    except ET.ParseError as e:
        raise InvalidXmlBody(f"the body is not well-formed XML: {e}") from None
    ns, local = split_tag(doc.tag)
    if local != root or ns not in ACCEPTED_NAMESPACES:
        where = f" in namespace {ns}" if ns else ""
        raise InvalidXmlBody(
            f"expected an <{root}> element in namespace {NS}, not <{local}>{where}"
        )
    return doc


def children(
    parent: ET.Element, where: str, allowed: Sequence[str], nested: Sequence[str] = ()
) -> dict[str, Any]:
    """The child elements of `parent`: {name: text} (None for `i:nil="true"`), or the
    element itself for the `nested` names. Unknown, repeated, or (other than `nested`)
    nested children are refused. Text is stripped of surrounding whitespace."""
    fields: dict[str, Any] = {}
    for child in parent:
        ns, name = split_tag(child.tag)
        if ns not in ACCEPTED_NAMESPACES or name not in allowed:
            raise InvalidXmlBody(
                f"<{name[:64]}> is not an element of <{where}>; it may have {', '.join(allowed)}"
            )
        if name in fields:
            raise InvalidXmlBody(f"<{name}> is given more than once")
        if name in nested:
            fields[name] = child
            continue
        if len(child):
            raise InvalidXmlBody(f"<{name}> must hold a value, not other elements")
        nil = (child.get(f"{{{XSI}}}nil") or "").strip().lower() in ("true", "1")
        fields[name] = None if nil else (child.text or "").strip()
    return fields


def read_element(body: bytes, root: str, allowed: Sequence[str]) -> dict[str, str | None]:
    """The simple child elements of a `<root>` body (see `read_root` and `children`)."""
    return children(read_root(body, root), root, allowed)


def text_field(name: str, value: str, rule: TextRule = TEXT) -> str:
    return check_text(name, value, rule)


def parse_bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise InvalidParameter(f"{name} must be true or false, not '{value[:64]}'")
    return v == "true"


def parse_date(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidParameter(
            f"{name} must be an ISO 8601 date, like 2014-05-23T07:00:00Z, not '{value[:64]}'"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
