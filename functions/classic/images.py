"""OS images: List, Add, Get, Get Details, Update and Delete OS Image."""

from __future__ import annotations

import azure.functions as func

from functions.classic.common import CLASSIC, SUB, bp, classic_api, list_response, xml_response
from shared.adapters.storage import account
from shared.domain.images import ImageKind
from shared.services.classic import images as classic
from shared.services.classic.operations import (
    ADD_OS_IMAGE,
    DELETE_OS_IMAGE,
    UPDATE_OS_IMAGE,
    ClassicCall,
)
from shared.services.classic.protocol import comp_media
from shared.services.context import image_catalog, image_remover, list_snapshots


@bp.route(route=f"{SUB}/services/images", methods=["GET"], auth_level=CLASSIC)
@classic_api(since="2012-08-01")
def classic_list_os_images(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    return list_response(req, classic.os_images_list(image_catalog(), list_snapshots()))


@bp.route(route=f"{SUB}/services/images", methods=["POST"], auth_level=CLASSIC)
@classic_api(since="2012-08-01", operation=ADD_OS_IMAGE)
def classic_add_os_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    request = classic.parse_add_os_image(req.get_body())
    call.image_name = request.name
    image = classic.add_os_image(image_catalog(), account().blobs, request)
    return xml_response(classic.os_image_xml(image))


@bp.route(route=f"{SUB}/services/images/{{name}}", methods=["GET"], auth_level=CLASSIC)
@classic_api(since="2012-08-01")
def classic_get_os_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    image = classic.get_image_of_kind(image_catalog(), req.route_params["name"], ImageKind.OS)
    return xml_response(classic.os_image_xml(image))


@bp.route(
    route=f"{SUB}/services/images/{{name}}/details",
    methods=["GET"],
    auth_level=CLASSIC,
)
@classic_api(since="2013-03-01")
def classic_get_os_image_details(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    image = classic.get_image_of_kind(image_catalog(), req.route_params["name"], ImageKind.OS)
    return xml_response(classic.os_image_details_xml(image))


@bp.route(route=f"{SUB}/services/images/{{name}}", methods=["PUT"], auth_level=CLASSIC)
@classic_api(since="2012-08-01", operation=UPDATE_OS_IMAGE)
def classic_update_os_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    fields = classic.parse_update_os_image(req.get_body())
    image = classic.update_os_image(image_catalog(), req.route_params["name"], fields)
    return xml_response(classic.os_image_xml(image))


@bp.route(route=f"{SUB}/services/images/{{name}}", methods=["DELETE"], auth_level=CLASSIC)
@classic_api(since="2012-08-01", operation=DELETE_OS_IMAGE)
def classic_delete_os_image(req: func.HttpRequest, call: ClassicCall) -> func.HttpResponse:
    delete_vhd = call.details["DeleteVhd"] = comp_media(req.params)
    classic.delete_image(
        image_catalog(), image_remover(), req.route_params["name"], ImageKind.OS, delete_vhd
    )
    return xml_response(status=200)
