"""Operations: the status record every asynchronous request leaves behind.

Captures (and the classic API's asynchronous calls) answer with an operation
id at once; the record says `InProgress`, then `Succeeded` or `Failed` with
`{Code, Message}`. Ids are caller-chosen (for idempotency) or generated.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.errors import InvalidParameter, NotFound
from shared.domain.uploads import ErrorInfo, utcnow

OPERATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class OperationStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class InvalidOperationId(InvalidParameter):
    code = "InvalidOperationId"


class OperationNotFound(NotFound):
    code = "OperationNotFound"


def validate_operation_id(value: str) -> str:
    if not isinstance(value, str) or not OPERATION_ID.fullmatch(value):
        raise InvalidOperationId(
            "an operation id is 1-64 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return value


def new_operation_id() -> str:
    return str(uuid.uuid4())


class Operation(BaseModel):
    model_config = ConfigDict(extra="ignore", use_enum_values=True)

    OperationId: str
    Kind: str  # "CaptureVM", "DeleteImage", ...
    Status: OperationStatus = OperationStatus.IN_PROGRESS
    HttpStatusCode: int = 202
    Error: ErrorInfo | None = None
    ImageName: str | None = None
    ServiceName: str | None = None
    VMName: str | None = None
    Step: str | None = None  # where a long operation has got to
    Request: str | None = None  # the raw request, kept when it could not be understood
    RequestFingerprint: str | None = None  # what was asked (see CaptureRequest.fingerprint)
    Details: dict[str, Any] = Field(default_factory=dict)
    CreatedTime: datetime = Field(default_factory=utcnow)
    UpdatedTime: datetime = Field(default_factory=utcnow)
    CompletedTime: datetime | None = None

    @property
    def final(self) -> bool:
        return self.Status != OperationStatus.IN_PROGRESS

    def succeed(self, **changes: Any) -> Operation:
        now = utcnow()
        return self.model_copy(
            update={
                "Status": OperationStatus.SUCCEEDED,
                "HttpStatusCode": 200,
                "UpdatedTime": now,
                "CompletedTime": now,
                **changes,
            }
        )

    def fail(self, code: str, message: str, status: int = 400, **changes: Any) -> Operation:
        now = utcnow()
        return self.model_copy(
            update={
                "Status": OperationStatus.FAILED,
                "HttpStatusCode": status,
                "Error": ErrorInfo(Code=code, Message=message),
                "UpdatedTime": now,
                "CompletedTime": now,
                **changes,
            }
        )
