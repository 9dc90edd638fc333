"""Queue triggers with the host's semantics (WebJobs QueueListener).

Polls with exponential back-off up to `maxPollingInterval`; fetches up to
`batchSize` messages and fetches again once no more than `newBatchThreshold`
are in flight; keeps a message invisible while its function runs (renewing
at half the lease); on success deletes it; on failure makes it visible again
after `visibilityTimeout`, until it has been tried `maxDequeueCount` times,
then moves it to `<queue>-poison`. Under `messageEncoding: base64` a message
that is not base64 goes straight to the poison queue.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage as WorkerQueueMessage

from .bindings import StorageClients, flush_outputs
from .config import QueueOptions
from .invoker import Invoker
from .loader import FunctionSpec

log = logging.getLogger("funcrunner.queues")

MIN_POLL_SECONDS = 0.1


def decode_body(text: str, encoding: str) -> bytes | None:
    """The message's bytes, or None when it can't be decoded under `encoding`."""
    if encoding == "none":
        return text.encode("utf-8")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def to_queue_message(message: Any, body: bytes) -> func.QueueMessage:
    # `func.QueueMessage` takes only id/body/pop_receipt; the worker builds the
    # subclass in azure.functions.queue, which carries the dequeue count and times.
    return WorkerQueueMessage(
        id=message.id,
        body=body,
        dequeue_count=message.dequeue_count,
        insertion_time=message.inserted_on,
        expiration_time=message.expires_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )


Handler = Callable[[Any, bytes], Awaitable[None]]


class QueueListener:
    """Polls one queue and hands each decoded message to `handler`.

    `handler(message, body)` returns normally on success and raises on failure;
    the listener owns visibility, retries and the poison queue.
    """

    def __init__(
        self,
        *,
        queue_name: str,
        connection: str | None,
        clients: StorageClients,
        options: QueueOptions,
        handler: Handler,
        lease_seconds: float,
        poison_queue: str | None = None,
        on_poison: Callable[[Any], Awaitable[None]] | None = None,
    ) -> None:
        self.queue_name = queue_name
        self.connection = connection
        self.clients = clients
        self.options = options
        self.handler = handler
        self.lease_seconds = lease_seconds
        self.poison_queue = poison_queue or f"{queue_name}-poison"
        self.on_poison = on_poison
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Poll now: someone just enqueued (the host's MessageEnqueuedWatcher)."""
        self._wake.set()

    async def run(self) -> None:
        queue = await self.clients.queue(self.connection, self.queue_name)
        max_poll = min(self.options.max_polling_interval.total_seconds(), 3600.0)
        delay = MIN_POLL_SECONDS
        threshold = self.options.effective_new_batch_threshold
        while not self._stopping.is_set():
            if len(self._inflight) > threshold:
                await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                continue
            self._wake.clear()
            try:
                messages = [
                    m
                    async for m in queue.receive_messages(
                        messages_per_page=self.options.batch_size,
                        max_messages=self.options.batch_size,
                        visibility_timeout=max(1, int(self.lease_seconds)),
                    )
                ]
            except Exception as e:  # storage unreachable: back off, as the host does
                log.warning("queue %s: receive failed: %s", self.queue_name, e)
                messages = []
            if not messages:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_or_stop(), delay)
                delay = MIN_POLL_SECONDS if self._wake.is_set() else min(delay * 2, max_poll)
                continue
            delay = MIN_POLL_SECONDS
            for message in messages:
                task = asyncio.create_task(self._process(queue, message))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)

    async def _wake_or_stop(self) -> None:
        waiters = [
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self._stopping.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def stop(self) -> None:
        self._stopping.set()
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=30)

    async def _poison(self, queue: Any, message: Any, why: str) -> None:
        poison = await self.clients.queue(self.connection, self.poison_queue)
        await poison.send_message(message.content)
        await queue.delete_message(message.id, message.pop_receipt)
        log.warning(
            "Message %s on queue '%s' moved to '%s': %s",
            message.id,
            self.queue_name,
            self.poison_queue,
            why,
        )
        if self.on_poison is not None:
            await self.on_poison(message)

    async def _keep_invisible(
        self, queue: Any, holder: dict[str, Any], done: asyncio.Event
    ) -> None:
        """Renew the message's invisibility at half the lease until `done` is set.

        A renewal in flight is finished, not cancelled: the service has already
        replaced the pop receipt, and the delete needs the new one.
        """
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), self.lease_seconds / 2)
            if done.is_set():
                return
            receipt = await queue.update_message(
                holder["id"],
                pop_receipt=holder["pop_receipt"],
                visibility_timeout=max(1, int(self.lease_seconds)),
            )
            holder["pop_receipt"] = receipt.pop_receipt

    async def _process(self, queue: Any, message: Any) -> None:
        try:
            await self._process_one(queue, message)
        except Exception:
            log.exception("queue %s: message %s could not be handled", self.queue_name, message.id)

    async def _process_one(self, queue: Any, message: Any) -> None:
        max_count = self.options.max_dequeue_count
        if message.dequeue_count > max_count:
            # Tried often enough already (e.g. the runner died mid-invocation).
            await self._poison(queue, message, f"dequeued {message.dequeue_count} times")
            return
        body = decode_body(message.content, self.options.message_encoding)
        if body is None:
            await self._poison(queue, message, "the message is not valid base64")
            return
        holder = {"id": message.id, "pop_receipt": message.pop_receipt}
        done = asyncio.Event()
        keeper = asyncio.create_task(self._keep_invisible(queue, holder, done))
        succeeded = True
        try:
            await self.handler(message, body)
        except Exception as e:
            # Say why, as the HTTP host does: a timeout or a broken binding rule
            # (InvocationFailed) is logged nowhere else.
            log.error("queue %s: message %s failed: %s", self.queue_name, message.id, e)
            succeeded = False
        finally:
            done.set()
            with contextlib.suppress(Exception):
                await keeper
        message.pop_receipt = holder["pop_receipt"]
        if succeeded:
            await queue.delete_message(message.id, message.pop_receipt)
        elif message.dequeue_count >= max_count:
            await self._poison(queue, message, f"it failed {message.dequeue_count} times")
        else:
            await queue.update_message(
                message.id,
                pop_receipt=message.pop_receipt,
                visibility_timeout=int(self.options.visibility_timeout.total_seconds()),
            )


def queue_trigger_listener(
    spec: FunctionSpec,
    clients: StorageClients,
    invoker: Invoker,
    options: QueueOptions,
    lease_seconds: float,
) -> QueueListener:
    """A listener that runs a queue-triggered function for each message."""
    queue_name = spec.trigger.raw["queueName"]

    async def handle(message: Any, body: bytes) -> None:
        msg = to_queue_message(message, body)
        annotation = spec.trigger.annotation
        argument: Any = (
            body.decode("utf-8") if annotation is str else body if annotation is bytes else msg
        )
        data = {"QueueTrigger": body.decode("utf-8", "replace"), "Id": message.id}
        invocation = await invoker.invoke(
            spec, {spec.trigger.name: argument}, f"New queue message detected on '{queue_name}'."
        )
        await flush_outputs(spec, invocation.outputs, clients, data, options.message_encoding)

    return QueueListener(
        queue_name=queue_name,
        connection=spec.trigger.connection,
        clients=clients,
        options=options,
        handler=handle,
        lease_seconds=lease_seconds,
    )
