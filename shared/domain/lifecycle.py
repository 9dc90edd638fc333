"""An image's lifecycle at a given instant, and what a family summary keeps of it.

- `State` is what was set (Active, Deprecated, Disabled); an Active image whose
  `EndOfLifeDate` has passed counts as Deprecated (`effective_state`). Time passes
  without any write, so that is worked out when read, never stored.
- "Latest" of a family is its newest image (in the order of the family's page:
  newest first, then by name) that is Active, not past its end of life and not
  `ExcludeFromLatest` (unless the caller asks to include those).
- `DeletionProtection` holds until the end of life, or until it is turned off.

A family summary must answer "latest" with point reads whenever time has moved on
since it was written, so it keeps, per scope (all images, and each OS), the newest
*candidates*: Active images not yet past their end of life, newest first, up to the
first one that can't expire and isn't excluded (which answers every later read), at
most `MAX_CANDIDATES`. A reader takes the first candidate still eligible now; only
when every kept candidate has expired and more were left out does it read the
family's partition, newest first, up to the first eligible image (`Candidates.more`).
Counts per state are kept as of the summary's time with the end-of-life dates still
to come (`FamilyLifecycle.eol`), so readers move images to Deprecated as their dates
pass. Summaries are written `SKEW` before their writer's clock, so a reader whose
clock is behind still sees every candidate that is eligible for it.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain.errors import Conflict, InvalidParameter
from shared.domain.images import (
    EARLIEST,
    LATEST,
    Image,
    ImageState,
    parse_choice,
    shown,
    validate_image_name,
)

MAX_CANDIDATES = 8
MAX_EOL_DATES = 400  # distinct end-of-life dates a summary keeps (the earliest)
SKEW = timedelta(minutes=10)
ALL = "*"  # the scope of every image of a family (the others are OS names)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ImageDeletionProtected(Conflict):
    code = "ImageDeletionProtected"


class InvalidReplacement(InvalidParameter):
    """ReplacedBy names no other image, or an image that is not being retired."""

    code = "InvalidReplacement"


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def past_end_of_life(image: Image, now: datetime) -> bool:
    return image.EndOfLifeDate is not None and image.EndOfLifeDate <= now


def effective_state(image: Image, now: datetime) -> ImageState:
    """What the image counts as now: an Active image past its end of life is Deprecated."""
    state = ImageState(image.State)
    if state == ImageState.ACTIVE and past_end_of_life(image, now):
        return ImageState.DEPRECATED
    return state


def effective_state_of_row(row: dict[str, Any], now: datetime) -> ImageState:
    """`effective_state` of an image row as stored (a row from before lifecycle fields is
    Active; dates are ISO text, as the catalog stores them)."""
    state = ImageState(row.get("State") or ImageState.ACTIVE.value)
    eol = row.get("EndOfLifeDate")
    if state == ImageState.ACTIVE and eol and instant(str(eol)) <= now:
        return ImageState.DEPRECATED
    return state


def eligible(image: Image, now: datetime, include_excluded: bool = False) -> bool:
    """May "latest" offer this image now?"""
    return (
        ImageState(image.State) == ImageState.ACTIVE
        and not past_end_of_life(image, now)
        and (include_excluded or not image.ExcludeFromLatest)
    )


def deletion_protection(image: Image, now: datetime) -> str | None:
    """Why the image can't be removed now, or None when it can."""
    if not image.DeletionProtection or past_end_of_life(image, now):
        return None
    until = (
        f"until its end of life on {iso(image.EndOfLifeDate)}"
        if image.EndOfLifeDate is not None
        else "until it is turned off"
    )
    return (
        f"the image '{image.ImageName}' has deletion protection ({until}); turn it off first "
        f'(PATCH {{"DeletionProtection": false}}, or `vmimage set {image.ImageName} '
        "--deletion-protection off`)"
    )


def check_removable(image: Image, now: datetime) -> None:
    reason = deletion_protection(image, now)
    if reason is not None:
        raise ImageDeletionProtected(reason)


def parse_end_of_life(value: Any, field: str = "EndOfLifeDate") -> datetime | None:
    """An end-of-life date as given: ISO 8601, a date (midnight UTC) or a date and time
    (UTC unless it says otherwise); None or "" clears it."""
    if value is None or value == "":
        return None
    text = value.strip().upper() if isinstance(value, str) else None
    try:
        if text is None:
            raise ValueError
        # RFC 3339 allows a leap second, which datetime can't hold: the second before.
        when = datetime.fromisoformat(re.sub(r"(T\d\d:\d\d):60", r"\1:59", text))
    except ValueError:
        raise InvalidParameter(
            f"{field} must be an ISO 8601 date or date and time (2027-06-30, "
            f"2027-06-30T12:00:00Z), not '{shown(value)}'"
        ) from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if not EARLIEST <= when < LATEST:
        raise InvalidParameter(f"{field} must be from {EARLIEST:%Y} to {LATEST.year - 1}")
    return when


def parse_lifecycle_field(field: str, value: Any) -> Any:
    """One lifecycle field of a change (PATCH), checked; None clears an optional one."""
    if field in ("ExcludeFromLatest", "DeletionProtection"):
        if not isinstance(value, bool):
            raise InvalidParameter(f"{field} must be true or false")
        return value
    if field == "State":
        if not isinstance(value, str):
            raise InvalidParameter("State must be one of Active, Deprecated, Disabled")
        return parse_choice(value, ImageState, "State").value
    if field == "EndOfLifeDate":
        return parse_end_of_life(value)
    if field == "ReplacedBy":
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise InvalidParameter("ReplacedBy must be the name of an image")
        try:
            return validate_image_name(value)
        except InvalidParameter as e:
            raise InvalidParameter(f"ReplacedBy: {e.message}") from None
    raise ValueError(f"{field} is not a lifecycle field")


def lifecycle_changes(image: Image, changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` as they apply to `image` now. ReplacedBy names the replacement of an
    image that is retired, or will be at its end of life: a change that leaves the image
    Active without an end of life drops it (and refuses one given with it)."""
    merged = dict(changes)
    state = ImageState(merged.get("State", image.State))
    end = merged.get("EndOfLifeDate", image.EndOfLifeDate)
    if state == ImageState.ACTIVE and end is None:
        if merged.get("ReplacedBy") is not None:
            raise InvalidReplacement(
                "ReplacedBy names the replacement of a Deprecated or Disabled image, or of "
                "one with an EndOfLifeDate: set State (or EndOfLifeDate) with it"
            )
        if image.ReplacedBy is not None:
            merged["ReplacedBy"] = None
    return merged


def order_key(ref: dict[str, Any]) -> tuple[int, str]:
    """The family page's order: newest first, then by name (as the copies' row keys)."""
    micros = (instant(ref["PublishedDate"]) - _EPOCH) // timedelta(microseconds=1)
    return (-micros, ref["ImageName"].lower())


def _ref_eligible(ref: dict[str, Any], now: datetime, include_excluded: bool) -> bool:
    eol = ref.get("EndOfLifeDate")
    if eol is not None and instant(eol) <= now:
        return False
    return include_excluded or not ref.get("ExcludeFromLatest", False)


def _terminal(ref: dict[str, Any]) -> bool:
    """A candidate that answers every later read: it can't expire and isn't excluded."""
    return ref.get("EndOfLifeDate") is None and not ref.get("ExcludeFromLatest", False)


@dataclass
class Candidates:
    """One scope's candidates for latest, newest first; `more`: some were left out."""

    refs: list[dict[str, Any]] = field(default_factory=list)
    more: bool = False

    def add(self, ref: dict[str, Any]) -> None:
        if any(_terminal(r) for r in self.refs) and order_key(ref) > order_key(
            next(r for r in self.refs if _terminal(r))
        ):
            return  # older than a candidate that answers every read: never needed
        keys = [order_key(r) for r in self.refs]
        self.refs.insert(bisect.bisect(keys, order_key(ref)), ref)
        for i, r in enumerate(self.refs):
            if _terminal(r):
                del self.refs[i + 1 :]
                if len(self.refs) <= MAX_CANDIDATES:
                    self.more = False
                break
        if len(self.refs) > MAX_CANDIDATES:
            del self.refs[MAX_CANDIDATES:]
            self.more = True

    def pick(self, now: datetime, include_excluded: bool) -> tuple[dict[str, Any] | None, bool]:
        """(the first candidate eligible now or None, whether that answer is complete)."""
        for ref in self.refs:
            if _ref_eligible(ref, now, include_excluded):
                return ref, True
        return None, not self.more


@dataclass
class FamilyLifecycle:
    """What a family summary keeps for latest and the counts per state (see above)."""

    as_of: datetime
    counts: dict[str, int] = field(default_factory=dict)  # effective states at `as_of`
    eol: dict[str, int] = field(default_factory=dict)  # Active images' dates after `as_of`
    horizon: datetime | None = None  # dates from here on were left out of `eol`
    excluded: int = 0
    candidates: dict[str, Candidates] = field(default_factory=dict)

    @classmethod
    def fresh(cls, now: datetime | None = None) -> FamilyLifecycle:
        return cls(as_of=(now or datetime.now(UTC)) - SKEW)

    def add(self, image: Image, ref: dict[str, Any]) -> None:
        """Count `image` (whose summary reference is `ref`) in."""
        state = effective_state(image, self.as_of)
        self.counts[state.value] = self.counts.get(state.value, 0) + 1
        self.excluded += int(image.ExcludeFromLatest)
        if state != ImageState.ACTIVE:
            return
        if image.EndOfLifeDate is not None:
            self._expires(image.EndOfLifeDate)
        candidate = dict(ref)
        if image.EndOfLifeDate is not None:
            candidate["EndOfLifeDate"] = iso(image.EndOfLifeDate)
        if image.ExcludeFromLatest:
            candidate["ExcludeFromLatest"] = True
        for scope in (ALL, image.OS):
            self.candidates.setdefault(scope, Candidates()).add(candidate)

    def _expires(self, when: datetime) -> None:
        if self.horizon is not None and when >= self.horizon:
            return
        key = iso(when)
        self.eol[key] = self.eol.get(key, 0) + 1
        if len(self.eol) > MAX_EOL_DATES:
            last = max(self.eol, key=instant)
            del self.eol[last]
            self.horizon = instant(last)

    def counts_at(self, now: datetime) -> dict[str, int] | None:
        """Images per effective state at `now`; None when the summary can't tell (dates
        beyond what it kept have passed: read the partition)."""
        if self.horizon is not None and now >= self.horizon:
            return None
        counts = {s.value: self.counts.get(s.value, 0) for s in ImageState}
        for when, n in self.eol.items():
            if instant(when) <= now:
                counts[ImageState.ACTIVE.value] -= n
                counts[ImageState.DEPRECATED.value] += n
        return counts

    def pick(
        self, scope: str, now: datetime, include_excluded: bool
    ) -> tuple[dict[str, Any] | None, bool]:
        return self.candidates.get(scope, Candidates()).pick(now, include_excluded)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "AsOf": iso(self.as_of),
            "Counts": self.counts,
            "Eol": self.eol,
            "Excluded": self.excluded,
            "Candidates": {s: c.refs for s, c in self.candidates.items()},
            "More": sorted(s for s, c in self.candidates.items() if c.more),
        }
        if self.horizon is not None:
            doc["Horizon"] = iso(self.horizon)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FamilyLifecycle:
        more = set(doc.get("More", []))
        return cls(
            as_of=instant(doc["AsOf"]),
            counts=dict(doc.get("Counts", {})),
            eol=dict(doc.get("Eol", {})),
            horizon=instant(doc["Horizon"]) if doc.get("Horizon") else None,
            excluded=int(doc.get("Excluded", 0)),
            candidates={
                s: Candidates(list(refs), s in more)
                for s, refs in doc.get("Candidates", {}).items()
            },
        )


def state_counts(images: Iterable[Image], now: datetime) -> dict[str, int]:
    """Images per effective state at `now`, counted one by one."""
    counts = {s.value: 0 for s in ImageState}
    for image in images:
        counts[effective_state(image, now).value] += 1
    return counts
