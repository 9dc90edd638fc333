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
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shared.adapters.catalog_table import ImageCatalog, Page, family_key, is_page_key
from shared.domain.errors import InvalidParameter, NotFound
from shared.domain.images import (
    COMPUTED_FIELDS,
    FAMILY,
    LIFECYCLE_FIELDS,
    SELECTABLE_FIELDS,
    TEXT_RULES,
    UPDATABLE_FIELDS,
    Image,
    ImageCategory,
    ImageKind,
    ImageState,
    OSType,
    PlatformImageReadOnly,
    TextRule,
    check_text,
    image_key,
    parse_choice,
    validate_image_name,
)
from shared.domain.lifecycle import (
    InvalidReplacement,
    effective_state,
    effective_state_of_row,
    lifecycle_changes,
    parse_lifecycle_field,
)
from shared.services.paging import invalid_token, open_token, sign_token

MAX_TOP = 1000
DEFAULT_TOP = 100


class FamilyNotFound(NotFound):
    code = "FamilyNotFound"


class NoLatestImage(NotFound):
    """The family exists, but none of its images (of that OS) may be offered as latest."""

    code = "NoLatestImage"


@dataclass(frozen=True)
class ListQuery:
    family: str | None = None
    filters: tuple[tuple[str, str], ...] = ()
    select: tuple[str, ...] | None = None
    top: int = DEFAULT_TOP
    after: str | None = None
    state: ImageState | None = None  # the effective state, worked out at read time
    content_hash: str | None = None  # images with a disk of this content

    def fingerprint(self) -> str:
        doc: dict[str, Any] = {"family": (self.family or "").lower(), "filters": list(self.filters)}
        if self.state is not None:
            doc["state"] = self.state.value
        if self.content_hash is not None:
            doc["contentHash"] = self.content_hash
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def make_token(query: ListQuery, last_row: str) -> str:
    return sign_token(query.fingerprint(), last_row)


def read_token(query: ListQuery, token: str) -> str:
    row = open_token(query.fingerprint(), token)
    valid = (
        is_hash_page_key(row)
        if query.content_hash is not None
        else isinstance(row, str) and is_page_key(query.family, row)
    )
    if not isinstance(row, str) or not valid:
        raise invalid_token()
    return row


def is_hash_page_key(key: Any) -> bool:
    """Where a page of a contentHash query stopped: an image's key."""
    return isinstance(key, str) and key == image_key(key) and _valid_name(key)


def _valid_name(name: str) -> bool:
    try:
        validate_image_name(name)
    except InvalidParameter:
        return False
    return True


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
    known = {
        *("family", "os", "category", "type", "select", "top", "continuationtoken", "code"),
        *("state", "contenthash"),
    }
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
    state = parse_choice(p["state"], ImageState, "state") if "state" in p else None
    content_hash = None
    if "contenthash" in p:
        content_hash = p["contenthash"].strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", content_hash):
            raise InvalidParameter("contentHash must be a SHA-256: 64 hexadecimal digits")
    query = ListQuery(
        _text_param("family", p.get("family")),
        tuple(filters),
        select,
        top,
        state=state,
        content_hash=content_hash,
    )
    token = p.get("continuationtoken")
    if token is not None:
        query = replace(query, after=read_token(query, token))
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


def image_doc(image: Image, now: datetime | None = None) -> dict[str, Any]:
    """An image as the JSON API shows it: its fields, and what its State counts as now."""
    doc = image.model_dump(mode="json", exclude_none=True)
    doc["EffectiveState"] = effective_state(image, now or datetime.now(UTC)).value
    return doc


# What the effective state is worked out from, when only some fields are selected.
_STATE_COLUMNS = ("State", "EndOfLifeDate")


ByContent = Callable[[str, int, str | None, Callable[[Image], bool]], Page]


def list_images(
    catalog: ImageCatalog, query: ListQuery, by_content: ByContent | None = None
) -> dict[str, Any]:
    """One page of images; with `contentHash`, those `by_content` finds with a disk of
    that content (the other filters apply to them too)."""
    now = datetime.now(UTC)
    select = list(query.select) if query.select else None
    stored = None if select is None else [f for f in select if f not in COMPUTED_FIELDS]

    def wanted(row: Any) -> bool:
        return query.state is None or effective_state_of_row(row, now) == query.state

    if query.content_hash is not None:
        if by_content is None:
            raise InvalidParameter("contentHash is not available here")
        page = by_content(
            query.content_hash, query.top, query.after, lambda i: _matches(i, query, now)
        )
    else:
        page = catalog.page(
            query.family,
            dict(query.filters),
            query.top,
            query.after,
            stored,
            where=None if query.state is None else wanted,
            columns=_STATE_COLUMNS if select is not None else (),
        )
    items = []
    for item in page.items:
        if isinstance(item, Image):
            doc = image_doc(item, now)
            items.append(doc if select is None else {k: doc[k] for k in select if k in doc})
            continue
        if "EffectiveState" in (select or ()):
            item["EffectiveState"] = effective_state_of_row(item, now).value
        items.append({k: item[k] for k in (select or item) if k in item})
    result: dict[str, Any] = {"Images": items, "Count": len(items)}
    if page.last_row is not None:
        result["ContinuationToken"] = make_token(query, page.last_row)
    return result


def _matches(image: Image, query: ListQuery, now: datetime) -> bool:
    """The list's filters, judged on a whole image (for the images found by content)."""
    doc = image.model_dump(mode="json")
    if query.family is not None and family_key(image.ImageFamily or "") != family_key(query.family):
        return False
    if query.state is not None and effective_state(image, now) != query.state:
        return False
    return all(doc.get(k) == v for k, v in query.filters)


def image_with_progress(
    catalog: ImageCatalog, name: str, progress: Callable[[Image], dict[str, Any] | None]
) -> dict[str, Any]:
    """GET /api/images/{name}: the image, and how far its content hash is until ready."""
    image = get_image(catalog, name)
    doc = image_doc(image)
    done = progress(image)
    if done is not None:
        doc["ContentHashProgress"] = done
    return doc


def get_image(catalog: ImageCatalog, name: str) -> Image:
    return catalog.get(validate_image_name(name))


def list_families(catalog: ImageCatalog) -> list[dict[str, Any]]:
    """Each family with its count, newest image, counts per state, images excluded from
    latest, and latest image overall and per OS, as of now."""
    return [catalog.resolve(s).to_json() for s in catalog.families()]


def latest_in_family(
    catalog: ImageCatalog, family: str, os_name: str | None, include_excluded: bool = False
) -> Image:
    """The newest image of the family that is Active, not past its end of life and not
    excluded from latest (`include_excluded`: excluded ones count too)."""
    _text_param("family", family)
    os_type = parse_choice(os_name, OSType, "os") if os_name is not None else None
    summary, ref = catalog.latest(family, os_type.value if os_type else None, include_excluded)
    if summary is None or not summary.count:
        raise FamilyNotFound(f"no image family is named '{family[:256]}'")
    if os_type is not None and os_type.value not in summary.newest_by_os:
        raise FamilyNotFound(f"the family '{summary.family}' has no {os_type} image")
    if ref is None:
        of_os = f"{os_type} " if os_type else ""
        hint = (
            ""
            if include_excluded
            else " and not excluded from latest (includeExcluded=true counts those too)"
        )
        raise NoLatestImage(
            f"no {of_os}image of the family '{summary.family}' may be offered as latest: "
            f"none is Active and before its end of life{hint}"
        )
    return catalog.get(ref["ImageName"])


def parse_flag(name: str, value: str | None) -> bool:
    """A true/false query parameter (absent: false)."""
    if value is None:
        return False
    if value.lower() not in ("true", "false"):
        raise InvalidParameter(f"{name} must be true or false")
    return value.lower() == "true"


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
        if field in LIFECYCLE_FIELDS:
            cleaned[field] = parse_lifecycle_field(field, value)
            continue
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
    if cleaned.get("ReplacedBy") is not None:
        replacement = catalog.find(cleaned["ReplacedBy"])
        if replacement is None:
            raise InvalidReplacement(f"ReplacedBy: no image is named '{cleaned['ReplacedBy']}'")
        if replacement.key == image.key:
            raise InvalidReplacement("ReplacedBy: an image can't replace itself")
        cleaned["ReplacedBy"] = replacement.ImageName
    if not any(f in cleaned for f in LIFECYCLE_FIELDS):
        return catalog.update(image.ImageName, cleaned)
    # Judged against the row the write is conditional on: a concurrent change can't slip in.
    return catalog.amend(image.ImageName, lambda now: lifecycle_changes(now, cleaned))
