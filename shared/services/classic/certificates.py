"""Management certificates: who may call the classic API, and List/Get/Add/Delete Management
Certificate (`/{subscription-id}/certificates`).

A call is let in when its client certificate (`X-ARR-ClientCert`, as the front
end forwards it) is registered for the subscription, by SHA-1 thumbprint, and
is within its validity dates; or when it presents a function key the host
accepts (`x-functions-key` or `?code=`), as scripts did before. Anything else is
403 ForbiddenError, as Azure answered. Managing certificates needs a caller let
in the same way: the first one is added with a key (`vmimage publishsettings`).
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from shared.domain.certificates import (
    ManagementCertificate,
    certificate_to_add,
    thumbprint,
    validate_thumbprint,
)
from shared.domain.errors import InvalidParameter
from shared.services.classic.protocol import SubscriptionForbidden
from shared.services.classic.xmldoc import add_all, document, q, read_element

CLIENT_CERT_HEADER = "x-arr-clientcert"
Credential = Literal["certificate", "key"]


class CertificateStore(Protocol):
    def find(self, subscription: str, thumbprint: str) -> ManagementCertificate | None: ...
    def get(self, subscription: str, thumbprint: str) -> ManagementCertificate: ...
    def list(self, subscription: str) -> Iterator[ManagementCertificate]: ...
    def add(self, subscription: str, cert: ManagementCertificate) -> ManagementCertificate: ...
    def delete(self, subscription: str, thumbprint: str) -> None: ...


class KeyCheck(Protocol):
    def accepts(self, key: str) -> bool: ...


@dataclass(frozen=True)
class Presented:
    """What a request offers as its credential."""

    client_cert: bytes | None = None  # DER, from X-ARR-ClientCert
    key: str | None = None

    @classmethod
    def of(cls, headers: Mapping[str, str], params: Mapping[str, str]) -> Presented:
        der = None
        if raw := (headers.get(CLIENT_CERT_HEADER) or "").strip():
            try:
                der = base64.b64decode("".join(raw.split()), validate=True)
            except (binascii.Error, ValueError):
                der = None  # not a certificate: as if none was presented
        key = headers.get("x-functions-key") or params.get("code") or None
        return cls(der or None, key)


def authorize(
    subscription: str,
    presented: Presented,
    certificates: CertificateStore,
    keys: KeyCheck,
    now: datetime | None = None,
) -> Credential:
    """How the caller is let in, or SubscriptionForbidden (403 ForbiddenError)."""
    if presented.client_cert is not None:
        registered = certificates.find(subscription, thumbprint(presented.client_cert))
        if registered is not None and registered.valid_at(now or datetime.now(UTC)):
            return "certificate"
    if presented.key and keys.accepts(presented.key):
        return "key"
    raise SubscriptionForbidden(
        "The server failed to authenticate the request. Verify that the certificate is valid "
        "and is associated with this subscription."
    )


# -- XML ---------------------------------------------------------------------------------

ADD_ELEMENTS = (
    "SubscriptionCertificatePublicKey",
    "SubscriptionCertificateThumbprint",
    "SubscriptionCertificateData",
)


def _certificate(cert: ManagementCertificate) -> ET.Element:
    el = ET.Element(q("SubscriptionCertificate"))
    add_all(
        el,
        [
            ("SubscriptionCertificatePublicKey", cert.PublicKey),
            ("SubscriptionCertificateThumbprint", cert.Thumbprint),
            ("SubscriptionCertificateData", cert.Data),
            ("Created", cert.Created),
        ],
    )
    return el


def certificate_xml(cert: ManagementCertificate) -> bytes:
    return document(_certificate(cert))


def certificates_xml(certs: Iterable[ManagementCertificate]) -> bytes:
    root = ET.Element(q("SubscriptionCertificates"))
    root.extend(_certificate(c) for c in certs)
    return document(root)


def parse_add_certificate(body: bytes, now: datetime | None = None) -> ManagementCertificate:
    f = read_element(body, "SubscriptionCertificate", ADD_ELEMENTS)
    if not f.get("SubscriptionCertificateData"):
        raise InvalidParameter(
            "Add Management Certificate needs <SubscriptionCertificateData> (base64 DER)"
        )
    return certificate_to_add(
        f["SubscriptionCertificateData"],  # type: ignore[arg-type]
        f.get("SubscriptionCertificateThumbprint"),
        f.get("SubscriptionCertificatePublicKey"),
        now or datetime.now(UTC),
    )


# -- Use cases ---------------------------------------------------------------------------


def list_certificates(store: CertificateStore, subscription: str) -> list[ManagementCertificate]:
    return sorted(store.list(subscription), key=lambda c: c.Created)


def get_certificate(
    store: CertificateStore, subscription: str, thumbprint_text: str
) -> ManagementCertificate:
    return store.get(subscription, validate_thumbprint(thumbprint_text))


def add_certificate(
    store: CertificateStore, subscription: str, cert: ManagementCertificate
) -> ManagementCertificate:
    return store.add(subscription, cert)


def delete_certificate(store: CertificateStore, subscription: str, thumbprint_text: str) -> None:
    store.delete(subscription, validate_thumbprint(thumbprint_text))
