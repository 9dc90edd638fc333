"""The catalog's function app: create it and register the blueprints. Nothing else."""

import azure.functions as func

from functions.health import bp as health

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health)
