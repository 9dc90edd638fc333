"""Exit codes and error lines, with the HTTP answers faked at the `requests` adapter."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from vmimage import api, cli, commands
from vmimage.errors import TimedOut
from vmimage.output import Printer

Answer = tuple[int, Any] | Exception
Route = Callable[[requests.PreparedRequest], Answer]


class FakeAdapter(BaseAdapter):
    def __init__(self, route: Route) -> None:
        super().__init__()
        self.route = route
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):  # type: ignore[override]
        self.requests.append(request)
        answer = self.route(request)
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        r = requests.Response()
        r.status_code, r.url, r.request = status, request.url, request
        r._content = b"" if body is None else json.dumps(body).encode()
        return r

    def close(self) -> None:
        pass


@pytest.fixture
def serve(monkeypatch) -> Callable[[Route], FakeAdapter]:
    def install(route: Route) -> FakeAdapter:
        adapter = FakeAdapter(route)

        def session() -> requests.Session:
            s = requests.Session()
            s.mount("http://", adapter)
            return s

        monkeypatch.setattr(api, "make_session", session)
        return adapter

    monkeypatch.setattr(cli, "local_key", lambda: None)
    monkeypatch.setattr(api.time, "sleep", lambda s: None)
    return install


def run(*argv: str) -> int:
    return cli.main(["--url", "http://127.0.0.1:9", *argv])


def test_ok_is_0_and_a_service_error_is_1_with_its_code(serve, capsys) -> None:
    serve(lambda r: (200, {"ImageName": "a", "Label": "A"}))
    assert run("show", "a") == 0
    assert "ImageName  a" in capsys.readouterr().out

    serve(lambda r: (404, {"Code": "ImageNotFound", "Message": "no image is named 'b'"}))
    assert run("show", "b") == 1
    captured = capsys.readouterr()
    assert captured.err == "vmimage: error: ImageNotFound: no image is named 'b'\n"
    assert captured.out == ""


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, "Unauthorized"), (403, "Forbidden"), (404, "NotFound"), (500, "ServerError")],
)
def test_empty_error_bodies_still_get_a_code(serve, capsys, status, code) -> None:
    serve(lambda r: (status, None))
    assert run("rm", "a") == 1
    assert capsys.readouterr().err.startswith(f"vmimage: error: {code}: ")


def test_the_key_is_sent_in_the_functions_header(serve) -> None:
    adapter = serve(lambda r: (200, {"ImageName": "a"}))
    assert run("--key", "sekrit", "rm", "a", "--delete-vhd") == 0
    sent = adapter.requests[0]
    assert sent.method == "DELETE" and sent.url.endswith("/api/images/a?deleteVhd=true")
    assert sent.headers["x-functions-key"] == "sekrit"


def test_cannot_connect_is_3_and_no_answer_in_time_is_4(serve, capsys) -> None:
    serve(lambda r: requests.exceptions.ConnectionError("[Errno 111] Connection refused"))
    assert run("families") == 3
    assert "vmimage: error: Unreachable: cannot reach the catalog" in capsys.readouterr().err
    serve(lambda r: requests.exceptions.ReadTimeout("read timed out"))
    assert run("families") == 4


def test_a_real_refused_connection_is_3(monkeypatch, capsys) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(cli, "local_key", lambda: None)
    assert cli.main(["--url", f"http://127.0.0.1:{port}", "list"]) == 3
    assert "connection refused" in capsys.readouterr().err


def test_a_wrong_url_that_answers_html_is_1(serve, capsys) -> None:
    def html(r):
        return (200, None)

    serve(html)
    assert run("families") == 1
    assert "UnexpectedResponse" in capsys.readouterr().err


def test_list_all_follows_continuation_tokens(serve, capsys) -> None:
    pages = {
        None: {"Images": [{"ImageName": "a"}], "Count": 1, "ContinuationToken": "t1"},
        "t1": {"Images": [{"ImageName": "b"}], "Count": 1, "ContinuationToken": "t2"},
        "t2": {"Images": [{"ImageName": "c"}], "Count": 1},
    }

    def route(r):
        token = requests.utils.urlparse(r.url).query.partition("continuationToken=")[2] or None
        return (200, pages[token])

    adapter = serve(route)
    assert run("list", "--all", "--json", "--os", "linux", "--top", "1") == 0
    doc = json.loads(capsys.readouterr().out)
    assert [i["ImageName"] for i in doc["Images"]] == ["a", "b", "c"] and doc["Count"] == 3
    assert all("os=Linux" in r.url and "top=1" in r.url for r in adapter.requests)

    assert run("list", "--json") == 0  # one page only, and the token to go on
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ContinuationToken"] == "t1"
    assert "--all" in captured.err


def test_a_capture_followed_to_success_is_0_and_to_failure_is_1(serve, capsys) -> None:
    steps = iter(["Queued", "ReadVM", "CopyDisks", "Publish"])
    posted: list[dict[str, Any]] = []

    def route(r):
        if r.method == "POST":
            posted.append(json.loads(r.body))
            return (202, {"OperationId": posted[0]["OperationId"], "Status": "InProgress"})
        step = next(steps, None)
        if step is None:
            return (200, {"OperationId": "x", "Status": "Succeeded", "ImageName": "img"})
        return (200, {"OperationId": "x", "Status": "InProgress", "Step": step})

    serve(route)
    assert run("capture", "--service", "s", "--vm", "v", "--image", "img", "--wait") == 0
    captured = capsys.readouterr()
    assert posted[0]["OperationId"].startswith("cli-")  # a retried POST can't capture twice
    assert {"ServiceName": "s", "Name": "v", "ImageName": "img"}.items() <= posted[0].items()
    assert [line.split(": ")[-1] for line in captured.err.splitlines()[1:]] == [
        "Queued",
        "ReadVM",
        "CopyDisks",
        "Publish",
    ]
    assert "Succeeded" in captured.out

    failed = {"Status": "Failed", "Error": {"Code": "VmNotStopped", "Message": "stop it first"}}
    serve(lambda r: (200, {"OperationId": "x", **failed}))
    assert run("operation", "x") == 1
    assert "vmimage: error: VmNotStopped: stop it first" in capsys.readouterr().err


def test_waiting_past_the_timeout_is_4(serve, capsys) -> None:
    serve(lambda r: (200, {"OperationId": "x", "Status": "InProgress", "Step": "CopyDisks"}))
    assert run("operation", "x", "--wait", "--timeout", "0.01") == 4
    assert "vmimage: error: Timeout: operation x not finished" in capsys.readouterr().err


def test_poll_backs_off_and_gives_up_at_the_deadline() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    with pytest.raises(TimedOut):
        api.poll(lambda: None, lambda d: True, 10, "x", sleep=sleep, clock=lambda: now[0])
    assert sleeps[0] == 0.2 and max(sleeps) == 2.0 and sum(sleeps) <= 10


def test_an_upload_outcome_rejected_is_1_registered_is_0(serve, capsys) -> None:
    rejected = {
        "BlobName": "d.vhd",
        "Status": "Rejected",
        "Error": {"Code": "OSNotDetermined", "Message": "declare os"},
    }
    serve(lambda r: (200, rejected))
    assert run("status", "d.vhd") == 1
    assert capsys.readouterr().err == "vmimage: error: OSNotDetermined: declare os\n"
    serve(lambda r: (200, {"BlobName": "d.vhd", "Status": "Registered", "ImageName": "d"}))
    assert run("status", "d.vhd", "--wait") == 0


def test_upload_usage_errors_are_2_before_any_request(serve, tmp_path, capsys) -> None:
    adapter = serve(lambda r: (200, {}))
    assert run("upload", str(tmp_path / "missing.vhd")) == 2
    assert "FileNotFound" in capsys.readouterr().err
    disk = tmp_path / "disk.txt"
    disk.write_bytes(bytes(1024))
    assert run("upload", str(disk)) == 2
    assert "InvalidBlobName" in capsys.readouterr().err
    # Converted on the way, a disk goes up as a fixed VHD; sent as it is, it keeps its kind.
    assert run("upload", str(disk), "--name", "d.qcow2") == 2
    assert "must end in .vhd" in capsys.readouterr().err
    assert run("upload", str(disk), "--convert-on-server", "--name", "d.txt") == 2
    assert ".qcow2" in capsys.readouterr().err
    assert run("upload", str(disk), "--name", "d.vhd", "--label", "caf\u00e9") == 2
    assert "InvalidMetadata" in capsys.readouterr().err
    assert adapter.requests == []


def test_a_broken_disk_is_1_before_any_request(serve, corpus_path, capsys) -> None:
    adapter = serve(lambda r: (200, {}))
    assert run("upload", str(corpus_path("differencing_vhd")), "--name", "x.vhd") == 1
    err = capsys.readouterr().err
    assert err.startswith("vmimage: error: BackingFileNotSupported: ")
    assert "nothing was uploaded" in err
    assert adapter.requests == []


def test_a_disk_cut_short_is_1_before_any_request_or_blob(
    serve, corpus_path, capsys, monkeypatch
) -> None:
    adapter = serve(lambda r: (200, {}))
    storage: list[object] = []
    monkeypatch.setattr("vmimage.upload.blob_service", lambda *a: storage.append(a))
    assert run("upload", str(corpus_path("linux_cut_short")), "--name", "cut.vhd") == 1
    err = capsys.readouterr().err
    assert err.startswith("vmimage: error: PartitionBeyondDisk: linux-cut-short.vhd: partition 1 ")
    assert "67108864" in err and "41943040" in err and "nothing was uploaded" in err
    assert adapter.requests == [] and storage == []


def test_commands_table_covers_the_parser() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(commands.COMMANDS) | {"vm"}  # type: ignore[arg-type]


def test_an_upload_waits_for_the_outcome_of_its_own_version_of_the_blob(serve) -> None:
    answers = iter(
        [
            (404, {"Code": "UploadNotFound", "Message": "not seen yet"}),
            (200, {"Status": "Registered", "ETag": '"0xOLD"', "ImageName": "old"}),
            (200, {"Status": "Pending", "ETag": '"0xNEW"'}),
            (200, {"Status": "Registered", "ETag": '"0xNEW"', "ImageName": "new"}),
        ]
    )
    serve(lambda r: next(answers))
    printer = Printer(as_json=True, out=io.StringIO(), err=io.StringIO())
    ctx = commands.Ctx(argparse.Namespace(), printer, api.Catalog("http://127.0.0.1:9"))
    assert commands._wait_for_outcome(ctx, "d.vhd", "0xNEW", timeout=30) == 0
    assert json.loads(printer.out.getvalue())["ImageName"] == "new"


def test_waiting_on_a_conversion_shows_its_progress(serve) -> None:
    def converting(done: int, left: float | None) -> tuple[int, dict[str, object]]:
        doc = {"Status": "Converting", "BytesDone": done, "BytesTotal": 4 * 2**30}
        return 200, {**doc, "SecondsLeft": left}

    answers = iter(
        [
            converting(0, None),
            converting(2**30, 30.0),
            converting(2**30 + 5, 29.0),  # not a tenth further: no new line
            converting(3 * 2**30, 9.6),
            (200, {"Status": "Registered", "ImageName": "big"}),
        ]
    )
    serve(lambda r: next(answers))
    printer = Printer(out=io.StringIO(), err=io.StringIO())
    ctx = commands.Ctx(argparse.Namespace(), printer, api.Catalog("http://127.0.0.1:9"))
    assert commands._wait_for_outcome(ctx, "big.qcow2", None, timeout=60) == 0
    assert printer.err.getvalue().splitlines() == [
        "Converting: 0% (0.0/4.0 GiB read)",
        "Converting: 25% (1.0/4.0 GiB read), about 30 s left",
        "Converting: 75% (3.0/4.0 GiB read), about 10 s left",
    ]


def test_a_disk_for_a_vm_image_is_done_once_validated() -> None:
    validated = {"Status": "Pending", "Kind": "VmImageDisk", "NextCheck": None}
    assert commands._judged(validated)
    assert not commands._judged({**validated, "NextCheck": "2026-01-01T00:00:00Z"})
    assert not commands._judged({"Status": "Pending", "Kind": "Disk"})
    assert not commands._judged({"Status": "Converting", "Kind": "Disk", "BytesDone": 1})
    assert commands._judged({"Status": "Rejected", "Kind": "Disk"})
