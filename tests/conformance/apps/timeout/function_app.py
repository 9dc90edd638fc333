"""functionTimeout conformance fixture: 1 s timeout, a function that needs 3 s."""

import asyncio

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route("sleepy")
async def sleepy(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(3)
    return func.HttpResponse("woke up")


@app.route("quick")
async def quick(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("quick")
