"""Capture Role and Capture VM Image: a classic role-instance capture body as a catalog capture."""

from __future__ import annotations

from typing import Any

from shared.services.classic.xmldoc import InvalidXmlBody, read_element

CAPTURE_ROLE = "CaptureRoleOperation"
CAPTURE_AS_VM_IMAGE = "CaptureRoleAsVMImageOperation"
_CAPTURE_FIELDS = {
    CAPTURE_ROLE: (
        "OperationType", "PostCaptureAction", "ProvisioningConfiguration",
        "TargetImageLabel", "TargetImageName",
    ),
    CAPTURE_AS_VM_IMAGE: (
        "OperationType", "OSState", "VMImageName", "VMImageLabel", "Description",
        "Language", "ImageFamily", "RecommendedVMSize",
    ),
}  # fmt: skip


def parse_capture_operation(
    body: bytes, service: str, role: str, request_id: str
) -> dict[str, Any]:
    """A classic role-instance capture body as the catalog's capture request (a dict).

    `CaptureRoleOperation` (PostCaptureAction=Delete) captures an OS image and
    deletes the VM; `CaptureRoleAsVMImageOperation` captures a VM image with the
    given OSState. The request id becomes the operation id.
    """
    fields: dict[str, str | None] | None = None
    root = CAPTURE_ROLE
    for candidate in (CAPTURE_ROLE, CAPTURE_AS_VM_IMAGE):
        try:
            fields = read_element(body, candidate, _CAPTURE_FIELDS[candidate])
            root = candidate
            break
        except InvalidXmlBody as e:
            if "expected an <" not in e.message:
                raise
    if fields is None:
        raise InvalidXmlBody(f"expected a <{CAPTURE_ROLE}> or <{CAPTURE_AS_VM_IMAGE}> body")
    if (fields.get("OperationType") or root) != root:
        raise InvalidXmlBody(f"OperationType must be {root}")
    doc: dict[str, Any] = {"ServiceName": service, "Name": role, "OperationId": request_id}
    if root == CAPTURE_ROLE:
        action = (fields.get("PostCaptureAction") or "").strip()
        if action.lower() != "delete":
            raise InvalidXmlBody(
                f"PostCaptureAction {action or '(missing)'} is not supported: the catalog "
                "captures an OS image and deletes the VM (Delete); to keep the VM, capture it "
                "as a Specialized VM image (CaptureRoleAsVMImageOperation)"
            )
        doc["ImageName"] = fields.get("TargetImageName")
        doc["ImageLabel"] = fields.get("TargetImageLabel") or None
    else:
        doc["ImageName"] = fields.get("VMImageName")
        doc["ImageLabel"] = fields.get("VMImageLabel") or None
        doc["OSState"] = fields.get("OSState")
        for name in ("Description", "ImageFamily", "RecommendedVMSize"):
            if fields.get(name):
                doc[name] = fields[name]
    return {k: v for k, v in doc.items() if v is not None}
