"""The catalog's function app: create it and register the blueprints. Nothing else."""

import azure.functions as func

from functions.captures import bp as captures
from functions.catalog import bp as catalog
from functions.classic import bp as classic
from functions.conversions import bp as conversions
from functions.doctor import bp as doctor
from functions.hashes import bp as hashes
from functions.health import bp as health
from functions.openapi import bp as openapi
from functions.portal import bp as portal
from functions.uploads import bp as uploads
from functions.vms import bp as vms

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health)
app.register_functions(catalog)
app.register_functions(uploads)
app.register_functions(conversions)
app.register_functions(classic)
app.register_functions(captures)
app.register_functions(hashes)
app.register_functions(vms)
app.register_functions(openapi)
app.register_functions(doctor)
app.register_functions(portal)
