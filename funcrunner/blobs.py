"""Blob triggers delivered the way the host's polling mode delivers them.

A scanner lists each watched container; every (function, blob, ETag) without
a completed receipt becomes a message on the host's internal queue
`azure-webjobs-blobtrigger-<hostid>`, so a new ETag (a re-upload, a metadata
write) triggers again and an untouched blob does not. Receipts live in
`azure-webjobs-hosts/blobreceipts/<hostid>/<function>/"<etag>"/<container>/<blob>`
and survive restarts; a lease on the receipt keeps two deliveries of the
same ETag from running at once. After `poisonBlobThreshold` failed tries the
message goes to `webjobs-blobtrigger-poison` and the receipt is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import azure.functions as func
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from .bindings import StorageClients, flush_outputs
from .config import QueueOptions
from .invoker import Invoker
from .loader import FunctionSpec
from .queues import QueueListener

log = logging.getLogger("funcrunner.blobs")

RECEIPTS_CONTAINER = "azure-webjobs-hosts"
POISON_QUEUE = "webjobs-blobtrigger-poison"
RECEIPT_LEASE_SECONDS = 60


class ReceiptBusy(Exception):
    """Another delivery of the same blob version holds the receipt."""


@dataclass
class BlobPath:
    """`container/pattern{name}` from a blob trigger's `path`."""

    container: str
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, path: str) -> BlobPath:
        container, _, pattern = path.strip("/").partition("/")
        pieces, position = [], 0
        for m in re.finditer(r"\{([A-Za-z_][A-Za-z0-9_-]*)\}", pattern):
            pieces.append(re.escape(pattern[position : m.start()]))
            pieces.append(f"(?P<{m.group(1).replace('-', '_')}>.+)")
            position = m.end()
        pieces.append(re.escape(pattern[position:]))
        regex = "".join(pieces) if pattern else ".+"
        return cls(container=container, regex=re.compile(regex, re.DOTALL))

    def match(self, blob_name: str) -> dict[str, str] | None:
        m = self.regex.fullmatch(blob_name)
        return None if m is None else {k: v for k, v in m.groupdict().items() if v is not None}


def _kind(blob_type: Any) -> str:
    return str(getattr(blob_type, "value", blob_type))


def etag_of(value: str) -> str:
    """Listings give ETags bare, properties give them quoted: compare them bare."""
    return value.strip('"')


def receipt_name(host_id: str, function: str, etag: str, container: str, blob: str) -> str:
    return f'blobreceipts/{host_id}/{function}/"{etag_of(etag)}"/{container}/{blob}'


class BlobTriggers:
    """The scanners and the shared internal queue for every blob-triggered function."""

    def __init__(
        self,
        specs: list[FunctionSpec],
        clients: StorageClients,
        invoker: Invoker,
        host_id: str,
        poison_threshold: int,
        scan_seconds: float,
        lease_seconds: float,
        message_encoding: str,
        max_polling_interval: timedelta = timedelta(minutes=1),
    ) -> None:
        self.specs = {s.name: s for s in specs}
        self.paths = {s.name: BlobPath.parse(s.trigger.raw["path"]) for s in specs}
        self.clients = clients
        self.invoker = invoker
        self.host_id = host_id
        self.scan_seconds = scan_seconds
        self.message_encoding = message_encoding
        self._seen: set[tuple[str, str, str]] = set()  # (function, blob, etag) queued or done
        self._stopping = asyncio.Event()
        options = QueueOptions(
            batch_size=16,
            max_polling_interval=max_polling_interval,
            max_dequeue_count=poison_threshold,
            message_encoding="none",
        )
        self.listener = QueueListener(
            queue_name=f"azure-webjobs-blobtrigger-{host_id}",
            connection=None,
            clients=clients,
            options=options,
            handler=self._handle,
            lease_seconds=lease_seconds,
            poison_queue=POISON_QUEUE,
            on_poison=self._poisoned,
        )

    # -- scanning ---------------------------------------------------------------
    async def run(self) -> None:
        await self._ensure_receipts_container()
        listener = asyncio.create_task(self.listener.run())
        try:
            while not self._stopping.is_set():
                try:
                    if await self.scan_once():
                        self.listener.wake()
                except Exception as e:  # storage unreachable: try again next round
                    log.warning("blob scan failed: %s", e)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.scan_seconds)
        finally:
            await self.listener.stop()
            listener.cancel()

    async def stop(self) -> None:
        self._stopping.set()

    async def _ensure_receipts_container(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            await self.clients.blob(None).create_container(RECEIPTS_CONTAINER)

    async def scan_once(self) -> int:
        """Queue every blob version no function has finished with; return how many."""
        by_container: dict[tuple[str | None, str], list[str]] = {}
        for name, spec in self.specs.items():
            key = (spec.trigger.connection, self.paths[name].container)
            by_container.setdefault(key, []).append(name)
        queued = 0
        for (connection, container), functions in by_container.items():
            client = self.clients.blob(connection).get_container_client(container)
            try:
                blobs = [b async for b in client.list_blobs()]
            except ResourceNotFoundError:
                continue
            for blob in blobs:
                for function in functions:
                    if self.paths[function].match(blob.name) is None:
                        continue
                    key = (function, blob.name, etag_of(blob.etag))
                    if key in self._seen:
                        continue
                    if await self._receipt_completed(function, container, blob.name, blob.etag):
                        self._seen.add(key)
                        continue
                    await self.enqueue(function, container, blob.name, blob.etag, blob.blob_type)
                    self._seen.add(key)
                    queued += 1
        return queued

    async def enqueue(
        self, function: str, container: str, blob: str, etag: str, blob_type: Any
    ) -> None:
        queue = await self.clients.queue(None, self.listener.queue_name)
        message = {
            "Type": "BlobTrigger",
            "FunctionId": function,
            "BlobType": _kind(blob_type),
            "ContainerName": container,
            "BlobName": blob,
            "ETag": etag,
        }
        await queue.send_message(json.dumps(message))

    # -- receipts ---------------------------------------------------------------
    def _receipt(self, function: str, container: str, blob: str, etag: str) -> Any:
        name = receipt_name(self.host_id, function, etag, container, blob)
        return self.clients.blob(None).get_blob_client(RECEIPTS_CONTAINER, name)

    async def _receipt_completed(self, function: str, container: str, blob: str, etag: str) -> bool:
        try:
            props = await self._receipt(function, container, blob, etag).get_blob_properties()
        except ResourceNotFoundError:
            return False
        return "CompletedAt" in (props.metadata or {})

    async def _poisoned(self, message: Any) -> None:
        try:
            m = json.loads(message.content)
            receipt = self._receipt(m["FunctionId"], m["ContainerName"], m["BlobName"], m["ETag"])
            await receipt.upload_blob(b"", overwrite=True, metadata={"CompletedAt": "poisoned"})
        except Exception as e:
            log.warning("could not close the receipt of a poisoned blob: %s", e)

    # -- delivery ---------------------------------------------------------------
    async def _handle(self, message: Any, body: bytes) -> None:
        m = json.loads(body)
        spec = self.specs.get(m.get("FunctionId", ""))
        if spec is None:
            log.warning("blob trigger message for unknown function %s dropped", m)
            return
        container, name, etag = m["ContainerName"], m["BlobName"], m["ETag"]
        blob = self.clients.blob(spec.trigger.connection).get_blob_client(container, name)
        try:
            props = await blob.get_blob_properties()
        except ResourceNotFoundError:
            log.info("Blob %s/%s was deleted before %s ran; skipped", container, name, spec.name)
            return
        if etag_of(props.etag) != etag_of(etag):
            # The scanner queues the new version on its own.
            log.info(
                "Blob %s/%s changed since it was queued; skipped this version", container, name
            )
            return
        receipt = self._receipt(spec.name, container, name, etag)
        with contextlib.suppress(ResourceExistsError):
            await receipt.upload_blob(b"", overwrite=False)
        try:
            lease = await receipt.acquire_lease(lease_duration=RECEIPT_LEASE_SECONDS)
        except HttpResponseError as e:
            if getattr(e, "error_code", None) == "LeaseAlreadyPresent":
                raise ReceiptBusy(f"{container}/{name} is being processed") from e
            raise
        renewer = asyncio.create_task(self._renew(lease))
        try:
            if "CompletedAt" in ((await receipt.get_blob_properties()).metadata or {}):
                return
            binding_data = dict(self.paths[spec.name].match(name) or {})
            binding_data.update({"BlobTrigger": f"{container}/{name}", "Uri": blob.url})
            argument = await self._argument(spec, blob, props)
            invocation = await self.invoker.invoke(
                spec,
                {spec.trigger.name: argument},
                f"New blob detected({_kind(props.blob_type)}): {container}/{name}",
            )
            await flush_outputs(
                spec, invocation.outputs, self.clients, binding_data, self.message_encoding
            )
            await receipt.set_blob_metadata(
                {"CompletedAt": "true", "InvocationId": invocation.invocation_id}, lease=lease
            )
        finally:
            renewer.cancel()
            with contextlib.suppress(Exception):
                await lease.release()

    async def _renew(self, lease: Any) -> None:
        while True:
            await asyncio.sleep(RECEIPT_LEASE_SECONDS / 2)
            await lease.renew()

    async def _argument(self, spec: FunctionSpec, blob: Any, props: Any) -> Any:
        annotation = spec.trigger.annotation
        if isinstance(annotation, type) and annotation.__module__.startswith(
            "azurefunctions.extensions.bindings.blob"
        ):
            return sdk_blob_argument(spec, annotation, props.container, props.name)
        data = await (await blob.download_blob()).readall()
        if annotation is bytes:
            return data
        if annotation is str:
            return data.decode("utf-8")
        return func.blob.InputStream(
            data=data,
            name=f"{props.container}/{props.name}",
            uri=blob.url,
            length=props.size,
            blob_properties={"ETag": props.etag, "BlobType": _kind(props.blob_type)},
            metadata=dict(props.metadata or {}),
        )


def sdk_blob_argument(spec: FunctionSpec, annotation: type, container: str, name: str) -> Any:
    """An SDK-type argument built as the worker builds it: from model binding data."""
    from azurefunctions.extensions.base import Datum
    from azurefunctions.extensions.bindings.blob import BlobClientConverter

    content = json.dumps(
        {
            "Connection": spec.trigger.connection or "AzureWebJobsStorage",
            "ContainerName": container,
            "BlobName": name,
        }
    )
    model_binding_data = SimpleNamespace(
        version="1.0",
        source="AzureStorageBlobs",
        content_type="application/json",
        content=content,
    )
    return BlobClientConverter.decode(
        Datum(model_binding_data, "model_binding_data"), trigger_metadata=None, pytype=annotation
    )
