"""Adversarial review of issue 10 through the running app: a client that repeats its
POST /api/captures (same OperationId, same body) while the first is queued sends the
message again; the twin deliveries must publish one image whose disks all exist and are
leased, and the operation must succeed (it failed DiskLeased, or published an image over a
copy a failing twin had deleted)."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.e2e.test_captures import make_vm


def wait_operation(app, op_id: str, timeout: float = 180) -> dict:  # type: ignore[no-untyped-def]
    """Like test_captures.wait_operation, with patience for a busy runner."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = requests.get(f"{app.base_url}/api/operations/{op_id}", timeout=60)
        except requests.Timeout:
            continue
        if r.status_code == 200 and r.json()["Status"] != "InProgress":
            return r.json()
        time.sleep(0.5)
    raise AssertionError(f"operation {op_id} not finished after {timeout}s")


TWINS = 6


def test_a_capture_posted_again_and_again_publishes_one_image_with_every_disk(
    catalog_app, function_key, storage
) -> None:
    for _round in range(2):
        service, vm = make_vm(catalog_app, function_key, storage, data=1)
        op_id = f"twin-{uuid.uuid4().hex[:8]}"
        image = f"twin-{uuid.uuid4().hex[:8]}"
        body = {"ServiceName": service, "Name": vm, "ImageName": image,
                "OSState": "Generalized", "OperationId": op_id}  # fmt: skip

        def post(_: int, body: dict[str, str] = body) -> int:
            r = requests.post(
                f"{catalog_app.base_url}/api/captures",
                json=body,
                headers={"x-functions-key": function_key},
                timeout=120,
            )
            return r.status_code

        with ThreadPoolExecutor(TWINS) as pool:
            assert set(pool.map(post, range(TWINS))) == {202}
        op = wait_operation(catalog_app, op_id)
        r = requests.get(f"{catalog_app.base_url}/api/images/{image}", timeout=60)
        assert (op["Status"], r.status_code) == ("Succeeded", 200), op.get("Error")
        got = r.json()
        disks = [got["OSDiskConfiguration"], *got["DataDiskConfigurations"]]
        for d in disks:
            container, blob = d["SourceBlob"].split("/", 1)
            props = storage.blobs.get_blob_client(container, blob).get_blob_properties()
            assert props.lease.state == "leased", d
        # Looked at again once more twins have had their turn: none failed it afterwards.
        assert wait_operation(catalog_app, op_id)["Status"] == "Succeeded"
