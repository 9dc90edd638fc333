"""Queue messages the storage SDK can't read: fetched one at a time and parsed leniently.

Azurite accepts a message whose text holds characters that XML forbids (U+0001, say)
but can't write it back: a Get or Peek Messages whose batch holds one answers HTTP 500
with an empty body and no error code, after having dequeued the whole batch. The SDK
retries that 500 (each retry takes another batch), so the batch just vanishes for its
visibility timeout. A service answering such text, or bytes that are not UTF-8, inside
a 200 makes the SDK raise instead (DecodeError, UnicodeDecodeError) and say nothing of
the messages. The helpers here send Get/Peek Messages through the queue client's own
pipeline (auth, headers) without retries, and read each message of the answer on its
own, so that one bad message costs only itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from azure.core.exceptions import DecodeError, HttpResponseError
from azure.core.rest import HttpRequest

# Characters XML 1.0 forbids (what Azurite's serializer refuses), and lone surrogates.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_MESSAGE = re.compile(rb"<QueueMessage>(.*?)</QueueMessage>", re.DOTALL)
_ENTITY = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|[A-Za-z]+);")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def xml_illegal(text: str) -> int | None:
    """The index of the first character a queue message's text may not hold, or None."""
    m = _XML_ILLEGAL.search(text)
    return m.start() if m else None


def decode_text(raw: bytes) -> str | None:
    """A <MessageText>'s content as text, or None when it is not UTF-8 XML-safe text."""
    try:
        escaped = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "<" in escaped or xml_illegal(escaped) is not None:
        return None
    bad = False

    def entity(m: re.Match[str]) -> str:
        nonlocal bad
        ref = m.group(1)
        if not ref.startswith("#"):
            bad = bad or ref not in _NAMED
            return _NAMED.get(ref, "")
        code = int(ref[2:], 16) if ref[1] in "xX" else int(ref[1:])
        if code > 0x10FFFF:
            bad = True
            return ""
        return chr(code)

    text = _ENTITY.sub(entity, escaped)
    if bad or "&" in _ENTITY.sub("", escaped) or xml_illegal(text) is not None:
        return None
    return text


@dataclass
class RawMessage:
    """A message as the SDK's QueueMessage shows it; `content` is None when undecodable."""

    id: str
    pop_receipt: str | None
    dequeue_count: int
    inserted_on: datetime | None
    expires_on: datetime | None
    next_visible_on: datetime | None
    content: str | None
    raw_text: bytes  # the <MessageText> element's bytes, as the service sent them


def _field(block: bytes, name: str) -> bytes | None:
    m = re.search(rb"<%s>(.*?)</%s>" % (name.encode(), name.encode()), block, re.DOTALL)
    return m.group(1) if m else None


def _date(block: bytes, name: str) -> datetime | None:
    value = _field(block, name)
    try:
        return parsedate_to_datetime(value.decode("ascii")) if value else None
    except (UnicodeDecodeError, ValueError, TypeError):
        return None


def parse_messages(body: bytes) -> list[RawMessage]:
    """The messages of a Get/Peek Messages answer, each read on its own.

    A message without a readable id is dropped: nothing could be done with it.
    """
    messages = []
    for m in _MESSAGE.finditer(body):
        block = m.group(1)
        message_id = decode_text(_field(block, "MessageId") or b"")
        if not message_id:
            continue
        receipt = _field(block, "PopReceipt")
        count = (_field(block, "DequeueCount") or b"0").strip()
        raw_text = _field(block, "MessageText") or b""
        messages.append(
            RawMessage(
                id=message_id,
                pop_receipt=decode_text(receipt) if receipt is not None else None,
                dequeue_count=int(count) if count.isdigit() else 0,
                inserted_on=_date(block, "InsertionTime"),
                expires_on=_date(block, "ExpirationTime"),
                next_visible_on=_date(block, "TimeNextVisible"),
                content=decode_text(raw_text),
                raw_text=raw_text,
            )
        )
    return messages


def unreadable(error: BaseException) -> bool:
    """Whether an SDK receive/peek failed because of a message, not because of the service.

    Azurite's bare 500 carries no error code; the real service always sends one.
    """
    if isinstance(error, DecodeError | UnicodeDecodeError):
        return True
    return (
        isinstance(error, HttpResponseError)
        and error.status_code == 500
        and not getattr(error, "error_code", None)
    )


async def fetch(
    queue: Any, *, visibility_timeout: int | None, count: int = 1
) -> list[RawMessage] | None:
    """Get (or, with visibility_timeout None, peek) `count` messages of `queue`, an aio
    QueueClient.

    None when the service could not return them (Azurite's bare 500); a Get has then
    dequeued them all the same, for `visibility_timeout`, with a pop receipt nobody sees.
    """
    base, _, query = queue.url.partition("?")
    params = {"numofmessages": str(count)}
    if visibility_timeout is None:
        params["peekonly"] = "true"
    else:
        params["visibilitytimeout"] = str(visibility_timeout)
    request = HttpRequest(
        "GET",
        f"{base}/messages" + (f"?{query}" if query else ""),
        params=params,
        headers={"x-ms-version": queue.api_version, "Accept": "application/xml"},
    )
    # The generated client's send_request runs the client's pipeline (auth, date, version).
    response = await queue._client.send_request(request, retry_total=0)
    if response.status_code == 200:
        return parse_messages(response.content)  # read already: the request isn't streamed
    if response.status_code == 500 and not response.headers.get("x-ms-error-code"):
        return None
    raise HttpResponseError(response=response)
