"""The catalog over HTTP as JSON: images, families, latest of a family, update, remove."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from functions._http import error_response, json_body, json_errors, json_response
from shared.services import catalog as service
from shared.services.content_hashes import by_content as by_hash
from shared.services.content_hashes import progress
from shared.services.context import hash_store, image_catalog, image_remover

bp = func.Blueprint()


@bp.route(route="api/images", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
def list_images(req: func.HttpRequest) -> func.HttpResponse:
    query = service.parse_list_query(dict(req.params))
    catalog = image_catalog()

    def by_content(sha: str, top: int, after: str | None, where: Any) -> Any:
        return by_hash(catalog, hash_store(), sha, top, after, where)

    return json_response(service.list_images(catalog, query, by_content))


@bp.route(route="api/images/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
def get_image(req: func.HttpRequest) -> func.HttpResponse:
    doc = service.image_with_progress(
        image_catalog(), req.route_params["name"], lambda image: progress(hash_store(), image)
    )
    return json_response(doc)


@bp.route(route="api/images/{name}", methods=["PATCH"], auth_level=func.AuthLevel.FUNCTION)
@json_errors
def update_image(req: func.HttpRequest) -> func.HttpResponse:
    changes = json_body(req)
    image = service.update_image(image_catalog(), req.route_params["name"], changes)
    return json_response(service.image_doc(image))


@bp.route(route="api/images/{name}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
@json_errors
def delete_image(req: func.HttpRequest) -> func.HttpResponse:
    flag = req.params.get("deleteVhd", "false").lower()
    if flag not in ("true", "false"):
        return error_response("InvalidParameter", "deleteVhd must be true or false", 400)
    removed = image_remover().remove(req.route_params["name"], delete_vhd=flag == "true")
    return json_response(service.image_doc(removed))


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
    params = {k.lower(): v for k, v in req.params.items()}
    image = service.latest_in_family(
        image_catalog(),
        req.route_params["family"],
        params.get("os"),
        include_excluded=service.parse_flag("includeExcluded", params.get("includeexcluded")),
    )
    return json_response(service.image_doc(image))
