"""HTTP conformance fixture: routing, keys, outputs, context (default `api` prefix)."""

import asyncio
import json

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def text(value: str, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(value, status_code=status)


@app.route("anon", auth_level=func.AuthLevel.ANONYMOUS)
def anon(req: func.HttpRequest) -> func.HttpResponse:
    return text("anon")


@app.route("secured")  # the app's default level: FUNCTION
def secured(req: func.HttpRequest) -> func.HttpResponse:
    return text("secured")


@app.route("adminonly", auth_level=func.AuthLevel.ADMIN)
def adminonly(req: func.HttpRequest) -> func.HttpResponse:
    return text("admin")


@app.route("items/{id:int}", auth_level=func.AuthLevel.ANONYMOUS)
def item(req: func.HttpRequest) -> func.HttpResponse:
    return text(f"item {req.route_params['id']}")


@app.route("opt/{name?}", auth_level=func.AuthLevel.ANONYMOUS)
def optional(req: func.HttpRequest) -> func.HttpResponse:
    return text(f"opt {req.route_params.get('name', '<absent>')}")


@app.route("greet/{name=world}", auth_level=func.AuthLevel.ANONYMOUS)
def greet(req: func.HttpRequest) -> func.HttpResponse:
    return text(f"hello {req.route_params.get('name', '<absent>')}")


@app.route("files/{*path}", auth_level=func.AuthLevel.ANONYMOUS)
def files(req: func.HttpRequest) -> func.HttpResponse:
    return text(f"path {req.route_params.get('path', '<absent>')}")


# Declared before the literal route on purpose: precedence, not order, must pick.
@app.route("things/{name}", auth_level=func.AuthLevel.ANONYMOUS)
def thing(req: func.HttpRequest) -> func.HttpResponse:
    return text(f"thing {req.route_params['name']}")


@app.route("things/special", auth_level=func.AuthLevel.ANONYMOUS)
def special(req: func.HttpRequest) -> func.HttpResponse:
    return text("special")


@app.route("getonly", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def getonly(req: func.HttpRequest) -> func.HttpResponse:
    return text("get")


@app.route("echo/{a}/{b}", methods=["GET", "POST", "PUT"], auth_level=func.AuthLevel.ANONYMOUS)
def echo(req: func.HttpRequest) -> func.HttpResponse:
    body = {
        "method": req.method,
        "params": dict(req.params),
        "header": req.headers.get("x-conformance"),
        "body": req.get_body().decode("utf-8"),
        "route": dict(req.route_params),
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route("boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("conformance: this function always fails")


@app.route("namedout", binding_arg_name="res", auth_level=func.AuthLevel.ANONYMOUS)
def namedout(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
    res.set(func.HttpResponse("via named output", status_code=201, headers={"x-out": "res"}))


@app.route("asyncfn", auth_level=func.AuthLevel.ANONYMOUS)
async def asyncfn(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0.01)
    return text(f"async {asyncio.current_task() is not None}")


@app.route("ctx", auth_level=func.AuthLevel.ANONYMOUS)
def ctx(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    body = {"invocation_id": context.invocation_id, "function_name": context.function_name}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route("clientcert", auth_level=func.AuthLevel.ANONYMOUS)
def clientcert(req: func.HttpRequest) -> func.HttpResponse:
    return text(req.headers.get("x-arr-clientcert") or "none")
