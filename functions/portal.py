"""The portal: its page at `/` and its built assets under `/assets/`, anonymous.

The page holds no data and no secret: everything it shows comes from the JSON
API, and what changes anything needs the function key the user types in.
"""

from __future__ import annotations

import azure.functions as func

from functions._http import json_errors
from shared.adapters.static_files import StaticSite
from shared.adapters.storage import account
from shared.services import portal

bp = func.Blueprint()
site = StaticSite()


def _respond(answer: portal.Answer) -> func.HttpResponse:
    return func.HttpResponse(answer.body, status_code=answer.status, headers=answer.headers)


# `/` (and `/index.html`): an optional segment allowed only that one value, so that no
# other path, and none of the classic API's `/{subscriptionId}/...`, comes here.
@bp.route(
    route=r"{page:regex(^index\.html$)?}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS
)
@json_errors
def portal_page(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(
        portal.index(
            site,
            account().blobs.url,
            req.headers.get("If-None-Match"),
            req.headers.get("Accept-Encoding"),
        )
    )


@bp.route(route="assets/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
def portal_asset(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(
        portal.asset(
            site,
            req.route_params.get("path", ""),
            req.headers.get("If-None-Match"),
            req.headers.get("Accept-Encoding"),
        )
    )
