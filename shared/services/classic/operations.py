"""Operations: every asynchronous classic call is recorded under its `x-ms-request-id`,
and Get Operation Status reads it back."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from shared.domain.errors import CatalogError, describe_validation_error
from shared.domain.operations import Operation
from shared.services.classic.xmldoc import add, document, q

# Operation kinds recorded for the asynchronous calls.
ADD_OS_IMAGE = "AddOSImage"
UPDATE_OS_IMAGE = "UpdateOSImage"
DELETE_OS_IMAGE = "DeleteOSImage"
DELETE_VM_IMAGE = "DeleteVMImage"
CREATE_VM_IMAGE = "CreateVMImage"
UPDATE_VM_IMAGE = "UpdateVMImage"


def operation_xml(op: Operation) -> bytes:
    """Get Operation Status. Azure sends `<ID>`; the Python classic client reads `<Id>`:
    both are sent (`<Id>` last, where readers that follow the schema skip it)."""
    root = ET.Element(q("Operation"))
    add(root, "ID", op.OperationId)
    add(root, "Status", op.Status)
    if op.final:
        add(root, "HttpStatusCode", op.HttpStatusCode)
    if op.Error is not None:
        error = ET.SubElement(root, q("Error"))
        add(error, "Code", op.Error.Code)
        add(error, "Message", op.Error.Message)
    add(root, "Id", op.OperationId)
    return document(root)


class OperationLog(Protocol):
    def create(self, op: Operation) -> tuple[Operation, bool]: ...


@dataclass
class ClassicCall:
    """One classic request: its `x-ms-request-id` and, for asynchronous calls, what to record."""

    request_id: str
    kind: str | None = None  # the operation kind; None for calls that leave no operation
    image_name: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def operation(self) -> Operation:
        return Operation(
            OperationId=self.request_id,
            Kind=self.kind or "Classic",
            ImageName=self.image_name,
            Details=self.details,
        )


@contextmanager
def recorded(log: OperationLog, call: ClassicCall) -> Iterator[ClassicCall]:
    """Record the call as a finished operation: Succeeded, or Failed with the error's code.

    Every asynchronous call completes before it answers, so its operation is
    final by the time the client can ask Get Operation Status about it.
    """
    try:
        yield call
    except CatalogError as e:
        log.create(call.operation().fail(e.code, e.message, e.status))
        raise
    except ValidationError as e:
        log.create(call.operation().fail("InvalidParameter", describe_validation_error(e), 400))
        raise
    except Exception:
        # The caller reports the original failure; a second one while recording must not hide it.
        with suppress(Exception):
            log.create(call.operation().fail("InternalError", "The operation failed.", 500))
        raise
    log.create(call.operation().succeed())
