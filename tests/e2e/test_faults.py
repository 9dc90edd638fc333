"""The fault run: nothing lost, nothing stuck, everything done exactly once.

A catalog of its own (Azurite persisting to disk, so storage can be stopped and
started again at the same ports, and the function app under the local runner)
takes 60 uploads and 40 captures. In the middle of them the runner is killed
with SIGKILL and started again; then storage is stopped for 20 s while clients
keep reading and writing (those calls must answer 503, never a 500). In the end
every upload is registered once, every capture has succeeded once, and
`vmimage doctor` finds every invariant holding: each image's disks exist and
are its alone, no dead claim or stray lease, no stuck operation, no orphaned
copy or snapshot.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.apphost import AppHost
from devtools.azurite import Azurite
from shared.adapters.storage import StorageAccount, ensure_resources
from shared.domain.vhd import build_footer
from shared.settings import settings_with_defaults

MIB = 1024 * 1024
UPLOADS, CAPTURES = 60, 40
DEADLINE = 420  # seconds for everything to finish: generous, for a busy 2-core machine


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.azurite = Azurite(location=tmp / "azurite", log_file=tmp / "azurite.log")
        self.azurite.start()
        env = {**settings_with_defaults(), "AzureWebJobsStorage": self.azurite.connection_string}
        self.storage = StorageAccount.from_env(env)
        ensure_resources(self.storage)
        self.log = open(tmp / "host.log", "ab")  # noqa: SIM115
        self.app = AppHost(
            self.azurite.connection_string,
            keys_file=tmp / "keys.json",
            stdout=self.log,
            extra_env={
                "AzureFunctionsWebHost__hostid": f"faults-{uuid.uuid4().hex[:8]}",
                "FUNCRUNNER_BLOB_SCAN_SECONDS": "0.5",
                # A killed worker's messages come back after this, not after 10 minutes.
                "FUNCRUNNER_QUEUE_LEASE_SECONDS": "15",
                "UPLOAD_TIMEOUT_SECONDS": "3600",
            },
        )
        self.app.start(wait_path="/api/health")
        self.key = str(self.app.keys()["hostKeys"]["default"])  # type: ignore[index]

    def url(self, path: str) -> str:
        return self.app.base_url + path

    def close(self) -> None:
        self.app.stop()
        self.azurite.stop()
        self.log.close()

    def restart_app(self) -> None:
        self.app.stop(sig=signal.SIGKILL)  # kill -9: no clean-up of any kind
        self.app.start(wait_path="/api/health", timeout=120)

    def vhd(self, container: str, name: str, **metadata: str) -> str:
        client = self.storage.blobs.get_blob_client(container, name)
        client.create_page_blob(64 * MIB + 512, metadata=metadata or None)
        client.upload_page(b"\x33" * 512, offset=0, length=512)
        client.upload_page(build_footer(64 * MIB), offset=64 * MIB, length=512)
        return client.url


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    r = Rig(tmp_path_factory.mktemp("faults"))
    try:
        yield r
    finally:
        r.close()


def _until(what: str, done: Callable[[], bool], timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what}")
        time.sleep(1)


def _get(rig: Rig, path: str) -> requests.Response | None:
    try:
        return requests.get(rig.url(path), timeout=90)
    except requests.RequestException:
        return None  # the runner is being restarted


@pytest.mark.timeout(DEADLINE * 3)
def test_kill_9_and_a_storage_outage_lose_nothing_and_do_everything_once(rig: Rig) -> None:
    tag = uuid.uuid4().hex[:6]
    vhds, uploads = rig.storage.settings.vhds_container, rig.storage.settings.uploads_container
    # 40 stopped VMs, each with an OS disk and a data disk of its own.
    captures: dict[str, dict[str, Any]] = {}
    for i in range(CAPTURES):
        service, vm = "faults", f"vm{i}-{tag}"
        body = {
            "State": "Stopped",
            "OSDisk": {"OS": "Linux", "MediaLink": rig.vhd(vhds, f"{vm}-os.vhd")},
            "DataDisks": [{"Lun": 0, "MediaLink": rig.vhd(vhds, f"{vm}-data.vhd")}],
        }
        r = requests.put(
            rig.url(f"/api/vms/{service}/{vm}"),
            json=body,
            headers={"x-functions-key": rig.key},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        captures[f"op{i}-{tag}"] = {
            "ServiceName": service,
            "Name": vm,
            "ImageName": f"cap{i}-{tag}",
            "OperationId": f"op{i}-{tag}",
            **({"OSState": "Specialized"} if i % 2 else {}),
        }

    # Load: the uploads and the capture messages, sent while the faults happen.
    queue = rig.storage.queues.get_queue_client(rig.storage.settings.capture_queue)
    blobs = [f"fault{i}-{tag}.vhd" for i in range(UPLOADS)]

    def load() -> None:
        for i in range(max(UPLOADS, CAPTURES)):
            if i < UPLOADS:
                family = f"Faults {i % 3}"
                rig.vhd(uploads, blobs[i], os="Linux", imagefamily=family)
            if i < CAPTURES:
                queue.send_message(json.dumps(captures[f"op{i}-{tag}"]))
            time.sleep(0.05)

    sender = threading.Thread(target=load)
    sender.start()

    def succeeded() -> int:
        n = 0
        for op in list(captures)[:10]:
            r = _get(rig, f"/api/operations/{op}")
            if r is not None and r.ok and r.json()["Status"] == "Failed":
                pytest.fail(f"a capture failed: {r.json()}")
            n += r is not None and r.ok and r.json()["Status"] == "Succeeded"
        return n

    # Kill -9 in the middle: some captures done, most not.
    _until("a few captures to succeed before the kill", lambda: succeeded() >= 2)
    rig.restart_app()
    sender.join()

    # Storage stops for 20 s under load: every answer meanwhile is a 2xx or a 503.
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def readers() -> None:
        paths = ["/api/images?top=5", "/api/families", f"/api/operations/op0-{tag}"]
        while not stop.is_set():
            for p in paths:
                r = _get(rig, p)
                if r is not None:
                    statuses[r.status_code] += 1
            time.sleep(0.2)

    reader = threading.Thread(target=readers)
    reader.start()
    time.sleep(1)
    rig.azurite.stop()
    down = time.monotonic()
    # At least 20 s, and until an answer came back meanwhile: on a loaded machine one
    # request can take longer than the whole outage would.
    _until(
        "an answer while storage is down",
        lambda: time.monotonic() - down >= 20 and statuses[503] > 0,
        timeout=240,
    )
    rig.azurite.start()
    time.sleep(2)
    stop.set()
    reader.join()
    assert statuses[503] > 0 and set(statuses) <= {200, 503}, statuses

    # Everything finishes, exactly once.
    def all_uploads_judged() -> bool:
        for b in blobs:
            r = _get(rig, f"/api/uploads/{b}")
            if r is None or not r.ok or r.json()["Status"] == "Pending":
                return False
        return True

    def all_captures_final() -> bool:
        for op in captures:
            r = _get(rig, f"/api/operations/{op}")
            if r is None or not r.ok or r.json()["Status"] == "InProgress":
                return False
        return True

    _until("every upload to be judged", all_uploads_judged)
    _until("every capture to finish", all_captures_final)
    for b in blobs:
        outcome = requests.get(rig.url(f"/api/uploads/{b}"), timeout=120).json()
        assert outcome["Status"] == "Registered", outcome
        image = requests.get(rig.url(f"/api/images/{outcome['ImageName']}"), timeout=120).json()
        assert image["SourceUpload"].startswith(f"{uploads}/{b}@"), image
    for op_id, request in captures.items():
        op = requests.get(rig.url(f"/api/operations/{op_id}"), timeout=120).json()
        assert op["Status"] == "Succeeded", op
        image = requests.get(rig.url(f"/api/images/{request['ImageName']}"), timeout=120).json()
        assert image["SourceOperation"] == op_id and len(image["DataDiskConfigurations"]) == (
            1 if "OSState" in request else 0
        )
        vm = requests.get(rig.url(f"/api/vms/faults/{request['Name']}"), timeout=120)
        assert vm.status_code == (200 if "OSState" in request else 404)
    families = requests.get(rig.url("/api/families"), timeout=120).json()["Families"]
    counts = {f["ImageFamily"]: f["ImageCount"] for f in families}
    assert [counts.get(f"Faults {k}") for k in range(3)] == [UPLOADS // 3] * 3

    # And the invariants hold, as an operator would check them.
    doctor = subprocess.run(
        [sys.executable, "-m", "vmimage", "--url", rig.app.base_url, "--key", rig.key, "doctor"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "All invariants hold" in doctor.stderr
