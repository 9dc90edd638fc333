"""The README's "Send a capture" example is what the API takes, over disks `make run` has."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from devtools.samples import SAMPLE_VMS, SPARE_DISKS
from shared.domain.captures import parse_capture
from shared.domain.vms import VmBody
from shared.settings import DEFAULTS

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Send a capture")
    return text[start : text.index("\n## ", start + 1)]


def _bodies(method: str) -> list[tuple[str, Any]]:
    """(URL, JSON body) of every `curl -X METHOD ... URL -d '...'` in the section."""
    found = re.findall(
        rf"curl [^\n]*-X {method} [^\n]*?(http://\S+) \\\n\s*-d '([^']*)'", _section()
    )
    return [(url, json.loads(body)) for url, body in found]


def test_the_vm_body_is_valid_and_names_spare_disks_in_the_vm_disks_container() -> None:
    [(url, doc)] = _bodies("PUT")
    assert url.endswith("/api/vms/mySvc2/MyVM")
    body = VmBody.model_validate(doc)
    links = [body.OSDisk.MediaLink, *(d.MediaLink for d in body.DataDisks)]
    prefix = f"http://127.0.0.1:10000/devstoreaccount1/{DEFAULTS['VHDS_CONTAINER']}/"
    assert all(link.startswith(prefix) for link in links)
    names = [link.removeprefix(prefix) for link in links]
    # make run creates them, and no sample VM uses them (two VMs may not share a disk).
    assert names == SPARE_DISKS
    sample_disks = {f"{vm}-os.vhd" for _, vm, *_ in SAMPLE_VMS} | {
        f"{vm}-data{i}.vhd" for _, vm, _, _, data in SAMPLE_VMS for i in range(data)
    }
    assert not sample_disks & set(names)


def test_the_capture_request_and_the_queue_message_parse_as_captures() -> None:
    [(url, doc)] = _bodies("POST")
    assert url.endswith("/api/captures")
    request = parse_capture(doc)
    assert (request.ServiceName, request.Name) == ("mySvc2", "MyVM")
    # The commands that follow it look up that operation and that image.
    section = _section()
    assert f"/api/operations/{request.OperationId} " in section
    assert f"/api/images/{request.ImageName}\n" in section
    message = re.search(r"```json\n(.*?)```", section, re.S)
    assert message is not None
    assert parse_capture(json.loads(message.group(1))).ImageName == request.ImageName
