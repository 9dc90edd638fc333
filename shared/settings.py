"""App settings the catalog reads, with their defaults.

On Azure they are app settings (set by `infra/`); locally the runner passes
the environment. Storage names are settings so that several catalogs can
share one account.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

DEFAULTS: dict[str, str] = {
    "UPLOADS_CONTAINER": "uploads",
    "IMAGES_CONTAINER": "images",
    "VHDS_CONTAINER": "vhds",
    "HASHES_CONTAINER": "image-hashes",
    "LISTS_CONTAINER": "catalog-lists",
    "CAPTURE_QUEUE": "image-captures",
    "UPLOAD_CHECKS_QUEUE": "upload-checks",
    "HASH_QUEUE": "image-hashes",
    "UPLOAD_CONVERSIONS_QUEUE": "upload-conversions",
    "IMAGES_TABLE": "images",
    "UPLOADS_TABLE": "uploads",
    "OPERATIONS_TABLE": "operations",
    "VMS_TABLE": "vms",
    "CERTIFICATES_TABLE": "certificates",
    "CLASSIC_SUBSCRIPTION_ID": "6d1a4c2e-9b3f-4e57-8a10-3c5f7e9d2b41",
}


@dataclass(frozen=True)
class Settings:
    uploads_container: str
    images_container: str
    vhds_container: str
    hashes_container: str
    lists_container: str
    capture_queue: str
    upload_checks_queue: str
    hash_queue: str
    upload_conversions_queue: str
    images_table: str
    uploads_table: str
    operations_table: str
    vms_table: str
    certificates_table: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            **{f.name: env.get(f.name.upper(), DEFAULTS[f.name.upper()]) for f in fields(cls)}
        )

    @property
    def containers(self) -> list[str]:
        return [
            self.uploads_container,
            self.images_container,
            self.vhds_container,
            self.hashes_container,
            self.lists_container,
        ]

    @property
    def queues(self) -> list[str]:
        return [
            self.capture_queue,
            f"{self.capture_queue}-poison",
            self.upload_checks_queue,
            self.hash_queue,
            self.upload_conversions_queue,
        ]

    @property
    def tables(self) -> list[str]:
        return [
            self.images_table,
            self.uploads_table,
            self.operations_table,
            self.vms_table,
            self.certificates_table,
        ]


def settings_with_defaults(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment with every catalog setting present (what a runner passes on)."""
    env = dict(os.environ if environ is None else environ)
    return {**DEFAULTS, **env}
