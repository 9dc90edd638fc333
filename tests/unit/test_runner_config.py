"""What the local runner reads before it starts: host.json, timespans, app settings."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from funcrunner.config import (
    DEV_ACCOUNT,
    HostConfig,
    HostConfigError,
    connection_string,
    expand_connection_string,
    load_app_settings,
    load_host_config,
    parse_timespan,
)
from funcrunner.host import host_id

# -- timespans -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:00:01", timedelta(seconds=1)),
        ("01:02:03", timedelta(hours=1, minutes=2, seconds=3)),
        ("1.02:00:00", timedelta(days=1, hours=2)),
        ("00:00:00.500", timedelta(milliseconds=500)),
        ("00:00:00.1234567", timedelta(microseconds=123456)),
        (" 00:10:00 ", timedelta(minutes=10)),
        (5, timedelta(seconds=5)),
        (0.25, timedelta(milliseconds=250)),
        ("-1", timedelta.max),
    ],
)
def test_parse_timespan(text: Any, expected: timedelta) -> None:
    assert parse_timespan(text, timedelta(0)) == expected


def test_parse_timespan_default_when_absent() -> None:
    assert parse_timespan(None, timedelta(minutes=7)) == timedelta(minutes=7)


@pytest.mark.parametrize("text", ["5 minutes", "1:2", "", "00:00", "aa:bb:cc", "1.2.3:00:00"])
def test_parse_timespan_refuses_other_text(text: str) -> None:
    with pytest.raises(HostConfigError, match="timespan"):
        parse_timespan(text, timedelta(0))


# -- host.json -----------------------------------------------------------------------------


def write_host_json(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "host.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def with_queues(**queues: Any) -> dict[str, Any]:
    return {"version": "2.0", "extensions": {"queues": queues}}


def test_missing_host_json_gives_the_host_defaults(tmp_path: Path) -> None:
    assert load_host_config(tmp_path / "host.json") == HostConfig()


def test_minimal_host_json_gives_the_host_defaults(tmp_path: Path) -> None:
    config = load_host_config(write_host_json(tmp_path, {"version": "2.0"}))
    assert config.route_prefix == "api"
    assert config.function_timeout == timedelta(minutes=30)
    q = config.queues
    assert (q.batch_size, q.new_batch_threshold, q.effective_new_batch_threshold) == (16, None, 8)
    assert q.max_polling_interval == timedelta(minutes=1)
    assert q.visibility_timeout == timedelta(0)
    assert (q.max_dequeue_count, q.message_encoding) == (5, "base64")
    assert config.blobs.poison_blob_threshold == 5
    assert config.blobs.max_degree_of_parallelism == 8


def test_host_json_values_are_read(tmp_path: Path) -> None:
    doc = {
        "version": "2.0",
        "functionTimeout": "00:05:00",
        "extensions": {
            "http": {"routePrefix": "/v1/"},
            "queues": {
                "batchSize": 32,
                "newBatchThreshold": 0,
                "maxPollingInterval": "00:00:02",
                "visibilityTimeout": "00:00:30",
                "maxDequeueCount": 2,
                "messageEncoding": "None",
            },
            "blobs": {"poisonBlobThreshold": 1, "maxDegreeOfParallelism": 4},
        },
    }
    config = load_host_config(write_host_json(tmp_path, doc))
    assert config.route_prefix == "v1"
    assert config.function_timeout == timedelta(minutes=5)
    q = config.queues
    assert (q.batch_size, q.effective_new_batch_threshold) == (32, 0)
    assert q.max_polling_interval == timedelta(seconds=2)
    assert q.visibility_timeout == timedelta(seconds=30)
    assert (q.max_dequeue_count, q.message_encoding) == (2, "none")
    assert (config.blobs.poison_blob_threshold, config.blobs.max_degree_of_parallelism) == (1, 4)


def test_empty_route_prefix_is_kept(tmp_path: Path) -> None:
    doc = {"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}
    assert load_host_config(write_host_json(tmp_path, doc)).route_prefix == ""


def test_unbounded_function_timeout(tmp_path: Path) -> None:
    doc = {"version": "2.0", "functionTimeout": "-1"}
    assert load_host_config(write_host_json(tmp_path, doc)).function_timeout == timedelta.max


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("{not json", "not valid JSON"),
        ({}, '"version" must be "2.0"'),
        ({"version": "1.0"}, '"version" must be "2.0"'),
        (with_queues(batchSize=64), r"batchSize must be an integer in \[1, 32\]"),
        (with_queues(batchSize=0), "batchSize"),
        (with_queues(batchSize="16"), "batchSize"),
        (with_queues(batchSize=True), "batchSize"),
        (with_queues(maxDequeueCount=0), "maxDequeueCount"),
        (with_queues(newBatchThreshold=-1), "newBatchThreshold"),
        (with_queues(messageEncoding="gzip"), "messageEncoding must be base64 or none"),
        (with_queues(visibilityTimeout="soon"), "timespan"),
        ({"version": "2.0", "functionTimeout": "ten minutes"}, "timespan"),
        ({"version": "2.0", "extensions": {"blobs": {"poisonBlobThreshold": 0}}}, "poison"),
        ({"version": "2.0", "extensions": {"http": {"routePrefix": 5}}}, "routePrefix"),
    ],
)
def test_invalid_host_json_is_refused(tmp_path: Path, doc: Any, message: str) -> None:
    with pytest.raises(HostConfigError, match=message):
        load_host_config(write_host_json(tmp_path, doc))


# -- app settings and connections -----------------------------------------------------------


def test_app_settings_from_local_settings_then_environment(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"IsEncrypted": False, "Values": {"A": "file", "B": "file", "N": 3}})
    )
    settings = load_app_settings(tmp_path, {"B": "env"})
    assert (settings["A"], settings["B"], settings["N"]) == ("file", "env", "3")
    assert settings["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert settings["FUNCTIONS_WORKER_RUNTIME"] == "python"


def test_app_settings_environment_overrides_storage_default(tmp_path: Path) -> None:
    settings = load_app_settings(tmp_path, {"AzureWebJobsStorage": "conn"})
    assert settings["AzureWebJobsStorage"] == "conn"


def test_invalid_local_settings_is_refused(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text("{")
    with pytest.raises(HostConfigError, match=r"local\.settings\.json"):
        load_app_settings(tmp_path, {})


def test_development_storage_expands_to_the_emulator() -> None:
    text = expand_connection_string("UseDevelopmentStorage=true")
    parts = dict(p.split("=", 1) for p in text.split(";") if p)
    assert parts["AccountName"] == DEV_ACCOUNT
    assert parts["BlobEndpoint"] == f"http://127.0.0.1:10000/{DEV_ACCOUNT}"
    assert parts["QueueEndpoint"] == f"http://127.0.0.1:10001/{DEV_ACCOUNT}"
    assert parts["TableEndpoint"] == f"http://127.0.0.1:10002/{DEV_ACCOUNT}"


def test_development_storage_proxy_uri() -> None:
    text = expand_connection_string(
        "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://10.0.0.5"
    )
    assert f"BlobEndpoint=http://10.0.0.5:10000/{DEV_ACCOUNT};" in text


def test_other_connection_strings_are_kept() -> None:
    text = "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=eA==;EndpointSuffix=core"
    assert expand_connection_string(text) == text


def test_connection_lookup_follows_the_host() -> None:
    settings = {
        "AzureWebJobsStorage": "default-conn",
        "AzureWebJobsOther": "prefixed-conn",
        "ConnectionStrings:Third": "section-conn",
        "Direct": "direct-conn",
    }
    assert connection_string(settings, None) == "default-conn"
    assert connection_string(settings, "AzureWebJobsStorage") == "default-conn"
    assert connection_string(settings, "Direct") == "direct-conn"
    assert connection_string(settings, "Other") == "prefixed-conn"
    assert connection_string(settings, "Third") == "section-conn"


def test_unknown_connection_is_refused() -> None:
    with pytest.raises(HostConfigError, match="'Missing' is not an app setting"):
        connection_string({"AzureWebJobsStorage": "x"}, "Missing")


# -- host id -------------------------------------------------------------------------------


def test_host_id_from_setting_is_sanitised() -> None:
    settings = {"AzureFunctionsWebHost__hostid": "My_App.Host"}
    assert host_id(settings, Path("/srv/app")) == "my-app-host"


def test_host_id_is_at_most_32_characters() -> None:
    settings = {"AzureFunctionsWebHost__hostid": "x" * 40}
    assert host_id(settings, Path("/srv/app")) == "x" * 32


def test_host_id_defaults_to_the_app_folder() -> None:
    assert host_id({}, Path("/srv/Catalog")) == "catalog-local"
