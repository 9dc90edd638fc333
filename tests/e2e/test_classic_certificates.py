"""Classic clients as they connected: TLS, management certificates, a .publishsettings file.

`vmimage publishsettings` registers a management certificate with the host key
and writes the .publishsettings file and a PEM; the unmodified
`azure-servicemanagement-legacy`, given that PEM as `cert_file` and the HTTPS
endpoint (no custom session, no function key: it trusts the local CA through
REQUESTS_CA_BUNDLE, as requests reads it), lists, gets, updates and deletes
images. Without a certificate, or with one not registered, expired or deleted,
the answer is 403 ForbiddenError.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.common import AzureHttpError, AzureMissingResourceHttpError
from azure.servicemanagement import ServiceManagementService
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from devtools.apphost import AppHost
from devtools.upload import upload_page_blob
from shared.adapters.catalog_table import ImageCatalog
from shared.adapters.storage import StorageAccount
from shared.services.gallery import load_gallery
from shared.settings import DEFAULTS
from tests.e2e.test_uploads import unique
from vmimage.cli import main as vmimage
from vmimage.pkcs12 import Pkcs12Error, read_pfx
from vmimage.publishsettings import new_management_certificate

SUBSCRIPTION = DEFAULTS["CLASSIC_SUBSCRIPTION_ID"]
NS = "{http://schemas.microsoft.com/windowsazure}"
V = {"x-ms-version": "2014-10-01"}


@pytest.fixture(scope="module", autouse=True)
def trust_the_local_ca(catalog_app: AppHost) -> Iterator[None]:
    """What a user does once: trust .local/tls/ca.crt (requests reads REQUESTS_CA_BUNDLE)."""
    before = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(catalog_app.ca_file)
    yield
    if before is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = before


@pytest.fixture(scope="module")
def gallery(storage: StorageAccount) -> None:
    load_gallery(ImageCatalog(storage.tables.get_table_client(storage.settings.images_table)))


@pytest.fixture(scope="module")
def published(catalog_app: AppHost, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`vmimage publishsettings` against the running app, with its host key."""
    out = tmp_path_factory.mktemp("publish") / "local.publishsettings"
    key = str(catalog_app.keys()["hostKeys"]["default"])  # type: ignore[index]
    code = vmimage(
        ["publishsettings", "--url", catalog_app.base_url, "--key", key, "--out", str(out),
         "--management-url", catalog_app.https_url, "--name", "Local catalog", "-q"]
    )  # fmt: skip
    assert code == 0
    root = ET.parse(out).getroot()
    return {"file": out, "pem": out.with_suffix(".pem"), "root": root}


def sms_with(pem: Path | None, app: AppHost) -> ServiceManagementService:
    """The classic client as its README says: a cert_file and the host, nothing else."""
    host = app.https_url.removeprefix("https://")
    if pem is None:  # no certificate: a session that presents none
        return ServiceManagementService(SUBSCRIPTION, host=host, request_session=requests.Session())
    return ServiceManagementService(SUBSCRIPTION, cert_file=str(pem), host=host)


def self_signed_pem(folder: Path, days: int = 30, start: datetime | None = None) -> Path:
    start = start or datetime.now(UTC)
    made = new_management_certificate(f"stranger-{uuid.uuid4().hex[:6]}", start, days)
    path = folder / f"{uuid.uuid4().hex[:8]}.pem"
    path.write_bytes(made.pem())
    return path


def der_of(pem: Path) -> bytes:
    return x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(serialization.Encoding.DER)


def thumbprint_of(pem: Path) -> str:
    return hashlib.sha1(der_of(pem)).hexdigest().upper()


def test_the_publishsettings_file_is_what_classic_tools_import(published, catalog_app) -> None:
    root = published["root"]
    assert root.tag == "PublishData"
    (profile,) = root
    assert (profile.tag, profile.get("SchemaVersion"), profile.get("PublishMethod")) == (
        "PublishProfile",
        "2.0",
        "AzureServiceManagementAPI",
    )
    (sub,) = profile
    assert sub.get("ServiceManagementUrl") == catalog_app.https_url
    assert (sub.get("Id"), sub.get("Name")) == (SUBSCRIPTION, "Local catalog")
    pfx = base64.b64decode(sub.get("ManagementCertificate"))

    # A PKCS#12 reader that derives its keys from a zero-length password opens it ...
    opened = read_pfx(pfx, password=b"")
    pem_cert = x509.load_pem_x509_certificate(published["pem"].read_bytes())
    assert opened.certificate == pem_cert
    assert opened.key.public_key().public_numbers() == pem_cert.public_key().public_numbers()  # type: ignore[union-attr]
    # ... which OpenSSL's encoding of "" (two zero bytes) does not.
    with pytest.raises(Pkcs12Error, match="MAC does not verify"):
        read_pfx(pfx, password=b"\x00\x00")
    # cryptography (OpenSSL's PKCS12_parse) reads it too.
    key, cert, _ = pkcs12.load_key_and_certificates(pfx, b"")
    assert cert == pem_cert and key is not None
    assert published["file"].stat().st_mode & 0o077 == 0
    assert published["pem"].stat().st_mode & 0o077 == 0


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command here")
def test_openssl_opens_it_with_an_empty_password(published, tmp_path) -> None:
    sub = published["root"][0][0]
    pfx = tmp_path / "cert.pfx"
    pfx.write_bytes(base64.b64decode(sub.get("ManagementCertificate")))
    out = subprocess.run(
        ["openssl", "pkcs12", "-in", str(pfx), "-nodes", "-passin", "pass:"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "BEGIN CERTIFICATE" in out.stdout and "BEGIN PRIVATE KEY" in out.stdout


def test_with_the_certificate_the_classic_client_lists_gets_updates_and_deletes(
    published, catalog_app, storage, gallery, disk
) -> None:
    sms = sms_with(published["pem"], catalog_app)
    assert not sms.request_session.headers.get("x-functions-key")
    names = {i.name for i in sms.list_os_images()}
    assert len(names) > 100
    assert len(sms.list_vm_images()) > 0

    blob = storage.blobs.get_blob_client(storage.settings.vhds_container, unique("tls"))
    upload_page_blob(blob, disk("linux_ext4_mbr"))
    name = f"tls-added-{uuid.uuid4().hex[:8]}"
    sms.add_os_image("Added over TLS", blob.url, name, "Linux")
    assert sms.get_os_image(name).label == "Added over TLS"
    reference = sms.get_os_image(name)
    reference.label = "Relabelled over TLS"
    sms.update_os_image_from_image_reference(name, reference)
    assert sms.get_os_image(name).label == "Relabelled over TLS"
    sms.delete_os_image(name, delete_vhd=True)
    with pytest.raises(AzureMissingResourceHttpError):
        sms.get_os_image(name)
    assert not blob.exists()

    # Its own registration is there to read, by thumbprint (in any letter case).
    thumb = thumbprint_of(published["pem"])
    listed = {c.subscription_certificate_thumbprint for c in sms.list_management_certificates()}
    assert thumb in listed
    one = sms.get_management_certificate(thumb.lower())
    assert base64.b64decode(one.subscription_certificate_data) == der_of(published["pem"])
    assert datetime.fromisoformat(one.created) <= datetime.now(UTC)


def test_no_certificate_or_one_not_registered_is_forbidden(published, catalog_app, tmp_path):
    for pem in (None, self_signed_pem(tmp_path)):
        with pytest.raises(AzureHttpError) as refused:
            sms_with(pem, catalog_app).list_os_images()
        assert refused.value.status_code == 403
        assert "<Code>ForbiddenError</Code>" in str(refused.value)


def test_a_certificate_works_only_within_its_dates_and_until_deleted(
    published, catalog_app, tmp_path
) -> None:
    admin = sms_with(published["pem"], catalog_app)
    expired = self_signed_pem(tmp_path, days=1, start=datetime.now(UTC) - timedelta(days=3))
    fresh = self_signed_pem(tmp_path)
    for pem in (expired, fresh):
        public = (
            x509.load_pem_x509_certificate(pem.read_bytes())
            .public_key()
            .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        )
        admin.add_management_certificate(
            base64.b64encode(public).decode(),
            thumbprint_of(pem),
            base64.b64encode(der_of(pem)).decode(),
        )
    with pytest.raises(AzureHttpError) as refused:
        sms_with(expired, catalog_app).list_os_images()
    assert refused.value.status_code == 403
    user = sms_with(fresh, catalog_app)
    assert len(user.list_vm_images()) >= 0
    thumb = thumbprint_of(fresh)
    user.delete_management_certificate(thumb)
    with pytest.raises(AzureHttpError) as gone:
        user.list_os_images()
    assert gone.value.status_code == 403
    with pytest.raises(AzureMissingResourceHttpError):
        admin.get_management_certificate(thumb)


def test_a_certificate_header_sent_by_the_client_counts_for_nothing(published, catalog_app):
    forged = {**V, "X-ARR-ClientCert": base64.b64encode(der_of(published["pem"])).decode()}
    for base in (catalog_app.base_url, catalog_app.https_url):
        r = requests.get(f"{base}/{SUBSCRIPTION}/services/images", headers=forged, timeout=30)
        assert r.status_code == 403
        assert ET.fromstring(r.content).findtext(f"{NS}Code") == "ForbiddenError"


def test_managing_certificates_needs_an_authorised_caller(published, catalog_app, tmp_path):
    stranger = self_signed_pem(tmp_path)
    der = der_of(stranger)
    body = (
        "<SubscriptionCertificate xmlns='http://schemas.microsoft.com/windowsazure'>"
        f"<SubscriptionCertificateData>{base64.b64encode(der).decode()}"
        "</SubscriptionCertificateData></SubscriptionCertificate>"
    )
    url = f"{catalog_app.https_url}/{SUBSCRIPTION}/certificates"
    # The stranger can't add itself ...
    r = requests.post(url, data=body, headers=V, cert=str(stranger), timeout=30)
    assert r.status_code == 403
    # ... a key holder can, once: then 409 ConflictError.
    key = {"x-functions-key": str(catalog_app.keys()["hostKeys"]["default"]), **V}  # type: ignore[index]
    assert requests.post(url, data=body, headers=key, timeout=30).status_code == 201
    again = requests.post(url, data=body, headers=key, timeout=30)
    assert again.status_code == 409
    assert ET.fromstring(again.content).findtext(f"{NS}Code") == "ConflictError"
    bad = requests.post(url, data=body.replace("MII", "XII"), headers=key, timeout=30)
    assert bad.status_code == 400
    missing = requests.get(f"{url}/{'0' * 40}", headers=key, timeout=30)
    assert (missing.status_code, ET.fromstring(missing.content).findtext(f"{NS}Code")) == (
        404,
        "ResourceNotFound",
    )
