"""Snapshots of whole list answers, kept as blobs (shared/services/classic/snapshots.py).

One blob per list (`classic/os-images.xml`, ...): the body as it was answered, with
what it was built from in its metadata. A blob is written whole in one call, so a
reader gets a whole snapshot with its own label, never one list's body under
another's label.
"""

from __future__ import annotations

from datetime import datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

from shared.services.classic.snapshots import Snapshot


class BlobSnapshots:
    def __init__(self, container: ContainerClient, prefix: str = "classic/"):
        self.container = container
        self.prefix = prefix

    def read(self, name: str) -> Snapshot | None:
        try:
            download = self.container.download_blob(self.prefix + name)
        except ResourceNotFoundError:
            return None
        meta = download.properties.metadata or {}
        try:
            built = datetime.fromisoformat(meta["built"])
            label = meta["label"]
        except (KeyError, ValueError):
            return None  # not one of ours, or from an older writer: built again
        return Snapshot(body=download.readall(), label=label, built=built)

    def write(self, name: str, snapshot: Snapshot) -> None:
        self.container.upload_blob(
            self.prefix + name,
            snapshot.body,
            overwrite=True,
            metadata={"label": snapshot.label, "built": snapshot.built.isoformat()},
        )
