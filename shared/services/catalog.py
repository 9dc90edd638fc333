"""Answer catalog questions and apply catalog changes (the HTTP and XML APIs share this).

Parameters are parsed and validated here, once, into typed values; what
reaches storage is only ever a parameterised query. Continuation tokens are
HMAC-signed and bound to the query they continue (shared/services/paging.py),
so a client can neither forge nor re-aim one at another range of the table.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from shared.adapters.catalog_table import ImageCatalog, is_page_key
from shared.domain.errors import InvalidParameter, NotFound
from shared.domain.images import (
    FAMILY,
    SELECTABLE_FIELDS,
    TEXT_RULES,
    UPDATABLE_FIELDS,
    Image,
    ImageCategory,
    ImageKind,
    OSType,
    PlatformImageReadOnly,
    TextRule,
    check_text,
    parse_choice,
    validate_image_name,
)
from shared.services.paging import invalid_token, open_token, sign_token

MAX_TOP = 1000
DEFAULT_TOP = 100


class FamilyNotFound(NotFound):
    code = "FamilyNotFound"


@dataclass(frozen=True)
class ListQuery:
    family: str | None = None
    filters: tuple[tuple[str, str], ...] = ()
    select: tuple[str, ...] | None = None
    top: int = DEFAULT_TOP
    after: str | None = None

    def fingerprint(self) -> str:
        doc = {"family": (self.family or "").lower(), "filters": list(self.filters)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def make_token(query: ListQuery, last_row: str) -> str:
    return sign_token(query.fingerprint(), last_row)


def read_token(query: ListQuery, token: str) -> str:
    row = open_token(query.fingerprint(), token)
    if not isinstance(row, str) or not is_page_key(query.family, row):
        raise invalid_token()
    return row


def _text_param(name: str, value: str | None, max_len: int = 256) -> str | None:
    if value is None:
        return None
    if value == "":
        raise InvalidParameter(f"{name} must be 1-{max_len} printable characters")
    return check_text(name, value, TextRule(max_len))


def check_family(value: str) -> str:
    """A family to set must be one the family filter can ask for (see images.FAMILY)."""
    return check_text("ImageFamily", value, FAMILY)


def parse_list_query(params: dict[str, str]) -> ListQuery:
    known = {"family", "os", "category", "type", "select", "top", "continuationtoken", "code"}
    unknown = sorted(k for k in params if k.lower() not in known)
    if unknown:
        raise InvalidParameter(f"unknown query parameter(s): {', '.join(unknown)}")
    p = {k.lower(): v for k, v in params.items()}
    filters: list[tuple[str, str]] = []
    if "os" in p:
        filters.append(("OS", parse_choice(p["os"], OSType, "os").value))
    if "category" in p:
        filters.append(("Category", parse_choice(p["category"], ImageCategory, "category").value))
    if "type" in p:
        filters.append(("ImageType", parse_choice(p["type"], ImageKind, "type").value))
    select = parse_select(p.get("select"))
    top = DEFAULT_TOP
    if "top" in p:
        if not re.fullmatch(r"\d{1,4}", p["top"]) or not 1 <= int(p["top"]) <= MAX_TOP:
            raise InvalidParameter(f"top must be a whole number from 1 to {MAX_TOP}")
        top = int(p["top"])
    query = ListQuery(_text_param("family", p.get("family")), tuple(filters), select, top)
    token = p.get("continuationtoken")
    if token is not None:
        query = ListQuery(query.family, query.filters, select, top, read_token(query, token))
    return query


def parse_select(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    canonical = {f.lower(): f for f in SELECTABLE_FIELDS}
    fields = []
    for raw in value.split(","):
        name = raw.strip()
        if name.lower() not in canonical:
            raise InvalidParameter(
                f"select: unknown field '{name[:64]}'; fields are {', '.join(SELECTABLE_FIELDS)}"
            )
        fields.append(canonical[name.lower()])
    return tuple(dict.fromkeys(fields))


def list_images(catalog: ImageCatalog, query: ListQuery) -> dict[str, Any]:
    page = catalog.page(
        query.family,
        dict(query.filters),
        query.top,
        query.after,
        list(query.select) if query.select else None,
    )
    items = [
        i.model_dump(mode="json", exclude_none=True) if isinstance(i, Image) else i
        for i in page.items
    ]
    result: dict[str, Any] = {"Images": items, "Count": len(items)}
    if page.last_row is not None:
        result["ContinuationToken"] = make_token(query, page.last_row)
    return result


def get_image(catalog: ImageCatalog, name: str) -> Image:
    return catalog.get(validate_image_name(name))


def list_families(catalog: ImageCatalog) -> list[dict[str, Any]]:
    return [s.to_json() for s in catalog.families()]


def latest_in_family(catalog: ImageCatalog, family: str, os_name: str | None) -> Image:
    _text_param("family", family)
    os_type = parse_choice(os_name, OSType, "os") if os_name is not None else None
    summary = catalog.summary(family)
    if summary is None:
        raise FamilyNotFound(f"no image family is named '{family[:256]}'")
    ref = summary.newest_by_os.get(os_type.value) if os_type else summary.newest
    if ref is None:
        raise FamilyNotFound(f"the family '{summary.family}' has no {os_type} image")
    return catalog.get(ref["ImageName"])


def update_image(catalog: ImageCatalog, name: str, changes: dict[str, Any]) -> Image:
    if not isinstance(changes, dict) or not changes:
        raise InvalidParameter(f"send a JSON object with some of: {', '.join(UPDATABLE_FIELDS)}")
    canonical = {f.lower(): f for f in UPDATABLE_FIELDS}
    cleaned: dict[str, Any] = {}
    for key, value in changes.items():
        if str(key).lower() not in canonical:
            raise InvalidParameter(
                f"'{str(key)[:64]}' can't be changed; "
                f"updatable fields are {', '.join(UPDATABLE_FIELDS)}"
            )
        field = canonical[str(key).lower()]
        if field == "ShowInGui":
            if not isinstance(value, bool):
                raise InvalidParameter("ShowInGui must be true or false")
        elif field == "Label" and not value:
            raise InvalidParameter("Label can't be empty")
        elif value == "":
            value = None  # an empty value clears the field, as in Update OS Image
        elif value is not None:
            check_text(field, value, TEXT_RULES[field])
        cleaned[field] = value
    image = get_image(catalog, name)
    if image.Category == ImageCategory.PUBLIC:
        raise PlatformImageReadOnly(f"'{image.ImageName}' is a platform image and can't be changed")
    return catalog.update(image.ImageName, cleaned)
