"""HTTP triggers under the runner: keys, routing, request and response shapes, prefix."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .conftest import EXECUTED, RunningApp, StartApp, wait_for

pytestmark = pytest.mark.azurite


@pytest.fixture(scope="module")
def api(start_app: StartApp) -> Iterator[RunningApp]:
    app = start_app("http_api")
    yield app
    app.stop()


@pytest.fixture(scope="module")
def bare(start_app: StartApp) -> Iterator[RunningApp]:
    app = start_app("http_bare")
    yield app
    app.stop()


def get(app: RunningApp, path: str, **kwargs: object) -> requests.Response:
    return requests.get(app.url(path), timeout=10, **kwargs)  # type: ignore[arg-type]


# -- keys -------------------------------------------------------------------------


def test_anonymous_route_needs_no_key(api: RunningApp) -> None:
    r = get(api, "/api/anon")
    assert (r.status_code, r.text) == (200, "anon")


def test_function_route_without_key_is_401(api: RunningApp) -> None:
    r = get(api, "/api/secured")
    assert r.status_code == 401
    assert r.content == b""


def test_function_route_with_wrong_key_is_401(api: RunningApp) -> None:
    r = get(api, "/api/secured", headers={"x-functions-key": "not-a-key"})
    assert r.status_code == 401
    r = get(api, "/api/secured", params={"code": "not-a-key"})
    assert r.status_code == 401


def test_function_route_accepts_its_function_key_in_header(api: RunningApp) -> None:
    key = api.keys()["functionKeys"]["secured"]["default"]
    r = get(api, "/api/secured", headers={"x-functions-key": key})
    assert (r.status_code, r.text) == (200, "secured")


def test_function_key_of_another_function_is_refused(api: RunningApp) -> None:
    key = api.keys()["functionKeys"]["anon"]["default"]
    r = get(api, "/api/secured", headers={"x-functions-key": key})
    assert r.status_code == 401


def test_function_route_accepts_host_key_in_code_query(api: RunningApp) -> None:
    r = get(api, "/api/secured", params={"code": api.keys()["hostKeys"]["default"]})
    assert (r.status_code, r.text) == (200, "secured")


def test_function_route_accepts_master_key(api: RunningApp) -> None:
    r = get(api, "/api/secured", headers={"x-functions-key": api.keys()["masterKey"]})
    assert (r.status_code, r.text) == (200, "secured")


def test_admin_route_refuses_host_key(api: RunningApp) -> None:
    r = get(api, "/api/adminonly", headers={"x-functions-key": api.keys()["hostKeys"]["default"]})
    assert r.status_code == 401


def test_admin_route_accepts_master_key(api: RunningApp) -> None:
    r = get(api, "/api/adminonly", params={"code": api.keys()["masterKey"]})
    assert (r.status_code, r.text) == (200, "admin")


def test_keys_file_is_created_at_first_start_and_reused(
    start_app: StartApp, tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys" / "funckeys.json"
    assert not keys_file.exists()
    first = start_app("http_bare", keys_file=keys_file)
    try:
        created = json.loads(keys_file.read_text())
        assert created["masterKey"] and created["hostKeys"]["default"]
        assert created["functionKeys"]["hello"]["default"]
        assert keys_file.stat().st_mode & 0o077 == 0, "the keys file is readable by others"
        status = get(first, "/admin/host/status", headers={"x-functions-key": created["masterKey"]})
        assert status.status_code == 200
    finally:
        first.stop()
    second = start_app("http_bare", keys_file=keys_file)
    try:
        assert json.loads(keys_file.read_text()) == created
        status = get(
            second, "/admin/host/status", headers={"x-functions-key": created["masterKey"]}
        )
        assert status.status_code == 200
    finally:
        second.stop()


# -- routing ----------------------------------------------------------------------


def test_int_constraint_matches_digits(api: RunningApp) -> None:
    r = get(api, "/api/items/12")
    assert (r.status_code, r.text) == (200, "item 12")


def test_int_constraint_refuses_letters_with_404(api: RunningApp) -> None:
    assert get(api, "/api/items/abc").status_code == 404


def test_optional_parameter_present(api: RunningApp) -> None:
    r = get(api, "/api/opt/here")
    assert (r.status_code, r.text) == (200, "opt here")


def test_optional_parameter_absent(api: RunningApp) -> None:
    r = get(api, "/api/opt")
    assert (r.status_code, r.text) == (200, "opt <absent>")


def test_default_value_used_when_segment_absent(api: RunningApp) -> None:
    assert get(api, "/api/greet").text == "hello world"
    assert get(api, "/api/greet/ada").text == "hello ada"


def test_catch_all_gets_the_rest_of_the_path(api: RunningApp) -> None:
    r = get(api, "/api/files/a/b/c")
    assert (r.status_code, r.text) == (200, "path a/b/c")


def test_literal_segment_beats_parameter(api: RunningApp) -> None:
    assert get(api, "/api/things/special").text == "special"
    assert get(api, "/api/things/other").text == "thing other"


def test_literal_segments_are_case_insensitive(api: RunningApp) -> None:
    r = get(api, "/API/Things/Special")
    assert (r.status_code, r.text) == (200, "special")


def test_method_not_in_methods_is_404_not_405(api: RunningApp) -> None:
    assert get(api, "/api/getonly").status_code == 200
    r = requests.post(api.url("/api/getonly"), data=b"x", timeout=10)
    assert r.status_code == 404


def test_unknown_path_is_404(api: RunningApp) -> None:
    r = get(api, "/api/no/such/route")
    assert (r.status_code, r.content) == (404, b"")


def test_route_prefix_defaults_to_api(api: RunningApp) -> None:
    assert get(api, "/api/anon").status_code == 200
    assert get(api, "/anon").status_code == 404


def test_empty_route_prefix_from_host_json(bare: RunningApp) -> None:
    r = get(bare, "/hello")
    assert (r.status_code, r.text) == (200, "hello without prefix")
    assert get(bare, "/api/hello").status_code == 404


# -- what the function sees and returns ------------------------------------------------


def test_function_sees_method_query_headers_body_and_route(api: RunningApp) -> None:
    r = requests.put(
        api.url("/api/echo/one/two"),
        params={"q": "v w"},
        headers={"x-conformance": "yes"},
        data="the body",
        timeout=10,
    )
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {
        "method": "PUT",
        "params": {"q": "v w"},
        "header": "yes",
        "body": "the body",
        "route": {"a": "one", "b": "two"},
    }


def test_exception_is_500_with_empty_body(api: RunningApp) -> None:
    r = get(api, "/api/boom")
    assert r.status_code == 500
    assert r.content == b""
    assert "conformance: this function always fails" in api.log_text()


def test_named_http_output_instead_of_return(api: RunningApp) -> None:
    r = get(api, "/api/namedout")
    assert (r.status_code, r.text) == (201, "via named output")
    assert r.headers["x-out"] == "res"


def test_async_function_is_awaited(api: RunningApp) -> None:
    r = get(api, "/api/asyncfn")
    assert (r.status_code, r.text) == (200, "async True")


def test_unbound_context_gets_the_invocation_id(api: RunningApp) -> None:
    r = get(api, "/api/ctx")
    assert r.status_code == 200
    body = r.json()
    assert str(uuid.UUID(body["invocation_id"])) == body["invocation_id"]
    assert body["function_name"] == "ctx"
    finished = wait_for(
        lambda: [e for e in api.finished("ctx") if e.invocation_id == body["invocation_id"]],
        "the ctx invocation in the log",
    )
    assert finished[0].outcome == "Succeeded"


def test_every_invocation_logs_name_id_duration_and_outcome(api: RunningApp) -> None:
    ok = get(api, "/api/ctx").json()["invocation_id"]
    assert get(api, "/api/boom").status_code == 500

    def both_logged() -> bool:
        done = api.finished("ctx", "Succeeded") + api.finished("boom", "Failed")
        return any(e.invocation_id == ok for e in done) and bool(api.finished("boom", "Failed"))

    wait_for(both_logged, "both invocations in the log")
    text = api.log_text()
    line = next(x for x in text.splitlines() if f"Id={ok}, Duration=" in x)
    assert re.search(
        rf"INFO funcrunner\.host: Executed 'Functions\.ctx' \(Succeeded, Id={ok}, "
        r"Duration=\d+ms\)$",
        line,
    ), line
    # Every start has exactly one end line, in the documented format.
    starts = re.findall(r"Executing 'Functions\.[^']+' \(Reason='.*', Id=([0-9a-f-]{36})\)", text)
    ends = [m["id"] for m in map(EXECUTED.match, text.splitlines()) if m]
    assert starts and sorted(starts) == sorted(ends)
    assert len(set(starts)) == len(starts)
