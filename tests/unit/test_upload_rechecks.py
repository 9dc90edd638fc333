"""The back-off of re-checks for a blob that isn't ready yet (`recheck_delay`)."""

from __future__ import annotations

import itertools
import math

import pytest

from shared.domain.uploads import MAX_RECHECK_SECONDS, recheck_delay

HOUR = 3600.0


def abandoned(settle: float, timeout: float = HOUR) -> list[float]:
    """The times of the checks of an upload left `uploadstate=uploading` at time 0."""
    now, checks = 0.0, [0.0]
    while now <= timeout:  # `timed_out` asks for strictly more than the limit
        now += math.ceil(recheck_delay(settle, now, timeout - now + 1))
        checks.append(now)
    return checks


@pytest.mark.parametrize("settle", [1.0, 15.0])  # locally, and on Azure
def test_an_abandoned_upload_is_looked_at_a_few_dozen_times_an_hour_at_most(settle) -> None:
    checks = abandoned(settle)
    assert len(checks) < 30  # it was one look per settle window: 240 to 3600 an hour
    gaps = [b - a for a, b in itertools.pairwise(checks)]
    assert gaps[0] == settle
    assert all(b >= a for a, b in itertools.pairwise(gaps[:-1]))  # never more often
    assert max(gaps) <= MAX_RECHECK_SECONDS
    # The last look is just past the limit, so UploadIncomplete comes on time.
    assert HOUR < checks[-1] <= HOUR + 2
    assert checks[-2] <= HOUR


def test_a_blob_still_being_written_is_looked_at_every_settle_window() -> None:
    # Written a moment ago: the completeness rule's wait, not a back-off.
    assert recheck_delay(14.0, 2.0, HOUR) == 14.0
    assert recheck_delay(15.0, 0.0, HOUR) == 15.0
    # Untouched for a while: as long again, up to five minutes.
    assert recheck_delay(15.0, 40.0, HOUR) == 40.0
    assert recheck_delay(15.0, 3000.0, HOUR) == MAX_RECHECK_SECONDS


def test_never_past_the_time_limit_but_never_a_busy_loop() -> None:
    assert recheck_delay(15.0, 200.0, 30.0) == 30.0
    assert recheck_delay(15.0, 200.0, 0.2) == 1.0
    # Already past the limit (a manifest waiting for its disks): the back-off goes on.
    assert recheck_delay(15.0, 200.0, -50.0) == 200.0
