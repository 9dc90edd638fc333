"""Run the function app under the local runner as a child process (make run, e2e tests)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from devtools.azurite import ROOT, free_port
from shared.settings import settings_with_defaults

# Local runs judge uploads sooner than production (15 s) so that feedback is quick.
LOCAL_DEFAULTS = {"UPLOAD_SETTLE_SECONDS": "1"}


@dataclass
class AppHost:
    connection_string: str
    app_dir: Path = ROOT
    port: int = field(default_factory=free_port)
    keys_file: Path | None = None
    https_port: int | None = None  # also serve HTTPS (with the CA in tls_dir) when set
    tls_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    stdout: IO[bytes] | int | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def https_url(self) -> str:
        assert self.https_port is not None, "this app serves no HTTPS"
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def ca_file(self) -> Path:
        """The local CA that signs the HTTPS port's certificate (what clients trust)."""
        return (self.tls_dir or self.app_dir / ".local" / "tls") / "ca.crt"

    def env(self) -> dict[str, str]:
        env = {**LOCAL_DEFAULTS, **settings_with_defaults()}
        env["AzureWebJobsStorage"] = self.connection_string
        env["PYTHONUNBUFFERED"] = "1"
        if self.keys_file is not None:
            env["FUNCRUNNER_KEYS_FILE"] = str(self.keys_file)
        if self.tls_dir is not None:
            env["FUNCRUNNER_TLS_DIR"] = str(self.tls_dir)
        env.update(self.extra_env)
        return env

    def start(self, wait_path: str | None = "/admin/host/ping", timeout: float = 60) -> AppHost:
        args = [sys.executable, "-m", "funcrunner", "--app-dir", str(self.app_dir),
                "--port", str(self.port)]  # fmt: skip
        if self.https_port is not None:
            args += ["--https-port", str(self.https_port)]
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=self.env(), stdout=self.stdout, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        if wait_path is not None:
            self.wait_until_up(wait_path, timeout)
        return self

    def wait_until_up(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the function host exited with code {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.base_url + path, timeout=2) as r:
                    if r.status < 500:
                        return
            except urllib.error.HTTPError as e:
                if e.code < 500:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the function host did not answer {path} within {timeout}s")
            time.sleep(0.1)

    def keys(self) -> dict[str, object]:
        path = self.keys_file or self.app_dir / ".local" / "funckeys.json"
        return json.loads(Path(path).read_text())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return self.process.returncode
