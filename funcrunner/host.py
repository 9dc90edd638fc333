"""Start the local host: settings, app, keys, HTTP server, queue and blob listeners.

`python -m funcrunner --app-dir . --port 7071 [--https-port 7072]`. Settings
that shape the runner itself (not the app): FUNCRUNNER_KEYS_FILE,
FUNCRUNNER_TLS_DIR (the local CA and server certificate of the HTTPS port,
default `.local/tls`, see tls.py), FUNCRUNNER_BLOB_SCAN_SECONDS
(how often containers are listed, default 1), FUNCRUNNER_QUEUE_LEASE_SECONDS
(how long a message stays invisible while its function runs, renewed at half;
default 600 as on the host).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from pathlib import Path

from aiohttp import web

from .bindings import StorageClients, resolve_settings
from .blobs import BlobTriggers
from .config import HostConfigError, load_app_settings, load_host_config
from .http import HttpHost
from .invoker import Invoker
from .keys import KeyStore
from .loader import FunctionLoadError, FunctionSpec, load_app
from .queues import queue_trigger_listener
from .tls import TlsSetupError, ensure_tls_files, server_context

log = logging.getLogger("funcrunner.host")


def host_id(settings: dict[str, str], app_dir: Path) -> str:
    explicit = settings.get("AzureFunctionsWebHost__hostid")
    raw = explicit or f"{app_dir.resolve().name}-local"
    return re.sub(r"[^a-z0-9-]", "-", raw.lower()).strip("-")[:32] or "localhost"


def _float_setting(settings: dict[str, str], name: str, default: float) -> float:
    try:
        value = float(settings.get(name, default))
    except ValueError as e:
        raise HostConfigError(f"{name} must be a number of seconds") from e
    if value <= 0:
        raise HostConfigError(f"{name} must be positive")
    return value


class LocalHost:
    def __init__(
        self,
        app_dir: Path,
        address: str,
        port: int,
        keys_file: Path | None,
        https_port: int | None = None,
    ) -> None:
        self.app_dir = app_dir.resolve()
        self.address = address
        self.port = port
        self.https_port = https_port
        self.settings = load_app_settings(self.app_dir)
        # App settings are environment variables to the app, as on Azure.
        os.environ.update(self.settings)
        # The app's own address, as Azure (and Core Tools) tell an app where it is served.
        here = "127.0.0.1" if address in ("0.0.0.0", "", "::") else address
        os.environ["WEBSITE_HOSTNAME"] = f"{here}:{port}"
        self.config = load_host_config(self.app_dir / "host.json")
        self.keys_file = keys_file or Path(
            self.settings.get("FUNCRUNNER_KEYS_FILE", self.app_dir / ".local" / "funckeys.json")
        )
        self.tls_dir = Path(
            self.settings.get("FUNCRUNNER_TLS_DIR", self.app_dir / ".local" / "tls")
        )
        self.scan_seconds = _float_setting(self.settings, "FUNCRUNNER_BLOB_SCAN_SECONDS", 1.0)
        self.lease_seconds = _float_setting(self.settings, "FUNCRUNNER_QUEUE_LEASE_SECONDS", 600)
        self.specs: list[FunctionSpec] = []
        self._stop = asyncio.Event()

    def load(self) -> None:
        script = self.settings.get("PYTHON_SCRIPT_FILE_NAME", "function_app.py")
        self.specs = load_app(self.app_dir, script)
        for spec in self.specs:
            resolve_settings(spec, self.settings)

    async def serve(self) -> None:
        invoker = Invoker(str(self.app_dir), self.config.function_timeout)
        keys = KeyStore(self.keys_file, [s.name for s in self.specs])
        clients = StorageClients(self.settings)
        status = {"state": "Running", "id": host_id(self.settings, self.app_dir)}
        http = HttpHost(self.specs, invoker, keys, self.config.route_prefix, status)
        runner = web.AppRunner(http.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.address, self.port)
        await site.start()
        if self.https_port is not None:
            files = ensure_tls_files(self.tls_dir, self.address)
            tls_site = web.TCPSite(
                runner, self.address, self.https_port, ssl_context=server_context(files)
            )
            await tls_site.start()

        queue_listeners = [
            queue_trigger_listener(s, clients, invoker, self.config.queues, self.lease_seconds)
            for s in self.specs
            if s.trigger.type == "queueTrigger"
        ]
        blob_specs = [s for s in self.specs if s.trigger.type == "blobTrigger"]
        blob_triggers = (
            BlobTriggers(
                blob_specs,
                clients,
                invoker,
                status["id"],
                self.config.blobs.poison_blob_threshold,
                self.scan_seconds,
                self.lease_seconds,
                self.config.queues.message_encoding,
                # Retries of a failed blob wait no longer than queue retries do.
                self.config.queues.max_polling_interval,
            )
            if blob_specs
            else None
        )
        tasks = [asyncio.create_task(q.run()) for q in queue_listeners]
        if blob_triggers is not None:
            tasks.append(asyncio.create_task(blob_triggers.run()))
        self._print_banner(keys)
        try:
            await self._stop.wait()
        finally:
            log.info("Stopping the host")
            for q in queue_listeners:
                await q.stop()
            if blob_triggers is not None:
                await blob_triggers.stop()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runner.cleanup()
            await clients.close()
            invoker.shutdown()

    def stop(self) -> None:
        self._stop.set()

    def _print_banner(self, keys: KeyStore) -> None:
        base = f"http://{self.address}:{self.port}"
        prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
        lines = ["", "Functions:", ""]
        for s in self.specs:
            if s.route is not None:
                methods = ",".join(sorted(s.methods)) if s.methods else "ALL"
                lines.append(
                    f"  {s.name}: [{methods}] {base}{prefix}/{s.route.template}  ({s.auth_level})"
                )
            else:
                lines.append(f"  {s.name}: {s.trigger.type}")
        lines += [
            "",
            f"Keys (in {self.keys_file}):",
            f"  host key (x-functions-key): {keys.host_key}",
            f"  master key: {keys.master_key}",
            "",
            f"Host started on {base} (Ctrl-C to stop)",
        ]
        if self.https_port is not None:
            lines[-1:] = [
                f"HTTPS on https://{self.address}:{self.https_port} "
                f"(trust {self.tls_dir / 'ca.crt'}; client certificates optional)",
                f"Host started on {base} and https://{self.address}:{self.https_port} "
                "(Ctrl-C to stop)",
            ]
        print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m funcrunner", description=__doc__)
    parser.add_argument("--app-dir", default=".", type=Path, help="folder with function_app.py")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", default=7071, type=int)
    parser.add_argument(
        "--https-port", default=None, type=int, help="also serve HTTPS here (none by default)"
    )
    parser.add_argument("--keys-file", type=Path, default=None)
    parser.add_argument("--check", action="store_true", help="load the app, report, and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    for noisy in ("azure", "azure.core.pipeline.policies.http_logging_policy", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        host = LocalHost(args.app_dir, args.host, args.port, args.keys_file, args.https_port)
        host.load()
    except (FunctionLoadError, HostConfigError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    if args.check:
        print(f"{len(host.specs)} functions loaded: {', '.join(s.name for s in host.specs)}")
        return 0

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, host.stop)
        await host.serve()

    try:
        asyncio.run(run())
    except (OSError, TlsSetupError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    return 0
