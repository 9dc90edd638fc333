"""The services' collaborators, built once per worker process from the app settings
(twice at most: over the fail-fast clients HTTP answers use, and over the patient ones)."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable

from azure.core.exceptions import ServiceResponseTimeoutError

from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.certificates_table import ManagementCertificates
from shared.adapters.hash_store import HashStore
from shared.adapters.host_keys import HostKeyCheck
from shared.adapters.list_snapshots import BlobSnapshots
from shared.adapters.operations_table import Operations
from shared.adapters.queues import ConversionSteps, DelayedQueue, UploadRechecks, queue_client
from shared.adapters.sas import SasSigner
from shared.adapters.storage import account, per_account
from shared.adapters.uploads_table import UploadOutcomes
from shared.adapters.vms_table import VmInventory
from shared.domain.images import Image
from shared.services.captures import CaptureDeps
from shared.services.content_hashes import HashDeps, hash_request
from shared.services.conversion import ConversionPolicy
from shared.services.doctor import Doctor
from shared.services.removal import ImageRemover
from shared.services.uploads import UploadDeps, UploadPolicy


@per_account
def image_catalog() -> ImageCatalog:
    a = account()
    return ImageCatalog(
        a.tables.get_table_client(a.settings.images_table),
        account=a.blobs.account_name,
        announce=_announce,
    )


def _announce(image: Image, committed: bool) -> None:
    """Every new image with disks gets its content hash job (see services.content_hashes)."""
    doc, delay = hash_request(image, committed)
    hash_queue().send(doc, delay)


@per_account
def list_snapshots() -> BlobSnapshots:
    a = account()
    return BlobSnapshots(a.blobs.get_container_client(a.settings.lists_container))


@per_account
def hash_queue() -> DelayedQueue:
    a = account()
    return DelayedQueue(queue_client(a.queues, a.settings.hash_queue))


@per_account
def hash_store() -> HashStore:
    a = account()
    return HashStore(
        a.tables.get_table_client(a.settings.images_table),
        a.blobs.get_container_client(a.settings.hashes_container),
    )


@per_account
def hash_deps() -> HashDeps:
    return HashDeps(
        catalog=image_catalog(),
        store=hash_store(),
        blobs=account().blobs,
        send=lambda doc, delay: hash_queue().send(doc, delay),
    )


@per_account
def upload_outcomes() -> UploadOutcomes:
    a = account()
    return UploadOutcomes(a.tables.get_table_client(a.settings.uploads_table))


@per_account
def upload_deps() -> UploadDeps:
    a = account()
    rechecks = UploadRechecks(DelayedQueue(queue_client(a.queues, a.settings.upload_checks_queue)))
    steps = ConversionSteps(
        DelayedQueue(queue_client(a.queues, a.settings.upload_conversions_queue))
    )
    return UploadDeps(
        uploads=a.blobs.get_container_client(a.settings.uploads_container),
        outcomes=upload_outcomes(),
        catalog=image_catalog(),
        rechecks=rechecks,
        policy=UploadPolicy.from_env(),
        images=a.blobs.get_container_client(a.settings.images_container),
        conversions=steps,
        conversion=ConversionPolicy.from_env(),
        # Chaos testing (tests/e2e), never set in production: kill the worker at a step.
        before_step=_fault_injection(os.environ.get("FAULT_KILL_CONVERSION_AT"), None),
    )


@per_account
def sas_signer() -> SasSigner:
    return SasSigner(account().blobs)


def uploads_container():  # type: ignore[no-untyped-def]
    a = account()
    return a.blobs.get_container_client(a.settings.uploads_container)


def uploads_container_blob(name: str):  # type: ignore[no-untyped-def]
    a = account()
    return a.blobs.get_blob_client(a.settings.uploads_container, name)


@per_account
def image_remover() -> ImageRemover:
    return ImageRemover(image_catalog(), account().blobs, hash_store())


@per_account
def operations() -> Operations:
    a = account()
    return Operations(a.tables.get_table_client(a.settings.operations_table))


@per_account
def vm_inventory() -> VmInventory:
    a = account()
    return VmInventory(a.tables.get_table_client(a.settings.vms_table))


@per_account
def capture_deps() -> CaptureDeps:
    a = account()
    return CaptureDeps(
        blobs=a.blobs,
        images_container=a.settings.images_container,
        vm_disk_containers=(a.settings.vhds_container,),
        catalog=image_catalog(),
        vms=vm_inventory(),
        operations=operations(),
        before_step=_fault_injection(
            os.environ.get("FAULT_KILL_CAPTURE_AT"), os.environ.get("FAULT_TRANSIENT_CAPTURE_AT")
        ),
    )


def _fault_injection(kill_at: str | None, transient_at: str | None) -> Callable[[str], None] | None:
    """Chaos testing, never set in production; the end-to-end tests use it.

    FAULT_KILL_CAPTURE_AT=<step> kills the worker process at that step (a capture
    interrupted anywhere must be finished by the next delivery);
    FAULT_TRANSIENT_CAPTURE_AT=<step> fails that step once with a storage timeout
    (the queue must retry it).
    """
    if not kill_at and not transient_at:
        return None
    failed_once: list[str] = []

    def inject(at: str) -> None:
        if at == kill_at:
            logging.getLogger(__name__).warning("fault injection: killing the worker at %s", at)
            os._exit(70)
        if at == transient_at and not failed_once:
            failed_once.append(at)
            raise ServiceResponseTimeoutError(f"fault injection: storage timed out at {at}")

    return inject


@per_account
def doctor() -> Doctor:
    a = account()
    return Doctor(
        catalog=image_catalog(),
        blobs=a.blobs,
        operations=operations(),
        containers=a.settings.containers,
        images_container=a.settings.images_container,
        vm_disk_containers=(a.settings.vhds_container,),
    )


@per_account
def capture_queue() -> DelayedQueue:
    a = account()
    return DelayedQueue(queue_client(a.queues, a.settings.capture_queue))


@per_account
def management_certificates() -> ManagementCertificates:
    a = account()
    return ManagementCertificates(a.tables.get_table_client(a.settings.certificates_table))


@functools.cache
def host_key_check() -> HostKeyCheck:
    """One per process: its cache of the host's answers is shared by every call."""
    return HostKeyCheck.from_env()
