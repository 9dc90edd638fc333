"""A small HTTP client for the catalog's JSON API (`/api/...`), on `requests`.

Every failure becomes a `CliError` with the exit code scripts rely on: the
service's `{Code, Message}` (exit 1), cannot connect (exit 3), no answer in
time (exit 4). Connection failures and 502/503/504 are retried a little
(GET, PUT and DELETE only; a capture is made idempotent by its operation id).
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from vmimage import __version__
from vmimage.errors import ApiError, TimedOut, Unreachable

CONNECT_TIMEOUT = 5.0
CLASSIC_NS = "http://schemas.microsoft.com/windowsazure"
READ_TIMEOUT = 60.0

_EMPTY_BODY_CODES = {
    400: ("BadRequest", "the service refused the request"),
    401: ("Unauthorized", "the service wants a function key: pass --key or set VMIMAGE_KEY"),
    403: ("Forbidden", "the function key was refused: check --key / VMIMAGE_KEY"),
    404: ("NotFound", "no such endpoint: is --url the catalog's address?"),
    409: ("Conflict", "the service refused the change"),
}


def make_session() -> requests.Session:
    session = requests.Session()
    retry = Retry(
        total=3,
        connect=2,
        read=0,
        status=2,
        status_forcelist=(502, 503, 504),
        allowed_methods=frozenset({"GET", "PUT", "DELETE"}),
        backoff_factor=0.2,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = f"vmimage/{__version__}"
    return session


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("127.0.0.1", "localhost", "::1")


class Catalog:
    """The catalog at `base_url` (e.g. http://127.0.0.1:7071), with an optional function key."""

    def __init__(
        self, base_url: str, key: str | None = None, session: requests.Session | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.session = session or make_session()

    # -- plumbing ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        ok: tuple[int, ...] = (200,),
    ) -> requests.Response:
        headers = {"Accept": "application/json"}
        if self.key:
            headers["x-functions-key"] = self.key
        url = self.base_url + path
        try:
            r = self.session.request(
                method,
                url,
                params={k: v for k, v in (params or {}).items() if v is not None},
                json=body,
                headers=headers,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                allow_redirects=False,
            )
        except requests.exceptions.ConnectTimeout as e:
            raise Unreachable("Unreachable", f"no connection to {self.base_url}: {_why(e)}") from e
        except requests.exceptions.Timeout as e:
            raise TimedOut(
                "Timeout", f"{self.base_url} did not answer {method} {path} in time"
            ) from e
        except requests.exceptions.ConnectionError as e:
            raise Unreachable(
                "Unreachable", f"cannot reach the catalog at {self.base_url}: {_why(e)}"
            ) from e
        except requests.exceptions.RequestException as e:
            raise Unreachable("Unreachable", f"{method} {url} failed: {_why(e)}") from e
        if r.status_code not in ok:
            raise self._error(r)
        return r

    def _error(self, r: requests.Response) -> ApiError:
        doc: Any = None
        try:
            doc = r.json() if r.content else None
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("Code"), str):
            return ApiError(doc["Code"], str(doc.get("Message", "")), r.status_code)
        if r.status_code in _EMPTY_BODY_CODES:
            code, message = _EMPTY_BODY_CODES[r.status_code]
            if r.status_code == 401 and self.key:
                message = "the function key was refused: check --key / VMIMAGE_KEY"
            return ApiError(code, message, r.status_code)
        if r.status_code >= 500:
            return ApiError("ServerError", f"the service failed (HTTP {r.status_code})", 500)
        return ApiError(
            "UnexpectedResponse",
            f"HTTP {r.status_code} from {r.url}: {r.text[:200]!r}",
            r.status_code,
        )

    def json(self, method: str, path: str, **kw: Any) -> Any:
        r = self.request(method, path, **kw)
        try:
            return r.json()
        except ValueError as e:
            raise ApiError(
                "UnexpectedResponse",
                f"{r.url} did not answer JSON: is --url the catalog's address?",
                r.status_code,
            ) from e

    def classic(
        self, method: str, path: str, body: bytes | None = None, ok: tuple[int, ...] = (200,)
    ) -> requests.Response:
        """A call to the classic XML API (`/{subscription}/...`); its `<Error>` becomes an
        ApiError with the classic code and message."""
        headers = {"x-ms-version": "2014-10-01", "Content-Type": "application/xml"}
        if self.key:
            headers["x-functions-key"] = self.key
        try:
            r = self.session.request(
                method,
                self.base_url + path,
                data=body,
                headers=headers,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                allow_redirects=False,
            )
        except requests.exceptions.RequestException as e:
            raise Unreachable(
                "Unreachable", f"cannot reach the catalog at {self.base_url}: {_why(e)}"
            ) from e
        if r.status_code in ok:
            return r
        code = message = None
        if r.content.lstrip().startswith(b"<"):
            try:
                root = ET.fromstring(r.content)
                code = root.findtext(f"{{{CLASSIC_NS}}}Code")
                message = root.findtext(f"{{{CLASSIC_NS}}}Message")
            except ET.ParseError:
                pass
        if code:
            if r.status_code == 403 and code == "ForbiddenError":
                message = f"{message} (pass the host or master key with --key)"
            raise ApiError(code, message or "", r.status_code)
        raise self._error(r)

    # -- images --------------------------------------------------------------------------

    def list_images(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.json("GET", "/api/images", params=params)

    def iter_image_pages(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every page of a listing, following continuation tokens."""
        params = dict(params)
        while True:
            page = self.list_images(params)
            yield page
            token = page.get("ContinuationToken")
            if not token:
                return
            params["continuationToken"] = token

    def image(self, name: str) -> dict[str, Any]:
        return self.json("GET", f"/api/images/{_seg(name)}")

    def image_exists(self, name: str) -> bool:
        try:
            self.image(name)
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        return True

    def remove_image(self, name: str, delete_vhd: bool) -> dict[str, Any]:
        params = {"deleteVhd": "true" if delete_vhd else "false"}
        return self.json("DELETE", f"/api/images/{_seg(name)}", params=params)

    def families(self) -> dict[str, Any]:
        return self.json("GET", "/api/families")

    def doctor(self, stuck_after: float) -> dict[str, Any]:
        params = {"stuckAfterSeconds": int(stuck_after)}
        return self.json("GET", "/api/admin/doctor", params=params)

    def latest(
        self, family: str, os_name: str | None, include_excluded: bool = False
    ) -> dict[str, Any]:
        params = {"os": os_name, "includeExcluded": "true" if include_excluded else None}
        return self.json("GET", f"/api/families/{_seg(family)}/latest", params=params)

    def update_image(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self.json("PATCH", f"/api/images/{_seg(name)}", body=changes)

    # -- uploads and operations ----------------------------------------------------------

    def upload_outcome(self, blob_name: str) -> dict[str, Any]:
        return self.json("GET", f"/api/uploads/{quote(blob_name, safe='/')}")

    def capture(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.json("POST", "/api/captures", body=request, ok=(200, 202))

    def operation(self, op_id: str) -> dict[str, Any]:
        return self.json("GET", f"/api/operations/{_seg(op_id)}")

    # -- VMs -----------------------------------------------------------------------------

    def put_vm(self, service: str, vm: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        r = self.request("PUT", f"/api/vms/{_seg(service)}/{_seg(vm)}", body=body, ok=(200, 201))
        return r.json(), r.status_code == 201

    def vm(self, service: str, vm: str) -> dict[str, Any]:
        return self.json("GET", f"/api/vms/{_seg(service)}/{_seg(vm)}")

    def remove_vm(self, service: str, vm: str) -> None:
        self.request("DELETE", f"/api/vms/{_seg(service)}/{_seg(vm)}", ok=(200, 204))

    def iter_vm_pages(self, top: int | None) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"top": top}
        while True:
            page = self.json("GET", "/api/vms", params=params)
            yield page
            if not page.get("ContinuationToken"):
                return
            params["continuationToken"] = page["ContinuationToken"]


def poll(
    fetch: Callable[[], dict[str, Any] | None],
    done: Callable[[dict[str, Any]], bool],
    timeout: float,
    what: str,
    on_change: Callable[[dict[str, Any]], None] | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
    max_delay: float = 2.0,
) -> dict[str, Any]:
    """Call `fetch` (None: not there yet) until `done`, backing off from 0.2 s to `max_delay`."""
    sleep = sleep or time.sleep
    clock = clock or time.monotonic
    deadline = clock() + timeout
    delay = 0.2
    last: dict[str, Any] | None = None
    while True:
        doc = fetch()
        if doc is not None:
            if on_change is not None and doc != last:
                on_change(doc)
            last = doc
            if done(doc):
                return doc
        if clock() + delay > deadline:
            raise TimedOut("Timeout", f"{what} not finished after {timeout:g}s", details=last)
        sleep(delay)
        delay = min(max_delay, delay * 1.5)


def _seg(value: str) -> str:
    return quote(value, safe="")


def _why(e: Exception) -> str:
    """The root cause of a requests error, without urllib3's nesting."""
    inner: BaseException = e
    while True:
        nxt = getattr(inner, "reason", None) or inner.__cause__ or inner.__context__
        if nxt is None or nxt is inner or not isinstance(nxt, BaseException):
            break
        inner = nxt
    text = str(inner)
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused (is the app running? `make run` starts it locally)"
    return text[:200]
