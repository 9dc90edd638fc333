"""HTTPS as App Service fronts an app: a local CA, a server certificate, optional client certs.

At first start the runner makes a CA (`ca.crt`, `ca.key`) in its TLS folder
(`.local/tls/` by default, FUNCRUNNER_TLS_DIR) and a server certificate signed
by it whose subjectAltName names `IP:127.0.0.1` and `DNS:localhost` (clients
such as Node's refuse a certificate that has only a CN); both are reused while
valid and made again when missing, expiring or naming other addresses.
`ca.crt` is the file users trust.

The server asks for a client certificate, optionally, and accepts any one (a
management certificate is self-signed; whether it is registered is the app's
decision), as App Service does with client certificates in Optional mode. It
hands it to the app as App Service does: base64 DER in `X-ARR-ClientCert`.
Python's `ssl` has no verify callback, so one that accepts every certificate is
set on the context's OpenSSL handle through ctypes; the runner refuses to start
its HTTPS port if that handle can't be found safely.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest server certificate lifetime Apple's clients accept
RENEW_BEFORE = timedelta(days=30)
_SSL_VERIFY_PEER = 0x01


class TlsSetupError(RuntimeError):
    """The HTTPS port can't be served as App Service would."""


@dataclass(frozen=True)
class TlsFiles:
    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"


def _write(path: Path, data: bytes, private: bool = False) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    if private:
        os.chmod(tmp, 0o600)
    tmp.replace(path)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _still_good(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - RENEW_BEFORE > now


_CA_USAGE = x509.KeyUsage(
    digital_signature=False, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True,
    crl_sign=True, encipher_only=False, decipher_only=False,
)  # fmt: skip


def _make_ca(files: TlsFiles, now: datetime) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "VM image catalog local CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(files.ca_key, _key_pem(key), private=True)
    _write(files.ca_cert, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _load_ca(files: TlsFiles, now: datetime) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    if files.ca_cert.exists() and files.ca_key.exists():
        cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
        if isinstance(key, rsa.RSAPrivateKey) and _still_good(cert, now):
            return cert, key
    return _make_ca(files, now)


def server_names(address: str) -> list[x509.GeneralName]:
    """127.0.0.1 and localhost, and the address listened on when it is another one."""
    names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
    ]
    try:
        ip = ipaddress.ip_address(address)
        if not ip.is_unspecified and ip != ipaddress.ip_address("127.0.0.1"):
            names.append(x509.IPAddress(ip))
    except ValueError:
        if address.lower() != "localhost":
            names.append(x509.DNSName(address))
    return names


def _server_is_current(
    files: TlsFiles, ca: x509.Certificate, names: list[x509.GeneralName], now: datetime
) -> bool:
    if not (files.server_cert.exists() and files.server_key.exists()):
        return False
    cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return cert.issuer == ca.subject and _still_good(cert, now) and set(san) == set(names)


def ensure_tls_files(folder: Path, address: str = "127.0.0.1") -> TlsFiles:
    """The CA and a current server certificate for `address` in `folder`, made when needed."""
    files = TlsFiles(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca, ca_key = _load_ca(files, now)
    names = server_names(address)
    if _server_is_current(files, ca, names, now):
        return files
    key = _new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(files.server_key, _key_pem(key), private=True)
    _write(files.server_cert, cert.public_bytes(serialization.Encoding.PEM))
    return files


# The callback must outlive every context that uses it.
_ACCEPT_ANY = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)(lambda ok, store: 1)


def _libssl() -> ctypes.CDLL:
    import _ssl  # the extension module linked against the libssl this process uses

    return ctypes.CDLL(_ssl.__file__)


def _ssl_ctx_pointer(context: ssl.SSLContext, lib: ctypes.CDLL) -> int:
    """The SSL_CTX* of a context (the first field after the object header), checked by
    watching OpenSSL's verify mode follow the context's own setting."""
    get_mode = lib.SSL_CTX_get_verify_mode
    get_mode.argtypes, get_mode.restype = [ctypes.c_void_p], ctypes.c_int
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not pointer:
        raise TlsSetupError("can't find the TLS context's OpenSSL handle")
    saved = context.verify_mode
    try:
        for mode, expected in ((ssl.CERT_NONE, 0), (ssl.CERT_OPTIONAL, 1)):
            context.verify_mode = mode
            if get_mode(pointer) != expected:
                raise TlsSetupError("can't find the TLS context's OpenSSL handle")
    finally:
        context.verify_mode = saved
    return pointer


def accept_any_client_certificate(context: ssl.SSLContext) -> None:
    """Ask for a client certificate, optionally, and accept whichever one comes."""
    try:
        lib = _libssl()
        pointer = _ssl_ctx_pointer(context, lib)
        set_verify = lib.SSL_CTX_set_verify
        set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        set_verify.restype = None
    except (OSError, AttributeError) as e:
        raise TlsSetupError(f"can't set a client certificate callback: {e}") from e
    context.verify_mode = ssl.CERT_OPTIONAL
    set_verify(pointer, _SSL_VERIFY_PEER, ctypes.cast(_ACCEPT_ANY, ctypes.c_void_p))


def server_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.server_cert, files.server_key)
    accept_any_client_certificate(context)
    return context


def client_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> bytes | None:
    """The DER of the certificate the client presented, if any."""
    if ssl_object is None:
        return None
    return ssl_object.getpeercert(binary_form=True) or None
