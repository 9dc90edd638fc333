"""Snapshots of whole list answers, kept as blobs (shared/services/classic/snapshots.py).

One blob per list (`classic/os-images.xml`, ...): the body as it was answered, with
what it was built from in its metadata, written in one upload (one Put Blob, or blocks
with random ids committed with the metadata in one Put Block List), so a reader gets
one whole snapshot with its own label, and two writers at once never mix their blocks
(one of them may fail: a commit discards the other's uncommitted blocks). A read that
overlaps a rewrite (a download in several ranges sees the blob change) is no
snapshot: the list is built instead.
"""

from __future__ import annotations

from datetime import datetime

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from shared.services.classic.snapshots import Snapshot


class BlobSnapshots:
    def __init__(self, container: ContainerClient, prefix: str = "classic/"):
        self.container = container
        self.prefix = prefix

    def read(self, name: str) -> Snapshot | None:
        try:
            download = self.container.download_blob(self.prefix + name)
            meta = download.properties.metadata or {}
            body = download.readall()
        except (ResourceNotFoundError, ResourceModifiedError):
            return None
        try:
            return Snapshot(
                body=body, label=meta["label"], built=datetime.fromisoformat(meta["built"])
            )
        except (KeyError, ValueError):
            return None  # not one of ours, or from an older writer: built again

    def write(self, name: str, snapshot: Snapshot) -> None:
        self.container.upload_blob(
            self.prefix + name,
            snapshot.body,
            overwrite=True,
            metadata={"label": snapshot.label, "built": snapshot.built.isoformat()},
        )
