"""Classic capture operations, end to end with the unmodified classic client: Capture Role
(PostCaptureAction=Delete) and Capture VM Image, followed with Get Operation Status."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from azure.common import AzureConflictHttpError, AzureHttpError
from azure.servicemanagement import CaptureRoleAsVMImage, ServiceManagementService

from tests.e2e.test_captures import make_vm


def finish(sms: ServiceManagementService, request_id: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 30
    while (op := sms.get_operation_status(request_id)).status == "InProgress":
        assert time.monotonic() < deadline, "the capture never finished"
        time.sleep(0.2)
    return op


def test_capture_role_makes_an_os_image_and_deletes_the_vm(
    classic_client, catalog_app, function_key, storage
) -> None:
    sms = classic_client
    service, vm = make_vm(catalog_app, function_key, storage, data=1)
    image = f"classic-{uuid.uuid4().hex[:8]}"
    result = sms.capture_role(service, "production", vm, "Delete", image, "Classic label")
    assert result.request_id
    op = finish(sms, result.request_id)
    assert (op.status, op.http_status_code) == ("Succeeded", "200")
    got = sms.get_os_image(image)
    assert (got.label, got.os) == ("Classic label", "Linux")
    assert (
        requests.get(f"{catalog_app.base_url}/api/vms/{service}/{vm}", timeout=10).status_code
        == 404
    )


def test_capture_vm_image_keeps_a_specialized_vm(
    classic_client, catalog_app, function_key, storage
) -> None:
    sms = classic_client
    service, vm = make_vm(catalog_app, function_key, storage, data=2)
    image = f"classic-vm-{uuid.uuid4().hex[:8]}"
    options = CaptureRoleAsVMImage(
        "Specialized", image, "VM label", "described", None, "Classic VMs"
    )
    result = sms.capture_vm_image(service, "production", vm, options)
    op = finish(sms, result.request_id)
    assert op.status == "Succeeded", op.error
    listed = {i.name: i for i in sms.list_vm_images()}
    assert [d.lun for d in listed[image].data_disk_configurations] == [0, 1]
    assert listed[image].image_family == "Classic VMs"
    assert (
        requests.get(f"{catalog_app.base_url}/api/vms/{service}/{vm}", timeout=10).status_code
        == 200
    )


def test_a_failed_capture_is_reported_by_get_operation_status(
    classic_client, catalog_app, function_key, storage
) -> None:
    sms = classic_client
    service, vm = make_vm(catalog_app, function_key, storage, data=0)
    # Found only when the capture runs: the VM's disk went away after the request.
    storage.blobs.get_blob_client(storage.settings.vhds_container, f"{vm}-os.vhd").delete_blob()
    result = sms.capture_role(service, "production", vm, "Delete", f"x-{uuid.uuid4().hex[:6]}", "x")
    op = finish(sms, result.request_id)
    assert op.status == "Failed"
    assert op.error.code == "DiskBlobNotFound"


def test_capturing_a_running_vm_is_refused_at_once(
    classic_client, catalog_app, function_key, storage
) -> None:
    service, vm = make_vm(catalog_app, function_key, storage, state="Running", data=0)
    with pytest.raises(AzureConflictHttpError, match="stop it"):
        classic_client.capture_role(service, "production", vm, "Delete", "never-running", "x")


def test_reprovision_is_refused_clearly(classic_client, catalog_app, function_key, storage) -> None:
    sms = classic_client
    service, vm = make_vm(catalog_app, function_key, storage, data=0)
    with pytest.raises(AzureHttpError) as refused:
        sms.capture_role(service, "production", vm, "Reprovision", "never", "never")
    assert refused.value.status_code == 400
    assert "Reprovision" in str(refused.value)
