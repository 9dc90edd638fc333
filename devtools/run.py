"""`make run`: Azurite + the catalog on http://127.0.0.1:7071 and https://127.0.0.1:7072.

Starts Azurite on loopback (ports 10000-10002 unless told otherwise) with its
data in `.local/azurite` (git-ignored), creates the containers, queues and
tables the app uses, loads the sample data once, starts the local runner, and
streams the logs. Ctrl-C stops everything it started.

Ports come from the environment (`make run PORT=7081 AZURITE_PORT_BASE=20000`
passes them on): `PORT` for the app, `HTTPS_PORT` for its HTTPS port (default: the
next one; its certificate's CA is `.local/tls/ca.crt`), `AZURITE_PORT_BASE` for the three Azurite
services in a row (blob, queue, table), or each one with `AZURITE_BLOB_PORT`,
`AZURITE_QUEUE_PORT`, `AZURITE_TABLE_PORT`. An empty value means the default.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType

from devtools import samples
from devtools.apphost import AppHost
from devtools.azurite import ACCOUNT, HOST, ROOT, Azurite, port_open
from shared.adapters.storage import StorageAccount, ensure_resources
from shared.settings import settings_with_defaults

# The pid of a running `make run`, so that `make reset` won't wipe data in use.
PID_FILE = ROOT / ".local" / "run.pid"


class PortError(ValueError):
    pass


@dataclass(frozen=True)
class Ports:
    app: int = 7071
    blob: int = 10000
    queue: int = 10001
    table: int = 10002
    https: int = 7072

    @property
    def default_azurite(self) -> bool:
        """Whether `UseDevelopmentStorage=true` reaches this Azurite."""
        return (self.blob, self.queue, self.table) == (10000, 10001, 10002)


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise PortError(f"{name}={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise PortError(f"{name}={port} is not a port number (1-65535)")
    return port


def ports_from(env: Mapping[str, str]) -> Ports:
    """The ports `make run` uses, from PORT and the AZURITE_* settings (empty: the default)."""
    base = _port(env, "AZURITE_PORT_BASE", 10000)
    if base > 65533:
        raise PortError(f"AZURITE_PORT_BASE={base} leaves no room for 3 ports (at most 65533)")
    app = _port(env, "PORT", 7071)
    if app == 65535 and not env.get("HTTPS_PORT", "").strip():
        raise PortError("PORT=65535 leaves no room for HTTPS_PORT (the next port); set it")
    ports = Ports(
        app=app,
        https=_port(env, "HTTPS_PORT", app + 1),
        blob=_port(env, "AZURITE_BLOB_PORT", base),
        queue=_port(env, "AZURITE_QUEUE_PORT", base + 1),
        table=_port(env, "AZURITE_TABLE_PORT", base + 2),
    )
    used = [ports.app, ports.https, ports.blob, ports.queue, ports.table]
    if len(set(used)) < len(used):
        raise PortError(
            f"the app (HTTP and HTTPS) and Azurite's blob, queue and table services need "
            f"5 different ports, not {used}"
        )
    return ports


def portal_origins(app_port: int) -> list[str]:
    """Where the portal is opened from: its pages upload disks straight to Azurite."""
    return [f"http://{HOST}:{app_port}", f"http://localhost:{app_port}"]


def seed(connection: str, app_port: int = 7071) -> None:
    storage = StorageAccount.from_env(
        {**settings_with_defaults(), "AzureWebJobsStorage": connection}
    )
    for line in ensure_resources(storage, portal_origins(app_port)):
        print(f"  created {line}")
    for line in samples.load(storage):
        print(f"  {line}")


def banner(ports: Ports, connection: str, elapsed: float) -> str:
    """What to use once everything is up: every URL and setting right for these ports."""
    url = f"http://{HOST}:{ports.app}"
    vhds = f"http://{HOST}:{ports.blob}/{ACCOUNT}/{settings_with_defaults()['VHDS_CONTAINER']}/"
    lines = [
        f"Ready in {elapsed:.1f}s:",
        f"  HTTP:    {url}",
        f"  HTTPS:   https://{HOST}:{ports.https}   (trust .local/tls/ca.crt; client "
        "certificates optional)",
        f"  portal:  {url}/   (the function key below, once per browser session)",
        f"  health:  {url}/api/health",
        f"  catalog: {url}/api/images",
        f"  VM disks (MediaLinks) are blobs under {vhds}",
        "  keys:    .local/funckeys.json (see the banner above)",
    ]
    if ports.default_azurite:
        lines.append('  Azurite: "UseDevelopmentStorage=true" (az, Storage Explorer)')
    else:
        lines += [
            "  Azurite (az --connection-string, Storage Explorer; the key is the emulator's):",
            f'    "{connection}"',
        ]
    env = []
    if ports.app != 7071:
        env.append(f"VMIMAGE_URL={url}")
    if not ports.default_azurite:
        env.append(f"VMIMAGE_STORAGE_CONNECTION_STRING='{connection}'")
    cli = ".venv/bin/vmimage"
    lines += ["", "Try:", f"  curl -s {url}/api/families"]
    if env:
        lines.append("  export " + " ".join(env) + "   # tells vmimage where the catalog is")
    lines += [
        f"  {cli} upload DISK.vhd --family 'My images'   # a fixed VHD",
        f"  {cli} capture --service contoso-web --vm web01 --image web01 --wait",
    ]
    sub = settings_with_defaults()["CLASSIC_SUBSCRIPTION_ID"]
    tls = f"https://{HOST}:{ports.https}"
    extra = "" if ports.https == ports.app + 1 else f" --management-url {tls}"
    key = (
        'KEY=$(python3 -c \'import json;print(json.load(open(".local/funckeys.json"))'
        '["hostKeys"]["default"])\')'
    )
    lines += [
        "",
        f"Classic API (subscription {sub}; every call needs x-ms-version and a management",
        "certificate over HTTPS or a function key; README: Classic clients):",
        f"  {key}",
        '  curl -s -H "x-ms-version: 2014-10-01" -H "x-functions-key: $KEY" '
        f"{url}/{sub}/services/images",
        f"  {cli} publishsettings{extra}   # writes vmimage.publishsettings and vmimage.pem",
        f'  curl -s --cacert .local/tls/ca.crt --cert vmimage.pem -H "x-ms-version: 2014-10-01" '
        f"{tls}/{sub}/services/vmimages",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", help="the app's port (default: PORT, else 7071)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.port is not None:
        env["PORT"] = args.port
    try:
        ports = ports_from(env)
    except PortError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for port, setting in ((ports.app, "PORT"), (ports.https, "HTTPS_PORT")):
        if port_open(port):
            print(
                f"error: port {port} on {HOST} is in use: is `make run` already running? "
                f"Choose another with {setting}=...",
                file=sys.stderr,
            )
            return 1
    local = ROOT / ".local"
    local.mkdir(exist_ok=True)
    azurite = Azurite(
        ports.blob, ports.queue, ports.table,
        location=local / "azurite", log_file=local / "azurite.log",
    )  # fmt: skip
    app: AppHost | None = None
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    wrote_pid = False
    try:
        started = time.monotonic()
        print(
            f"Starting Azurite on {HOST}:{ports.blob}/{ports.queue}/{ports.table} "
            "(blob/queue/table; data in .local/azurite)"
        )
        azurite.start()
        PID_FILE.write_text(str(os.getpid()))
        wrote_pid = True
        print("Creating storage resources and sample data")
        seed(azurite.connection_string, ports.app)
        app = AppHost(azurite.connection_string, port=ports.app, https_port=ports.https)
        app.start(wait_path=None)
        app.wait_until_up("/api/health", timeout=60)
        print(
            "\n" + banner(ports, azurite.connection_string, time.monotonic() - started) + "\n",
            flush=True,
        )
        while not stopping and app.process is not None and app.process.poll() is None:
            time.sleep(0.2)
        if app.process is not None and app.process.poll() not in (None, 0) and not stopping:
            print(f"The function host exited with code {app.process.returncode}", file=sys.stderr)
            return 1
        return 0
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        print("\nStopping the function host and Azurite")
        if app is not None:
            app.stop()
        azurite.stop()
        if wrote_pid:
            PID_FILE.unlink(missing_ok=True)


if __name__ == "__main__":
    raise SystemExit(main())
