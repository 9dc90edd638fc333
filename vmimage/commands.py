"""One function per command: call the catalog, print the answer, return the exit code."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmimage import lifecycle
from vmimage.api import Catalog, is_loopback, poll
from vmimage.errors import FAILED, OK, ApiError, Rejected, Unreachable, UsageError
from vmimage.output import Column, Printer, date_of, field, mb_per_s, size_pair, size_text


@dataclass
class Ctx:
    args: argparse.Namespace
    out: Printer
    catalog: Catalog


def run(args: argparse.Namespace, printer: Printer) -> int:
    ctx = Ctx(args, printer, Catalog(args.url, args.key))
    if args.command == "vm":
        return VM_COMMANDS[args.vm_command](ctx)
    return COMMANDS[args.command](ctx)


# -- images ------------------------------------------------------------------------------

IMAGE_COLUMNS = [
    Column("NAME", field("ImageName")),
    Column("TYPE", field("ImageType")),
    Column("OS", field("OS")),
    Column("CATEGORY", field("Category")),
    Column("FAMILY", field("ImageFamily"), 32),
    Column("PUBLISHED", date_of("PublishedDate")),
    Column("GB", field("LogicalSizeInGB"), right=True),
    Column("LABEL", field("Label"), 40),
]


def selected_columns(rows: list[dict[str, Any]]) -> list[Column]:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return [Column(k, field(k), None if k == "ImageName" else 40) for k in keys]


def list_images(ctx: Ctx) -> int:
    a = ctx.args
    params = {
        "family": a.family,
        "type": a.type,
        "os": a.os,
        "category": a.category,
        "select": a.select,
        "top": a.top,
        "continuationToken": a.continuation_token,
        "state": a.state,
        "contentHash": a.content_hash,
    }
    if a.all:
        images: list[dict[str, Any]] = []
        for page in ctx.catalog.iter_image_pages(params):
            images += page.get("Images", [])
        doc: dict[str, Any] = {"Images": images, "Count": len(images)}
    else:
        doc = ctx.catalog.list_images(params)
        images = doc.get("Images", [])
    if ctx.out.as_json:
        ctx.out.json(doc)
    else:
        ctx.out.table(images, selected_columns(images) if a.select else IMAGE_COLUMNS)
    if doc.get("ContinuationToken"):
        ctx.out.note("(more images: --all lists them all, or --continuation-token TOKEN; --json)")
    return OK


def show(ctx: Ctx) -> int:
    return _image(ctx, ctx.catalog.image(ctx.args.name))


def latest(ctx: Ctx) -> int:
    a = ctx.args
    return _image(ctx, ctx.catalog.latest(a.family, a.os, a.include_excluded))


def _image(ctx: Ctx, image: dict[str, Any]) -> int:
    if ctx.out.as_json:
        ctx.out.json(image)
    else:
        ctx.out.record(image, omit=("Probe",))
    return OK


FAMILY_COLUMNS = [
    Column("FAMILY", field("ImageFamily")),
    Column("IMAGES", field("ImageCount"), right=True),
    *(
        Column(state.upper(), lambda f, s=state: (f.get("StateCounts") or {}).get(s), right=True)
        for state in ("Active", "Deprecated", "Disabled")
    ),
    Column("LATEST", lambda f: (f.get("Latest") or {}).get("ImageName")),
    Column("NEWEST", lambda f: (f.get("Newest") or {}).get("ImageName")),
    Column("OS", lambda f: (f.get("Newest") or {}).get("OS")),
    Column("PUBLISHED", lambda f: str((f.get("Newest") or {}).get("PublishedDate", ""))[:10]),
]


def families(ctx: Ctx) -> int:
    doc = ctx.catalog.families()
    if ctx.out.as_json:
        ctx.out.json(doc)
    else:
        ctx.out.table(doc.get("Families", []), FAMILY_COLUMNS)
    return OK


def remove(ctx: Ctx) -> int:
    a = ctx.args
    image = ctx.catalog.remove_image(a.name, a.delete_vhd)
    if ctx.out.as_json:
        ctx.out.json(image)
    else:
        disks = "its disks deleted" if a.delete_vhd else "its disks kept (and released)"
        ctx.out.line(f"Removed image {image.get('ImageName', a.name)}; {disks}.")
    return OK


PROBLEM_COLUMNS = [
    Column("PROBLEM", field("Kind")),
    Column("SUBJECT", field("Subject")),
    Column("DETAIL", field("Detail")),
]


def doctor(ctx: Ctx) -> int:
    """The catalog's invariants: exit 0 when all hold, 1 with the list when not."""
    report = ctx.catalog.doctor(ctx.args.stuck_after)
    if ctx.out.as_json:
        ctx.out.json(report)
    elif report.get("Problems"):
        ctx.out.table(report["Problems"], PROBLEM_COLUMNS)
    checked = ", ".join(f"{n} {what.lower()}" for what, n in report.get("Checked", {}).items())
    if report.get("Healthy"):
        ctx.out.note(f"All invariants hold ({checked} checked).")
        return OK
    ctx.out.note(f"{len(report.get('Problems', []))} problem(s) found ({checked} checked).")
    return FAILED


# -- classic clients ---------------------------------------------------------------------


def publishsettings(ctx: Ctx) -> int:
    """A management certificate registered for the subscription, and the files to use it."""
    from vmimage import publishsettings as ps

    a = ctx.args
    local = is_loopback(a.url)
    subscription = a.subscription
    if subscription is None:
        if not local:
            raise UsageError("MissingSubscription", "give --subscription for a deployment")
        from shared.settings import DEFAULTS

        subscription = DEFAULTS["CLASSIC_SUBSCRIPTION_ID"]
    url = (a.management_url or ps.management_url(a.url)).rstrip("/")
    out = Path(a.out)
    if out.suffix.lower() != ".publishsettings":
        out = out.with_name(out.name + ".publishsettings")
    pem = out.with_suffix(".pem")
    cert = ps.new_management_certificate(a.name)
    ctx.catalog.classic(
        "POST", f"/{subscription}/certificates", ps.add_certificate_body(cert), ok=(201,)
    )
    ps.write_private(out, ps.publish_settings_xml(cert, url, subscription, a.name))
    ps.write_private(pem, cert.pem())
    ca = ps.local_ca() if local else None
    doc = {
        "PublishSettings": str(out),
        "CertFile": str(pem),
        "SubscriptionId": subscription,
        "ServiceManagementUrl": url,
        "Thumbprint": cert.thumbprint,
        "NotAfter": cert.certificate.not_valid_after_utc.isoformat().replace("+00:00", "Z"),
        "TrustCa": str(ca) if ca else None,
    }
    if ctx.out.as_json:
        ctx.out.json(doc)
        return OK
    host = url.split("://", 1)[1]
    trust = f"REQUESTS_CA_BUNDLE={ca} " if ca else ""
    cacert = f"--cacert {ca} " if ca else ""
    lines = [
        f"Registered management certificate {cert.thumbprint} for subscription {subscription}",
        f"(valid until {doc['NotAfter'][:10]}); wrote {out} and {pem} (key + certificate).",
        "",
        f"  Classic tools: import {out} (Import-AzurePublishSettingsFile, azure account import).",
    ]
    if ca:
        lines.append(f"  They connect to {url}: trust its CA, {ca}, first.")
    lines += [
        f'  Python: {trust}python -c "from azure.servicemanagement import '
        f"ServiceManagementService as S; print(len(S('{subscription}', cert_file='{pem}', "
        f"host='{host}').list_os_images()))\"",
        f"  curl: curl {cacert}--cert {pem} -H 'x-ms-version: {ps.X_MS_VERSION}' "
        f"{url}/{subscription}/services/images",
    ]
    for line in lines:
        ctx.out.line(line)
    return OK


# -- uploads -----------------------------------------------------------------------------


def upload(ctx: Ctx) -> int:
    from vmimage.upload import blob_service, upload_as_is, upload_converted, upload_disk

    a = ctx.args
    path: Path = a.disk
    as_is = bool(a.convert_on_server)
    blob, image_name, metadata = _upload_plan(a, as_is)
    check = _check_locally(path, a.os)
    ctx.out.note(f"Checked {path.name}: {check.summary}.")
    if check.disks > 1 and not as_is:
        # Several disks make a VM image: the catalog converts them (one blob, one job).
        ctx.out.note(f"{path.name} holds {check.disks} disks: sending it as it is.")
        as_is = True
        blob, image_name, metadata = _upload_plan(a, as_is)
    send = (
        upload_as_is if as_is else upload_disk if check.source_format is None else upload_converted
    )
    if check.source_format is not None and not as_is:
        ctx.out.note(f"Converting {path.name} ({check.source_format}) to a fixed VHD on the way.")
    if ctx.catalog.image_exists(image_name):
        raise Rejected(
            "ImageNameTaken",
            f"an image named '{image_name}' already exists: pick another --image-name, "
            f"or remove it first (vmimage rm {image_name})",
        )
    if not a.storage_connection_string and not a.account_url and not is_loopback(a.url):
        raise UsageError(
            "StorageNotGiven",
            "say where to upload: --storage-connection-string or --account-url "
            "(or VMIMAGE_STORAGE_CONNECTION_STRING / VMIMAGE_ACCOUNT_URL)",
        )
    try:
        service = blob_service(a.storage_connection_string, a.account_url)
    except ValueError as e:  # a malformed connection string or URL
        raise UsageError("InvalidStorageSettings", str(e).splitlines()[0]) from e
    client = service.get_blob_client(a.container, blob)
    bar = ctx.out.progress_bar(blob)
    try:
        stats = send(
            client,
            path,
            metadata,
            workers=a.workers,
            overwrite=a.overwrite,
            progress=None
            if bar is None
            else lambda s: bar.update(s.sent, s.data_estimate, s.covered, s.size, s.elapsed()),
        )
    except Exception as e:
        raise _storage_error(e, blob, a.container, client) from e
    finally:
        if bar is not None:
            bar.close()
    ctx.out.note(
        f"Uploaded {a.container}/{blob} ({size_text(stats.size)}): {size_text(stats.sent)} of "
        f"data sent, {size_text(stats.size - stats.sent)} of holes and zeros skipped, in "
        f"{stats.seconds:.1f}s ({mb_per_s(stats.sent, stats.seconds):.1f} MB/s)."
    )
    if a.no_wait:
        doc = {
            "BlobName": blob,
            "Container": a.container,
            "Url": client.url.split("?")[0],
            "ImageName": image_name,
            "Status": "Uploaded",
            "BytesSent": stats.sent,
            "SizeInBytes": stats.size,
        }
        ctx.out.json(doc) if ctx.out.as_json else ctx.out.record(doc)
        ctx.out.note(f"Follow it with: vmimage status {blob} --wait")
        return OK
    ctx.out.note(f"Waiting for the catalog to judge {blob} ...")
    return _wait_for_outcome(ctx, blob, stats.etag, a.timeout)


def _upload_plan(a: argparse.Namespace, as_is: bool) -> tuple[str, str, dict[str, str]]:
    """(blob name, image name, blob metadata), checked before anything is read or sent.

    Sent as it is (`as_is`), the blob keeps the file's name, whose extension must be a
    disk image's; otherwise it is a fixed VHD page blob, named `.vhd` (the file's name
    with its disk extension changed to `.vhd`).
    """
    from shared.domain.errors import CatalogError
    from shared.domain.images import image_name_from_blob, validate_image_name
    from shared.domain.uploads import DISK_EXTENSIONS, is_disk_name

    path: Path = a.disk
    if not path.is_file():
        raise UsageError("FileNotFound", f"{path}: no such file")
    default = path.name
    if not as_is and is_disk_name(default) and not default.lower().endswith(".vhd"):
        default = default.rsplit(".", 1)[0] + ".vhd"
    blob = a.name or default
    wanted = DISK_EXTENSIONS if as_is else (".vhd",)
    if not blob.lower().endswith(wanted) or blob.endswith("/") or len(blob) > 1024:
        what = (
            f"one of {', '.join(DISK_EXTENSIONS)} (it is sent as it is)"
            if as_is
            else ".vhd (the disk goes up as a fixed VHD page blob)"
        )
        raise UsageError(
            "InvalidBlobName",
            f"'{blob[:100]}': the blob name must end in {what}; use --name NAME"
            f"{wanted[0] if not as_is else '.EXT'}",
        )
    image_name = a.image_name or image_name_from_blob(blob)
    try:
        validate_image_name(image_name)
    except CatalogError as e:
        raise UsageError(e.code, e.message) from e
    declared = {
        "imagename": a.image_name,
        "label": a.label,
        "imagefamily": a.family,
        "os": a.os,
        "osstate": a.os_state,
        "description": a.description,
        "excludefromlatest": "true" if a.exclude_from_latest else None,
    }
    metadata = {k: v for k, v in declared.items() if v}
    for key, value in metadata.items():
        if not value.isascii() or not value.isprintable() or len(value) > 4096:
            raise UsageError(
                "InvalidMetadata",
                f"{key}: use printable ASCII of at most 4096 characters "
                "(blob metadata travels in HTTP headers)",
            )
    return blob, image_name, metadata


def _check_locally(path: Path, declared_os: str | None) -> Any:
    from shared.domain.vhd import VhdRejected
    from vmimage.upload import check_disk

    try:
        check = check_disk(path)
    except VhdRejected as e:
        raise Rejected(e.code, f"{path.name}: {e.message} (nothing was uploaded)") from e
    except OSError as e:
        raise UsageError("CannotReadFile", f"{path}: {e.strerror or e}") from e
    if check.os is None and declared_os is None:
        raise Rejected(
            "OSNotDetermined",
            f"{path.name}: no operating system found on the disk ({check.summary}); declare it "
            "with --os Linux or --os Windows (nothing was uploaded)",
        )
    return check


def _storage_error(e: Exception, blob: str, container: str, client: Any) -> Exception:
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ServiceRequestError,
        ServiceResponseError,
    )

    where = client.url.split("?")[0]
    if isinstance(e, ResourceExistsError) or getattr(e, "error_code", None) == "BlobAlreadyExists":
        return Rejected(
            "BlobExists",
            f"a blob named '{blob}' is already in the '{container}' container: "
            "pick another --name, or pass --overwrite",
        )
    if isinstance(e, ServiceRequestError | ServiceResponseError):
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        return Unreachable(
            "StorageUnreachable", f"cannot reach the storage account ({where}): {first}"
        )
    if isinstance(e, ClientAuthenticationError) and not isinstance(e, HttpResponseError):
        return ApiError("StorageAuthenticationFailed", str(e).splitlines()[0])
    if isinstance(e, HttpResponseError):
        code = getattr(e, "error_code", None) or f"Http{e.status_code}"
        if code in ("LeaseIdMissing", "LeaseIdMismatchWithBlobOperation"):
            return Rejected(
                "BlobInUse",
                f"'{blob}' is held by a registered image and can't be overwritten: remove the "
                "image first (vmimage rm NAME), or upload under another --name",
            )
        if code == "ContainerNotFound":
            return ApiError(code, f"the container '{container}' does not exist ({where})")
        return ApiError(code, (e.message or str(e)).splitlines()[0], e.status_code or 0)
    if isinstance(e, AzureError):
        return ApiError("StorageError", str(e).splitlines()[0] if str(e) else type(e).__name__)
    return e


def _etag(value: Any) -> str:
    return str(value or "").strip('"')


def _judged(doc: dict[str, Any]) -> bool:
    if doc.get("Status") == "Converting":
        return False
    if doc.get("Status") != "Pending":
        return True
    # A disk in `<name>.image/` stays Pending until its manifest comes; validated is done.
    return doc.get("Kind") == "VmImageDisk" and not doc.get("NextCheck")


def _wait_for_outcome(ctx: Ctx, blob: str, etag: str | None, timeout: float) -> int:
    def fetch() -> dict[str, Any] | None:
        try:
            doc = ctx.catalog.upload_outcome(blob)
        except ApiError as e:
            if e.status == 404:  # not seen yet
                return None
            raise
        if etag and doc.get("ETag") and _etag(doc["ETag"]) != _etag(etag):
            return None  # the outcome of an earlier blob of that name
        return doc

    outcome = poll(
        fetch, _judged, timeout, f"the registration of {blob}", on_change=_progress_notes(ctx)
    )
    return _print_outcome(ctx, outcome)


def conversion_progress(doc: dict[str, Any]) -> str:
    """`Converting: 45% (1.2 GiB of 2.7 GiB read), about 30 s left` from an outcome."""
    done, total = doc.get("BytesDone") or 0, doc.get("BytesTotal") or 0
    share = f"{done / total:.0%} " if total else ""
    left = doc.get("SecondsLeft")
    eta = f", about {left:.0f} s left" if isinstance(left, int | float) else ""
    return f"Converting: {share}({size_pair(done, total)} read){eta}"


def _progress_notes(ctx: Ctx) -> Callable[[dict[str, Any]], None]:
    """While the catalog converts the upload, a note each tenth of the way."""
    shown = [-1]

    def on_change(doc: dict[str, Any]) -> None:
        if doc.get("Status") != "Converting":
            return
        total = doc.get("BytesTotal") or 0
        tenth = int(10 * (doc.get("BytesDone") or 0) / total) if total else 0
        if tenth > shown[0]:
            shown[0] = tenth
            ctx.out.note(conversion_progress(doc))

    return on_change


def _print_outcome(ctx: Ctx, outcome: dict[str, Any]) -> int:
    if ctx.out.as_json:
        ctx.out.json(outcome)
    else:
        ctx.out.record(outcome, omit=("Detected", "Conversion"))
    if outcome.get("Status") == "Rejected":
        err = outcome.get("Error") or {}
        raise Rejected(err.get("Code", "Rejected"), err.get("Message", ""), details=outcome)
    return OK


def status(ctx: Ctx) -> int:
    a = ctx.args
    if not a.wait:
        return _print_outcome(ctx, ctx.catalog.upload_outcome(a.blob))
    return _wait_for_outcome(ctx, a.blob, None, a.timeout)


# -- captures and operations -------------------------------------------------------------


def capture(ctx: Ctx) -> int:
    a = ctx.args
    request = {
        "ServiceName": a.service,
        "Name": a.vm,
        "ImageName": a.image,
        "ImageLabel": a.label,
        "OSState": a.os_state,
        # Ours, so that a retried POST can't start a second capture.
        "OperationId": a.operation_id or f"cli-{uuid.uuid4()}",
    }
    op = ctx.catalog.capture({k: v for k, v in request.items() if v is not None})
    op_id = op.get("OperationId", request["OperationId"])
    if not a.wait:
        ctx.out.json(op) if ctx.out.as_json else ctx.out.record(op)
        ctx.out.note(f"Follow it with: vmimage operation {op_id} --wait")
        return OK
    ctx.out.note(f"Capturing {a.service}/{a.vm} into {a.image} (operation {op_id}) ...")
    return _follow(ctx, op_id, a.timeout)


def operation(ctx: Ctx) -> int:
    a = ctx.args
    if a.wait:
        return _follow(ctx, a.operation_id, a.timeout)
    return _print_operation(ctx, ctx.catalog.operation(a.operation_id))


def _follow(ctx: Ctx, op_id: str, timeout: float) -> int:
    steps: list[str] = []

    def on_change(op: dict[str, Any]) -> None:
        step = op.get("Step")
        if step and (not steps or steps[-1] != step):
            steps.append(step)
            ctx.out.note(f"  {op.get('Status')}: {step}")

    op = poll(
        lambda: ctx.catalog.operation(op_id),
        lambda op: op.get("Status") != "InProgress",
        timeout,
        f"operation {op_id}",
        on_change=on_change,
        max_delay=1.0,  # steps are short: look often enough to see them go by
    )
    return _print_operation(ctx, op)


def _print_operation(ctx: Ctx, op: dict[str, Any]) -> int:
    ctx.out.json(op) if ctx.out.as_json else ctx.out.record(op)
    if op.get("Status") == "Failed":
        err = op.get("Error") or {}
        raise Rejected(err.get("Code", "OperationFailed"), err.get("Message", ""), details=op)
    return OK


# -- VMs ---------------------------------------------------------------------------------

VM_COLUMNS = [
    Column("SERVICE", field("ServiceName")),
    Column("VM", field("Name")),
    Column("STATE", field("State")),
    Column("OS", lambda v: (v.get("OSDisk") or {}).get("OS")),
    Column("DATA DISKS", lambda v: len(v.get("DataDisks") or []), right=True),
    Column("UPDATED", date_of("UpdatedTime")),
]


def vm_add(ctx: Ctx) -> int:
    a = ctx.args
    os_disk: dict[str, Any] = {"OS": a.os, "MediaLink": a.os_disk}
    if a.os_caching:
        os_disk["HostCaching"] = a.os_caching
    data = []
    for lun, caching, url in a.data_disk:
        disk: dict[str, Any] = {"Lun": lun, "MediaLink": url}
        if caching:
            disk["HostCaching"] = caching
        data.append(disk)
    body = {"State": a.state, "OSDisk": os_disk, "DataDisks": data}
    vm, created = ctx.catalog.put_vm(a.service, a.vm, body)
    if ctx.out.as_json:
        ctx.out.json(vm)
    else:
        ctx.out.line(f"{'Added' if created else 'Updated'} VM {a.service}/{a.vm}.")
    return OK


def vm_list(ctx: Ctx) -> int:
    a = ctx.args
    vms: list[dict[str, Any]] = []
    token = None
    for page in ctx.catalog.iter_vm_pages(a.top):
        vms += page.get("VMs", [])
        token = page.get("ContinuationToken")
        if not a.all:
            break
    doc: dict[str, Any] = {"VMs": vms, "Count": len(vms)}
    if token and not a.all:
        doc["ContinuationToken"] = token
        ctx.out.note("(more VMs: --all lists them all)")
    ctx.out.json(doc) if ctx.out.as_json else ctx.out.table(vms, VM_COLUMNS)
    return OK


def vm_show(ctx: Ctx) -> int:
    vm = ctx.catalog.vm(ctx.args.service, ctx.args.vm)
    ctx.out.json(vm) if ctx.out.as_json else ctx.out.record(vm)
    return OK


def vm_rm(ctx: Ctx) -> int:
    ctx.catalog.remove_vm(ctx.args.service, ctx.args.vm)
    if ctx.out.as_json:
        ctx.out.json({"ServiceName": ctx.args.service, "Name": ctx.args.vm, "Removed": True})
    else:
        ctx.out.line(f"Removed VM {ctx.args.service}/{ctx.args.vm} from the inventory.")
    return OK


COMMANDS: dict[str, Callable[[Ctx], int]] = {
    "upload": upload,
    "status": status,
    "list": list_images,
    "families": families,
    "show": show,
    "latest": latest,
    "rm": remove,
    "capture": capture,
    "operation": operation,
    "doctor": doctor,
    "publishsettings": publishsettings,
    "set": lifecycle.set_image,
    "verify": lifecycle.verify,
}
VM_COMMANDS: dict[str, Callable[[Ctx], int]] = {
    "add": vm_add,
    "list": vm_list,
    "show": vm_show,
    "rm": vm_rm,
}
