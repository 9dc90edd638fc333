"""Fixtures shared by every test room.

Unit tests use none of these. Integration and e2e tests get a real Azurite:
the one `make test` started (AZURITE_CONNECTION_STRING), or one started here
when pytest is run on its own. `catalog_app` runs the product's
function_app.py under the local runner against it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.apphost import AppHost
from devtools.azurite import Azurite, free_port
from shared.adapters.storage import StorageAccount, allow_portal_origins, ensure_resources
from shared.settings import settings_with_defaults

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def azurite_connection() -> Iterator[str]:
    existing = os.environ.get("AZURITE_CONNECTION_STRING")
    if existing:
        yield existing
        return
    azurite = Azurite().start()
    try:
        yield azurite.connection_string
    finally:
        azurite.stop()


@pytest.fixture(scope="session")
def storage(azurite_connection: str) -> StorageAccount:
    """The catalog's storage account in Azurite, with every resource the app uses."""
    env = {**settings_with_defaults(), "AzureWebJobsStorage": azurite_connection}
    account = StorageAccount.from_env(env)
    ensure_resources(account)
    return account


@pytest.fixture(scope="session")
def catalog_app(
    azurite_connection: str, storage: StorageAccount, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppHost]:
    """The product's function app, running under the local runner on a free port."""
    tmp = tmp_path_factory.mktemp("catalog-app")
    log = open(tmp / "host.log", "wb")  # noqa: SIM115
    app = AppHost(
        azurite_connection,
        keys_file=tmp / "keys.json",
        https_port=free_port(),  # the classic API's management certificates come over TLS
        tls_dir=tmp / "tls",
        stdout=log,
        extra_env={
            "AzureFunctionsWebHost__hostid": f"catalog-{uuid.uuid4().hex[:8]}",
            "FUNCRUNNER_BLOB_SCAN_SECONDS": "0.3",
            # The hour of production: an upload slowed down by a busy machine must never
            # time out here. The time-out test runs an app of its own with a short one.
            "UPLOAD_TIMEOUT_SECONDS": "3600",
        },
    )
    allow_portal_origins(storage.blobs, [app.base_url])  # the portal's browser uploads
    app.start(wait_path="/api/health")
    app.log_path = tmp / "host.log"  # type: ignore[attr-defined]
    try:
        yield app
    finally:
        app.stop()
        log.close()


@pytest.fixture(scope="session")
def function_key(catalog_app: AppHost) -> str:
    return str(catalog_app.keys()["hostKeys"]["default"])  # type: ignore[index]
