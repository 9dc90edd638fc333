"""Binding plumbing shared by the triggers: storage clients, expressions, outputs.

Output bindings are flushed after the function returns, as the host does:
queue messages (encoded per `messageEncoding`) and table entities (inserted;
an existing entity fails the invocation). Binding properties may name app
settings (`%name%`) and trigger data (`{name}`, `{rand-guid}`, `{DateTime}`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables.aio import TableServiceClient
from azure.functions.queue import QueueMessageOutConverter
from azure.storage.blob.aio import BlobServiceClient
from azure.storage.queue.aio import QueueServiceClient

from .config import HostConfigError, connection_string
from .loader import Binding, FunctionSpec
from .rawqueue import xml_illegal


class StorageClients:
    """One async service client per connection and service, shared by all listeners."""

    def __init__(self, settings: dict[str, str]) -> None:
        self._settings = settings
        self._clients: dict[tuple[str, str], Any] = {}
        self._known_queues: set[tuple[str, str]] = set()
        self._known_tables: set[tuple[str, str]] = set()

    def _get(self, kind: str, connection: str | None) -> Any:
        conn = connection_string(self._settings, connection)
        key = (kind, conn)
        if key not in self._clients:
            cls = {"blob": BlobServiceClient, "queue": QueueServiceClient}.get(kind)
            if cls is not None:
                self._clients[key] = cls.from_connection_string(conn)
            else:
                self._clients[key] = TableServiceClient.from_connection_string(conn)
        return self._clients[key]

    def blob(self, connection: str | None) -> BlobServiceClient:
        return self._get("blob", connection)

    def queue_service(self, connection: str | None) -> QueueServiceClient:
        return self._get("queue", connection)

    def table_service(self, connection: str | None) -> TableServiceClient:
        return self._get("table", connection)

    async def queue(self, connection: str | None, name: str, create: bool = True) -> Any:
        client = self.queue_service(connection).get_queue_client(name)
        if create and (connection or "", name) not in self._known_queues:
            with contextlib.suppress(ResourceExistsError):
                await client.create_queue()
            self._known_queues.add((connection or "", name))
        return client

    async def table(self, connection: str | None, name: str) -> Any:
        service = self.table_service(connection)
        if (connection or "", name) not in self._known_tables:
            await service.create_table_if_not_exists(name)
            self._known_tables.add((connection or "", name))
        return service.get_table_client(name)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()


_SETTING = re.compile(r"%([^%]+)%")
_EXPRESSION = re.compile(r"\{([^{}]+)\}")


def resolve_settings(spec: FunctionSpec, settings: dict[str, str]) -> None:
    """Replace `%name%` in binding properties with app settings (at load, as the host)."""
    from .loader import FunctionLoadError

    def resolver(key: str) -> Callable[[re.Match[str]], str]:
        def lookup(m: re.Match[str]) -> str:
            if m.group(1) not in settings:
                raise FunctionLoadError(
                    spec.name, f"'%{m.group(1)}%' in {key} does not name an app setting"
                )
            return settings[m.group(1)]

        return lookup

    for binding in spec.bindings:
        for key, value in list(binding.raw.items()):
            if isinstance(value, str) and key not in ("name", "type", "direction"):
                binding.raw[key] = _SETTING.sub(resolver(key), value)


def expand(text: str, data: dict[str, str]) -> str:
    """Binding expressions from trigger data, plus the host's built-ins."""

    def value(m: re.Match[str]) -> str:
        key = m.group(1)
        if key.lower() == "rand-guid":
            return str(uuid.uuid4())
        if key.lower() == "datetime":
            return datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
        for k, v in data.items():
            if k.lower() == key.lower():
                return str(v)
        raise HostConfigError(f"binding expression '{{{key}}}' has no value in the trigger data")

    return _EXPRESSION.sub(value, text)


def _queue_payloads(value: Any) -> list[bytes]:
    datum = QueueMessageOutConverter.encode(value, expected_type=None)
    if datum is None:
        return []
    if datum.type == "json":
        items = json.loads(datum.value)
        items = items if isinstance(items, list) else [items]
        return [(i if isinstance(i, str) else json.dumps(i)).encode("utf-8") for i in items]
    if datum.type == "bytes":
        return [datum.value]
    return [str(datum.value).encode("utf-8")]


def _table_entities(binding: Binding, value: Any, data: dict[str, str]) -> list[dict[str, Any]]:
    if isinstance(value, bytes | str):
        value = json.loads(value)
    items = value if isinstance(value, list) else [value]
    entities = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("a table output must be a JSON object or an array of objects")
        entity = dict(item)
        for prop, key in (("partitionKey", "PartitionKey"), ("rowKey", "RowKey")):
            if key not in entity and binding.raw.get(prop):
                entity[key] = expand(binding.raw[prop], data)
        if "PartitionKey" not in entity or "RowKey" not in entity:
            raise ValueError("a table entity needs PartitionKey and RowKey")
        entities.append(entity)
    return entities


def queue_text(payload: bytes, message_encoding: str) -> str:
    """A queue output's text; refused when storage couldn't take it, as on Azure.

    A message's text must be XML-safe: Azure refuses the others, and Azurite takes
    them but then can't return them.
    """
    if message_encoding == "base64":
        return base64.b64encode(payload).decode("ascii")
    text = payload.decode("utf-8")
    if (at := xml_illegal(text)) is not None:
        raise ValueError(
            f"a queue message can't hold U+{ord(text[at]):04X} (at {at}): XML forbids it; "
            "escape it (json.dumps does) or use messageEncoding base64"
        )
    return text


async def flush_outputs(
    spec: FunctionSpec,
    outputs: dict[str, Any],
    clients: StorageClients,
    data: dict[str, str],
    message_encoding: str,
) -> None:
    for binding in spec.outputs:
        value = outputs.get(binding.name)
        if value is None or binding.type == "http":
            continue
        if binding.type == "queue":
            queue = await clients.queue(binding.connection, expand(binding.raw["queueName"], data))
            for payload in _queue_payloads(value):
                await queue.send_message(queue_text(payload, message_encoding))
        elif binding.type == "table":
            table = await clients.table(binding.connection, expand(binding.raw["tableName"], data))
            for entity in _table_entities(binding, value, data):
                await table.create_entity(entity)
