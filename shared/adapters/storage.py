"""The one place storage clients are made: once per worker process, then reused.

Locally the connection is a connection string (`AzureWebJobsStorage`,
`UseDevelopmentStorage=true` meaning Azurite on its default ports). On Azure
it is identity-based, as the Functions host reads it:
`AzureWebJobsStorage__accountName` (or `__blobServiceUri`,
`__queueServiceUri`, `__tableServiceUri`), with `__credential=managedidentity`
and `__clientId` for a user-assigned identity.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.blob import LinearRetry as BlobRetry
from azure.storage.queue import LinearRetry as QueueRetry
from azure.storage.queue import QueueServiceClient

from shared.domain.errors import StorageUnavailable
from shared.settings import Settings

T = TypeVar("T")

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
        cls,
        environ: dict[str, str] | None = None,
        *,
        fail_fast: bool = False,
        **client_options: Any,
    ) -> StorageAccount:
        """Clients for the configured account; `fail_fast`: the ones HTTP answers use."""
        env = os.environ if environ is None else environ
        settings = Settings.from_env(dict(env))
        options = {kind: dict(client_options) for kind in ("blob", "queue", "table")}
        if fail_fast:
            for kind, extra in _fail_fast_options().items():
                options[kind].update(extra)
        conn = env.get(CONNECTION)
        if conn:
            conn = expand_development_storage(conn)
            return cls(
                BlobServiceClient.from_connection_string(conn, **options["blob"]),
                QueueServiceClient.from_connection_string(conn, **options["queue"]),
                TableServiceClient.from_connection_string(conn, **options["table"]),
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
            BlobServiceClient(urls["blob"], credential=credential, **options["blob"]),
            QueueServiceClient(urls["queue"], credential=credential, **options["queue"]),
            TableServiceClient(urls["table"], credential=credential, **options["table"]),
            settings,
        )


# An HTTP caller is waiting: connect briefly and retry once, soon (a pooled connection
# the server closed), then answer 503 with Retry-After. The SDKs' defaults (connect
# within 20 s, 3 retries backing off for up to ~1 min on blobs) stay with the queue and
# blob workers, whom nobody waits for and whose messages are retried anyway.
FAIL_FAST_CONNECT_SECONDS = 3
FAIL_FAST_READ_SECONDS = 30
FAIL_FAST_RETRIES = 1


def _fail_fast_options() -> dict[str, dict[str, Any]]:
    timeouts = {
        "connection_timeout": FAIL_FAST_CONNECT_SECONDS,
        "read_timeout": FAIL_FAST_READ_SECONDS,
    }
    pause: Any = 0.3  # seconds; the SDKs' annotations say int, their arithmetic takes floats
    return {
        "blob": {
            **timeouts,
            "retry_policy": BlobRetry(
                backoff=pause, retry_total=FAIL_FAST_RETRIES, random_jitter_range=pause / 2
            ),
        },
        "queue": {
            **timeouts,
            "retry_policy": QueueRetry(
                backoff=pause, retry_total=FAIL_FAST_RETRIES, random_jitter_range=pause / 2
            ),
        },
        "table": {
            **timeouts,
            "retry_total": FAIL_FAST_RETRIES,
            "retry_backoff_factor": pause,
        },
    }


_accounts: dict[bool, StorageAccount] = {}
_lock = threading.Lock()
_answering: ContextVar[bool] = ContextVar("answering_http", default=False)


@contextmanager
def answering_http() -> Iterator[None]:
    """Within it (an HTTP function answering), `account()` gives the fail-fast clients."""
    token = _answering.set(True)
    try:
        yield
    finally:
        _answering.reset(token)


def account() -> StorageAccount:
    """The process-wide storage account, created on first use: the fail-fast clients
    while an HTTP function answers, the patient ones elsewhere."""
    fast = _answering.get()
    if fast not in _accounts:
        with _lock:
            if fast not in _accounts:
                _accounts[fast] = StorageAccount.from_env(fail_fast=fast)
    return _accounts[fast]


def per_account(build: Callable[[], T]) -> Callable[[], T]:
    """Cache what `build` makes from `account()`: once per kind of clients."""
    made: dict[bool, T] = {}

    @functools.wraps(build)
    def get() -> T:
        fast = _answering.get()
        if fast not in made:
            made[fast] = build()
        return made[fast]

    return get


# Storage errors that mean "not now" rather than "no": it can't be reached, or it failed.
_UNAVAILABLE_STATUSES = frozenset({500, 502, 503, 504})


def storage_unavailable(error: BaseException) -> StorageUnavailable | None:
    """The StorageUnavailable an HTTP answer reports when `error` (or what caused it) is
    storage being unreachable or failing; None for any other error."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ServiceRequestError | ServiceResponseError | ConnectionError):
            return StorageUnavailable(f"it can't be reached: {type(seen).__name__}")
        if isinstance(seen, TimeoutError):
            return StorageUnavailable("it did not answer in time")
        if isinstance(seen, HttpResponseError) and seen.status_code in _UNAVAILABLE_STATUSES:
            return StorageUnavailable(f"it answered {seen.status_code}")
        seen = seen.__cause__
    return None


# What the portal's browser upload sends to the blob endpoint (Put Blob, Put Page, Set
# Blob Metadata, all PUT with x-ms-* headers); infra/ sets the same rule on Azure.
CORS_METHODS = ["PUT", "GET", "HEAD", "OPTIONS"]
CORS_MAX_AGE = 3600


def allow_portal_origins(blobs: BlobServiceClient, origins: list[str]) -> bool:
    """Let pages from `origins` (the portal's URL) call the blob endpoint: add them to the
    account's CORS rules, keeping the rules already there. True when something changed."""
    from azure.storage.blob import CorsRule

    rules = list(blobs.get_service_properties().get("cors") or [])
    have = {o.strip().lower() for r in rules for o in r.allowed_origins.split(",")}
    missing = [o for o in origins if o.lower() not in have]
    if not missing:
        return False
    rules.append(
        CorsRule(
            missing,
            CORS_METHODS,
            allowed_headers=["*"],
            exposed_headers=["*"],
            max_age_in_seconds=CORS_MAX_AGE,
        )
    )
    blobs.set_service_properties(cors=rules)
    return True


def ensure_resources(storage: StorageAccount, portal_origins: Sequence[str] = ()) -> list[str]:
    """Create every container, queue and table the app uses; return what was created.
    With `portal_origins`, also let the portal at those origins upload from the browser.

    On Azure `infra/` creates them; locally `make run` and the tests call this.
    """
    from azure.core.exceptions import ResourceExistsError

    created: list[str] = []
    if portal_origins and allow_portal_origins(storage.blobs, list(portal_origins)):
        created.append(f"CORS rule for {', '.join(portal_origins)}")
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
