"""Capture requests (queue messages, mirroring Save-AzureVMImage) and their parsing.

A message is JSON, sent as plain text or base64-encoded (senders differ). A
message that can't be understood is never retried: it fails its operation at
once when it names one, and its raw text is kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from shared.domain.errors import Conflict, InvalidParameter, describe_validation_error
from shared.domain.images import (
    DescriptionText,
    DiskState,
    FamilyName,
    LabelText,
    VmSize,
    validate_image_name,
)
from shared.domain.operations import validate_operation_id
from shared.domain.vms import validate_vm_name

MAX_MESSAGE_BYTES = 64 * 1024


class InvalidCaptureRequest(InvalidParameter):
    code = "InvalidCaptureRequest"


class OperationIdConflict(Conflict):
    """An OperationId is an idempotency key bound to its request."""

    code = "OperationIdConflict"


def _field(check: Any, value: Any, *args: Any) -> Any:
    try:
        return check(value, *args)
    except InvalidParameter as e:
        raise ValueError(e.message) from e


class CaptureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    ServiceName: str
    Name: str
    ImageName: str
    ImageLabel: LabelText | None = None
    OSState: DiskState | None = None
    OperationId: str | None = None
    # Beyond Save-AzureVMImage, as Capture VM Image allows:
    ImageFamily: FamilyName | None = None
    Description: DescriptionText | None = None
    RecommendedVMSize: VmSize | None = None

    # Pydantic reports only ValueErrors as field errors: translate ours.
    @field_validator("ServiceName")
    @classmethod
    def _service(cls, v: str) -> str:
        return _field(validate_vm_name, v, "cloud service name")

    @field_validator("Name")
    @classmethod
    def _vm(cls, v: str) -> str:
        return _field(validate_vm_name, v)

    @field_validator("ImageName")
    @classmethod
    def _image(cls, v: str) -> str:
        return _field(validate_image_name, v)

    @field_validator("OperationId")
    @classmethod
    def _op(cls, v: str | None) -> str | None:
        return None if v is None else _field(validate_operation_id, v)

    @field_validator("OSState", mode="before")
    @classmethod
    def _state(cls, v: Any) -> Any:
        if isinstance(v, str):
            if v.strip() == "":
                return None
            for s in DiskState:
                if s.value.lower() == v.strip().lower():
                    return s
        return v

    @property
    def label(self) -> str:
        return self.ImageLabel or self.ImageName

    @property
    def fingerprint(self) -> str:
        """What the request asks for, whatever its OperationId: the same id with another
        fingerprint is another request, not a repeat."""
        doc = self.model_dump(mode="json", exclude_none=True, exclude={"OperationId"})
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def decode_message(body: bytes) -> Any:
    """The JSON document in a message, whether sent as plain text or base64."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise InvalidCaptureRequest(f"the message is over {MAX_MESSAGE_BYTES} bytes")
    text = body.decode("utf-8", "replace").strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        decoded = base64.b64decode(text, validate=True).decode("utf-8")
        return json.loads(decoded)
    except (binascii.Error, ValueError, UnicodeDecodeError) as e:
        raise InvalidCaptureRequest("the message is neither JSON nor base64-encoded JSON") from e


def operation_id_in(doc: Any) -> str | None:
    """The caller's operation id, if the document has a usable one (even if it is invalid)."""
    if isinstance(doc, dict) and isinstance(doc.get("OperationId"), str):
        try:
            return validate_operation_id(doc["OperationId"])
        except InvalidParameter:
            return None
    return None


def parse_capture(doc: Any) -> CaptureRequest:
    if not isinstance(doc, dict):
        raise InvalidCaptureRequest("a capture request is a JSON object")
    try:
        return CaptureRequest.model_validate(doc)
    except ValidationError as e:
        problems = describe_validation_error(e, "request")
        raise InvalidCaptureRequest(f"the capture request is not valid: {problems}") from e
