"""Management certificates: List, Add, Get and Delete Management Certificate."""

from __future__ import annotations

import azure.functions as func

from functions.classic.common import CLASSIC, SUB, bp, classic_api, xml_response
from shared.services.classic import certificates as classic
from shared.services.classic.operations import ClassicCall
from shared.services.classic.protocol import configured_subscription
from shared.services.context import management_certificates


@bp.route(route=f"{SUB}/certificates", methods=["GET"], auth_level=CLASSIC)
@classic_api(since="2012-03-01")
def classic_list_management_certificates(
    req: func.HttpRequest, call: ClassicCall
) -> func.HttpResponse:
    certs = classic.list_certificates(management_certificates(), configured_subscription())
    return xml_response(classic.certificates_xml(certs))


@bp.route(route=f"{SUB}/certificates", methods=["POST"], auth_level=CLASSIC)
@classic_api(since="2012-03-01")
def classic_add_management_certificate(
    req: func.HttpRequest, call: ClassicCall
) -> func.HttpResponse:
    cert = classic.parse_add_certificate(req.get_body())
    classic.add_certificate(management_certificates(), configured_subscription(), cert)
    return xml_response(status=201)


@bp.route(route=f"{SUB}/certificates/{{thumbprint}}", methods=["GET"], auth_level=CLASSIC)
@classic_api(since="2012-03-01")
def classic_get_management_certificate(
    req: func.HttpRequest, call: ClassicCall
) -> func.HttpResponse:
    cert = classic.get_certificate(
        management_certificates(), configured_subscription(), req.route_params["thumbprint"]
    )
    return xml_response(classic.certificate_xml(cert))


@bp.route(route=f"{SUB}/certificates/{{thumbprint}}", methods=["DELETE"], auth_level=CLASSIC)
@classic_api(since="2012-03-01")
def classic_delete_management_certificate(
    req: func.HttpRequest, call: ClassicCall
) -> func.HttpResponse:
    classic.delete_certificate(
        management_certificates(), configured_subscription(), req.route_params["thumbprint"]
    )
    return xml_response(status=200)
