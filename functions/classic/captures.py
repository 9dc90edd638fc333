"""Capture Role and Capture VM Image, queued as captures (the request id is the operation)."""

from __future__ import annotations

import azure.functions as func

from functions.classic.common import CLASSIC, SUB, bp, classic_api, xml_response
from shared.services.captures import submit_capture
from shared.services.classic.captures import parse_capture_operation
from shared.services.classic.operations import ClassicCall
from shared.services.context import capture_deps, capture_queue


@bp.route(
    route=f"{SUB}/services/hostedservices/{{service}}/deployments/{{deployment}}"
    "/roleinstances/{role}/Operations",
    methods=["POST"],
    auth_level=CLASSIC,
)
@classic_api(since="2012-03-01")
def classic_capture_role(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    """Capture Role / Capture VM Image: queued; the request id is the operation to poll."""
    doc = parse_capture_operation(
        req.get_body(), req.route_params["service"], req.route_params["role"], call.request_id
    )
    submit_capture(doc, capture_deps(), lambda m: capture_queue().send(m))
    return xml_response(status=202)
