"""The catalog's function app: create it and register the blueprints. Nothing else."""

import azure.functions as func

from functions.catalog import bp as catalog
from functions.health import bp as health
from functions.openapi import bp as openapi
from functions.uploads import bp as uploads

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health)
app.register_functions(catalog)
app.register_functions(uploads)
app.register_functions(openapi)
