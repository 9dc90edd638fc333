"""Apps the worker or the host would refuse: `python -m funcrunner --app-dir DIR --check`.

Each case is a tiny generated app; all checks run at once (they are separate
processes) and each test reads its own result.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest

from devtools.azurite import ROOT

HEADER = "import azure.functions as func\n\napp = func.FunctionApp()\n\n"
HOST_JSON = {"version": "2.0"}


@dataclass(frozen=True)
class Case:
    source: str
    expected: str  # a fragment of the error message
    function: str | None = None  # the function the message must name
    host_json: dict | None = None


CASES: dict[str, Case] = {
    "valid": Case(
        """
        @app.route("ok")
        def ok_fn(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("ok")
        """,
        expected="1 functions loaded: ok_fn",
    ),
    "missing_parameter": Case(
        """
        @app.route("r")
        def missing_param_fn() -> func.HttpResponse:
            return func.HttpResponse("x")
        """,
        expected="declared in the bindings but not in Python: req",
        function="missing_param_fn",
    ),
    "extra_parameter": Case(
        """
        @app.route("r")
        def extra_param_fn(req: func.HttpRequest, stray: str) -> func.HttpResponse:
            return func.HttpResponse("x")
        """,
        expected="declared in Python but not in the bindings: stray",
        function="extra_param_fn",
    ),
    "out_binding_not_annotated_out": Case(
        """
        @app.route("r")
        @app.queue_output(arg_name="out", queue_name="q", connection="AzureWebJobsStorage")
        def out_plain_fn(req: func.HttpRequest, out: str) -> func.HttpResponse:
            return func.HttpResponse("x")
        """,
        expected='binding out is declared to have the "out" direction',
        function="out_plain_fn",
    ),
    "in_binding_annotated_out": Case(
        """
        @app.route("r")
        def in_as_out_fn(req: func.Out[func.HttpRequest]) -> func.HttpResponse:
            return func.HttpResponse("x")
        """,
        expected='binding req is declared to have the "in" direction',
        function="in_as_out_fn",
    ),
    "return_annotation_without_return_binding": Case(
        """
        @app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
        def return_annot_fn(msg: func.QueueMessage) -> str:
            return "x"
        """,
        expected='needs a "$return" output binding',
        function="return_annot_fn",
    ),
    "unknown_route_constraint": Case(
        """
        @app.route("items/{id:bogus}")
        def bad_constraint_fn(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("x")
        """,
        expected="unknown route constraint 'bogus'",
        function="bad_constraint_fn",
    ),
    "batch_size_too_large": Case(
        "",
        expected="batchSize must be an integer in [1, 32]",
        host_json={"version": "2.0", "extensions": {"queues": {"batchSize": 64}}},
    ),
    "unknown_message_encoding": Case(
        "",
        expected="messageEncoding must be base64 or none",
        host_json={"version": "2.0", "extensions": {"queues": {"messageEncoding": "gzip"}}},
    ),
}

FAILING = [name for name in CASES if name != "valid"]


@dataclass
class Checked:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Checked]:
    processes = {}
    for name, case in CASES.items():
        app_dir = tmp_path_factory.mktemp(name)
        (app_dir / "function_app.py").write_text(HEADER + textwrap.dedent(case.source))
        (app_dir / "host.json").write_text(json.dumps(case.host_json or HOST_JSON))
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", "funcrunner", "--app-dir", str(app_dir), "--check"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=60)
        results[name] = Checked(process.returncode, out, err)
    return results


def test_valid_app_passes_the_check(checked: dict[str, Checked]) -> None:
    result = checked["valid"]
    assert result.code == 0, result.stderr
    assert CASES["valid"].expected in result.stdout


@pytest.mark.parametrize("name", FAILING)
def test_broken_app_is_refused_with_a_clear_message(name: str, checked: dict[str, Checked]) -> None:
    case, result = CASES[name], checked[name]
    assert result.code == 1, (result.stdout, result.stderr)
    (message,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert case.expected in message
    if case.function is not None:
        assert f"cannot load the {case.function} function" in message
