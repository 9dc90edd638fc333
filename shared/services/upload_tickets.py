"""Upload tickets: a short-lived, least-privilege SAS for ONE new blob in the drop zone.

The portal uploads a disk from the browser straight to storage with it, never
through the function app. The SAS may only create and write that blob (no read,
no delete, no list, no other blob) for 15 minutes, which is enough to create the
page blob and write its pages; each page write is checked against it when made.
A registered disk is leased, so a ticket can't overwrite one either.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from azure.storage.blob import BlobSasPermissions, ContainerClient
from pydantic import BaseModel, ConfigDict, Field

from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.sas import SasSigner
from shared.domain.errors import Conflict, InvalidParameter
from shared.domain.images import ImageNameTaken, image_name_from_blob, validate_image_name
from shared.domain.uploads import DISK_EXTENSIONS, UploadKind, upload_kind

LIFETIME = timedelta(minutes=15)
PERMISSIONS = "cw"
# The browser sends pages of this size (Put Page takes at most 4 MiB).
PAGE_BYTES = 4 * 1024 * 1024
# One blob at the top of the drop zone: no folders (those are VM image disks, which
# a manifest registers), nothing a URL would have to escape.
BLOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
# The same with a disk's extension, as the OpenAPI document states it (with maxLength 255).
DISK_BLOB_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*\.(?:{})".format(
    "|".join(
        "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in ext[1:])
        for ext in DISK_EXTENSIONS
    )
)


class UploadExists(Conflict):
    code = "UploadExists"


class UploadTicketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    BlobName: str = Field(min_length=1, max_length=255, json_schema_extra={"examples": ["d.vhd"]})
    ImageName: str | None = Field(
        default=None,
        description="The image to register (default: the blob name without its extension).",
    )


class UploadTicket(BaseModel):
    BlobName: str
    ImageName: str
    Url: str = Field(description="The blob's URL with a SAS that may only create and write it.")
    IssuedOn: datetime = Field(description="The catalog's time when the SAS was issued.")
    ExpiresOn: datetime
    Permissions: str = Field(description="What the SAS allows: `cw` (create, write).")
    PageBytes: int = Field(description="Write the disk in pages of at most this many bytes.")


def check_blob_name(name: str) -> str:
    if not BLOB_NAME.fullmatch(name) or upload_kind(name) != UploadKind.DISK:
        raise InvalidParameter(
            f"'{name[:80]}' can't be uploaded here: name the blob like 'my-disk.vhd' "
            f"(letters, digits, '.', '-', '_', ending in {', '.join(DISK_EXTENSIONS)})"
        )
    return name


def issue_ticket(
    doc: Any,
    signer: SasSigner,
    uploads: ContainerClient,
    catalog: ImageCatalog,
    now: datetime | None = None,
) -> UploadTicket:
    if not isinstance(doc, dict):
        raise InvalidParameter('send a JSON object: {"BlobName": "my-disk.vhd"}')
    request = UploadTicketRequest.model_validate(doc)
    blob = check_blob_name(request.BlobName)
    chosen = request.ImageName if request.ImageName is not None else image_name_from_blob(blob)
    image = validate_image_name(chosen)
    # Fail before a byte is sent: the blob name is free, and so is the image name.
    if uploads.get_blob_client(blob).exists():
        raise UploadExists(
            f"the uploads container already has a blob named '{blob}': choose another name"
        )
    if catalog.find(image) is not None:
        raise ImageNameTaken(f"an image named '{image}' exists already: choose another name")
    url, expires = signer.blob_url(
        uploads.container_name, blob, BlobSasPermissions.from_string(PERMISSIONS), LIFETIME, now
    )
    return UploadTicket(
        BlobName=blob,
        ImageName=image,
        Url=url,
        IssuedOn=expires - LIFETIME,
        ExpiresOn=expires,
        Permissions=PERMISSIONS,
        PageBytes=PAGE_BYTES,
    )
