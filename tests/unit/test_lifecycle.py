"""Image lifecycle at a given instant, and what family summaries keep of it (pure code)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain import lifecycle
from shared.domain.images import Image, ImageState
from shared.domain.lifecycle import (
    ALL,
    FamilyLifecycle,
    ImageDeletionProtected,
    check_removable,
    deletion_protection,
    effective_state,
    eligible,
    iso,
    order_key,
    state_counts,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def image(name: str, days: float = 0, **fields: object) -> Image:
    return Image.model_validate(
        {
            "ImageName": name,
            "Label": name,
            "OS": "Linux",
            "PublishedDate": T0 + timedelta(days=days),
            "LogicalSizeInGB": 1,
            **fields,
        }
    )


def ref(i: Image) -> dict[str, object]:
    return {
        "ImageName": i.ImageName,
        "PublishedDate": iso(i.PublishedDate),
        "OS": i.OS,
        "ImageType": i.ImageType,
    }


def test_an_active_image_past_its_end_of_life_counts_as_deprecated() -> None:
    i = image("a", EndOfLifeDate=T0 + timedelta(days=10))
    assert effective_state(i, T0 + timedelta(days=9)) == ImageState.ACTIVE
    assert effective_state(i, T0 + timedelta(days=10)) == ImageState.DEPRECATED
    disabled = image("b", State="disabled", EndOfLifeDate=T0)
    assert effective_state(disabled, T0 + timedelta(days=1)) == ImageState.DISABLED


def test_latest_skips_deprecated_disabled_excluded_and_expired_images() -> None:
    now = T0 + timedelta(days=5)
    assert eligible(image("a"), now)
    assert not eligible(image("a", State="Deprecated"), now)
    assert not eligible(image("a", State="Disabled"), now)
    assert not eligible(image("a", ExcludeFromLatest=True), now)
    assert eligible(image("a", ExcludeFromLatest=True), now, include_excluded=True)
    assert not eligible(image("a", EndOfLifeDate=now), now)
    assert eligible(image("a", EndOfLifeDate=now + timedelta(seconds=1)), now)


def test_deletion_protection_holds_until_end_of_life_or_until_turned_off() -> None:
    now = T0
    assert deletion_protection(image("a"), now) is None
    forever = image("a", DeletionProtection=True)
    with pytest.raises(ImageDeletionProtected, match="until it is turned off"):
        check_removable(forever, now)
    until = image("a", DeletionProtection=True, EndOfLifeDate=T0 + timedelta(days=1))
    reason = deletion_protection(until, now)
    assert reason is not None and "until its end of life on 2025-01-02T00:00:00Z" in reason
    assert "vmimage set a --deletion-protection off" in reason
    assert deletion_protection(until, T0 + timedelta(days=1)) is None  # it lapsed
    check_removable(until, T0 + timedelta(days=2))


def test_the_model_takes_states_in_any_case_and_refuses_bad_replacements() -> None:
    assert image("a", State="deprecated").State == "Deprecated"
    with pytest.raises(ValueError):
        image("a", State="Retired")
    with pytest.raises(ValueError, match="not a valid image name"):
        image("a", ReplacedBy="no spaces please")
    with pytest.raises(ValueError, match="from 1900 to 2999"):
        image("a", EndOfLifeDate="3100-01-01T00:00:00Z")


def test_a_summary_keeps_few_candidates_and_says_when_it_left_some_out() -> None:
    as_of = T0 + timedelta(days=100)
    fam = FamilyLifecycle(as_of=as_of)
    # Ten images that all expire soon, newest first 9..0; then an older one that never does.
    for d in range(10):
        i = image(f"e{d}", days=d, EndOfLifeDate=as_of + timedelta(days=1 + d))
        fam.add(i, ref(i))
    steady = image("steady", days=-1)
    fam.add(steady, ref(steady))
    kept = fam.candidates[ALL]
    assert len(kept.refs) == lifecycle.MAX_CANDIDATES and kept.more
    assert fam.pick(ALL, as_of, False)[0]["ImageName"] == "e9"
    # e9 ends its life at as_of + 10 days exactly: eligible just before, not at that instant.
    assert fam.pick(ALL, as_of + timedelta(days=10, seconds=-1), False)[0]["ImageName"] == "e9"
    assert fam.pick(ALL, as_of + timedelta(days=10), False) == (None, False)
    # Once all kept candidates have expired, the summary can't answer alone.
    assert fam.pick(ALL, as_of + timedelta(days=30), False) == (None, False)
    # A newer image without an end of life answers everything: nothing older is kept.
    new = image("new", days=50)
    fam.add(new, ref(new))
    assert [r["ImageName"] for r in fam.candidates[ALL].refs] == ["new"]
    assert not fam.candidates[ALL].more


def test_the_summary_round_trips_through_json() -> None:
    fam = FamilyLifecycle.fresh(T0)
    for i in (
        image("a", EndOfLifeDate=T0 + timedelta(days=3), ExcludeFromLatest=True),
        image("b", days=1, OS="Windows"),
        image("c", days=2, State="Disabled"),
    ):
        fam.add(i, ref(i))
    again = FamilyLifecycle.from_json(fam.to_json())
    assert again.to_json() == fam.to_json()
    assert again.counts_at(T0 + timedelta(days=4)) == {"Active": 1, "Deprecated": 1, "Disabled": 1}


# -- the summary against working it out image by image ----------------------------------

names = st.integers(0, 10**6).map(lambda n: f"i{n}")
images = st.lists(
    st.builds(
        lambda n, days, os, state, excluded, eol: image(
            n,
            days=days,
            OS=os,
            State=state,
            ExcludeFromLatest=excluded,
            EndOfLifeDate=None if eol is None else T0 + timedelta(days=eol),
        ),
        names,
        st.integers(0, 30),
        st.sampled_from(["Linux", "Windows"]),
        st.sampled_from(["Active", "Active", "Active", "Deprecated", "Disabled"]),
        st.booleans(),
        st.one_of(st.none(), st.integers(0, 16)),
    ),
    max_size=30,
    unique_by=lambda i: i.ImageName,
)


@settings(max_examples=300, deadline=None)
@given(images, st.integers(0, 12), st.booleans(), st.randoms(use_true_random=False))
def test_latest_and_counts_from_a_summary_match_each_image_judged_now(
    members: list[Image], later: int, include_excluded: bool, rnd: random.Random
) -> None:
    as_of = T0 + timedelta(days=5)
    now = as_of + timedelta(days=later)
    fam = FamilyLifecycle(as_of=as_of)
    for i in rnd.sample(members, len(members)):  # arrival order is any order
        fam.add(i, ref(i))
    in_order = sorted(members, key=lambda i: order_key(ref(i)))
    for scope in (ALL, "Linux", "Windows"):
        expected = next(
            (
                i.ImageName
                for i in in_order
                if scope in (ALL, i.OS) and eligible(i, now, include_excluded)
            ),
            None,
        )
        found, complete = fam.pick(scope, now, include_excluded)
        if complete:
            assert (found and found["ImageName"]) == expected
        else:  # every kept candidate has expired: the reader ranges over the family
            assert found is None
    assert fam.counts_at(now) == state_counts(members, now)
    assert fam.excluded == sum(i.ExcludeFromLatest for i in members)


def test_counts_stay_right_when_more_end_of_life_dates_than_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lifecycle, "MAX_EOL_DATES", 3)
    fam = FamilyLifecycle(as_of=T0)
    members = [image(f"i{d}", days=d, EndOfLifeDate=T0 + timedelta(days=d + 1)) for d in range(6)]
    for i in reversed(members):
        fam.add(i, ref(i))
    assert len(fam.eol) == 3 and fam.horizon == T0 + timedelta(days=4)
    for d in (0, 1, 2, 3):
        assert fam.counts_at(T0 + timedelta(days=d)) == state_counts(
            members, T0 + timedelta(days=d)
        )
    assert fam.counts_at(T0 + timedelta(days=4)) is None  # the reader counts the family
