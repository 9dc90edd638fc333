"""MediaLinks: the URL of a disk blob, read one way by every way in.

A MediaLink names a blob as `http(s)://<host>[/<account>]/<container>/<blob>`.
Its path is split into segments first and each segment is percent-decoded on
its own, so a segment can never smuggle in a separator or a step up
(`vhds%2F..%2Fuploads/x.vhd` names nothing, rather than a blob of `uploads`).

`check_media_link` holds the rules that need no account (the VM inventory
keeps links before anyone resolves them); `parse_media_link` adds the account
and the container and blob names, and is what turns a link into a blob.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from shared.domain.errors import InvalidParameter

MAX_LINK = 2048
MAX_BLOB_NAME = 1024  # Azure's limits on a blob name
MAX_BLOB_SEGMENTS = 254
# Container names: 3-63 lowercase letters, digits and single hyphens, a letter or digit
# at each end.
CONTAINER = re.compile(r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")

# Never in a link: controls (C0, DEL, C1), whitespace as Python and ECMA-262 both see
# it, U+FFFE/U+FFFF (XML can't carry them), and the URL delimiters "?" "#" and "\".
_BLANK = (
    r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
    r"\ufffe\uffff"
)
_NEVER = _BLANK + r"?#\\"
_HOST = rf"[^{_NEVER}/%@]+"
# A path character, or a %XX escape of any byte but a control, "/" (2F) or "\" (5C).
_PCHAR = (
    rf"(?:[^{_NEVER}/%]|%(?:2[0-9A-Ea-e]|[346][0-9A-Fa-f]|5[0-9ABabD-Fd-f]"
    r"|7[0-9A-Ea-e]|[89A-Fa-f][0-9A-Fa-f]))"
)
# A segment is not empty, "." or "..", however its dots are spelled.
_SEGMENT = rf"(?!(?:\.|%2[Ee]){{1,2}}(?:/|$)){_PCHAR}+"
# The rules above as one pattern, valid in Python and in ECMA-262 (the OpenAPI document
# states it); what no such pattern can say is checked in code (`check_media_link`).
MEDIA_LINK = re.compile(rf"https?://{_HOST}(?:/{_SEGMENT})+")
# Checked on decoded text too: controls, lone surrogates, noncharacters.
_NOT_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


class InvalidMediaLink(InvalidParameter):
    code = "InvalidMediaLink"


class MediaLinkElsewhere(InvalidMediaLink):
    """A well-formed link to a blob outside the catalog's storage account."""


def _shown(link: str) -> str:
    """The link for a message: cut short, and with nothing XML or JSON can't carry."""
    return _NOT_TEXT.sub("\ufffd", link[:256]) + ("..." if len(link) > 256 else "")


def _why_not(link: str) -> str:
    """Why `link` fails MEDIA_LINK, in words."""
    host, _, path = link.partition("://")[2].partition("/")
    segments = [unquote(p) for p in path.split("/")]
    if not re.match(r"https?://", link):
        return "it must start with http:// or https://"
    if "?" in link or "#" in link:
        return "it has a query or a fragment (a SAS?); give the blob's plain URL"
    if _NOT_TEXT.search(link) or re.search(f"[{_BLANK}]", link):
        return "it has a control character or whitespace (write a space as %20)"
    if "\\" in link or re.search("%(?:2[Ff]|5[Cc])", link):
        return "it has a '\\' or an encoded '/' or '\\' (%2F, %5C)"
    if re.search("%(?![0-9A-Fa-f]{2})", link):
        return "it has a '%' that starts no %XX escape"
    if re.search("%(?:[01][0-9A-Fa-f]|7[Ff])", link):
        return "it encodes a control character"
    if not host or "@" in host or "%" in host:
        return "its host must be a plain host name or address, with no user name"
    if "" in segments or "." in segments or ".." in segments:
        return "it has an empty, '.' or '..' path segment: name the blob directly"
    return "use http(s)://<account host>/<container>/<blob>"


def check_media_link(link: str) -> list[str]:
    """The link's host and its percent-decoded path segments; InvalidMediaLink unless
    it is an http(s) URL of a blob: no query or fragment (so no SAS), no control
    characters, no empty, "." or ".." segment, no encoded "/" or "\\"."""
    if not isinstance(link, str):
        raise InvalidMediaLink("a MediaLink must be a URL (a string)")
    if len(link) > MAX_LINK:
        raise InvalidMediaLink(f"a MediaLink has at most {MAX_LINK} characters, not {len(link)}")
    if _NOT_TEXT.search(link) or not MEDIA_LINK.fullmatch(link):
        raise InvalidMediaLink(f"MediaLink '{_shown(link)}' is not a blob's URL: {_why_not(link)}")
    host, *raw = link.split("://", 1)[1].split("/")
    segments = [host]
    for part in raw:
        try:
            text = unquote(part, errors="strict")
        except UnicodeDecodeError:
            raise InvalidMediaLink(
                f"MediaLink '{_shown(link)}': a percent-encoded sequence is not UTF-8 text"
            ) from None
        if _NOT_TEXT.search(text):
            raise InvalidMediaLink(
                f"MediaLink '{_shown(link)}': a percent-encoded character is a control "
                "character or a noncharacter"
            )
        segments.append(text)
    return segments


def parse_media_link(link: str, account_url: str) -> tuple[str, str]:
    """(container, blob) of a MediaLink in the storage account at `account_url`.

    MediaLinkElsewhere for a link to another host or account; InvalidMediaLink for
    one that names no valid container and blob.
    """
    host, *path = check_media_link(link)
    account = urlsplit(account_url)
    prefix = [unquote(s) for s in account.path.split("/") if s]  # Azurite: the account
    if host.lower() != account.netloc.lower() or [s.lower() for s in path[: len(prefix)]] != [
        s.lower() for s in prefix
    ]:
        where = f"{account.scheme}://{account.netloc}{account.path.rstrip('/')}"
        raise MediaLinkElsewhere(
            f"MediaLink '{_shown(link)}' is not in this catalog's storage account: use "
            f"{where}/<container>/<blob>"
        )
    rest = path[len(prefix) :]
    if len(rest) < 2:
        raise InvalidMediaLink(f"MediaLink '{_shown(link)}' names no blob: <container>/<blob>")
    container, names = rest[0], rest[1:]
    if not CONTAINER.fullmatch(container):
        raise InvalidMediaLink(
            f"MediaLink '{_shown(link)}': '{_shown(container)}' is not a container name "
            "(3-63 lowercase letters, digits and single hyphens)"
        )
    blob = "/".join(names)
    if len(blob) > MAX_BLOB_NAME or len(names) > MAX_BLOB_SEGMENTS:
        raise InvalidMediaLink(
            f"MediaLink '{_shown(link)}': a blob name has at most {MAX_BLOB_NAME} "
            f"characters and {MAX_BLOB_SEGMENTS} segments"
        )
    return container, blob
