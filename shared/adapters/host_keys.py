"""Whether a function key is one the Functions host accepts, asked of the host itself.

The classic routes are anonymous (a management certificate alone must get in, and
the host would answer a keyless request 401 before the function runs), yet a
script's function key must still work as before. A function can't read the
host's keys (on Azure they live in the host's own secret store), so it asks the
host: a GET of a function-level route of this very app (KEY_CHECK_ROUTE) with
the key answers 2xx when the host accepts it and 401 when not. So the host keys,
the master key and that route's function keys are accepted, and rotating a key
in the host takes effect here too.

The host is this app's own address: `WEBSITE_HOSTNAME`, which Azure sets (and
the local runner and Core Tools set to their address); plain http for a loopback
address, https otherwise. Answers are cached for a minute by the key's SHA-256,
so a revoked key may work for up to a minute more.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

from shared.domain.errors import CatalogError

KEY_CHECK_ROUTE = "classic-api/keycheck"
CACHE_SECONDS = 60.0


class KeyCheckUnavailable(CatalogError):
    code = "ServiceUnavailable"
    status = 503
    retry_after = 10


def _is_loopback(host: str) -> bool:
    name = urllib.parse.urlsplit(f"//{host}").hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def key_check_url(env: Mapping[str, str] | None = None) -> str | None:
    e = os.environ if env is None else env
    host = (e.get("WEBSITE_HOSTNAME") or "").strip()
    if not host:
        return None
    scheme = "http" if _is_loopback(host) else "https"
    return f"{scheme}://{host}/{KEY_CHECK_ROUTE}"


class HostKeyCheck:
    def __init__(self, url: str | None, cache_seconds: float = CACHE_SECONDS) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self._answers: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> HostKeyCheck:
        return cls(key_check_url())

    def accepts(self, key: str) -> bool:
        if not key:
            return False
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        now = time.monotonic()
        with self._lock:
            cached = self._answers.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        accepted = self._ask(key)
        with self._lock:
            if len(self._answers) > 10_000:  # keys tried at random must not grow it forever
                self._answers.clear()
            self._answers[digest] = (accepted, now + self.cache_seconds)
        return accepted

    def _ask(self, key: str) -> bool:
        if self.url is None:
            raise KeyCheckUnavailable(
                "function keys can't be checked: WEBSITE_HOSTNAME (this app's address) is not set"
            )
        request = urllib.request.Request(self.url, headers={"x-functions-key": key})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return 200 <= answer.status < 300
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                return False
            raise KeyCheckUnavailable(
                f"the host answered the function key check with {e.code}; try again"
            ) from None
        except (OSError, ValueError) as e:
            raise KeyCheckUnavailable(f"the host could not check the function key: {e}") from None
