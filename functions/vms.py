"""The VM inventory over HTTP: other systems keep it current; captures read it."""

from __future__ import annotations

import re

import azure.functions as func

from functions._http import error_response, json_body, json_errors, json_response
from shared.adapters.storage import account
from shared.domain.errors import InvalidParameter
from shared.domain.vms import VirtualMachine, VmBody, validate_vm_name
from shared.services import inventory
from shared.services.context import vm_inventory

bp = func.Blueprint()


def _names(req: func.HttpRequest) -> tuple[str, str]:
    service = validate_vm_name(req.route_params["service"], "cloud service name")
    return service, validate_vm_name(req.route_params["vm"])


@bp.route(route="api/vms/{service}/{vm}", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
@json_errors
def put_vm(req: func.HttpRequest) -> func.HttpResponse:
    service, name = _names(req)
    doc = json_body(req)
    if not isinstance(doc, dict):
        raise InvalidParameter("the body must be a JSON object with State, OSDisk, DataDisks")
    body = VmBody.model_validate(doc)
    vm = VirtualMachine(ServiceName=service, Name=name, **body.model_dump())
    a = account()
    containers = (a.settings.vhds_container,)
    created = inventory.put_vm(vm_inventory(), vm, a.blobs.url, containers)
    return json_response(vm.to_json(), 201 if created else 200)


@bp.route(route="api/vms/{service}/{vm}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
def get_vm(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(vm_inventory().get(*_names(req)).to_json())


@bp.route(route="api/vms/{service}/{vm}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
@json_errors
def delete_vm(req: func.HttpRequest) -> func.HttpResponse:
    service, name = _names(req)
    vm_inventory().get(service, name)  # 404 when unknown
    vm_inventory().delete(service, name)
    return func.HttpResponse(status_code=204)


@bp.route(route="api/vms", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
def list_vms(req: func.HttpRequest) -> func.HttpResponse:
    top = req.params.get("top", "100")
    if not re.fullmatch(r"\d{1,4}", top) or not 1 <= int(top) <= 1000:
        return error_response("InvalidParameter", "top must be a whole number from 1 to 1000", 400)
    token = req.params.get("continuationToken")
    return json_response(inventory.list_vms(vm_inventory(), int(top), token))
