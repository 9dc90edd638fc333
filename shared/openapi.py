"""The OpenAPI document of the JSON API, generated from code so it can't drift.

Schemas come from the pydantic models the endpoints serialise (`Image`,
`UploadOutcome`, ...) plus a few small models below for bodies that are
built by hand (pages, family summaries, errors, health). Paths come from
`OPERATIONS`, one entry per route and method: adding an endpoint to the
document is adding one `Operation` (and, if its body is new, its model to
`MODELS`). `tests/e2e/test_openapi.py` checks that every `/api/` route of the
app is listed here and drives the running app from this document.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from shared.domain.captures import CaptureRequest
from shared.domain.content_hash import HashJobStatus
from shared.domain.disks import MEDIA_LINK
from shared.domain.images import (
    IMAGE_NAME,
    SELECTABLE_FIELDS,
    TEXT,
    TEXT_RULES,
    UPDATABLE_FIELDS,
    Image,
    ImageCategory,
    ImageKind,
    ImageState,
    OSType,
)
from shared.domain.operations import OPERATION_ID, Operation
from shared.domain.uploads import ErrorInfo, UploadOutcome
from shared.domain.vms import NAME as VM_NAME
from shared.domain.vms import VirtualMachine, VmBody
from shared.services.catalog import MAX_TOP
from shared.services.recent_lists import DEFAULT_TOP as RECENT_TOP
from shared.services.upload_tickets import DISK_BLOB_NAME, UploadTicket, UploadTicketRequest

TITLE = "VM image catalog"
VERSION = "1.0.0"
# Printable text: the services refuse control characters in names and filters.
PRINTABLE = TEXT.pattern

# -- bodies built by hand in the entry points, described as models -------------------


class ImageRef(BaseModel):
    """A family's newest image, as kept in the family's summary."""

    ImageName: str
    PublishedDate: str = Field(json_schema_extra={"format": "date-time"})
    OS: OSType
    ImageType: ImageKind


class Family(BaseModel):
    ImageFamily: str
    ImageCount: int = Field(ge=0)
    Newest: ImageRef | None
    NewestByOS: dict[str, ImageRef] = Field(
        description="The newest image of the family per OS (`Windows`, `Linux`)."
    )
    StateCounts: dict[str, int] = Field(
        description="Images per effective state now (`Active`, `Deprecated`, `Disabled`; an "
        "image past its end of life counts as `Deprecated`)."
    )
    ExcludedFromLatest: int = Field(ge=0, description="Images held back from latest.")
    Latest: ImageRef | None = Field(
        description="What latest offers now: the newest image that is Active, not past its "
        "end of life and not excluded (null: none is)."
    )
    LatestByOS: dict[str, ImageRef] = Field(description="Latest per OS.")


class FamilyList(BaseModel):
    Families: list[Family]
    Count: int = Field(ge=0)


class ImageProjection(BaseModel):
    """An image with only the fields `select` named (those it has).

    Its schema is `Image`'s with no field required (see `component_schemas`).
    """


class ImagePage(BaseModel):
    Images: list[Image | ImageProjection] = Field(
        description="Whole images, or with `select` only the selected fields of each."
    )
    Count: int = Field(ge=0, le=MAX_TOP)
    ContinuationToken: str | None = Field(
        default=None,
        description="Present when there are more images: pass it as `continuationToken` "
        "with the same filters to read the next page.",
    )


class Health(BaseModel):
    Status: str = Field(json_schema_extra={"enum": ["Healthy", "Unhealthy"]})
    Checks: dict[str, str] = Field(description="`ok`, or why a storage service is not.")
    DurationMs: float | None = None


class VmList(BaseModel):
    VMs: list[VirtualMachine]
    Count: int = Field(ge=0, le=MAX_TOP)
    ContinuationToken: str | None = Field(
        default=None, description="Present when there are more VMs: pass it to read on."
    )


class UploadList(BaseModel):
    Uploads: list[UploadOutcome] = Field(description="Newest first (by when each was first seen).")
    Count: int = Field(ge=0, le=MAX_TOP)
    ContinuationToken: str | None = Field(
        default=None, description="Present when there are more uploads: pass it to read on."
    )


class OperationList(BaseModel):
    Operations: list[Operation] = Field(description="Newest first (by CreatedTime).")
    Count: int = Field(ge=0, le=MAX_TOP)
    ContinuationToken: str | None = Field(
        default=None, description="Present when there are more operations: pass it to read on."
    )


# Every model whose schema the document carries (nested models come along): what the
# endpoints answer (serialisation schemas) and what they accept (validation schemas).
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    Image,
    ImagePage,
    ImageProjection,
    Family,
    FamilyList,
    UploadOutcome,
    ErrorInfo,
    Health,
    Operation,
    VirtualMachine,
    VmList,
    UploadList,
    OperationList,
    UploadTicket,
)
REQUEST_MODELS: tuple[type[BaseModel], ...] = (CaptureRequest, VmBody, UploadTicketRequest)
# A disk's URL as shared.domain.disks checks it (no query, so no SAS; no control
# characters, dot segments or encoded slashes), a pattern valid in ECMA-262 too.
BLOB_URL = MEDIA_LINK.pattern
# Names the models check in code (validators), stated in the schemas for clients.
NAME_PATTERNS: dict[tuple[str, str], tuple[str, int]] = {
    ("Image", "ImageName"): (IMAGE_NAME.pattern, 256),
    ("CaptureRequest", "ImageName"): (IMAGE_NAME.pattern, 256),
    ("CaptureRequest", "ServiceName"): (VM_NAME.pattern, 63),
    ("CaptureRequest", "Name"): (VM_NAME.pattern, 63),
    ("CaptureRequest", "OperationId"): (OPERATION_ID.pattern, 64),
    ("VmOSDisk", "MediaLink"): (BLOB_URL, 2048),
    ("VmDataDisk", "MediaLink"): (BLOB_URL, 2048),
    ("UploadTicketRequest", "BlobName"): (DISK_BLOB_NAME, 255),
    ("UploadTicketRequest", "ImageName"): (IMAGE_NAME.pattern, 256),
}

# -- parameters and responses ------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" or "query"
    schema: dict[str, Any]
    description: str
    required: bool = False
    style: dict[str, Any] = field(default_factory=dict)  # style/explode for arrays

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.where,
            "required": self.required or self.where == "path",
            "description": self.description,
            "schema": self.schema,
            **self.style,
        }


@dataclass(frozen=True)
class Body:
    schema: dict[str, Any]
    description: str = ""


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: where a response's values lead (clients and stateful tests follow)."""

    operation_id: str
    parameters: dict[str, str]  # parameter -> runtime expression

    def to_json(self) -> dict[str, Any]:
        return {"operationId": self.operation_id, "parameters": self.parameters}


@dataclass(frozen=True)
class Response:
    description: str
    schema: dict[str, Any] | None = None  # None: no body (the host's own 401/404)
    headers: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> schema
    links: dict[str, Link] = field(default_factory=dict)


def to_image(expression: str) -> dict[str, Link]:
    return {"GetImage": Link("getImage", {"name": expression})}


VM_AT_PATH = {"service": "$request.path.service", "vm": "$request.path.vm"}
VM_LINKS = {"GetVm": Link("getVm", VM_AT_PATH), "DeleteVm": Link("deleteVm", VM_AT_PATH)}


def ref(model: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model}"}


def error(description: str) -> Response:
    return Response(description, ref("ErrorInfo"))


def enum_of(values: Any) -> dict[str, Any]:
    return {"type": "string", "enum": [v.value for v in values]}


# Examples name a platform image and family of the shipped gallery (shared/data/gallery.json).
EXAMPLE_IMAGE = (
    "b39f27a8b8c64d52b05eac6a62ebad85__Ubuntu-22_04_5-LTS-amd64-server-20240911-en-us-30GB"
)
EXAMPLE_FAMILY = "Ubuntu Server 22.04 LTS"

IMAGE_NAME_PARAM = Param(
    "name",
    "path",
    {
        "type": "string",
        "pattern": f"^{IMAGE_NAME.pattern}$",
        "maxLength": 256,
        "examples": [EXAMPLE_IMAGE],
    },
    "The image's name (unique regardless of letter case).",
)
FAMILY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "pattern": PRINTABLE,
    "examples": [EXAMPLE_FAMILY],
}
OS_PARAM = Param("os", "query", enum_of(OSType), "Only images of this OS.")

INVALID = error("A parameter is not valid (`InvalidParameter`, `InvalidImageName`, ...).")
NO_IMAGE = error("No image has that name (`ImageNotFound`).")
NO_KEY = Response("No function key, or a wrong one (the host answers without a body).")
UNAVAILABLE = Response(
    "Storage is unavailable for now (`StorageUnavailable`); send the request again after "
    "`Retry-After` seconds.",
    ref("ErrorInfo"),
    headers={"Retry-After": {"type": "integer", "minimum": 1}},
)
NO_VM = error("No such VM in that cloud service (`VmNotFound`).")
VM_NAME_SCHEMA = {"type": "string", "pattern": f"^{VM_NAME.pattern}$", "maxLength": 63}
VM_PARAMS = (
    Param("service", "path", VM_NAME_SCHEMA, "The VM's cloud service."),
    Param("vm", "path", VM_NAME_SCHEMA, "The VM's name."),
)
RECENT_PAGING = (
    Param(
        "top",
        "query",
        {"type": "integer", "minimum": 1, "maximum": MAX_TOP, "default": RECENT_TOP},
        "Page size.",
    ),
    Param(
        "continuationToken",
        "query",
        {"type": "string", "maxLength": 2048},
        "The previous page's `ContinuationToken`.",
    ),
)
READ_ONLY = error("A platform (`Public`) image can't be changed (`PlatformImageReadOnly`).")


# Dates the catalog takes (years 1900-2999), as RFC 3339 dates or dates and times.
_YEARS = "^(19|2[0-9])[0-9]{2}-"
LIFECYCLE_SCHEMAS: dict[str, dict[str, Any]] = {
    "State": {
        **enum_of(ImageState),
        "description": "`Deprecated` and `Disabled` images are never latest.",
    },
    "ReplacedBy": {
        "type": ["string", "null"],
        "pattern": f"^({IMAGE_NAME.pattern})?$",
        "maxLength": 256,
        "description": "Another image that replaces this one, for a `Deprecated` or "
        "`Disabled` image or one with an `EndOfLifeDate` (`InvalidReplacement` otherwise).",
    },
    "ExcludeFromLatest": {"type": "boolean", "description": "Hold it back from latest."},
    "EndOfLifeDate": {
        "anyOf": [
            {"type": "string", "format": "date-time", "pattern": _YEARS},
            {"type": "string", "format": "date", "pattern": _YEARS},
            {"type": "string", "maxLength": 0},
            {"type": "null"},
        ],
        "description": "Once past, the image counts as `Deprecated` (a date alone: midnight "
        'UTC); `null` or `""` clears it.',
    },
    "DeletionProtection": {
        "type": "boolean",
        "description": "Refuse removal (`ImageDeletionProtected`) until the end of life.",
    },
}


# What the JSON API adds to an image's stored fields when it answers.
COMPUTED_IMAGE_PROPERTIES: dict[str, Any] = {
    "EffectiveState": {
        **enum_of(ImageState),
        "description": "What `State` counts as now: an Active image past its `EndOfLifeDate` "
        "is `Deprecated`.",
    },
    "ContentHashProgress": {
        "type": "object",
        "description": "Only on `GET /api/images/{name}`, while the content hash of the "
        "image's disks is being computed in the background (then `ContentHash` appears).",
        "required": ["Status", "BytesHashed", "Percent"],
        "properties": {
            "Status": {"type": "string", "enum": [s.value for s in HashJobStatus]},
            "BytesHashed": {"type": "integer", "minimum": 0},
            "BytesTotal": {"type": "integer", "minimum": 0},
            "BytesRead": {"type": "integer", "minimum": 0},
            "Percent": {"type": "number", "minimum": 0, "maximum": 100},
            "Disk": {"type": "string"},
            "Updated": {"type": "string", "format": "date-time"},
            "Error": {"type": "string"},
        },
    },
}


def image_update_schema() -> dict[str, Any]:
    """PATCH body: some of the updatable fields, with the service's rules."""
    props: dict[str, Any] = {}
    for name in UPDATABLE_FIELDS:
        if name in LIFECYCLE_SCHEMAS:
            props[name] = LIFECYCLE_SCHEMAS[name]
            continue
        if name == "ShowInGui":
            props[name] = {"type": "boolean"}
            continue
        rule = TEXT_RULES[name]
        if name == "Label":
            props[name] = {"type": "string", "minLength": 1, "maxLength": rule.max_len}
        else:  # null or "" clears it
            rule = replace(rule, required=False)
            props[name] = {"type": ["string", "null"], "maxLength": rule.max_len}
        props[name]["pattern"] = rule.pattern
    return {
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        "minProperties": 1,
        "description": "The fields to change; `null` clears an optional one. Field names "
        "are matched regardless of letter case.",
    }


# -- operations --------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    responses: dict[int, Response]
    params: tuple[Param, ...] = ()
    body: Body | None = None
    secured: bool = False  # needs a function key
    tag: str = "catalog"

    def to_json(self) -> dict[str, Any]:
        responses = dict(self.responses)
        if self.secured:
            responses.setdefault(401, NO_KEY)
        responses.setdefault(503, UNAVAILABLE)  # any call may meet a storage outage
        doc: dict[str, Any] = {
            "operationId": self.operation_id,
            "summary": self.summary,
            "tags": [self.tag],
            "parameters": [p.to_json() for p in self.params],
            "responses": {
                str(status): _response_json(r) for status, r in sorted(responses.items())
            },
        }
        if self.body is not None:
            doc["requestBody"] = {
                "required": True,
                "description": self.body.description,
                "content": {"application/json": {"schema": self.body.schema}},
            }
        doc["security"] = [{"functionKey": []}, {"functionKeyQuery": []}] if self.secured else []
        return doc


def _response_json(r: Response) -> dict[str, Any]:
    doc: dict[str, Any] = {"description": r.description}
    if r.headers:
        doc["headers"] = {name: {"schema": schema} for name, schema in r.headers.items()}
    if r.schema is not None:
        doc["content"] = {"application/json": {"schema": r.schema}}
    if r.links:
        doc["links"] = {name: link.to_json() for name, link in r.links.items()}
    return doc


DOCTOR_REPORT: dict[str, Any] = {
    "type": "object",
    "required": ["Healthy", "Problems", "Checked"],
    "properties": {
        "Healthy": {"type": "boolean"},
        "Problems": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["Kind", "Subject", "Detail"],
                "properties": {
                    "Kind": {"type": "string"},
                    "Subject": {"type": "string"},
                    "Detail": {"type": "string"},
                },
            },
        },
        "Checked": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
}

OPERATIONS: list[Operation] = [
    Operation(
        "get",
        "/api/health",
        "health",
        "Is the catalog's storage reachable?",
        {
            200: Response("Healthy.", ref("Health")),
            503: Response("Unhealthy.", ref("Health"), UNAVAILABLE.headers),
        },
        tag="health",
    ),
    Operation(
        "get",
        "/api/images",
        "listImages",
        "Images, filtered and paged",
        {
            200: Response(
                "One page of images.",
                ref("ImagePage"),
                links=to_image("$response.body#/Images/0/ImageName"),
            ),
            400: INVALID,
        },
        params=(
            Param("family", "query", FAMILY_SCHEMA, "Only this family, newest first."),
            OS_PARAM,
            Param("category", "query", enum_of(ImageCategory), "Only this category."),
            Param("type", "query", enum_of(ImageKind), "Only this kind of image."),
            Param(
                "state",
                "query",
                enum_of(ImageState),
                "Only images in this effective state now (past its end of life, an Active "
                "image counts as Deprecated).",
            ),
            Param(
                "contentHash",
                "query",
                {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                "Only images with a disk of this content (its SHA-256, as `ContentHash`).",
            ),
            Param(
                "select",
                "query",
                {
                    "type": "array",
                    "items": {"type": "string", "enum": list(SELECTABLE_FIELDS)},
                    "minItems": 1,
                },
                "Return only these fields of each image (comma separated).",
                style={"style": "form", "explode": False},
            ),
            Param(
                "top",
                "query",
                {"type": "integer", "minimum": 1, "maximum": MAX_TOP, "default": 100},
                "Page size.",
            ),
            Param(
                "continuationToken",
                "query",
                {"type": "string", "maxLength": 2048},
                "The previous page's `ContinuationToken` (only valid with the same filters).",
            ),
        ),
    ),
    Operation(
        "get",
        "/api/images/{name}",
        "getImage",
        "One image",
        {200: Response("The image.", ref("Image")), 400: INVALID, 404: NO_IMAGE},
        params=(IMAGE_NAME_PARAM,),
    ),
    Operation(
        "patch",
        "/api/images/{name}",
        "updateImage",
        "Change an image's label, description, family, EULA, VM size, visibility or lifecycle",
        {
            200: Response(
                "The image as it is now.",
                ref("Image"),
                links=to_image("$response.body#/ImageName"),
            ),
            400: INVALID,
            403: READ_ONLY,
            404: NO_IMAGE,
        },
        params=(IMAGE_NAME_PARAM,),
        body=Body(image_update_schema()),
        secured=True,
    ),
    Operation(
        "delete",
        "/api/images/{name}",
        "deleteImage",
        "Remove an image; release its disks' leases, or delete the disks",
        {
            200: Response(
                "The image that was removed.",
                ref("Image"),
                links=to_image("$request.path.name"),
            ),
            400: INVALID,
            403: READ_ONLY,
            404: NO_IMAGE,
            409: error(
                "The image has deletion protection (`ImageDeletionProtected`, saying until when)."
            ),
        },
        params=(
            IMAGE_NAME_PARAM,
            Param(
                "deleteVhd",
                "query",
                {"type": "boolean", "default": False},
                "Also delete the disk blobs no other image uses (otherwise release their "
                "leases, so they can be deleted).",
            ),
        ),
        secured=True,
    ),
    Operation(
        "get",
        "/api/families",
        "listFamilies",
        "Image families, each with its count and newest image",
        {
            200: Response(
                "Every family.",
                ref("FamilyList"),
                links={
                    "LatestInFamily": Link(
                        "latestInFamily", {"family": "$response.body#/Families/0/ImageFamily"}
                    )
                },
            )
        },
    ),
    Operation(
        "get",
        "/api/families/{family}/latest",
        "latestInFamily",
        "The latest image of a family: its newest (by PublishedDate) that is Active, not past "
        "its end of life and not excluded from latest, optionally of one OS",
        {
            200: Response(
                "The latest image.", ref("Image"), links=to_image("$response.body#/ImageName")
            ),
            400: INVALID,
            404: error(
                "No such family, or none of its images has that OS (`FamilyNotFound`), or none "
                "may be offered as latest now (`NoLatestImage`)."
            ),
        },
        params=(
            Param("family", "path", FAMILY_SCHEMA, "The family's name."),
            OS_PARAM,
            Param(
                "includeExcluded",
                "query",
                {"type": "boolean", "default": False},
                "Count images held back with `ExcludeFromLatest` too.",
            ),
        ),
    ),
    Operation(
        "get",
        "/api/uploads/{blobName}",
        "getUpload",
        "What became of a blob dropped into the uploads container",
        {
            200: Response(
                "`Pending`, `Registered` or `Rejected`.",
                ref("UploadOutcome"),
                links=to_image("$response.body#/ImageName"),
            ),
            400: INVALID,
            404: error("No such upload has been seen (`UploadNotFound`)."),
        },
        params=(
            Param(
                "blobName",
                "path",
                {"type": "string", "minLength": 1, "maxLength": 1024},
                "The blob's name in the uploads container; it may contain `/`.",
            ),
        ),
        tag="uploads",
    ),
    Operation(
        "get",
        "/api/uploads",
        "listUploads",
        "Recent uploads and what became of each, newest first, paged",
        {
            200: Response(
                "One page of upload outcomes.",
                ref("UploadList"),
                links={
                    "GetUpload": Link(
                        "getUpload", {"blobName": "$response.body#/Uploads/0/BlobName"}
                    )
                },
            ),
            400: INVALID,
        },
        params=(
            *RECENT_PAGING,
            Param(
                "blobName",
                "query",
                {"type": "string", "minLength": 1, "maxLength": 1024},
                "Only this upload (a list of none or one; `top` and `continuationToken` "
                "don't apply): what a page waiting for its upload to be seen polls.",
            ),
        ),
        tag="uploads",
    ),
    Operation(
        "post",
        "/api/uploads",
        "requestUpload",
        "A short-lived SAS to upload one disk straight to the uploads container (create and "
        "write that one blob only, for 15 minutes)",
        {
            201: Response("The blob's URL with its SAS.", ref("UploadTicket")),
            400: error("Not a blob name this catalog takes (`InvalidParameter`, ...)."),
            409: error(
                "The blob exists already (`UploadExists`) or the image name is taken "
                "(`ImageNameTaken`)."
            ),
        },
        body=Body(ref("UploadTicketRequest")),
        secured=True,
        tag="uploads",
    ),
    Operation(
        "get",
        "/api/operations",
        "listOperations",
        "Recent operations (captures), newest first, paged",
        {
            200: Response(
                "One page of operations.",
                ref("OperationList"),
                links={
                    "GetOperation": Link(
                        "getOperation", {"id": "$response.body#/Operations/0/OperationId"}
                    )
                },
            ),
            400: INVALID,
        },
        params=RECENT_PAGING,
        tag="captures",
    ),
    Operation(
        "post",
        "/api/captures",
        "requestCapture",
        "Capture a stopped VM into an image (as Save-AzureVMImage); runs in the background",
        {
            202: Response(
                "Accepted (or already known, by OperationId): the operation, also at the "
                "`Location` header's URL.",
                ref("Operation"),
                headers={"Location": {"type": "string"}},
                links={"GetOperation": Link("getOperation", {"id": "$response.body#/OperationId"})},
            ),
            400: error("The request is not valid (`InvalidCaptureRequest`, ...)."),
            404: NO_VM,
            409: error(
                "The image name is taken (`ImageNameTaken`), the VM is running "
                "(`VmNotStopped`), or the OperationId was used for another request "
                "(`OperationIdConflict`)."
            ),
        },
        body=Body(ref("CaptureRequest")),
        secured=True,
        tag="captures",
    ),
    Operation(
        "get",
        "/api/operations/{id}",
        "getOperation",
        "The status of an asynchronous operation (a capture)",
        {
            200: Response(
                "`InProgress`, `Succeeded` or `Failed` with the error.", ref("Operation")
            ),
            400: error("Not an operation id (`InvalidOperationId`)."),
            404: error("No operation has that id (`OperationNotFound`)."),
        },
        params=(
            Param(
                "id",
                "path",
                {"type": "string", "pattern": f"^{OPERATION_ID.pattern}$", "maxLength": 64},
                "The operation's id.",
            ),
        ),
        tag="captures",
    ),
    Operation(
        "get",
        "/api/vms",
        "listVms",
        "The VM inventory, paged",
        {
            200: Response(
                "One page of VMs.",
                ref("VmList"),
                links={
                    "GetVm": Link(
                        "getVm",
                        {
                            "service": "$response.body#/VMs/0/ServiceName",
                            "vm": "$response.body#/VMs/0/Name",
                        },
                    )
                },
            ),
            400: INVALID,
        },
        params=(
            Param(
                "top",
                "query",
                {"type": "integer", "minimum": 1, "maximum": MAX_TOP, "default": 100},
                "Page size.",
            ),
            Param(
                "continuationToken",
                "query",
                {"type": "string", "maxLength": 4096},
                "The previous page's `ContinuationToken`.",
            ),
        ),
        tag="vms",
    ),
    Operation(
        "get",
        "/api/vms/{service}/{vm}",
        "getVm",
        "One VM of the inventory",
        {200: Response("The VM.", ref("VirtualMachine")), 400: INVALID, 404: NO_VM},
        params=VM_PARAMS,
        tag="vms",
    ),
    Operation(
        "put",
        "/api/vms/{service}/{vm}",
        "putVm",
        "Create or replace a VM of the inventory",
        {
            200: Response("Replaced.", ref("VirtualMachine"), links=VM_LINKS),
            201: Response("Created.", ref("VirtualMachine"), links=VM_LINKS),
            400: error(
                "Not valid, or a disk outside the VM disk containers (`NotInVmDiskContainer`)."
            ),
            409: error("Another VM record names one of its disks (`DiskInUse`)."),
        },
        params=VM_PARAMS,
        body=Body(ref("VmBody")),
        secured=True,
        tag="vms",
    ),
    Operation(
        "delete",
        "/api/vms/{service}/{vm}",
        "deleteVm",
        "Remove a VM from the inventory (its disks are not touched)",
        {
            204: Response("Removed.", links={"GetVm": Link("getVm", VM_AT_PATH)}),
            400: INVALID,
            404: NO_VM,
        },
        params=VM_PARAMS,
        secured=True,
        tag="vms",
    ),
    Operation(
        "get",
        "/api/openapi.json",
        "openapi",
        "This document",
        {200: Response("The OpenAPI document.", {"type": "object"})},
        tag="meta",
    ),
    Operation(
        "get",
        "/api/admin/doctor",
        "checkInvariants",
        "The catalog's invariants checked against storage (what `vmimage doctor` shows)",
        {
            200: Response("The report; `Healthy` is false when anything is wrong.", DOCTOR_REPORT),
            400: INVALID,
        },
        params=(
            Param(
                "stuckAfterSeconds",
                "query",
                {"type": "integer", "minimum": 0, "maximum": 9999999, "default": 3600},
                "An operation InProgress for longer than this is reported stuck.",
            ),
        ),
        secured=True,
        tag="meta",
    ),
    Operation(
        "post",
        "/api/admin/hashes",
        "requestMissingHashes",
        "Send a content hash job for every image that has disks of ours but no content hash "
        "and no job under way (images registered before content hashes, or a job that failed)",
        {
            202: Response(
                "How many images lack a hash, and how many jobs were sent.",
                {
                    "type": "object",
                    "required": ["ImagesWithoutHash", "Requested"],
                    "properties": {
                        "ImagesWithoutHash": {"type": "integer", "minimum": 0},
                        "Requested": {"type": "integer", "minimum": 0},
                    },
                },
            ),
        },
        secured=True,
        tag="meta",
    ),
]


def _untitled(schema: Any) -> Any:
    """Drop pydantic's generated property titles ("Imagename"): noise for readers."""
    if isinstance(schema, dict):
        return {k: _untitled(v) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_untitled(v) for v in schema]
    return schema


def component_schemas() -> dict[str, Any]:
    _, doc = models_json_schema(
        [(m, "serialization") for m in RESPONSE_MODELS]
        + [(m, "validation") for m in REQUEST_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    schemas = {name: {**_untitled(s), "title": name} for name, s in doc["$defs"].items()}
    for (model, prop), (pattern, longest) in NAME_PATTERNS.items():
        target = schemas[model]["properties"][prop]
        if "anyOf" in target:  # optional: constrain the string branch
            target = next(t for t in target["anyOf"] if t.get("type") == "string")
        target.update(pattern=f"^{pattern}$", maxLength=longest)
    image = schemas["Image"]
    image["properties"].update(COMPUTED_IMAGE_PROPERTIES)
    schemas["ImageProjection"] = {
        **{k: v for k, v in image.items() if k != "required"},
        "title": "ImageProjection",
        "description": "An image with only the fields `select` named (those it has).",
    }
    return schemas


def document() -> dict[str, Any]:
    """The document, a fresh copy each time (callers may change theirs)."""
    return copy.deepcopy(_document())


@cache
def _document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = op.to_json()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Images, families and uploads of the VM image catalog. Errors "
            "are JSON `{Code, Message}`; changes need a function key.",
        },
        "paths": paths,
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
    }
