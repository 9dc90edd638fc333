"""PKCS#12 with a zero-length password, as Windows exported management certificates.

A `.publishsettings` file carries the management certificate and its key as a
base64 PKCS#12 whose password is zero-length. RFC 7292 turns a password into
key material as a BMPString with a two-byte terminator, except that a
zero-length password is no bytes at all (appendix B.1); OpenSSL encodes "" as
the two zero bytes instead, and tools that derive keys from a zero-length
password can't open such a file. `cryptography` writes only OpenSSL's kind, so
this module writes (and reads) the PFX itself:

- the RSA key in a pkcs8ShroudedKeyBag, encrypted with
  pbeWithSHAAnd3-KeyTripleDES-CBC (PKCS#12 KDF, SHA-1, 3DES-CBC);
- the certificate in an unencrypted certBag; both bags carry the same localKeyId;
- an HMAC-SHA1 MAC over the authenticated safe.

The reader implements the same RFC for a given password encoding, to check files.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

try:  # cryptography >= 43 keeps the legacy ciphers apart
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES  # type: ignore
from cryptography.hazmat.primitives.ciphers import Cipher, modes

# Object identifiers (RFC 7292, PKCS#7, PKCS#9).
ID_DATA = "1.2.840.113549.1.7.1"
ID_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
PKCS8_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
CERT_BAG = "1.2.840.113549.1.12.10.1.3"
X509_CERTIFICATE = "1.2.840.113549.1.9.22.1"
PBE_SHA1_3DES = "1.2.840.113549.1.12.1.3"
FRIENDLY_NAME = "1.2.840.113549.1.9.20"
LOCAL_KEY_ID = "1.2.840.113549.1.9.21"
SHA1 = "1.3.14.3.2.26"

ITERATIONS = 2000  # as Windows' export used


class Pkcs12Error(ValueError):
    """Not a PKCS#12 this reader understands, or the password is wrong."""


# -- DER, just what a PFX needs ------------------------------------------------------------


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _set(*items: bytes) -> bytes:
    return _tlv(0x31, b"".join(sorted(items)))  # DER orders a SET OF by encoding


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _octets(data: bytes) -> bytes:
    return _tlv(0x04, data)


def _explicit0(content: bytes) -> bytes:
    return _tlv(0xA0, content)


def _bmp(text: str) -> bytes:
    return _tlv(0x1E, text.encode("utf-16-be"))


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


NULL = b"\x05\x00"


@dataclass(frozen=True)
class _Node:
    tag: int
    content: bytes

    def children(self) -> list[_Node]:
        items, at = [], 0
        while at < len(self.content):
            node, at = _read(self.content, at)
            items.append(node)
        return items

    def oid(self) -> str:
        if self.tag != 0x06:
            raise Pkcs12Error(f"expected an OBJECT IDENTIFIER, found tag {self.tag:#x}")
        first, rest = divmod(self.content[0], 40)
        parts, value = [min(first, 2), rest + 40 * max(first - 2, 0)], 0
        for b in self.content[1:]:
            value = (value << 7) | (b & 0x7F)
            if not b & 0x80:
                parts.append(value)
                value = 0
        return ".".join(map(str, parts))

    def integer(self) -> int:
        return int.from_bytes(self.content, "big", signed=True)


def _read(data: bytes, at: int = 0) -> tuple[_Node, int]:
    try:
        tag, first = data[at], data[at + 1]
        at += 2
        if first & 0x80:
            count = first & 0x7F
            if not 1 <= count <= 4:
                raise Pkcs12Error("a DER length this reader does not take")
            length = int.from_bytes(data[at : at + count], "big")
            at += count
        else:
            length = first
    except IndexError:
        raise Pkcs12Error("the DER ends early") from None
    if at + length > len(data):
        raise Pkcs12Error("the DER ends early")
    return _Node(tag, data[at : at + length]), at + length


def _one(data: bytes) -> _Node:
    node, end = _read(data)
    if end != len(data):
        raise Pkcs12Error("bytes after the DER value")
    return node


# -- RFC 7292 appendix B: keys from a password -------------------------------------------


def password_bytes(password: str | None) -> bytes:
    """The password as RFC 7292 feeds it to its KDF: a BMPString with a two-byte zero
    terminator, and no bytes at all for a zero-length password (None or "")."""
    if not password:
        return b""
    return password.encode("utf-16-be") + b"\x00\x00"


def pkcs12_kdf(password: bytes, salt: bytes, purpose: int, iterations: int, size: int) -> bytes:
    """RFC 7292 B.2 with SHA-1 (u=20, v=64); purpose 1: key, 2: IV, 3: MAC key."""
    u, v = 20, 64

    def stretch(data: bytes) -> bytes:
        if not data:
            return b""
        n = v * ((len(data) + v - 1) // v)
        return (data * (n // len(data) + 1))[:n]

    d = bytes([purpose]) * v
    i = bytearray(stretch(salt) + stretch(password))
    out = b""
    while len(out) < size:
        a = d + bytes(i)
        for _ in range(iterations):
            a = hashlib.sha1(a).digest()
        out += a
        b = int.from_bytes((a * (v // u + 1))[:v], "big")
        for j in range(0, len(i), v):
            block = (int.from_bytes(i[j : j + v], "big") + b + 1) % (1 << (8 * v))
            i[j : j + v] = block.to_bytes(v, "big")
    return out[:size]


def _3des(password: bytes, salt: bytes, iterations: int, data: bytes, encrypt: bool) -> bytes:
    key = pkcs12_kdf(password, salt, 1, iterations, 24)
    iv = pkcs12_kdf(password, salt, 2, iterations, 8)
    cipher = Cipher(TripleDES(key), modes.CBC(iv))
    if encrypt:
        padder = padding.PKCS7(64).padder()
        enc = cipher.encryptor()
        return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()
    dec = cipher.decryptor()
    padded = dec.update(data) + dec.finalize()
    unpadder = padding.PKCS7(64).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise Pkcs12Error("the key bag does not decrypt: wrong password") from None


def _mac(password: bytes, salt: bytes, iterations: int, data: bytes) -> bytes:
    key = pkcs12_kdf(password, salt, 3, iterations, 20)
    return hmac.new(key, data, hashlib.sha1).digest()


# -- Writing ------------------------------------------------------------------------------


def _attributes(local_key_id: bytes, friendly_name: str | None) -> bytes:
    attrs = [_seq(_oid(LOCAL_KEY_ID), _set(_octets(local_key_id)))]
    if friendly_name:
        attrs.append(_seq(_oid(FRIENDLY_NAME), _set(_bmp(friendly_name))))
    return _set(*attrs)


def write_pfx(
    key: PrivateKeyTypes,
    cert: x509.Certificate,
    friendly_name: str | None = None,
    password: str | None = None,
    iterations: int = ITERATIONS,
) -> bytes:
    """A PFX (DER) of `key` and `cert`; with no password, a zero-length one, as Windows."""
    secret = password_bytes(password)
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    local_key_id = hashlib.sha1(cert_der, usedforsecurity=False).digest()
    attributes = _attributes(local_key_id, friendly_name)

    key_info = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_salt = os.urandom(8)
    shrouded = _seq(
        _seq(_oid(PBE_SHA1_3DES), _seq(_octets(key_salt), _int(iterations))),
        _octets(_3des(secret, key_salt, iterations, key_info, encrypt=True)),
    )
    key_bag = _seq(_oid(PKCS8_SHROUDED_KEY_BAG), _explicit0(shrouded), attributes)
    cert_bag = _seq(
        _oid(CERT_BAG),
        _explicit0(_seq(_oid(X509_CERTIFICATE), _explicit0(_octets(cert_der)))),
        attributes,
    )

    def data_info(content: bytes) -> bytes:
        return _seq(_oid(ID_DATA), _explicit0(_octets(content)))

    safe = _seq(data_info(_seq(cert_bag)), data_info(_seq(key_bag)))
    mac_salt = os.urandom(20)
    mac = _seq(
        _seq(_seq(_oid(SHA1), NULL), _octets(_mac(secret, mac_salt, iterations, safe))),
        _octets(mac_salt),
        _int(iterations),
    )
    return _seq(_int(3), data_info(safe), mac)


# -- Reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pfx:
    key: PrivateKeyTypes
    certificate: x509.Certificate
    friendly_name: str | None


def _data_content(info: _Node) -> bytes:
    oid, content = info.children()
    if oid.oid() != ID_DATA:
        raise Pkcs12Error(f"a ContentInfo of type {oid.oid()} (only id-data is read here)")
    return _one(content.content).content


def read_pfx(data: bytes, password: bytes = b"") -> Pfx:
    """The key and certificate of a PFX whose password, fed to the KDF, is `password`
    (b"" for a zero-length password; `password_bytes` makes it from text)."""
    version, auth_safe, *rest = _one(data).children()
    if version.integer() != 3:
        raise Pkcs12Error(f"PFX version {version.integer()}, not 3")
    safe = _data_content(auth_safe)
    if not rest:
        raise Pkcs12Error("the PFX has no MAC")
    digest_info, mac_salt, *iterations = rest[0].children()
    algorithm, expected = digest_info.children()
    if algorithm.children()[0].oid() != SHA1:
        raise Pkcs12Error("the MAC is not HMAC-SHA1")
    rounds = iterations[0].integer() if iterations else 1
    if not hmac.compare_digest(_mac(password, mac_salt.content, rounds, safe), expected.content):
        raise Pkcs12Error("the MAC does not verify: wrong password (or its encoding)")
    key = cert = name = None
    for info in _one(safe).children():
        for bag in _one(_data_content(info)).children():
            bag_id, value, *attrs = bag.children()
            inner = _one(value.content)
            for attr in attrs[0].children() if attrs else []:
                attr_id, values = attr.children()
                if attr_id.oid() == FRIENDLY_NAME:
                    name = values.children()[0].content.decode("utf-16-be")
            if bag_id.oid() == PKCS8_SHROUDED_KEY_BAG:
                algo, encrypted = inner.children()
                algo_id, params = algo.children()
                if algo_id.oid() != PBE_SHA1_3DES:
                    raise Pkcs12Error(f"the key is encrypted with {algo_id.oid()}, not 3DES")
                salt, count = params.children()
                plain = _3des(password, salt.content, count.integer(), encrypted.content, False)
                key = serialization.load_der_private_key(plain, password=None)
            elif bag_id.oid() == CERT_BAG:
                cert_type, cert_value = inner.children()
                if cert_type.oid() == X509_CERTIFICATE:
                    cert = x509.load_der_x509_certificate(_one(cert_value.content).content)
    if key is None or cert is None:
        raise Pkcs12Error("the PFX lacks a key or a certificate")
    return Pfx(key, cert, name)
