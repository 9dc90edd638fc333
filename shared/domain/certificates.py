"""Management certificates: X.509 certificates registered for a subscription, by thumbprint.

A classic client authenticates with a client certificate over TLS; the front end
(App Service, or the local runner) hands it to the app as base64 DER in
`X-ARR-ClientCert`. It is accepted when its SHA-1 thumbprint is registered for the
subscription and today is within its validity dates. No I/O here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel

from shared.domain.errors import CatalogError, InvalidParameter

MAX_CERTIFICATE_BYTES = 16 * 1024  # a certificate far larger than any real one is refused
_THUMBPRINT = re.compile(r"[0-9A-Fa-f]{40}")


class InvalidCertificate(InvalidParameter):
    code = "InvalidCertificate"


class CertificateNotFound(CatalogError):
    code = "CertificateNotFound"
    status = 404


class CertificateExists(CatalogError):
    code = "CertificateExists"
    status = 409


class ManagementCertificate(BaseModel):
    """A registered certificate, as List/Get Management Certificate show it (and its dates)."""

    Thumbprint: str  # SHA-1 of the DER, 40 upper-case hex digits
    Data: str  # the DER, base64
    PublicKey: str  # the subjectPublicKey bits (for RSA, the PKCS#1 key), base64
    Subject: str
    NotBefore: datetime
    NotAfter: datetime
    Created: datetime

    def valid_at(self, now: datetime) -> bool:
        return self.NotBefore <= now <= self.NotAfter


def thumbprint(der: bytes) -> str:
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def validate_thumbprint(value: str) -> str:
    """A thumbprint as written in a path or a body: 40 hex digits, any case, spaces allowed."""
    compact = re.sub(r"[\s:]", "", value or "")
    if not _THUMBPRINT.fullmatch(compact):
        raise InvalidParameter(
            f"'{value[:64]}' is not a certificate thumbprint (40 hexadecimal digits, SHA-1)"
        )
    return compact.upper()


def decode_base64(name: str, value: str) -> bytes:
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidCertificate(f"{name} is not base64") from None


def public_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING's contents (what Windows' GetPublicKey() returns)."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _bit_string_of_spki(spki)


def _der_length(data: bytes, at: int) -> tuple[int, int]:
    first = data[at]
    if first < 0x80:
        return first, at + 1
    count = first & 0x7F
    return int.from_bytes(data[at + 1 : at + 1 + count], "big"), at + 1 + count


def _bit_string_of_spki(spki: bytes) -> bytes:
    # SEQUENCE { AlgorithmIdentifier SEQUENCE, subjectPublicKey BIT STRING }
    _, at = _der_length(spki, 1)
    length, body = _der_length(spki, at + 1)  # skip the AlgorithmIdentifier
    at = body + length
    assert spki[at] == 0x03, "SubjectPublicKeyInfo without a BIT STRING"
    length, body = _der_length(spki, at + 1)
    return spki[body + 1 : body + length]  # past the unused-bits octet


def load_certificate(der: bytes, now: datetime | None = None) -> ManagementCertificate:
    """A management certificate from its DER (InvalidCertificate if it is not one)."""
    if len(der) > MAX_CERTIFICATE_BYTES:
        raise InvalidCertificate(f"the certificate is larger than {MAX_CERTIFICATE_BYTES} bytes")
    try:
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.rfc4514_string()
        bits = public_key_bits(cert)
    except (ValueError, AssertionError, IndexError) as e:
        raise InvalidCertificate(f"the data is not an X.509 certificate (DER): {e}") from None
    return ManagementCertificate(
        Thumbprint=thumbprint(der),
        Data=base64.b64encode(der).decode("ascii"),
        PublicKey=base64.b64encode(bits).decode("ascii"),
        Subject=subject[:1024],
        NotBefore=cert.not_valid_before_utc,
        NotAfter=cert.not_valid_after_utc,
        Created=now or datetime.now(UTC),
    )


def certificate_to_add(
    data: str, given_thumbprint: str | None, given_public_key: str | None, now: datetime
) -> ManagementCertificate:
    """Add Management Certificate's fields, checked against each other: the thumbprint and
    public key sent, when sent, must be those of the certificate data."""
    cert = load_certificate(decode_base64("SubscriptionCertificateData", data), now)
    if given_thumbprint and validate_thumbprint(given_thumbprint) != cert.Thumbprint:
        raise InvalidCertificate(
            f"SubscriptionCertificateThumbprint is not the certificate's (its SHA-1 is "
            f"{cert.Thumbprint})"
        )
    if given_public_key:
        key = decode_base64("SubscriptionCertificatePublicKey", given_public_key)
        der = decode_base64("SubscriptionCertificateData", data)
        spki = (
            x509.load_der_x509_certificate(der)
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        if key not in (base64.b64decode(cert.PublicKey), spki):
            raise InvalidCertificate(
                "SubscriptionCertificatePublicKey is not the certificate's public key"
            )
    return cert
