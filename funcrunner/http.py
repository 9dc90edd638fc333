"""HTTP triggers served by aiohttp with the host's routing and key checks.

Requests are matched against every HTTP function's route (after the
`routePrefix`) in ASP.NET precedence order: literal segments before
constrained parameters before plain ones before catch-alls. No matching
route, or a route without the request's method, is a 404 with an empty body
(the host does not answer 405). A missing or wrong key is a 401 with an
empty body; an unhandled exception in the function is a 500 with an empty
body.

On the HTTPS port a client certificate, when one was presented, reaches the
function as App Service forwards it: base64 DER in `X-ARR-ClientCert`. A
`X-ARR-ClientCert` header the client sent itself is dropped on both ports.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import azure.functions as func
from aiohttp import web

from .invoker import InvocationFailed, Invoker
from .keys import KeyStore
from .loader import FunctionSpec
from .tls import client_certificate

log = logging.getLogger("funcrunner.http")

MAX_REQUEST_BYTES = 100 * 1024 * 1024  # the host's request size limit
CLIENT_CERT_HEADER = "x-arr-clientcert"


def _presented_key(request: web.Request) -> str | None:
    return request.headers.get("x-functions-key") or request.query.get("code")


def to_http_request(request: web.Request, body: bytes, route_params: dict[str, str]) -> Any:
    headers: dict[str, str] = {}
    for k, v in request.headers.items():
        if k.lower() == CLIENT_CERT_HEADER:
            continue  # only the front end may say which certificate the client presented
        headers[k.lower()] = f"{headers[k.lower()]}, {v}" if k.lower() in headers else v
    der = client_certificate(request.transport and request.transport.get_extra_info("ssl_object"))
    if der is not None:
        headers[CLIENT_CERT_HEADER] = base64.b64encode(der).decode("ascii")
    params: dict[str, str] = {}
    for k, v in request.query.items():
        params.setdefault(k, v)
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=headers,
        params=params,
        route_params=route_params,
        body=body,
    )


def to_web_response(value: Any) -> web.Response:
    if isinstance(value, func.HttpResponse):
        headers = {k: v for k, v in value.headers.items()}
        if not any(k.lower() == "content-type" for k in headers) and value.mimetype:
            charset = f"; charset={value.charset}" if value.charset else ""
            headers["Content-Type"] = f"{value.mimetype}{charset}"
        return web.Response(status=value.status_code, body=value.get_body(), headers=headers)
    if isinstance(value, str):
        return web.Response(status=200, text=value)
    if isinstance(value, bytes | bytearray):
        return web.Response(status=200, body=bytes(value))
    raise InvocationFailed(f"the HTTP output is a {type(value).__name__}, not an HttpResponse")


class HttpHost:
    def __init__(
        self,
        specs: list[FunctionSpec],
        invoker: Invoker,
        keys: KeyStore,
        route_prefix: str,
        status: dict[str, Any],
    ) -> None:
        http_specs = [s for s in specs if s.route is not None]
        # Most specific first; ties keep declaration order.
        self.routes = sorted(http_specs, key=lambda s: s.route.precedence)  # type: ignore[union-attr]
        self.invoker = invoker
        self.keys = keys
        self.prefix = route_prefix.strip("/")
        self.status = status

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("GET", "/admin/host/ping", self._ping)
        app.router.add_route("GET", "/admin/host/status", self._host_status)
        app.router.add_route("GET", "/admin/functions", self._functions)
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._dispatch)  # newlines too
        return app

    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    def _admin(self, request: web.Request) -> bool:
        return self.keys.authorized("admin", "", _presented_key(request))

    async def _host_status(self, request: web.Request) -> web.Response:
        if not self._admin(request):
            return web.Response(status=401)
        return web.json_response(self.status)

    async def _functions(self, request: web.Request) -> web.Response:
        if not self._admin(request):
            return web.Response(status=401)
        return web.json_response(
            [{"name": s.name, "trigger": s.trigger.type, **s.extra} for s in self.routes]
        )

    def _match(self, path: str, method: str) -> tuple[FunctionSpec, dict[str, str]] | None:
        if self.prefix:
            head, _, rest = path.strip("/").partition("/")
            if head.lower() != self.prefix.lower():
                return None
            path = rest
        for spec in self.routes:
            values = spec.route.match(path)  # type: ignore[union-attr]
            if values is None:
                continue
            if spec.methods is None or method in spec.methods:
                return spec, values
        return None

    async def _dispatch(self, request: web.Request) -> web.Response:
        found = self._match(request.rel_url.raw_path, request.method.upper())
        if found is None:
            return web.Response(status=404)
        spec, route_params = found
        if not self.keys.authorized(spec.auth_level, spec.name, _presented_key(request)):
            return web.Response(status=401)
        body = await request.read()
        http_request = to_http_request(request, body, route_params)
        try:
            invocation = await self.invoker.invoke(
                spec,
                {spec.trigger.name: http_request},
                f"HTTP {request.method} {request.path}",
            )
            output = next((b.name for b in spec.outputs if b.type == "http"), "$return")
            return to_web_response(invocation.outputs.get(output))
        except InvocationFailed as e:
            log.error("Functions.%s failed: %s", spec.name, e)
            return web.Response(status=500)
