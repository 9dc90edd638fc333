"""GET /api/admin/doctor: the catalog's invariants checked against storage (for operators)."""

from __future__ import annotations

import re
from datetime import timedelta

import azure.functions as func

from functions._http import json_errors, json_response
from shared.domain.errors import InvalidParameter
from shared.services.context import doctor

bp = func.Blueprint()


@bp.route(route="api/admin/doctor", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@json_errors
def check_invariants(req: func.HttpRequest) -> func.HttpResponse:
    stuck = req.params.get("stuckAfterSeconds", "3600")
    if not re.fullmatch(r"\d{1,7}", stuck):
        raise InvalidParameter("stuckAfterSeconds must be a whole number of seconds")
    report = doctor().examine(stuck_after=timedelta(seconds=int(stuck)))
    return json_response(report.to_json())
