"""shared/telemetry.py: Azure Monitor only where a connection string is set, once; log keys."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import types
from pathlib import Path

import pytest

from shared import telemetry

ROOT = Path(__file__).resolve().parents[2]
DUMMY = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://example.invalid/"
DISTRO_PREFIXES = ("azure.monitor", "opentelemetry")


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "_configured", False)


@pytest.fixture
def distro(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """A stand-in for azure.monitor.opentelemetry that records its calls and exports nothing."""
    calls: list[dict[str, object]] = []
    fake = types.ModuleType("azure.monitor.opentelemetry")
    fake.configure_azure_monitor = lambda **kwargs: calls.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", fake)
    return calls


def _loaded_after(code: str, env: dict[str, str]) -> list[str]:
    """Modules of the distro (or OpenTelemetry) loaded by `code` in a fresh interpreter."""
    probe = (
        f"import sys, json\n{code}\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({DISTRO_PREFIXES!r}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_without_a_connection_string_nothing_of_the_distro_is_imported() -> None:
    env = {"PATH": "", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    assert (
        _loaded_after("from shared import telemetry; assert not telemetry.configure()", env) == []
    )
    # The whole app loads (functions/__init__.py calls configure()) without it too.
    assert _loaded_after("import function_app", env) == []


def test_without_a_connection_string_configure_does_nothing_every_time(
    fresh: None, distro: list[dict[str, object]]
) -> None:
    assert telemetry.configure({}) is False
    assert telemetry.configure({telemetry.CONNECTION_STRING: "  "}) is False
    assert distro == []


def test_with_a_connection_string_the_distro_is_configured_once(
    fresh: None, distro: list[dict[str, object]]
) -> None:
    env = {telemetry.CONNECTION_STRING: DUMMY}
    assert telemetry.configure(env) is True
    assert telemetry.configure(env) is True
    assert distro == [{"connection_string": DUMMY}]


def test_entra_ingestion_uses_the_named_managed_identity(
    fresh: None, distro: list[dict[str, object]]
) -> None:
    from azure.identity import ManagedIdentityCredential

    env = {
        telemetry.CONNECTION_STRING: DUMMY,
        telemetry.AUTHENTICATION_STRING: "ClientId=1234-abcd;Authorization=AAD",
    }
    assert telemetry.configure(env) is True
    (call,) = distro
    assert call["connection_string"] == DUMMY
    assert isinstance(call["credential"], ManagedIdentityCredential)


def test_log_records_carry_the_operation_id_and_image_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("tests.telemetry")
    with caplog.at_level(logging.INFO, logger="tests.telemetry"):
        telemetry.log_event(
            log, "capture %s -> %s", "op-1", "myImage", operation_id="op-1", image_name="myImage"
        )
        telemetry.log_event(log, "upload %s", "a.vhd", blob_name="a.vhd", image_name=None)
    first, second = caplog.records
    assert first.getMessage() == "capture op-1 -> myImage"
    assert (first.OperationId, first.ImageName) == ("op-1", "myImage")  # type: ignore[attr-defined]
    assert second.BlobName == "a.vhd"  # type: ignore[attr-defined]
    assert not hasattr(second, "ImageName") and not hasattr(second, "OperationId")


def test_the_fields_become_exported_log_attributes() -> None:
    """What the distro's OpenTelemetry log handler sends (Azure Monitor: customDimensions)."""
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider, export

    exporter = export.InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(export.SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(logger_provider=provider)
    log = logging.getLogger("tests.telemetry.export")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        telemetry.log_event(log, "capture done", operation_id="op-2", image_name="img")
    finally:
        log.removeHandler(handler)
        provider.shutdown()
    (exported,) = exporter.get_finished_logs()
    attributes = dict(exported.log_record.attributes or {})
    assert attributes[telemetry.OPERATION_ID] == "op-2"
    assert attributes[telemetry.IMAGE_NAME] == "img"
