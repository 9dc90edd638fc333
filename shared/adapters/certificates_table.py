"""Management certificates in the `certificates` table: one partition per subscription,
one row per certificate under its thumbprint (a point read per classic call)."""

from __future__ import annotations

from collections.abc import Iterator

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

from shared.domain.certificates import CertificateExists, CertificateNotFound, ManagementCertificate


def _partition(subscription: str) -> str:
    return subscription.strip().lower()


class ManagementCertificates:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def find(self, subscription: str, thumbprint: str) -> ManagementCertificate | None:
        try:
            row = self.table.get_entity(_partition(subscription), thumbprint)
        except ResourceNotFoundError:
            return None
        return ManagementCertificate.model_validate_json(row["Certificate"])

    def get(self, subscription: str, thumbprint: str) -> ManagementCertificate:
        cert = self.find(subscription, thumbprint)
        if cert is None:
            raise CertificateNotFound(
                f"no management certificate with the thumbprint {thumbprint} is registered"
            )
        return cert

    def list(self, subscription: str) -> Iterator[ManagementCertificate]:
        rows = self.table.query_entities(
            "PartitionKey eq @pk",
            parameters={"pk": _partition(subscription)},
            select=["Certificate"],
        )
        return (ManagementCertificate.model_validate_json(r["Certificate"]) for r in rows)

    def add(self, subscription: str, cert: ManagementCertificate) -> ManagementCertificate:
        try:
            self.table.create_entity(
                {
                    "PartitionKey": _partition(subscription),
                    "RowKey": cert.Thumbprint,
                    "Certificate": cert.model_dump_json(),
                }
            )
        except ResourceExistsError:
            raise CertificateExists(
                f"a management certificate with the thumbprint {cert.Thumbprint} is "
                "already registered"
            ) from None
        return cert

    def delete(self, subscription: str, thumbprint: str) -> None:
        self.get(subscription, thumbprint)  # a missing one is a 404, as Azure answered
        self.table.delete_entity(_partition(subscription), thumbprint)
