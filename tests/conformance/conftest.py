"""Fixtures and helpers of the runner conformance suite.

Each fixture app under `apps/<name>/` runs under the local runner as a child
process (devtools.apphost.AppHost) against the session's Azurite. Queue,
container and table names are app settings (`%NAME%` in the decorators), so
every start gets fresh names and tests never see each other's messages. The
runner's stdout goes to a file; `RunningApp.executions()` parses its
per-invocation lines.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import (
    QueueClient,
    QueueServiceClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from devtools.apphost import AppHost
from devtools.azurite import free_port

APPS = Path(__file__).resolve().parent / "apps"
T = TypeVar("T")

# The runner logs with "%(asctime)s %(levelname)s %(name)s: %(message)s".
_TS = r"(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
EXECUTING = re.compile(
    _TS + r" INFO funcrunner\.host: Executing 'Functions\.(?P<fn>[^']+)' "
    r"\(Reason='(?P<reason>.*)', Id=(?P<id>" + _UUID + r")\)$"
)
EXECUTED = re.compile(
    _TS + r" INFO funcrunner\.host: Executed 'Functions\.(?P<fn>[^']+)' "
    r"\((?P<outcome>Succeeded|Failed), Id=(?P<id>" + _UUID + r"), Duration=(?P<ms>\d+)ms\)$"
)


def unique(prefix: str) -> str:
    """A fresh storage name: lowercase letters and digits (valid for queues, containers, tables)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def wait_for(
    predicate: Callable[[], T], what: str, timeout: float = 20.0, interval: float = 0.1
) -> T:
    """Poll until `predicate()` is truthy and return it; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def log_time(text: str) -> datetime:
    """The timestamp of a runner log line (its first 23 characters)."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f")


@dataclass
class Execution:
    """One invocation as the runner logged it."""

    function: str
    invocation_id: str
    reason: str
    started: datetime
    ended: datetime | None = None
    outcome: str | None = None
    duration_ms: int | None = None


@dataclass
class RunningApp:
    host: AppHost
    log_path: Path
    settings: dict[str, str]
    host_id: str
    _log: IO[bytes]

    @property
    def base_url(self) -> str:
        return self.host.base_url

    def url(self, path: str) -> str:
        return self.host.base_url + path

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def executions(self, function: str | None = None) -> list[Execution]:
        """Invocations in start order, completed with their Executed line when it is there."""
        found: dict[str, Execution] = {}
        for line in self.log_text().splitlines():
            if m := EXECUTING.match(line):
                found[m["id"]] = Execution(m["fn"], m["id"], m["reason"], log_time(m["ts"]))
            elif (m := EXECUTED.match(line)) and m["id"] in found:
                ex = found[m["id"]]
                ex.ended, ex.outcome, ex.duration_ms = log_time(m["ts"]), m["outcome"], int(m["ms"])
        return [e for e in found.values() if function is None or e.function == function]

    def finished(self, function: str, outcome: str | None = None) -> list[Execution]:
        return [
            e
            for e in self.executions(function)
            if e.outcome is not None and (outcome is None or e.outcome == outcome)
        ]

    def keys(self) -> dict[str, Any]:
        return self.host.keys()  # type: ignore[return-value]

    def stop(self) -> None:
        try:
            self.host.stop()
        finally:
            self._log.close()


StartApp = Callable[..., RunningApp]


@pytest.fixture(scope="session")
def start_app(
    azurite_connection: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartApp]:
    """Start a fixture app: `start_app("queues", {"Q_X": "name"}, host_id=..., keys_file=...)`.

    Whatever a test leaves running is stopped at the end of the session.
    """
    started: list[RunningApp] = []

    def start(
        name: str,
        settings: dict[str, str] | None = None,
        *,
        app_dir: Path | None = None,
        host_id: str | None = None,
        keys_file: Path | None = None,
        wait_path: str = "/admin/host/ping",
        https: bool = False,
        tls_dir: Path | None = None,
    ) -> RunningApp:
        tmp = tmp_path_factory.mktemp(f"app-{name}")
        host_id = host_id or f"cf-{name.replace('_', '-')[:12]}-{uuid.uuid4().hex[:8]}"
        log_path = tmp / "host.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed by RunningApp.stop
        settings = dict(settings or {})
        host = AppHost(
            azurite_connection,
            app_dir=app_dir or APPS / name,
            keys_file=keys_file or tmp / "keys.json",
            https_port=free_port() if https else None,
            tls_dir=tls_dir or tmp / "tls",
            stdout=log,
            extra_env={
                "AzureFunctionsWebHost__hostid": host_id,
                "FUNCRUNNER_BLOB_SCAN_SECONDS": "0.3",
                **settings,
            },
        )
        app = RunningApp(host, log_path, settings, host_id, log)
        started.append(app)
        try:
            host.start(wait_path=wait_path, timeout=60)
        except Exception as e:
            app.stop()
            raise RuntimeError(f"{name} did not start:\n{app.log_text()}") from e
        return app

    yield start
    for app in started:
        with contextlib.suppress(Exception):
            app.stop()


class Storage:
    """Synchronous SDK clients on the session's Azurite, for arranging and reading back."""

    def __init__(self, connection: str) -> None:
        self.connection = connection
        self.blobs = BlobServiceClient.from_connection_string(connection)
        self.queues = QueueServiceClient.from_connection_string(connection)
        self.tables = TableServiceClient.from_connection_string(connection)

    def queue(self, name: str, base64: bool = False) -> QueueClient:
        """A client for `name`; with base64=True it encodes and decodes as the host does."""
        if base64:
            return QueueClient.from_connection_string(
                self.connection,
                name,
                message_encode_policy=TextBase64EncodePolicy(),
                message_decode_policy=TextBase64DecodePolicy(),
            )
        return QueueClient.from_connection_string(self.connection, name)

    def peek(self, name: str, base64: bool = False) -> list[str]:
        """The contents of up to 32 visible messages, without taking them."""
        try:
            return [m.content for m in self.queue(name, base64).peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []

    def entities(self, table: str, partition: str | None = None) -> list[dict[str, Any]]:
        client = self.tables.get_table_client(table)
        try:
            if partition is None:
                return list(client.list_entities())
            return list(client.query_entities("PartitionKey eq @pk", parameters={"pk": partition}))
        except ResourceNotFoundError:
            return []


@pytest.fixture(scope="session")
def storage_sdk(azurite_connection: str) -> Storage:
    return Storage(azurite_connection)
