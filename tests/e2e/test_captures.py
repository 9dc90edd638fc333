"""Captures through the running app, driven by real queue messages and HTTP."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
import requests

from devtools.apphost import AppHost
from shared.adapters.storage import StorageAccount
from shared.domain.vhd import build_footer

MIB = 1024 * 1024


def make_vm(
    app: AppHost, key: str, storage: StorageAccount, state: str = "Stopped", data: int = 2
) -> tuple[str, str]:
    service, vm = "svc-e2e", f"vm-{uuid.uuid4().hex[:8]}"
    links = []
    for role in ["os", *(f"data{i}" for i in range(data))]:
        client = storage.blobs.get_blob_client(storage.settings.vhds_container, f"{vm}-{role}.vhd")
        client.create_page_blob(64 * MIB + 512)
        client.upload_page(build_footer(64 * MIB), offset=64 * MIB, length=512)
        links.append(client.url)
    body = {
        "State": state,
        "OSDisk": {"OS": "Linux", "MediaLink": links[0]},
        "DataDisks": [{"Lun": i, "MediaLink": link} for i, link in enumerate(links[1:])],
    }
    r = requests.put(
        f"{app.base_url}/api/vms/{service}/{vm}",
        json=body,
        headers={"x-functions-key": key},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return service, vm


def wait_operation(app: AppHost, op_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(f"{app.base_url}/api/operations/{op_id}", timeout=10)
        if r.status_code == 200 and r.json()["Status"] != "InProgress":
            return r.json()
        if time.monotonic() > deadline:
            pytest.fail(
                f"operation {op_id} not finished after {timeout}s: {r.status_code} {r.text}"
            )
        time.sleep(0.2)


def send(storage: StorageAccount, doc: dict[str, Any] | str, b64: bool = False) -> None:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    if b64:
        text = base64.b64encode(text.encode()).decode()
    storage.queues.get_queue_client(storage.settings.capture_queue).send_message(text)


def test_a_plain_json_queue_message_captures_a_vm_image(catalog_app, function_key, storage) -> None:
    service, vm = make_vm(catalog_app, function_key, storage)
    op_id = f"op-{uuid.uuid4().hex[:8]}"
    image = f"cap-{uuid.uuid4().hex[:8]}"
    send(
        storage,
        {
            "ServiceName": service,
            "Name": vm,
            "ImageName": image,
            "OSState": "Specialized",
            "OperationId": op_id,
        },
    )
    op = wait_operation(catalog_app, op_id)
    assert (op["Status"], op["ImageName"]) == ("Succeeded", image), op
    got = requests.get(f"{catalog_app.base_url}/api/images/{image}", timeout=10).json()
    assert got["ImageType"] == "VMImage" and len(got["DataDiskConfigurations"]) == 2
    # Specialized: the VM stays.
    assert (
        requests.get(f"{catalog_app.base_url}/api/vms/{service}/{vm}", timeout=10).status_code
        == 200
    )


def test_a_base64_message_without_os_state_makes_an_os_image_and_deletes_the_vm(
    catalog_app, function_key, storage
) -> None:
    service, vm = make_vm(catalog_app, function_key, storage)
    op_id = f"op-{uuid.uuid4().hex[:8]}"
    image = f"cap-{uuid.uuid4().hex[:8]}"
    send(
        storage,
        {"ServiceName": service, "Name": vm, "ImageName": image, "OperationId": op_id},
        b64=True,
    )
    op = wait_operation(catalog_app, op_id)
    assert op["Status"] == "Succeeded", op
    got = requests.get(f"{catalog_app.base_url}/api/images/{image}", timeout=10).json()
    assert got["ImageType"] == "OSImage"
    assert (
        requests.get(f"{catalog_app.base_url}/api/vms/{service}/{vm}", timeout=10).status_code
        == 404
    )


def test_post_captures_answers_202_with_the_operation_location(
    catalog_app, function_key, storage
) -> None:
    service, vm = make_vm(catalog_app, function_key, storage, data=0)
    image = f"cap-{uuid.uuid4().hex[:8]}"
    body = {"ServiceName": service, "Name": vm, "ImageName": image, "OSState": "Generalized"}
    assert (
        requests.post(f"{catalog_app.base_url}/api/captures", json=body, timeout=10).status_code
        == 401
    )
    r = requests.post(
        f"{catalog_app.base_url}/api/captures",
        json=body,
        headers={"x-functions-key": function_key},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    assert location.startswith("/api/operations/")
    op = wait_operation(catalog_app, location.rsplit("/", 1)[1])
    assert op["Status"] == "Succeeded", op


def test_a_running_vm_fails_with_its_code(catalog_app, function_key, storage) -> None:
    service, vm = make_vm(catalog_app, function_key, storage, state="Running", data=0)
    op_id = f"op-{uuid.uuid4().hex[:8]}"
    send(storage, {"ServiceName": service, "Name": vm, "ImageName": "never", "OperationId": op_id})
    op = wait_operation(catalog_app, op_id)
    assert (op["Status"], op["Error"]["Code"]) == ("Failed", "VmNotStopped")


def test_an_invalid_message_fails_at_once_and_is_parked_in_the_poison_queue(
    catalog_app, storage
) -> None:
    op_id = f"op-{uuid.uuid4().hex[:8]}"
    raw = json.dumps(
        {"ServiceName": "svc", "Name": "vm", "ImageName": "no spaces", "OperationId": op_id}
    )
    send(storage, raw)
    op = wait_operation(catalog_app, op_id)
    assert (op["Status"], op["Error"]["Code"]) == ("Failed", "InvalidCaptureRequest")
    assert op["Request"] == raw
    poison = storage.queues.get_queue_client(f"{storage.settings.capture_queue}-poison")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        texts = [m.content for m in poison.peek_messages(max_messages=32)]
        if raw in texts:
            break
        time.sleep(0.2)
    assert raw in texts
    # Not retried: it left the work queue after its first delivery.
    work = storage.queues.get_queue_client(storage.settings.capture_queue)
    assert raw not in [m.content for m in work.peek_messages(max_messages=32)]


def test_vm_inventory_validates_bodies_and_names(catalog_app, function_key) -> None:
    url = f"{catalog_app.base_url}/api/vms/svc/vm1"
    key = {"x-functions-key": function_key}
    r = requests.put(url, json={"State": "Sleeping", "OSDisk": {}}, headers=key, timeout=10)
    assert r.status_code == 400 and "State" in r.json()["Message"]
    r = requests.put(
        f"{catalog_app.base_url}/api/vms/svc/bad%20name", json={}, headers=key, timeout=10
    )
    assert r.status_code == 400
    assert requests.put(url, json={}, timeout=10).status_code == 401
    assert requests.get(f"{catalog_app.base_url}/api/vms/svc/nope", timeout=10).status_code == 404
    listing = requests.get(f"{catalog_app.base_url}/api/vms?top=1", timeout=10)
    assert listing.status_code == 200
    assert requests.get(f"{catalog_app.base_url}/api/vms?top=0", timeout=10).status_code == 400


@pytest.mark.parametrize("step", ["CopyDisks", "Publish", "PostCapture"])
def test_a_runner_killed_mid_capture_finishes_it_after_a_restart(
    azurite_connection, catalog_app, function_key, storage, tmp_path, step
) -> None:
    # A private capture queue and drop zone, so the session's app doesn't take the message.
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    env = {
        "CAPTURE_QUEUE": queue,
        "UPLOADS_CONTAINER": f"none-{uuid.uuid4().hex[:8]}",
        "FUNCRUNNER_QUEUE_LEASE_SECONDS": "2",
        "AzureFunctionsWebHost__hostid": f"crash-{uuid.uuid4().hex[:8]}",
    }
    service, vm = make_vm(catalog_app, function_key, storage, data=2)
    image, op_id = f"crash-{uuid.uuid4().hex[:8]}", f"op-{uuid.uuid4().hex[:8]}"
    storage.queues.create_queue(queue)
    storage.queues.get_queue_client(queue).send_message(
        json.dumps(
            {
                "ServiceName": service,
                "Name": vm,
                "ImageName": image,
                "OSState": "Generalized",
                "OperationId": op_id,
            }
        )
    )
    doomed = AppHost(
        azurite_connection,
        keys_file=tmp_path / "k.json",
        extra_env={**env, "FAULT_KILL_CAPTURE_AT": step},
    )
    doomed.start(wait_path=None)  # it may die before it answers anything
    assert doomed.process is not None
    assert doomed.process.wait(timeout=30) == 70  # killed at the step
    op = requests.get(f"{catalog_app.base_url}/api/operations/{op_id}", timeout=10).json()
    assert op["Status"] == "InProgress"
    published = requests.get(f"{catalog_app.base_url}/api/images/{image}", timeout=10).status_code
    assert published == (200 if step == "PostCapture" else 404)  # never half-published
    survivor = AppHost(azurite_connection, keys_file=tmp_path / "k.json", extra_env=env).start()
    try:
        op = wait_operation(catalog_app, op_id, timeout=40)
    finally:
        survivor.stop()
    assert op["Status"] == "Succeeded", op
    got = requests.get(f"{catalog_app.base_url}/api/images/{image}", timeout=10).json()
    assert len(got["DataDiskConfigurations"]) == 2
    # No orphan: the image's blobs are exactly the copies of this operation.
    container = storage.blobs.get_container_client(storage.settings.images_container)
    names = sorted(
        b.name for b in container.list_blobs(name_starts_with=f"{image}/", include=["snapshots"])
    )
    assert names == [
        f"{image}/{op_id}/lun0.vhd",
        f"{image}/{op_id}/lun1.vhd",
        f"{image}/{op_id}/os.vhd",
    ]
    vhds = storage.blobs.get_container_client(storage.settings.vhds_container)
    assert [b.name for b in vhds.list_blobs(name_starts_with=vm, include=["snapshots"])] == []


def test_a_transient_storage_error_is_retried_by_the_queue(
    azurite_connection, catalog_app, function_key, storage, tmp_path
) -> None:
    queue = f"flaky-{uuid.uuid4().hex[:8]}"
    env = {
        "CAPTURE_QUEUE": queue,
        "UPLOADS_CONTAINER": f"none-{uuid.uuid4().hex[:8]}",
        "AzureFunctionsWebHost__hostid": f"flaky-{uuid.uuid4().hex[:8]}",
        "FAULT_TRANSIENT_CAPTURE_AT": "CopyDisks",
    }
    service, vm = make_vm(catalog_app, function_key, storage, data=1)
    image, op_id = f"flaky-{uuid.uuid4().hex[:8]}", f"op-{uuid.uuid4().hex[:8]}"
    storage.queues.create_queue(queue)
    storage.queues.get_queue_client(queue).send_message(
        json.dumps({"ServiceName": service, "Name": vm, "ImageName": image, "OperationId": op_id})
    )
    log = tmp_path / "host.log"
    with open(log, "wb") as out:
        app = AppHost(azurite_connection, keys_file=tmp_path / "k.json", extra_env=env, stdout=out)
        app.start()
        try:
            op = wait_operation(catalog_app, op_id, timeout=40)
        finally:
            app.stop()
    assert op["Status"] == "Succeeded", op
    text = log.read_text()
    # The first delivery failed (the host retries it after visibilityTimeout), the second won.
    assert text.count("Executed 'Functions.capture_vm' (Failed") == 1
    assert text.count("Executed 'Functions.capture_vm' (Succeeded") == 1


def post_capture(app: AppHost, key: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{app.base_url}/api/captures", json=body, headers={"x-functions-key": key}, timeout=30
    )


def test_an_operation_id_with_another_body_is_a_conflict_not_a_second_image(
    catalog_app, function_key, storage
) -> None:
    service, vm = make_vm(catalog_app, function_key, storage, data=0)
    op_id = f"op-{uuid.uuid4().hex[:8]}"
    first = {"ServiceName": service, "Name": vm, "ImageName": f"a-{op_id}", "OperationId": op_id}
    other = {**first, "ImageName": f"b-{op_id}"}
    assert post_capture(catalog_app, function_key, first).status_code == 202
    r = post_capture(catalog_app, function_key, other)
    assert r.status_code == 409 and r.json()["Code"] == "OperationIdConflict", r.text
    again = post_capture(catalog_app, function_key, first)  # the same body: the same operation
    assert again.status_code == 202 and again.json()["OperationId"] == op_id
    # From the queue, the other body with that id is a failed duplicate of its own.
    send(storage, other)
    assert wait_operation(catalog_app, op_id)["Status"] == "Succeeded"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ops = requests.get(f"{catalog_app.base_url}/api/images/b-{op_id}", timeout=10).status_code
        assert ops == 404
        found = _failed_duplicates(storage, f"b-{op_id}")
        if found:
            assert found[0]["Error"]["Code"] == "OperationIdConflict"
            break
        time.sleep(0.3)
    else:
        pytest.fail("the duplicate message left no failed operation")
    assert requests.get(f"{catalog_app.base_url}/api/images/a-{op_id}", timeout=10).ok


def _failed_duplicates(storage: StorageAccount, image: str) -> list[dict[str, Any]]:
    table = storage.tables.get_table_client(storage.settings.operations_table)
    rows = table.query_entities("Status eq 'Failed'", select=["Operation"])
    ops = [json.loads(r["Operation"]) for r in rows]
    return [o for o in ops if o.get("ImageName") == image]


def test_concurrent_posts_over_three_ids_make_three_images(
    catalog_app, function_key, storage
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    vms = [make_vm(catalog_app, function_key, storage, data=0) for _ in range(3)]
    tag = uuid.uuid4().hex[:6]
    bodies = [
        {
            "ServiceName": vms[i % 3][0],
            "Name": vms[i % 3][1],
            "ImageName": f"race-{tag}-{i}",
            "OSState": "Specialized",
            "OperationId": f"race-{tag}-{i % 3}",
        }
        for i in range(12)
    ]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda b: post_capture(catalog_app, function_key, b), bodies))
    codes = sorted(r.status_code for r in answers)
    assert codes == [202] * 3 + [409] * 9, [r.text for r in answers]
    for i in range(3):
        assert wait_operation(catalog_app, f"race-{tag}-{i}", timeout=90)["Status"] == "Succeeded"
    made = [
        b["ImageName"]
        for b in bodies
        if requests.get(f"{catalog_app.base_url}/api/images/{b['ImageName']}", timeout=10).ok
    ]
    accepted = [b["ImageName"] for b, r in zip(bodies, answers, strict=True) if r.ok]
    assert sorted(made) == sorted(accepted)


def test_post_captures_checks_the_name_and_the_vm_at_once(
    catalog_app, function_key, storage
) -> None:
    service, vm = make_vm(catalog_app, function_key, storage, data=0)
    taken = requests.get(
        f"{catalog_app.base_url}/api/images", params={"top": 1}, timeout=10
    ).json()["Images"][0]["ImageName"]
    r = post_capture(
        catalog_app, function_key, {"ServiceName": service, "Name": vm, "ImageName": taken}
    )
    assert r.status_code == 409 and r.json()["Code"] == "ImageNameTaken", r.text
    r = post_capture(
        catalog_app, function_key, {"ServiceName": service, "Name": "nope", "ImageName": "x-1"}
    )
    assert r.status_code == 404 and r.json()["Code"] == "VmNotFound", r.text


def put_vm(app: AppHost, key: str, service: str, vm: str, os_link: str) -> requests.Response:
    body = {"State": "Stopped", "OSDisk": {"OS": "Linux", "MediaLink": os_link}}
    return requests.put(
        f"{app.base_url}/api/vms/{service}/{vm}",
        json=body,
        headers={"x-functions-key": key},
        timeout=30,
    )


def test_the_inventory_takes_only_vm_disks_each_named_by_one_vm(
    catalog_app, function_key, storage
) -> None:
    service, vm = make_vm(catalog_app, function_key, storage, data=0)
    taken = requests.get(f"{catalog_app.base_url}/api/vms/{service}/{vm}", timeout=10).json()
    r = put_vm(catalog_app, function_key, service, "thief", taken["OSDisk"]["MediaLink"])
    assert r.status_code == 409 and r.json()["Code"] == "DiskInUse", r.text
    assert vm in r.json()["Message"]
    account = storage.blobs.url.rstrip("/")
    for elsewhere in ("azure-webjobs-hosts/blobreceipts/x.vhd", "uploads/a.vhd"):
        r = put_vm(catalog_app, function_key, service, "stray", f"{account}/{elsewhere}")
        assert r.status_code == 400 and r.json()["Code"] == "NotInVmDiskContainer", r.text
    assert (
        requests.get(f"{catalog_app.base_url}/api/vms/{service}/stray", timeout=10).status_code
        == 404
    )
