"""GET /api/health: anonymous; 200 when storage answers, 503 with the reason when not."""

from __future__ import annotations

import json

import azure.functions as func

from shared.adapters.storage import StorageNotConfigured
from shared.domain.errors import StorageUnavailable
from shared.services.health import check_storage, probe_account

bp = func.Blueprint()


@bp.route(route="api/health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        report = check_storage(probe_account())
    except StorageNotConfigured as e:
        body = {"Status": "Unhealthy", "Checks": {"configuration": str(e)}}
        return func.HttpResponse(json.dumps(body), status_code=503, mimetype="application/json")
    return func.HttpResponse(
        json.dumps(report.to_json()),
        status_code=200 if report.healthy else 503,
        headers=None if report.healthy else {"Retry-After": str(StorageUnavailable.retry_after)},
        mimetype="application/json",
    )
