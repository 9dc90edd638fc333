"""The catalog over HTTP as JSON: images, families, latest of a family, update, remove."""

from __future__ import annotations

import azure.functions as func

from functions._http import error_response, json_body, json_errors, json_response
from shared.services import catalog as service
from shared.services.context import image_catalog, image_remover

bp = func.Blueprint()


@bp.route(route="api/images", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
def list_images(req: func.HttpRequest) -> func.HttpResponse:
    query = service.parse_list_query(dict(req.params))
    return json_response(service.list_images(image_catalog(), query))


@bp.route(route="api/images/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
def get_image(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(service.get_image(image_catalog(), req.route_params["name"]))


@bp.route(route="api/images/{name}", methods=["PATCH"], auth_level=func.AuthLevel.FUNCTION)
@json_errors
def update_image(req: func.HttpRequest) -> func.HttpResponse:
    changes = json_body(req)
    image = service.update_image(image_catalog(), req.route_params["name"], changes)
    return json_response(image)


@bp.route(route="api/images/{name}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
@json_errors
def delete_image(req: func.HttpRequest) -> func.HttpResponse:
    flag = req.params.get("deleteVhd", "false").lower()
    if flag not in ("true", "false"):
        return error_response("InvalidParameter", "deleteVhd must be true or false", 400)
    removed = image_remover().remove(req.route_params["name"], delete_vhd=flag == "true")
    return json_response(removed)


@bp.route(route="api/families", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
def list_families(req: func.HttpRequest) -> func.HttpResponse:
    families = service.list_families(image_catalog())
    return json_response({"Families": families, "Count": len(families)})


@bp.route(
    route="api/families/{family}/latest", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS
)
@json_errors
def latest_in_family(req: func.HttpRequest) -> func.HttpResponse:
    image = service.latest_in_family(
        image_catalog(), req.route_params["family"], req.params.get("os")
    )
    return json_response(image)
