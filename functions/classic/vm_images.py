"""VM images: List, Create, Get, Update and Delete VM Image."""

from __future__ import annotations

import azure.functions as func

from functions.classic.common import CLASSIC, SUB, bp, classic_api, list_response, xml_response
from shared.adapters.storage import account
from shared.domain.images import ImageKind
from shared.services.classic import vm_images as classic
from shared.services.classic.images import delete_image, get_image_of_kind
from shared.services.classic.operations import (
    CREATE_VM_IMAGE,
    DELETE_VM_IMAGE,
    UPDATE_VM_IMAGE,
    ClassicCall,
)
from shared.services.classic.protocol import comp_media
from shared.services.context import image_catalog, image_remover, list_snapshots


@bp.route(route=f"{SUB}/services/vmimages", methods=["GET"], auth_level=CLASSIC)
@classic_api(since="2014-02-01")
def classic_list_vm_images(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    wanted = classic.VmImageFilter.from_params(req.params)
    return list_response(req, classic.vm_images_list(image_catalog(), wanted, list_snapshots()))


@bp.route(route=f"{SUB}/services/vmimages", methods=["POST"], auth_level=CLASSIC)
@classic_api(since="2014-05-01", operation=CREATE_VM_IMAGE)
def classic_create_vm_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    request = classic.parse_create_vm_image(req.get_body())
    call.image_name = request.name
    classic.create_vm_image(image_catalog(), account().blobs, request)
    return xml_response(status=202)


@bp.route(route=f"{SUB}/services/vmimages/{{name}}", methods=["GET"], auth_level=CLASSIC)
@classic_api(since="2014-02-01")
def classic_get_vm_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    """One VM image, as List VM Images shows it (the classic client has no call for it)."""
    image = get_image_of_kind(image_catalog(), req.route_params["name"], ImageKind.VM)
    return xml_response(classic.vm_image_xml(image))


@bp.route(route=f"{SUB}/services/vmimages/{{name}}", methods=["PUT"], auth_level=CLASSIC)
@classic_api(since="2014-02-01", operation=UPDATE_VM_IMAGE)
def classic_update_vm_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    update = classic.parse_update_vm_image(req.get_body())
    classic.update_vm_image(image_catalog(), req.route_params["name"], update)
    return xml_response(status=200)


@bp.route(
    route=f"{SUB}/services/vmimages/{{name}}",
    methods=["DELETE"],
    auth_level=CLASSIC,
)
@classic_api(since="2014-02-01", operation=DELETE_VM_IMAGE)
def classic_delete_vm_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    delete_vhd = call.details["DeleteVhd"] = comp_media(req.params)
    delete_image(
        image_catalog(), image_remover(), req.route_params["name"], ImageKind.VM, delete_vhd
    )
    return xml_response(status=202)
