"""Telemetry: Azure Monitor export on Azure, and log records that carry the catalog's keys.

`configure()` runs once when the function app loads (`functions/__init__.py`). It turns on
the Azure Monitor OpenTelemetry distro only where `APPLICATIONINSIGHTS_CONNECTION_STRING`
is set (on Azure, by `infra/`); locally it does nothing and imports nothing of the distro.

`dimensions()` builds the `extra=` of a log call: flat record attributes, which the
distro's log handler exports as properties (`customDimensions` in Application Insights),
named like the catalog's API fields so that a query reads `customDimensions.ImageName`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
# "ClientId=<id>;Authorization=AAD" when the Application Insights resource refuses local auth.
AUTHENTICATION_STRING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"

OPERATION_ID = "OperationId"
IMAGE_NAME = "ImageName"
BLOB_NAME = "BlobName"

_configured = False
_lock = threading.Lock()


def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Send logs, traces and metrics to Application Insights, once; returns whether it does."""
    global _configured
    env = os.environ if environ is None else environ
    connection_string = env.get(CONNECTION_STRING, "").strip()
    if _configured or not connection_string:
        return _configured
    with _lock:
        if not _configured:
            from azure.monitor.opentelemetry import configure_azure_monitor

            options: dict[str, Any] = {"connection_string": connection_string}
            credential = _entra_credential(env.get(AUTHENTICATION_STRING, ""))
            if credential is not None:
                options["credential"] = credential
            configure_azure_monitor(**options)
            _configured = True
    return True


def _entra_credential(authentication: str) -> Any:
    """The managed identity named by the authentication string, or None for key-based ingestion."""
    parts = dict(p.split("=", 1) for p in authentication.split(";") if "=" in p)
    if parts.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=parts.get("ClientId") or None)


def dimensions(
    *,
    operation_id: str | None = None,
    image_name: str | None = None,
    blob_name: str | None = None,
) -> dict[str, str]:
    """The `extra=` of a log call: the keys that are known, none that are empty."""
    given = {OPERATION_ID: operation_id, IMAGE_NAME: image_name, BLOB_NAME: blob_name}
    return {k: v for k, v in given.items() if v}


def log_event(
    logger: logging.Logger,
    msg: str,
    *args: object,
    level: int = logging.INFO,
    operation_id: str | None = None,
    image_name: str | None = None,
    blob_name: str | None = None,
) -> None:
    """Log `msg % args` with the catalog's keys as record attributes."""
    extra = dimensions(operation_id=operation_id, image_name=image_name, blob_name=blob_name)
    logger.log(level, msg, *args, extra=extra)
