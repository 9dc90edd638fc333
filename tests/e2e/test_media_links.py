"""MediaLinks that hide a step up or a separator, through the running app: 400, never a
500, never a retried capture, and never a blob they would have reached."""

from __future__ import annotations

import time
import uuid

import requests

from devtools.upload import upload_page_blob
from shared.adapters.storage import StorageAccount
from shared.domain.vms import STORED, VirtualMachine
from tests.e2e.test_captures import wait_operation
from tests.e2e.test_classic_api import SUBSCRIPTION, _error

ADD = (
    "<OSImage xmlns='http://schemas.microsoft.com/windowsazure'><Label>l</Label>"
    "<MediaLink>{link}</MediaLink><Name>{name}</Name><OS>Linux</OS></OSImage>"
)


def _account(storage: StorageAccount) -> str:
    return storage.blobs.url.rstrip("/")


def test_classic_add_refuses_an_encoded_step_up(catalog_app, function_key, storage, disk) -> None:
    # A valid disk the link would reach if `%2F..%2F` were decoded before the path is split.
    name = f"target-{uuid.uuid4().hex[:8]}.vhd"
    target = storage.blobs.get_blob_client(storage.settings.vhds_container, name)
    upload_page_blob(target, disk("linux_ext4_mbr"))
    headers = {"x-functions-key": function_key, "x-ms-version": "2014-10-01"}
    for path in [
        "vhds%2F..%2Fuploads/x.vhd",
        f"vhds%2F..%2Fvhds/{name}",
        f"vhds/%2e%2e/vhds/{name}",
    ]:
        image = f"sneaky-{uuid.uuid4().hex[:8]}"
        r = requests.post(
            f"{catalog_app.base_url}/{SUBSCRIPTION}/services/images",
            headers=headers,
            data=ADD.format(link=f"{_account(storage)}/{path}", name=image).encode(),
            timeout=30,
        )
        assert _error(r) == (400, "BadRequest"), (path, r.text)
        assert "MediaLink" in r.text
        got = requests.get(f"{catalog_app.base_url}/api/images/{image}", timeout=10)
        assert got.status_code == 404
    assert target.get_blob_properties().lease.state != "leased"


def test_put_vm_refuses_such_a_link(catalog_app, function_key, storage) -> None:
    link = f"{_account(storage)}/vhds%2F..%2Fuploads/x.vhd"
    r = requests.put(
        f"{catalog_app.base_url}/api/vms/svc-links/vm1",
        json={"State": "Stopped", "OSDisk": {"OS": "Linux", "MediaLink": link}},
        headers={"x-functions-key": function_key},
        timeout=10,
    )
    assert r.status_code == 400, r.text
    assert r.json()["Code"] == "InvalidParameter" and "MediaLink" in r.json()["Message"]


def _executions(app, outcome: str) -> int:  # type: ignore[no-untyped-def]
    text = app.log_path.read_text(encoding="utf-8", errors="replace")
    return text.count(f"Executed 'Functions.capture_vm' ({outcome}")


def test_a_capture_of_a_stored_record_with_such_a_link_fails_at_once(
    catalog_app, function_key, storage
) -> None:
    # A record kept before PUT refused such links: written straight into the table.
    service, name = "svc-links", f"vm-{uuid.uuid4().hex[:8]}"
    link = f"{_account(storage)}/vhds%2F..%2Fuploads/x.vhd"
    vm = VirtualMachine.model_validate(
        {
            "ServiceName": service,
            "Name": name,
            "State": "Stopped",
            "OSDisk": {"OS": "Linux", "MediaLink": link},
        },
        context=STORED,
    )
    table = storage.tables.get_table_client(storage.settings.vms_table)
    table.upsert_entity(
        {
            "PartitionKey": service.lower(),
            "RowKey": name.lower(),
            "State": vm.State,
            "Vm": vm.model_dump_json(),
        }
    )
    try:
        _capture_fails_at_once(catalog_app, function_key, service, name)
    finally:  # the session's other tests list VMs against today's schema
        table.delete_entity(service.lower(), name.lower())


def _capture_fails_at_once(catalog_app, function_key, service: str, name: str) -> None:  # type: ignore[no-untyped-def]
    assert requests.get(f"{catalog_app.base_url}/api/vms/{service}/{name}", timeout=10).ok
    failed, done = _executions(catalog_app, "Failed"), _executions(catalog_app, "Succeeded")
    r = requests.post(
        f"{catalog_app.base_url}/api/captures",
        json={"ServiceName": service, "Name": name, "ImageName": f"never-{name}"},
        headers={"x-functions-key": function_key},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    op = wait_operation(catalog_app, r.json()["OperationId"])
    # Not CaptureRetriesExhausted: the first delivery failed the operation, for good.
    assert (op["Status"], op["Error"]["Code"]) == ("Failed", "InvalidMediaLink"), op
    deadline = time.monotonic() + 30
    while _executions(catalog_app, "Succeeded") == done and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _executions(catalog_app, "Succeeded") > done
    assert _executions(catalog_app, "Failed") == failed
