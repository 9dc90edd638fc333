"""`make run`: Azurite + the catalog on http://127.0.0.1:7071, with sample data.

Starts Azurite on its default loopback ports with its data in `.local/azurite`
(git-ignored), creates the containers, queues and tables the app uses, loads
the sample data, starts the local runner, and streams the logs. Ctrl-C stops
everything it started.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import time
from types import FrameType

from devtools.apphost import AppHost
from devtools.azurite import ROOT, Azurite
from shared.adapters.storage import StorageAccount, ensure_resources
from shared.settings import settings_with_defaults


def seed(connection: str) -> None:
    storage = StorageAccount.from_env(
        {**settings_with_defaults(), "AzureWebJobsStorage": connection}
    )
    for line in ensure_resources(storage):
        print(f"  created {line}")
    try:
        samples = importlib.import_module("devtools.samples")
    except ModuleNotFoundError:
        return
    for line in samples.load(storage):
        print(f"  {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=7071)
    args = parser.parse_args()
    local = ROOT / ".local"
    local.mkdir(exist_ok=True)
    azurite = Azurite(
        10000, 10001, 10002, location=local / "azurite", log_file=local / "azurite.log"
    )
    app: AppHost | None = None
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        started = time.monotonic()
        print("Starting Azurite on 127.0.0.1:10000-10002 (data in .local/azurite)")
        azurite.start()
        print("Creating storage resources and sample data")
        seed(azurite.connection_string)
        app = AppHost(azurite.connection_string, port=args.port)
        app.start(wait_path=None)
        app.wait_until_up("/api/health", timeout=60)
        print(
            f"\nReady in {time.monotonic() - started:.1f}s:\n"
            f"  health:  {app.base_url}/api/health\n"
            f"  catalog: {app.base_url}/api/images\n"
            f"  Azurite: {azurite.connection_string.split(';AccountKey')[0]} "
            "(UseDevelopmentStorage=true)\n"
            "  keys:    .local/funckeys.json (see the banner above)\n"
            "\nTry:\n"
            f"  curl -s {app.base_url}/api/families\n"
            "  .venv/bin/vmimage upload DISK.vhd --family 'My images'   # a fixed VHD\n"
            "  .venv/bin/vmimage capture --service contoso-web --vm web01 --image web01 --wait\n",
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


if __name__ == "__main__":
    raise SystemExit(main())
