"""The one place storage clients are made: once per worker process, then reused.

Locally the connection is a connection string (`AzureWebJobsStorage`,
`UseDevelopmentStorage=true` meaning Azurite on its default ports). On Azure
it is identity-based, as the Functions host reads it:
`AzureWebJobsStorage__accountName` (or `__blobServiceUri`,
`__queueServiceUri`, `__tableServiceUri`), with `__credential=managedidentity`
and `__clientId` for a user-assigned identity.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared.settings import Settings

CONNECTION = "AzureWebJobsStorage"
DEV_ACCOUNT = "devstoreaccount1"
# The emulator's public, documented well-known key (not a secret).
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class StorageNotConfigured(RuntimeError):
    pass


def expand_development_storage(value: str) -> str:
    parts = dict(p.split("=", 1) for p in value.split(";") if "=" in p)
    if parts.get("UseDevelopmentStorage", "").lower() != "true":
        return value
    proxy = parts.get("DevelopmentStorageProxyUri", "http://127.0.0.1").rstrip("/")
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint={proxy}:10000/{DEV_ACCOUNT};QueueEndpoint={proxy}:10001/{DEV_ACCOUNT};"
        f"TableEndpoint={proxy}:10002/{DEV_ACCOUNT};"
    )


def _credential(env: dict[str, str] | os._Environ[str], prefix: str) -> Any:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if env.get(f"{prefix}__credential", "").lower() == "managedidentity":
        client_id = env.get(f"{prefix}__clientId")
        return (
            ManagedIdentityCredential(client_id=client_id)
            if client_id
            else ManagedIdentityCredential()
        )
    return DefaultAzureCredential()


@dataclass
class StorageAccount:
    blobs: BlobServiceClient
    queues: QueueServiceClient
    tables: TableServiceClient
    settings: Settings

    @classmethod
    def from_env(
        cls, environ: dict[str, str] | None = None, **client_options: Any
    ) -> StorageAccount:
        env = os.environ if environ is None else environ
        settings = Settings.from_env(dict(env))
        conn = env.get(CONNECTION)
        if conn:
            conn = expand_development_storage(conn)
            return cls(
                BlobServiceClient.from_connection_string(conn, **client_options),
                QueueServiceClient.from_connection_string(conn, **client_options),
                TableServiceClient.from_connection_string(conn, **client_options),
                settings,
            )
        account = env.get(f"{CONNECTION}__accountName")
        urls = {
            kind: env.get(f"{CONNECTION}__{kind}ServiceUri")
            or (f"https://{account}.{kind}.core.windows.net" if account else None)
            for kind in ("blob", "queue", "table")
        }
        if not all(urls.values()):
            raise StorageNotConfigured(
                f"set {CONNECTION} (a connection string) or {CONNECTION}__accountName "
                "(identity-based) so the catalog can reach its storage account"
            )
        credential = _credential(env, CONNECTION)
        return cls(
            BlobServiceClient(urls["blob"], credential=credential, **client_options),
            QueueServiceClient(urls["queue"], credential=credential, **client_options),
            TableServiceClient(urls["table"], credential=credential, **client_options),
            settings,
        )


_account: StorageAccount | None = None
_lock = threading.Lock()


def account() -> StorageAccount:
    """The process-wide storage account, created on first use."""
    global _account
    if _account is None:
        with _lock:
            if _account is None:
                _account = StorageAccount.from_env()
    return _account


def ensure_resources(storage: StorageAccount) -> list[str]:
    """Create every container, queue and table the app uses; return what was created.

    On Azure `infra/` creates them; locally `make run` and the tests call this.
    """
    from azure.core.exceptions import ResourceExistsError

    created: list[str] = []
    s = storage.settings
    for name in s.containers:
        try:
            storage.blobs.create_container(name)
            created.append(f"container {name}")
        except ResourceExistsError:
            pass
    for name in s.queues:
        try:
            storage.queues.create_queue(name)
            created.append(f"queue {name}")
        except ResourceExistsError:
            pass
    existing = {t.name for t in storage.tables.list_tables()}
    for name in s.tables:
        if name not in existing:
            storage.tables.create_table(name)
            created.append(f"table {name}")
    return created
