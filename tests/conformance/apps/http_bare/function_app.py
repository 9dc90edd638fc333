"""HTTP conformance fixture with an empty routePrefix."""

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route("hello")
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hello without prefix")
