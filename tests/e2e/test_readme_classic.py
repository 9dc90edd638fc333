"""The README's "Classic clients" section works when pasted.

Its shell block and its Python block run as written, from a folder laid out as a
checkout after `make run` (`.local/funckeys.json`, `.local/tls/ca.crt`,
`.venv/bin/vmimage`), against an app of their own on two neighbouring ports, as
`make run`'s 7071 and 7072: the only change made to the text is those two ports.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.apphost import AppHost
from devtools.azurite import free_port, port_open
from tests.conftest import ROOT

README = ROOT / "README.md"
NS = "{http://schemas.microsoft.com/windowsazure}"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("### Classic clients")
    return text[start : text.index("\n## ", start)]


def block(language: str) -> str:
    found = re.findall(rf"```{language}\n(.*?)```", section(), re.S)
    assert len(found) == 1, f"one {language} block expected"
    return found[0]


def neighbouring_ports() -> int:
    for _ in range(50):
        port = free_port()
        if port < 65535 and not port_open(port + 1):
            return port
    raise RuntimeError("no two free neighbouring ports")


@pytest.fixture(scope="module")
def checkout(
    azurite_connection: str, storage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, int]]:
    """A folder like the checkout while `make run` runs: the app on PORT and PORT+1."""
    folder = tmp_path_factory.mktemp("checkout")
    local = folder / ".local"
    log = open(folder / "host.log", "wb")  # noqa: SIM115
    (folder / ".venv").symlink_to(sys.prefix)  # the venv the tests run in
    for attempt in range(3):  # a free pair of ports can be taken before the host binds it
        port = neighbouring_ports()
        app = AppHost(
            azurite_connection,
            port=port,
            https_port=port + 1,
            keys_file=local / "funckeys.json",
            tls_dir=local / "tls",
            stdout=log,
            extra_env={"AzureFunctionsWebHost__hostid": f"readme-{uuid.uuid4().hex[:8]}"},
        )
        try:
            app.start(wait_path="/api/health")
            break
        except RuntimeError:
            app.stop()
            if attempt == 2:
                raise
    try:
        yield folder, port
    finally:
        app.stop()
        log.close()


def pasted(text: str, port: int) -> str:
    return text.replace(":7071", f":{port}").replace(":7072", f":{port + 1}")


def env_for(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REQUESTS_CA_BUNDLE"}
    env["VMIMAGE_URL"] = f"http://127.0.0.1:{port}"  # what `make run` prints for other ports
    return env


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's example uses curl")
def test_the_shell_example_runs_as_written(checkout) -> None:
    folder, port = checkout
    script = pasted(block("sh"), port)
    out = subprocess.run(
        ["bash", "-eu", "-c", script],
        cwd=folder, env=env_for(port), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.count("<?xml") == 2, out.stdout
    assert "<Images xmlns=" in out.stdout and "<VMImages xmlns=" in out.stdout
    assert "Registered management certificate" in out.stdout
    for name in ("vmimage.publishsettings", "vmimage.pem"):
        assert (folder / name).exists()


def test_the_python_example_runs_as_written(checkout) -> None:
    folder, port = checkout
    if not (folder / "vmimage.pem").exists():  # the shell example makes it; run alone, do so
        subprocess.run(
            [str(folder / ".venv" / "bin" / "vmimage"), "publishsettings", "-q"],
            cwd=folder, env=env_for(port), check=True, timeout=120,
        )  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", pasted(block("python"), port)],
        cwd=folder, env=env_for(port), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert re.fullmatch(r"\d+ OS images; \d+ VM images", first)
    assert ET.parse(folder / "vmimage.publishsettings").getroot().tag == "PublishData"
    assert re.search(r"'[0-9A-F]{40}'", second)
