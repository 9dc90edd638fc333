"""The runner's HTTPS port, as App Service fronts an app with client certificates optional.

A local CA made at first start signs a server certificate for 127.0.0.1 and
localhost; a client certificate, self-signed or not, reaches the function as
base64 DER in X-ARR-ClientCert; a client can never set that header itself.
"""

from __future__ import annotations

import base64
import ipaddress
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .conftest import RunningApp, StartApp

pytestmark = pytest.mark.azurite


@pytest.fixture(scope="module")
def tls_app(start_app: StartApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    app = start_app("http_api", https=True, tls_dir=tmp_path_factory.mktemp("tls"))
    yield app
    app.stop()


def https(app: RunningApp, host: str = "127.0.0.1") -> str:
    return f"https://{host}:{app.host.https_port}"


def self_signed(folder: Path, name: str) -> tuple[Path, bytes]:
    """A self-signed client certificate as one PEM file (key + certificate) and its DER."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = folder / f"{name}.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    return pem, cert.public_bytes(serialization.Encoding.DER)


def test_the_server_certificate_names_the_loopback_address_and_localhost(tls_app) -> None:
    ca = tls_app.host.ca_file
    assert ca.exists() and (ca.parent / "ca.key").stat().st_mode & 0o077 == 0
    pem = ssl.get_server_certificate(("127.0.0.1", tls_app.host.https_port))
    san = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]
    # Both names verify against the CA, the host name checked.
    for host in ("127.0.0.1", "localhost"):
        r = requests.get(f"{https(tls_app, host)}/api/anon", verify=ca, timeout=10)
        assert (r.status_code, r.text) == (200, "anon")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{https(tls_app)}/api/anon", timeout=10)  # not trusted by default


def test_a_client_certificate_reaches_the_function_as_app_service_forwards_it(
    tls_app, tmp_path
) -> None:
    pem, der = self_signed(tmp_path, "management")
    url = f"{https(tls_app)}/api/clientcert"
    r = requests.get(url, verify=tls_app.host.ca_file, cert=str(pem), timeout=10)
    assert r.status_code == 200
    assert base64.b64decode(r.text) == der
    # Without one the request goes through too: the certificate is optional.
    assert requests.get(url, verify=tls_app.host.ca_file, timeout=10).text == "none"


def test_a_client_can_not_send_x_arr_clientcert_itself(tls_app, tmp_path) -> None:
    _, forged = self_signed(tmp_path, "forged")
    pem, der = self_signed(tmp_path, "real")
    header = {"X-ARR-ClientCert": base64.b64encode(forged).decode()}
    plain = requests.get(tls_app.url("/api/clientcert"), headers=header, timeout=10)
    assert plain.text == "none"
    url = f"{https(tls_app)}/api/clientcert"
    tls = requests.get(url, headers=header, verify=tls_app.host.ca_file, timeout=10)
    assert tls.text == "none"
    both = requests.get(url, headers=header, verify=tls_app.host.ca_file, cert=str(pem), timeout=10)
    assert base64.b64decode(both.text) == der


def test_the_ca_is_made_once_and_kept(start_app: StartApp, tls_app) -> None:
    ca = tls_app.host.ca_file.read_bytes()
    again = start_app("http_api", https=True, tls_dir=tls_app.host.ca_file.parent)
    try:
        assert again.host.ca_file.read_bytes() == ca
        r = requests.get(f"{https(again)}/api/anon", verify=again.host.ca_file, timeout=10)
        assert r.status_code == 200
    finally:
        again.stop()


def test_curl_sends_its_certificate_too(tls_app, tmp_path) -> None:
    pem, der = self_signed(tmp_path, "curl")
    out = subprocess.run(
        ["curl", "-sS", "--cacert", str(tls_app.host.ca_file), "--cert", str(pem),
         f"{https(tls_app, 'localhost')}/api/clientcert"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert base64.b64decode(out.stdout) == der
