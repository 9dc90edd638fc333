"""Upload SAS signing without storage: the account-key path (Azurite, connection strings)
and the user-delegation path (Azure with Entra ID, shared keys off)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.storage.blob import BlobSasPermissions, BlobServiceClient, UserDelegationKey

from shared.adapters.sas import SasSigner
from shared.adapters.storage import DEV_KEY

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CW = BlobSasPermissions.from_string("cw")


@dataclass
class FakeIdentityBlobs:
    """A BlobServiceClient signed in with a token: no account key, a delegation key."""

    url: str = "https://acct.blob.core.windows.net/"
    account_name: str = "acct"
    credential: object = field(default_factory=object)
    asked: list[tuple[datetime, datetime]] = field(default_factory=list)

    def get_user_delegation_key(self, start: datetime, expiry: datetime) -> UserDelegationKey:
        self.asked.append((start, expiry))
        key = UserDelegationKey()
        key.signed_oid, key.signed_tid = "oid-1", "tid-1"
        key.signed_start, key.signed_expiry = "2026-05-01T11:55:00Z", "2026-05-01T14:00:00Z"
        key.signed_service, key.signed_version = "b", "2023-11-03"
        key.value = base64.b64encode(b"k" * 32).decode()
        return key

    def get_blob_client(self, container: str, blob: str) -> Any:
        return type("B", (), {"url": f"{self.url}{container}/{blob}"})()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_locally_the_account_key_signs_one_blob_for_create_and_write() -> None:
    blobs = BlobServiceClient(
        "http://127.0.0.1:10000/devstoreaccount1",
        credential={"account_name": "devstoreaccount1", "account_key": DEV_KEY},
    )
    signer = SasSigner(blobs)
    assert signer.kind == "account-key"
    url, expires = signer.blob_url("uploads", "d.vhd", CW, timedelta(minutes=15), NOW)
    assert urlsplit(url).path == "/devstoreaccount1/uploads/d.vhd"
    q = query(url)
    assert (q["sp"], q["sr"], q["spr"]) == ("cw", "b", "https,http")
    assert "skoid" not in q and expires == NOW + timedelta(minutes=15)


def test_on_azure_a_user_delegation_key_signs_and_is_reused() -> None:
    blobs = FakeIdentityBlobs()
    signer = SasSigner(blobs)  # type: ignore[arg-type]
    assert signer.kind == "user-delegation"
    url, _ = signer.blob_url("uploads", "d.vhd", CW, timedelta(minutes=15), NOW)
    q = query(url)
    assert (q["sp"], q["sr"], q["spr"]) == ("cw", "b", "https")
    assert (q["skoid"], q["sktid"]) == ("oid-1", "tid-1") and q["sig"]
    signer.blob_url("uploads", "e.vhd", CW, timedelta(minutes=15), NOW + timedelta(minutes=30))
    assert len(blobs.asked) == 1, "one delegation key serves an hour of tickets"
    signer.blob_url("uploads", "f.vhd", CW, timedelta(minutes=15), NOW + timedelta(minutes=61))
    assert len(blobs.asked) == 2
    start, expiry = blobs.asked[0]
    assert start < NOW < NOW + timedelta(minutes=76) < expiry  # covers every SAS it signs
