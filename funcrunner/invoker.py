"""Call a user function as the worker does, and collect its outputs.

Arguments go by binding name; each OUT binding but `$return` gets a fresh
`Out` whose value is read afterwards; an unbound `context` gets the
invocation context; async functions are awaited on the loop, sync ones run
in a thread pool. Returning a value without a `$return` binding is an error.
Every invocation logs one line when it starts and one when it ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import azure.functions as func

from .loader import FunctionSpec

log = logging.getLogger("funcrunner.host")


class FunctionTimeout(Exception):
    pass


class InvocationFailed(Exception):
    """The function raised, timed out or broke a binding rule."""


class Out(func.Out):
    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class _Context(func.Context):
    def __init__(self, invocation_id: str, function_name: str, directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._directory = directory
        self._tls = threading.local()
        self._tls.invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._tls

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._directory

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


@dataclass
class Invocation:
    invocation_id: str
    outputs: dict[str, Any]  # binding name ("$return" included) -> value
    duration_ms: float


class Invoker:
    def __init__(self, app_dir: str, timeout: timedelta, max_workers: int | None = None) -> None:
        self._app_dir = app_dir
        self._timeout = None if timeout == timedelta.max else timeout.total_seconds()
        # The worker's default pool size (PYTHON_THREADPOOL_THREAD_COUNT unset).
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="worker")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def invoke(self, spec: FunctionSpec, args: dict[str, Any], reason: str) -> Invocation:
        invocation_id = str(uuid.uuid4())
        outs = {b.name: Out() for b in spec.outputs if b.name != "$return"}
        kwargs = {**args, **outs}
        if spec.wants_context:
            kwargs["context"] = _Context(invocation_id, spec.name, self._app_dir)
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        started = time.perf_counter()
        outcome = "Succeeded"
        try:
            if spec.is_async:
                coro = spec.user_function(**kwargs)
                result = await asyncio.wait_for(coro, self._timeout)
            else:
                ctx = contextvars.copy_context()
                loop = asyncio.get_running_loop()
                future = loop.run_in_executor(
                    self._pool, lambda: ctx.run(spec.user_function, **kwargs)
                )
                result = await asyncio.wait_for(future, self._timeout)
            if result is not None and not spec.has_return_binding:
                raise InvocationFailed(
                    f"function {spec.name} without a $return binding returned a non-None value"
                )
        except TimeoutError as e:
            outcome = "Failed"
            raise InvocationFailed(
                f"Timeout value of {self._timeout}s was exceeded by function: Functions.{spec.name}"
            ) from e
        except InvocationFailed:
            outcome = "Failed"
            raise
        except Exception as e:
            outcome = "Failed"
            log.exception("Executed 'Functions.%s' raised %s: %s", spec.name, type(e).__name__, e)
            raise InvocationFailed(f"{type(e).__name__}: {e}") from e
        finally:
            duration = (time.perf_counter() - started) * 1000
            log.info(
                "Executed 'Functions.%s' (%s, Id=%s, Duration=%.0fms)",
                spec.name,
                outcome,
                invocation_id,
                duration,
            )
        outputs = {name: out.get() for name, out in outs.items()}
        if spec.has_return_binding:
            outputs["$return"] = result
        return Invocation(invocation_id, outputs, duration)
