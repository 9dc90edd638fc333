"""Fixtures for the end-to-end room: real disks, and the classic client pointed at the app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from azure.servicemanagement import ServiceManagementService

from devtools.apphost import AppHost
from shared.settings import DEFAULTS
from tests.vhd_corpus import Corpus, CorpusToolMissing


def force_http(request, next_filter):  # type: ignore[no-untyped-def]
    # A per-request override: it survives the client's with_filter copies.
    request.protocol_override = "http"
    return next_filter(request)


@pytest.fixture(scope="session")
def classic_client(catalog_app: AppHost, function_key: str) -> ServiceManagementService:
    """`azure-servicemanagement-legacy` as is, with the function key as its credential."""
    session = requests.Session()
    session.headers["x-functions-key"] = function_key
    return ServiceManagementService(
        DEFAULTS["CLASSIC_SUBSCRIPTION_ID"],
        host=urlsplit(catalog_app.base_url).netloc,
        request_session=session,
    ).with_filter(force_http)


@pytest.fixture(scope="session")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`disk("linux_ext4_mbr")` -> a real disk built once per session with real tools."""
    corpus = Corpus(tmp_path_factory.mktemp("e2e-corpus"))

    def get(name: str) -> Path:
        try:
            return corpus[name]
        except CorpusToolMissing as e:
            pytest.fail(f"the test command should have installed the disk tools: {e}")

    return get
