"""`vmimage publishsettings`: a management certificate and the `.publishsettings` file.

The local counterpart of downloading your publish settings: an RSA key and a
self-signed management certificate, registered with the classic API's Add
Management Certificate (with the host or master key), written as

- `<out>.publishsettings`: `<PublishData><PublishProfile SchemaVersion="2.0"
  PublishMethod="AzureServiceManagementAPI"><Subscription ServiceManagementUrl=…
  Id=… Name=… ManagementCertificate=…/></PublishProfile></PublishData>`, the
  certificate being a base64 PKCS#12 with a zero-length password (pkcs12.py);
- `<out>.pem`: the key and certificate as PEM, for clients that take a `cert_file`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from vmimage.pkcs12 import write_pfx

NS = "http://schemas.microsoft.com/windowsazure"
X_MS_VERSION = "2014-10-01"  # what azure-servicemanagement-legacy sends
VALID_DAYS = 365


@dataclass(frozen=True)
class ManagementCertificate:
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def thumbprint(self) -> str:
        return hashlib.sha1(self.der, usedforsecurity=False).hexdigest().upper()

    @property
    def public_key(self) -> bytes:
        """The PKCS#1 public key: the certificate's subjectPublicKey, as Azure listed it."""
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.PKCS1
        )

    def pem(self) -> bytes:
        key = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return key + self.certificate.public_bytes(serialization.Encoding.PEM)


def new_management_certificate(
    name: str, now: datetime | None = None, days: int = VALID_DAYS
) -> ManagementCertificate:
    """An RSA 2048 key and a self-signed certificate for it (client authentication)."""
    now = now or datetime.now(UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return ManagementCertificate(key, cert)


def add_certificate_body(cert: ManagementCertificate) -> bytes:
    """Add Management Certificate's request body."""
    root = ET.Element("SubscriptionCertificate", xmlns=NS)
    for name, value in (
        ("SubscriptionCertificatePublicKey", cert.public_key),
        ("SubscriptionCertificateThumbprint", cert.thumbprint.encode()),
        ("SubscriptionCertificateData", cert.der),
    ):
        text = value.decode() if name.endswith("Thumbprint") else base64.b64encode(value).decode()
        ET.SubElement(root, name).text = text
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def publish_settings_xml(
    cert: ManagementCertificate, url: str, subscription: str, name: str
) -> bytes:
    pfx = write_pfx(cert.key, cert.certificate, friendly_name=name)
    data = ET.Element("PublishData")
    profile = ET.SubElement(
        data,
        "PublishProfile",
        SchemaVersion="2.0",
        PublishMethod="AzureServiceManagementAPI",
    )
    ET.SubElement(
        profile,
        "Subscription",
        ServiceManagementUrl=url,
        Id=subscription,
        Name=name,
        ManagementCertificate=base64.b64encode(pfx).decode("ascii"),
    )
    return ET.tostring(data, encoding="utf-8", xml_declaration=True)


def management_url(catalog_url: str) -> str:
    """Where classic clients connect: the catalog's own URL over https; a local http
    runner serves HTTPS on the next port (make run: 7071 -> 7072)."""
    parts = urlsplit(catalog_url)
    if parts.scheme == "https":
        return urlunsplit(("https", parts.netloc, "", "", "")).rstrip("/")
    port = (parts.port or 80) + 1
    host = parts.hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}:{port}"


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (it holds a private key)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def local_ca() -> Path | None:
    """The local runner's CA (`.local/tls/ca.crt`), here or in the checkout."""
    here = Path(".local") / "tls" / "ca.crt"
    if here.exists():
        return here
    ca = Path(__file__).resolve().parent.parent / here
    return ca if ca.exists() else None
