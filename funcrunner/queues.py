"""Queue triggers with the host's semantics (WebJobs QueueListener).

Polls with exponential back-off up to `maxPollingInterval`; fetches up to
`batchSize` messages and fetches again once no more than `newBatchThreshold`
are in flight; keeps a message invisible while its function runs (renewing
at half the lease); on success deletes it; on failure makes it visible again
after `visibilityTimeout`, until it has been tried `maxDequeueCount` times,
then moves it to `<queue>-poison`. Under `messageEncoding: base64` a message
that is not base64 goes straight to the poison queue.

No message can stall a queue: each batch is peeked before it is received (a peek
takes nothing), and when a message in it can't be read (funcrunner.rawqueue) the
listener reads one message at a time, so that the messages behind it still run.
An undecodable message the service does return is moved to the poison queue as a
note with its bytes in base64; one the service can't return at all (Azurite, with
a character XML forbids) is hidden for a week and a note says so.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage as WorkerQueueMessage

from .bindings import StorageClients, flush_outputs
from .config import QueueOptions
from .invoker import Invoker
from .loader import FunctionSpec
from .rawqueue import RawMessage, fetch, unreadable

log = logging.getLogger("funcrunner.queues")

MIN_POLL_SECONDS = 0.1
# How long a message the service can't return is hidden: the longest visibility timeout
# storage allows, which is also the default time to live, so it is mostly never seen again.
PARK_SECONDS = 7 * 24 * 3600


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
                messages = await self._receive(queue)
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

    async def _receive(self, queue: Any) -> list[Any]:
        """The next batch, or what can be read of it one message at a time.

        The batch is peeked first (a peek takes nothing), so that a message that can't
        be read doesn't take the others in its batch down with it.
        """
        visibility = max(1, int(self.lease_seconds))
        head = await fetch(queue, visibility_timeout=None, count=self.options.batch_size)
        if head == []:
            return []
        why = "the service can't return it" if head is None else "its text can't be decoded"
        if head is not None and all(m.content is not None for m in head):
            try:
                # No SDK retries: a retried Get Messages takes another batch and hides why.
                return [
                    m
                    async for m in queue.receive_messages(
                        messages_per_page=self.options.batch_size,
                        max_messages=self.options.batch_size,
                        visibility_timeout=visibility,
                        retry_total=0,
                    )
                ]
            except Exception as e:  # a bad message came after the peek
                if not unreadable(e):
                    raise
                why = str(e).splitlines()[0] if str(e) else type(e).__name__
        log.warning(
            "queue %s: a message can't be read (%s); reading one message at a time",
            self.queue_name,
            why,
        )
        return await self._one_by_one(queue, visibility)

    async def _one_by_one(self, queue: Any, visibility: int) -> list[Any]:
        """Up to a batch of messages, each peeked, then received on its own.

        A message the service can't return is hidden for PARK_SECONDS when the peek
        showed it first, or for the lease when it came first only after the peek.
        """
        taken: list[Any] = []
        try:
            for _ in range(self.options.batch_size):
                head = await fetch(queue, visibility_timeout=None)
                if head == []:
                    break
                park = head is None
                hidden = PARK_SECONDS if park else visibility
                got = await fetch(queue, visibility_timeout=hidden)
                if got is None:
                    await self._unreturnable(queue, hidden, parked=park)
                    continue
                if not got:
                    break
                message = got[0]
                if park:  # another message came first after all: it gets the usual lease
                    receipt = await queue.update_message(
                        message.id, pop_receipt=message.pop_receipt, visibility_timeout=visibility
                    )
                    message.pop_receipt = receipt.pop_receipt
                if message.content is None:
                    await self._poison_undecodable(queue, message)
                else:
                    taken.append(message)
        except Exception as e:
            if not taken:
                raise
            # Run what was taken; the next poll meets the failure again if it lasts.
            log.warning("queue %s: reading one at a time failed: %s", self.queue_name, e)
        return taken

    def _note(self, doc: dict[str, Any]) -> str:
        # ensure_ascii: the note itself can be read back whatever the message held.
        text = json.dumps(doc, ensure_ascii=True)
        if self.options.message_encoding == "base64":
            return base64.b64encode(text.encode("ascii")).decode("ascii")
        return text

    async def _poison_undecodable(self, queue: Any, message: RawMessage) -> None:
        """Move a message whose text is not UTF-8 XML-safe text to the poison queue, as a note."""
        poison = await self.clients.queue(self.connection, self.poison_queue)
        note = {
            "UndecodableMessage": {
                "Queue": self.queue_name,
                "MessageId": message.id,
                "InsertionTime": message.inserted_on.isoformat() if message.inserted_on else None,
                "DequeueCount": message.dequeue_count,
                "MessageTextBase64": base64.b64encode(message.raw_text).decode("ascii"),
                "Note": "The message's text is not UTF-8 text that XML allows; here are "
                "its bytes as the service sent them (XML-escaped), in base64.",
            }
        }
        await poison.send_message(self._note(note))
        await queue.delete_message(message.id, message.pop_receipt)
        log.warning(
            "Message %s on queue '%s' moved to '%s': its text can't be decoded "
            "(not UTF-8 text that XML allows); its bytes are kept in base64",
            message.id,
            self.queue_name,
            self.poison_queue,
        )

    async def _unreturnable(self, queue: Any, hidden_seconds: int, parked: bool) -> None:
        """Say that a message the service can't return was dequeued, and for how long."""
        until = datetime.now(UTC) + timedelta(seconds=hidden_seconds)
        log.warning(
            "A message on queue '%s' can't be read: the storage service fails to return it "
            "(HTTP 500 without an error code, as Azurite does for a text holding a character "
            "XML forbids). It is hidden until %s so that the messages behind it run; its id "
            "never reaches the runner, so it can't be deleted%s.",
            self.queue_name,
            until.isoformat(timespec="seconds"),
            f"; a note is on '{self.poison_queue}'" if parked else "",
        )
        if not parked:
            return  # it comes back after the lease, and is parked then
        poison = await self.clients.queue(self.connection, self.poison_queue)
        note = {
            "UnreadableMessage": {
                "Queue": self.queue_name,
                "HiddenUntil": until.isoformat(timespec="seconds"),
                "Note": "The storage service could not return this message (HTTP 500 without "
                "an error code, as Azurite does when a text holds a character XML forbids), "
                "so neither its text nor its id is known. It stays in the queue, hidden, "
                "until it expires or the queue is cleared.",
            }
        }
        await poison.send_message(self._note(note))

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
