"""Get Operation Status: what became of an asynchronous call, by its request id."""

from __future__ import annotations

import azure.functions as func

from functions.classic.common import CLASSIC, SUB, bp, classic_api, xml_response
from shared.services.classic.operations import ClassicCall, operation_xml
from shared.services.context import operations


@bp.route(route=f"{SUB}/operations/{{requestId}}", methods=["GET"], auth_level=CLASSIC)
@classic_api(since="2009-10-01")
def classic_get_operation_status(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    return xml_response(operation_xml(operations().get(req.route_params["requestId"])))
