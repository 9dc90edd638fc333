"""Storage being down is told apart from every other error, in one place."""

from __future__ import annotations

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)

from shared.adapters import storage
from shared.domain.errors import InvalidParameter, StorageUnavailable
from shared.services import classic as cx


def _status(error: HttpResponseError, status: int) -> HttpResponseError:
    error.status_code = status
    return error


def _caused_by(cause: BaseException) -> RuntimeError:
    try:
        raise RuntimeError("while doing something") from cause
    except RuntimeError as e:
        return e


@pytest.mark.parametrize(
    "error",
    [
        ServiceRequestError("connection refused"),
        ServiceResponseError("connection reset"),
        ServiceResponseTimeoutError("read timed out"),
        ConnectionRefusedError(111, "refused"),
        TimeoutError("timed out"),
        _status(HttpResponseError("InternalError"), 500),
        _status(HttpResponseError("ServerBusy"), 503),
        _status(HttpResponseError("gateway"), 504),
        _caused_by(ServiceRequestError("connection refused")),
    ],
)
def test_unreachable_or_failing_storage_is_unavailable(error: BaseException) -> None:
    down = storage.storage_unavailable(error)
    assert isinstance(down, StorageUnavailable)
    assert (down.code, down.status, down.retry_after) == ("StorageUnavailable", 503, 10)
    assert "storage is unavailable" in down.message


@pytest.mark.parametrize(
    "error",
    [
        ResourceNotFoundError("no such blob"),
        ResourceExistsError("taken"),
        _status(HttpResponseError("forbidden"), 403),
        _status(HttpResponseError("bad request"), 400),
        InvalidParameter("bad input"),
        ValueError("a bug"),
        KeyError("Vm"),
        _caused_by(ValueError("a bug")),
    ],
)
def test_other_errors_are_not_an_outage(error: BaseException) -> None:
    assert storage.storage_unavailable(error) is None


def test_the_classic_api_calls_it_service_unavailable() -> None:
    assert cx.classic_code("StorageUnavailable", 503) == "ServiceUnavailable"
    assert cx.classic_code("CopyFailed", 500) == "InternalError"


def test_http_answers_get_their_own_fail_fast_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    monkeypatch.setattr(storage, "_accounts", {})
    built: list[storage.StorageAccount] = []

    @storage.per_account
    def thing() -> storage.StorageAccount:
        built.append(storage.account())
        return built[-1]

    patient = storage.account()
    with storage.answering_http():
        fast = storage.account()
        assert storage.account() is fast and thing() is fast and thing() is fast
    assert fast is not patient
    assert storage.account() is patient and thing() is patient and thing() is patient
    assert built == [fast, patient]  # each built once
