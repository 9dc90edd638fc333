"""Captures: the queue-triggered worker, `POST /api/captures`, and operation status."""

from __future__ import annotations

import os

import azure.functions as func

from functions._http import json_body, json_errors, json_response
from shared.services.captures import handle_capture_message, submit_capture
from shared.services.context import capture_deps, capture_queue, operations
from shared.services.recent_lists import list_operations as recent_operations
from shared.services.recent_lists import parse_top

bp = func.Blueprint()


@bp.queue_trigger(arg_name="msg", queue_name="%CAPTURE_QUEUE%", connection="AzureWebJobsStorage")
@bp.queue_output(
    arg_name="parked", queue_name="%CAPTURE_QUEUE%-poison", connection="AzureWebJobsStorage"
)
def capture_vm(msg: func.QueueMessage, parked: func.Out[str]) -> None:
    outcome = handle_capture_message(
        msg.get_body(),
        msg.id or "",
        msg.dequeue_count or 1,
        capture_deps(),
        max_attempts=int(os.environ.get("CAPTURE_MAX_ATTEMPTS", "5")),
    )
    if outcome.keep_raw is not None:
        # A message nobody can act on: keep its text where operators look, don't retry it.
        parked.set(outcome.keep_raw)


@bp.route(route="api/captures", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@json_errors
def request_capture(req: func.HttpRequest) -> func.HttpResponse:
    doc = json_body(req)
    op = submit_capture(doc, capture_deps(), lambda m: capture_queue().send(m))
    location = f"/api/operations/{op.OperationId}"
    return json_response(op, 202, headers={"Location": location})


@bp.route(route="api/operations/{id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
def get_operation(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(operations().get(req.route_params["id"]))


@bp.route(route="api/operations", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
def list_operations(req: func.HttpRequest) -> func.HttpResponse:
    top = parse_top(req.params.get("top"))
    token = req.params.get("continuationToken")
    return json_response(recent_operations(operations(), top, token))
