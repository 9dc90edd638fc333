"""Short-lived SAS URLs for one blob: signed with the account key where the connection
has one (Azurite, a connection string), else with a user delegation key from Entra ID
(on Azure, where the account's shared keys are off and the app signs in as its identity).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    UserDelegationKey,
    generate_blob_sas,
)

# A user delegation key may live 7 days; one is fetched per hour and reused meanwhile.
_KEY_LIFETIME = timedelta(hours=2)
_KEY_RENEW_AFTER = timedelta(hours=1)
# Clocks differ a little: a SAS starts a few minutes back.
_SKEW = timedelta(minutes=5)


class SasSigner:
    def __init__(self, blobs: BlobServiceClient) -> None:
        self.blobs = blobs
        self._key: tuple[datetime, UserDelegationKey] | None = None
        self._lock = threading.Lock()

    @property
    def account_key(self) -> str | None:
        return getattr(self.blobs.credential, "account_key", None)

    @property
    def kind(self) -> str:
        return "account-key" if self.account_key else "user-delegation"

    def _delegation_key(self, now: datetime) -> UserDelegationKey:
        with self._lock:
            if self._key is None or now - self._key[0] > _KEY_RENEW_AFTER:
                key = self.blobs.get_user_delegation_key(now - _SKEW, now + _KEY_LIFETIME)
                self._key = (now, key)
            return self._key[1]

    def blob_url(
        self,
        container: str,
        blob: str,
        permission: BlobSasPermissions,
        lifetime: timedelta,
        now: datetime | None = None,
    ) -> tuple[str, datetime]:
        """(the blob's URL with a SAS for `permission` only, when the SAS expires)."""
        now = now or datetime.now(UTC)
        expiry = now + lifetime
        common = {
            "account_name": self.blobs.account_name,
            "container_name": container,
            "blob_name": blob,
            "permission": permission,
            "start": now - _SKEW,
            "expiry": expiry,
            "protocol": "https" if self.blobs.url.startswith("https") else "https,http",
        }
        key = self.account_key
        if key:
            sas = generate_blob_sas(account_key=key, **common)
        else:
            sas = generate_blob_sas(user_delegation_key=self._delegation_key(now), **common)
        url = self.blobs.get_blob_client(container, blob).url
        return f"{url}?{sas}", expiry
