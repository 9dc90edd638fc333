"""Management certificates: what a certificate is registered as, and who the classic API lets in."""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from shared.domain.certificates import (
    CertificateExists,
    CertificateNotFound,
    InvalidCertificate,
    ManagementCertificate,
    certificate_to_add,
    load_certificate,
    validate_thumbprint,
)
from shared.services.classic import certificates as mc
from shared.services.classic.protocol import SubscriptionForbidden

NS = "{http://schemas.microsoft.com/windowsazure}"
SUB = "6d1a4c2e-9b3f-4e57-8a10-3c5f7e9d2b41"
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def make_cert(key=None, days: int = 30, start: datetime = NOW) -> bytes:  # type: ignore[no-untyped-def]
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mgmt")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - timedelta(days=1))
        .not_valid_after(start + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_a_certificate_is_known_by_its_sha1_thumbprint_and_public_key(rsa_key) -> None:
    der = make_cert(rsa_key)
    cert = load_certificate(der, NOW)
    assert cert.Thumbprint == hashlib.sha1(der).hexdigest().upper()
    assert base64.b64decode(cert.Data) == der
    pkcs1 = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )
    assert base64.b64decode(cert.PublicKey) == pkcs1  # what Windows' GetPublicKey() gives
    assert (cert.NotBefore, cert.NotAfter) == (NOW - timedelta(days=1), NOW + timedelta(days=30))
    assert cert.Subject == "CN=mgmt"
    point = ec.generate_private_key(ec.SECP256R1())
    ec_cert = load_certificate(make_cert(point), NOW)
    assert base64.b64decode(ec_cert.PublicKey) == point.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def test_add_checks_the_thumbprint_and_public_key_sent_against_the_data(rsa_key) -> None:
    der = make_cert(rsa_key)
    data = base64.b64encode(der).decode()
    thumb = hashlib.sha1(der).hexdigest()
    spki = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pkcs1 = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )
    for key in (spki, pkcs1):
        got = certificate_to_add(data, thumb.lower(), base64.b64encode(key).decode(), NOW)
        assert got.Thumbprint == thumb.upper()
    assert certificate_to_add(data, None, None, NOW).Created == NOW
    other = base64.b64encode(make_cert()).decode()
    for args, says in [
        ((data, "AB" * 20, None), "not the certificate's"),
        ((data, "not-hex", None), "not a certificate thumbprint"),
        ((data, None, base64.b64encode(b"other key").decode()), "not the certificate's public"),
        ((other[:-8] + "!!!!", None, None), "not base64"),
        ((base64.b64encode(b"hello").decode(), None, None), "not an X.509 certificate"),
        ((base64.b64encode(b"\x30" * 20000).decode(), None, None), "larger than"),
    ]:
        with pytest.raises(Exception, match=says) as refused:
            certificate_to_add(*args, NOW)  # type: ignore[arg-type]
        assert refused.value.status == 400  # type: ignore[attr-defined]
    assert validate_thumbprint("ab cd" + "0" * 36) == "ABCD" + "0" * 36


class Store:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], ManagementCertificate] = {}

    def find(self, subscription: str, thumbprint: str) -> ManagementCertificate | None:
        return self.rows.get((subscription.lower(), thumbprint))

    def get(self, subscription: str, thumbprint: str) -> ManagementCertificate:
        if (found := self.find(subscription, thumbprint)) is None:
            raise CertificateNotFound("none")
        return found

    def list(self, subscription: str) -> Iterator[ManagementCertificate]:
        return iter([c for (s, _), c in self.rows.items() if s == subscription.lower()])

    def add(self, subscription: str, cert: ManagementCertificate) -> ManagementCertificate:
        if (subscription.lower(), cert.Thumbprint) in self.rows:
            raise CertificateExists("again")
        self.rows[(subscription.lower(), cert.Thumbprint)] = cert
        return cert

    def delete(self, subscription: str, thumbprint: str) -> None:
        self.get(subscription, thumbprint)
        del self.rows[(subscription.lower(), thumbprint)]


class Keys:
    def __init__(self, *good: str) -> None:
        self.good, self.asked = set(good), []  # type: ignore[var-annotated]

    def accepts(self, key: str) -> bool:
        self.asked.append(key)
        return key in self.good


def presented(der: bytes | None = None, key: str | None = None) -> mc.Presented:
    headers = {"x-arr-clientcert": base64.b64encode(der).decode()} if der else {}
    if key:
        headers["x-functions-key"] = key
    return mc.Presented.of(headers, {})


def test_a_registered_certificate_within_its_dates_lets_the_caller_in() -> None:
    store, keys = Store(), Keys("k")
    der = make_cert()
    mc.add_certificate(store, SUB, load_certificate(der, NOW))
    assert mc.authorize(SUB, presented(der), store, keys, NOW) == "certificate"
    assert mc.authorize(SUB.upper(), presented(der), store, keys, NOW) == "certificate"
    assert keys.asked == []  # no key check when the certificate does
    for when in (NOW - timedelta(days=2), NOW + timedelta(days=31)):
        with pytest.raises(SubscriptionForbidden) as refused:
            mc.authorize(SUB, presented(der), store, keys, when)
        assert (refused.value.status, refused.value.code) == (403, "ForbiddenError")
    # Registered for another subscription only: not here.
    with pytest.raises(SubscriptionForbidden):
        mc.authorize("00000000-0000-0000-0000-000000000000", presented(der), store, keys, NOW)


def test_an_unregistered_certificate_or_none_needs_a_key_the_host_accepts() -> None:
    store, keys = Store(), Keys("good")
    stranger = make_cert()
    for p in (presented(), presented(stranger), presented(stranger, "bad"), presented(key="bad")):
        with pytest.raises(SubscriptionForbidden, match="certificate is valid"):
            mc.authorize(SUB, p, store, keys, NOW)
    assert mc.authorize(SUB, presented(stranger, "good"), store, keys, NOW) == "key"
    assert mc.authorize(SUB, mc.Presented.of({}, {"code": "good"}), store, keys, NOW) == "key"
    # A header that is not base64 is no certificate at all.
    garbage = mc.Presented.of({"x-arr-clientcert": "%%%"}, {})
    assert garbage.client_cert is None


def test_the_xml_is_azures(rsa_key) -> None:
    store = Store()
    first = load_certificate(make_cert(rsa_key), NOW)
    second = load_certificate(make_cert(), NOW + timedelta(seconds=1))
    for c in (second, first):
        mc.add_certificate(store, SUB, c)
    root = ET.fromstring(mc.certificates_xml(mc.list_certificates(store, SUB)))
    assert root.tag == f"{NS}SubscriptionCertificates"
    assert [e.findtext(f"{NS}SubscriptionCertificateThumbprint") for e in root] == [
        first.Thumbprint,
        second.Thumbprint,
    ]
    assert [c.tag for c in root[0]] == [
        f"{NS}SubscriptionCertificatePublicKey",
        f"{NS}SubscriptionCertificateThumbprint",
        f"{NS}SubscriptionCertificateData",
        f"{NS}Created",
    ]
    one = ET.fromstring(
        mc.certificate_xml(mc.get_certificate(store, SUB, first.Thumbprint.lower()))
    )
    assert one.findtext(f"{NS}SubscriptionCertificateData") == first.Data
    assert one.findtext(f"{NS}Created") == "2026-06-01T00:00:00Z"
    mc.delete_certificate(store, SUB, first.Thumbprint)
    with pytest.raises(CertificateNotFound):
        mc.get_certificate(store, SUB, first.Thumbprint)


def test_add_management_certificate_bodies(rsa_key) -> None:
    der = make_cert(rsa_key)
    body = (
        "<SubscriptionCertificate xmlns='http://schemas.microsoft.com/windowsazure'>"
        f"<SubscriptionCertificatePublicKey>{load_certificate(der).PublicKey}"
        "</SubscriptionCertificatePublicKey>"
        f"<SubscriptionCertificateThumbprint>{hashlib.sha1(der).hexdigest()}"
        "</SubscriptionCertificateThumbprint>"
        f"<SubscriptionCertificateData>{base64.b64encode(der).decode()}"
        "</SubscriptionCertificateData></SubscriptionCertificate>"
    ).encode()
    assert mc.parse_add_certificate(body, NOW).Thumbprint == hashlib.sha1(der).hexdigest().upper()
    with pytest.raises(InvalidCertificate.__mro__[1], match="needs <SubscriptionCertificateData>"):
        mc.parse_add_certificate(b"<SubscriptionCertificate/>", NOW)
    with pytest.raises(Exception, match="not an element"):
        mc.parse_add_certificate(b"<SubscriptionCertificate><Other/></SubscriptionCertificate>")
