"""GET /api/openapi.json: the OpenAPI document of the JSON API (anonymous)."""

from __future__ import annotations

import azure.functions as func

from functions._http import json_errors, json_response
from shared.openapi import document

bp = func.Blueprint()


@bp.route(route="api/openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(document(), headers={"Cache-Control": "public, max-age=300"})
