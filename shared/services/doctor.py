"""The catalog's invariants, checked against storage: what `vmimage doctor` reports.

- every image's disks exist, are leased, and are claimed by that image alone;
- every claim belongs to a published image (a dead claim is a crash's leftover),
  and no blob in the catalog's containers is leased without an image holding it;
- no operation has stayed `InProgress` past its time limit;
- no capture copy or snapshot is left without its image (or its running operation);
  a succeeded capture's copy kept by removing its image without the VHD is the user's.

It only reads. A full check lists every image, claim, operation and blob, so it is
for operators and fault tests, not for a request path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.storage.blob import BlobServiceClient

from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.operations_table import Operations
from shared.domain.operations import OperationStatus

TAG = "captureop"  # the metadata captures tag their copies and snapshots with


@dataclass(frozen=True)
class Problem:
    Kind: str  # DiskMissing, DiskNotLeased, DiskNotClaimed, DeadClaim, LeasedWithoutImage, ...
    Subject: str  # the image, disk, operation or blob it is about
    Detail: str


@dataclass
class Report:
    Problems: list[Problem] = field(default_factory=list)
    Checked: dict[str, int] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not self.Problems

    def to_json(self) -> dict[str, Any]:
        return {
            "Healthy": self.healthy,
            "Problems": [asdict(p) for p in self.Problems],
            "Checked": self.Checked,
        }


@dataclass
class Doctor:
    catalog: ImageCatalog
    blobs: BlobServiceClient
    operations: Operations
    containers: list[str]  # the catalog's containers: uploads, images, VM disks
    images_container: str
    vm_disk_containers: tuple[str, ...]

    def examine(self, stuck_after: timedelta, now: datetime | None = None) -> Report:
        now = now or datetime.now(UTC)
        report = Report()
        running, succeeded = self._operations(report, stuck_after, now)
        held = self._images(report)
        in_flight = self._claims(report, held)
        self._blobs(report, {**in_flight, **held}, running, succeeded)
        return report

    def _images(self, report: Report) -> dict[str, str]:
        """Check each image's disks; returns the disks held rightly, by path -> image."""
        held: dict[str, str] = {}
        count = 0
        for row in self.catalog.image_rows():
            count += 1
            name, claim_id = row["ImageName"], row.get("ClaimId")
            for path in _disk_paths(row):
                container, _, blob = path.partition("/")
                claim = self.catalog.claim_of(path)
                if claim_id is None or claim is None or claim.get("Change") != claim_id:
                    other = claim.get("Image") if claim else None
                    why = f"claimed for '{other}'" if other else "not claimed"
                    report.Problems.append(
                        Problem("DiskNotClaimed", name, f"its disk {path} is {why}")
                    )
                else:
                    held[path] = name
                props = _properties(self.blobs, container, blob)
                if props is None:
                    report.Problems.append(
                        Problem("DiskMissing", name, f"its disk {path} does not exist")
                    )
                elif not _leased(props):
                    report.Problems.append(
                        Problem("DiskNotLeased", name, f"its disk {path} is not leased")
                    )
        report.Checked["Images"] = count
        return held

    def _claims(self, report: Report, held: dict[str, str]) -> dict[str, str]:
        """Flag dead claims; returns the disks of registrations under way."""
        in_flight: dict[str, str] = {}
        count = 0
        for claim in self.catalog.claims():
            count += 1
            path = claim.get("Disk", "")
            if held.get(path) is not None:
                continue
            if self.catalog.claim_in_progress(claim):
                in_flight[path] = claim.get("Image", "")  # a registration under way
                continue
            report.Problems.append(
                Problem(
                    "DeadClaim",
                    path,
                    f"claimed for '{claim.get('Image')}' by a change that never committed, or "
                    "whose image was removed without giving it back",
                )
            )
        report.Checked["Claims"] = count
        return in_flight

    def _operations(
        self, report: Report, stuck_after: timedelta, now: datetime
    ) -> tuple[set[str], set[str]]:
        """Flag operations stuck past the limit; returns those still running, and those
        that succeeded."""
        running: set[str] = set()
        succeeded: set[str] = set()
        count = 0
        for op in self.operations.all():
            count += 1
            if op.Status == OperationStatus.SUCCEEDED:
                succeeded.add(op.OperationId)
            if op.Status != OperationStatus.IN_PROGRESS:
                continue
            running.add(op.OperationId)
            if now - op.UpdatedTime > stuck_after:
                report.Problems.append(
                    Problem(
                        "OperationStuck",
                        op.OperationId,
                        f"InProgress at step {op.Step or '?'} since "
                        f"{op.UpdatedTime:%Y-%m-%d %H:%M:%S} UTC, "
                        f"over {stuck_after.total_seconds():g}s",
                    )
                )
        report.Checked["Operations"] = count
        return running, succeeded

    def _blobs(
        self, report: Report, held: dict[str, str], running: set[str], succeeded: set[str]
    ) -> None:
        count = 0
        for container in dict.fromkeys(self.containers):
            client = self.blobs.get_container_client(container)
            if not client.exists():
                continue
            for b in client.list_blobs(include=["snapshots", "metadata"]):
                count += 1
                path = f"{container}/{b.name}"
                op = (b.metadata or {}).get(TAG)
                if b.snapshot:
                    if op and op not in running:
                        report.Problems.append(
                            Problem(
                                "OrphanSnapshot",
                                f"{path}@{b.snapshot}",
                                f"a snapshot taken by capture {op}, which is no longer running",
                            )
                        )
                    continue
                if _leased(b) and path not in held:
                    report.Problems.append(
                        Problem("LeasedWithoutImage", path, "leased, but no image holds it")
                    )
                # A succeeded capture's copy that no image holds was kept by a removal
                # without its VHD (comp=media absent): the user's blob now, not an orphan.
                if (
                    container == self.images_container
                    and op
                    and path not in held
                    and op not in running
                    and op not in succeeded
                ):
                    report.Problems.append(
                        Problem(
                            "OrphanCopy",
                            path,
                            f"a copy made by capture {op}, which is not running, and no image "
                            "holds it",
                        )
                    )
        report.Checked["Blobs"] = count


def _disk_paths(row: dict[str, Any]) -> Iterable[str]:
    disks = [json.loads(row.get("OSDiskConfiguration") or "null")]
    disks += json.loads(row.get("DataDiskConfigurations") or "[]")
    return [d["SourceBlob"] for d in disks if d and d.get("SourceBlob")]


def _leased(props: Any) -> bool:
    state = props.lease.state
    return str(getattr(state, "value", state)) == "leased"


def _properties(blobs: BlobServiceClient, container: str, blob: str) -> Any:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return blobs.get_blob_client(container, blob).get_blob_properties()
    except ResourceNotFoundError:
        return None
