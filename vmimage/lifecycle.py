"""`vmimage set` (an image's lifecycle, by PATCH) and `vmimage verify` (re-hash its disks).

`verify` reads the disks from storage here, as `upload` writes them: only the page
ranges that hold data, 4 MiB block by block, and compares the SHA-256 of each disk's
data area (and of each block, with the block hashes the catalog keeps) with what the
catalog recorded when the image was registered.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vmimage.errors import OK, Rejected, UsageError
from vmimage.output import Column, field, size_text

if TYPE_CHECKING:
    from vmimage.commands import Ctx

STATES = ("Active", "Deprecated", "Disabled")
_CLEAR = ("none", "")


def add_commands(command: Callable[..., argparse.ArgumentParser], choice: Any) -> None:
    """The parsers of `set` and `verify` (`command` and `choice` are cli.py's)."""
    p = command(
        "set",
        "Change an image's lifecycle (PATCH): its state, replacement, whether latest may "
        "offer it, its end of life, its deletion protection.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--state", type=choice(STATES), metavar="{" + ",".join(STATES) + "}")
    p.add_argument(
        "--replaced-by",
        metavar="IMAGE",
        help="the image that replaces it (Deprecated, Disabled or with an end of life); "
        "'none' clears it",
    )
    held = p.add_mutually_exclusive_group()
    held.add_argument("--exclude-from-latest", action="store_true", help="hold it back from latest")
    held.add_argument("--include-in-latest", action="store_true", help="let latest offer it again")
    p.add_argument(
        "--end-of-life",
        metavar="DATE",
        help="2027-06-30 (midnight UTC) or 2027-06-30T12:00:00Z; past it, the image counts as "
        "Deprecated; 'none' clears it",
    )
    p.add_argument(
        "--deletion-protection",
        type=choice(("on", "off")),
        metavar="{on,off}",
        help="refuse removal until its end of life (or until turned off)",
    )
    p = command(
        "verify",
        "Re-hash an image's disks here (reading only their data) and say whether they still "
        "match the content hash the catalog recorded. Exit 1 when one does not.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--workers", type=int, default=4, help="parallel ranged reads (4)")


def set_image(ctx: Ctx) -> int:
    a = ctx.args
    body: dict[str, Any] = {}
    if a.state:
        body["State"] = a.state
    if a.replaced_by is not None:
        body["ReplacedBy"] = None if a.replaced_by.lower() in _CLEAR else a.replaced_by
    if a.exclude_from_latest or a.include_in_latest:
        body["ExcludeFromLatest"] = bool(a.exclude_from_latest)
    if a.end_of_life is not None:
        body["EndOfLifeDate"] = None if a.end_of_life.lower() in _CLEAR else a.end_of_life
    if a.deletion_protection:
        body["DeletionProtection"] = a.deletion_protection == "on"
    if not body:
        raise UsageError(
            "NothingToChange",
            "say what to change: --state, --replaced-by, --exclude-from-latest, "
            "--include-in-latest, --end-of-life or --deletion-protection",
        )
    image = ctx.catalog.update_image(a.name, body)
    if ctx.out.as_json:
        ctx.out.json(image)
        return OK
    ctx.out.record({k: image.get(k) for k in LIFECYCLE_SHOWN if k in image or k == "State"})
    return OK


LIFECYCLE_SHOWN = (
    "ImageName",
    "State",
    "EffectiveState",
    "ReplacedBy",
    "ExcludeFromLatest",
    "EndOfLifeDate",
    "DeletionProtection",
)

VERIFY_COLUMNS = [
    Column("DISK", field("Disk")),
    Column("BLOB", field("Blob"), 48),
    Column("READ", lambda d: size_text(d["BytesRead"]), right=True),
    Column("CONTENT HASH", lambda d: d["Computed"]),
    Column("RESULT", field("Result")),
]


def _disks(image: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    os_disk = image.get("OSDiskConfiguration") or {}
    if os_disk.get("SourceBlob"):
        found.append(("os", os_disk))
    for d in image.get("DataDiskConfigurations") or []:
        if d.get("SourceBlob"):
            found.append((f"lun{d['Lun']}", d))
    return found


def _storage(a: argparse.Namespace) -> Any:
    """The storage account, as `upload` reaches it (the local emulator by default)."""
    from vmimage.api import is_loopback
    from vmimage.upload import blob_service

    if not a.storage_connection_string and not a.account_url and not is_loopback(a.url):
        raise UsageError(
            "StorageNotGiven",
            "say where the disks are: --storage-connection-string or --account-url "
            "(or VMIMAGE_STORAGE_CONNECTION_STRING / VMIMAGE_ACCOUNT_URL)",
        )
    try:
        return blob_service(a.storage_connection_string, a.account_url)
    except ValueError as e:  # a malformed connection string or URL
        raise UsageError("InvalidStorageSettings", str(e).splitlines()[0]) from e


def verify(ctx: Ctx) -> int:
    from shared.adapters.disk_hashing import DiskHasher, data_size_of
    from shared.domain.content_hash import BlockHashes, zero_block_hash

    image = ctx.catalog.image(ctx.args.name)
    disks = _disks(image)
    if not disks:
        raise Rejected(
            "NoDisksToVerify",
            f"'{image.get('ImageName')}' has no disk blobs of this catalog (a platform image?)",
        )
    service = _storage(ctx.args)
    results = []
    for role, disk in disks:
        container, _, blob = disk["SourceBlob"].partition("/")
        client = service.get_blob_client(container, blob)
        size = data_size_of(client.get_blob_properties().size)
        ctx.out.note(f"Hashing the {role} disk {disk['SourceBlob']} ({size_text(size)}) ...")
        run = DiskHasher(client, size, workers=max(1, ctx.args.workers)).run()
        stored = disk.get("ContentHash")
        differ: list[int] = []
        if stored and stored != run.content_hash and disk.get("BlockHashes"):
            where, _, path = disk["BlockHashes"].partition("/")
            raw = service.get_blob_client(where, path).download_blob().readall()
            now = BlockHashes(
                DataSize=size, ZeroBlockHash=zero_block_hash(), DataBlocks=run.digests
            )
            differ = BlockHashes.model_validate_json(raw).differences(now)
        result = (
            "no hash yet" if not stored else "match" if stored == run.content_hash else "DIFFERS"
        )
        results.append(
            {
                "Disk": role,
                "Blob": disk["SourceBlob"],
                "ContentHash": stored,
                "Computed": run.content_hash,
                "BytesRead": run.bytes_read,
                "Result": result,
                "DifferentBlocks": differ,
            }
        )
    doc = {
        "ImageName": image.get("ImageName"),
        "Match": all(r["Result"] == "match" for r in results),
        "Disks": results,
    }
    if ctx.out.as_json:
        ctx.out.json(doc)
    else:
        ctx.out.table(results, VERIFY_COLUMNS)
        for r in results:
            if r["DifferentBlocks"]:
                blocks = ", ".join(str(b) for b in r["DifferentBlocks"][:20])
                more = " ..." if len(r["DifferentBlocks"]) > 20 else ""
                ctx.out.note(f"{r['Disk']}: 4 MiB blocks that changed: {blocks}{more}")
    if any(r["Result"] == "no hash yet" for r in results):
        raise Rejected(
            "ContentHashNotReady",
            f"'{doc['ImageName']}' has no content hash yet to compare with (it is computed in "
            "the background after registration: see ContentHashProgress in vmimage show)",
            details=doc,
        )
    if not doc["Match"]:
        raise Rejected(
            "ContentMismatch",
            f"a disk of '{doc['ImageName']}' no longer matches the content hash recorded "
            "when it was registered",
            details=doc,
        )
    ctx.out.note(f"All {len(results)} disk(s) of {doc['ImageName']} match their content hash.")
    return OK
