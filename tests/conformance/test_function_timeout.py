"""functionTimeout from host.json: the `timeout` app allows 1 s; `sleepy` needs 3 s."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from .conftest import RunningApp, StartApp, wait_for

pytestmark = pytest.mark.azurite


@pytest.fixture(scope="module")
def timeout_app(start_app: StartApp) -> Iterator[RunningApp]:
    app = start_app("timeout")
    yield app
    app.stop()


def test_function_within_the_timeout_succeeds(timeout_app: RunningApp) -> None:
    r = requests.get(timeout_app.url("/api/quick"), timeout=10)
    assert (r.status_code, r.text) == (200, "quick")


def test_async_function_past_function_timeout_fails(timeout_app: RunningApp) -> None:
    started = time.monotonic()
    r = requests.get(timeout_app.url("/api/sleepy"), timeout=10)
    elapsed = time.monotonic() - started
    assert r.status_code == 500
    assert elapsed < 2.5, f"the invocation was not cut at 1 s ({elapsed:.1f}s)"
    (execution,) = wait_for(lambda: timeout_app.finished("sleepy"), "the sleepy invocation")
    assert execution.outcome == "Failed"
    assert "Timeout value of 1.0s was exceeded by function: Functions.sleepy" in (
        timeout_app.log_text()
    )
