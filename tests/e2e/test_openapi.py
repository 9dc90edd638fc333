"""The OpenAPI document against the running app.

`GET /api/openapi.json` must describe every `/api/` route the app serves, and
the app must behave as the document says: schemathesis generates requests
from the document (its examples, boundary and negative values, then random
ones) and checks each answer: never a 5xx, a documented status, the
documented content type and body schema, invalid input rejected, and the
function key enforced where the document says it is needed. The key is
supplied, so the writes get past the key check; against the gallery they end
as 403/404/400, and a separate run aims the PATCH at a User image so that
successful updates are checked too.

Bounded for CI: a fixed seed, derandomised generation, at most
`MAX_EXAMPLES` examples per operation and phase.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from devtools.apphost import AppHost
from shared.adapters.storage import StorageAccount
from shared.openapi import EXAMPLE_FAMILY, EXAMPLE_IMAGE, document
from shared.services.gallery import GALLERY, load_gallery
from tests.e2e.test_catalog_api import catalog_of, make_register
from tests.vhd_corpus import Corpus, CorpusToolMissing

MAX_EXAMPLES = 40
SEED = 20240911


def host_answer(response: Any) -> bool:
    """An answer of the Functions host itself, not of a function: no route or no key (404,
    401, empty body), or a request the HTTP server refused (a request line over 8 KiB,
    text/plain). The functions always answer JSON."""
    content_type = response.headers.get("Content-Type") or response.headers.get("content-type")
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else None
    return not response.content or not str(content_type or "").startswith("application/json")


def of_functions(check: Any) -> Any:
    """Apply a body check to the functions' answers only (the host's have no JSON body)."""

    def wrapped(ctx: Any, response: Any, case: Any) -> bool | None:
        if host_answer(response):
            return None
        return check(ctx, response, case)

    wrapped.__name__ = check.__name__
    return wrapped


def beyond_schema(response: Any) -> bool:
    """A 400 for a rule a JSON schema can't state: continuation tokens are opaque (only
    the API's own are valid); a VM's data disks need distinct LUNs and media links; a
    media link's %XX escapes must decode to printable UTF-8 text; a VM's disks must be
    blobs of the catalog's account in its VM disk containers; an image's ReplacedBy must
    name another image that exists, of an image being retired."""
    if response.status_code != 400 or host_answer(response):
        return False
    error = json.loads(response.content)
    message = str(error.get("Message", ""))
    return (
        error.get("Code") in ("InvalidContinuationToken", "NotInVmDiskContainer")
        or error.get("Code") == "InvalidReplacement"
        or "not in this catalog's storage account" in message
        or "continuation token" in message
        or "its own Lun" in message
        or "attached only once" in message
        or "percent-encoded" in message
    )


def acceptance(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schema-valid requests must not be refused with 400 (unless `beyond_schema`)."""
    if beyond_schema(response):
        return None
    return positive_data_acceptance(ctx, response, case)


acceptance.__name__ = "positive_data_acceptance"

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    of_functions(content_type_conformance),
    of_functions(response_schema_conformance),
    negative_data_rejection,
    acceptance,
    ignored_auth,
]
WRITE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    of_functions(content_type_conformance),
    of_functions(response_schema_conformance),
    acceptance,
]
HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


# The document the app serves is this one (test_the_served_document_is_the_generated_one);
# loading it in-process lets pytest parametrize by operation at collection time.
schema = schemathesis.openapi.from_dict(
    document(),
    config=SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "request-timeout": 30,
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True},
            },
        }
    ),
)


@pytest.fixture(scope="module")
def loaded(catalog_app: AppHost, storage: StorageAccount) -> None:
    load_gallery(catalog_of(storage))


@pytest.fixture(scope="module")
def target(catalog_app: AppHost, function_key: str, loaded: None) -> dict[str, Any]:
    """Where and how to call: the running app, with the function key."""
    return {"base_url": catalog_app.base_url, "headers": {"x-functions-key": function_key}}


@pytest.fixture(scope="module")
def patchable(catalog_app: AppHost, storage: StorageAccount, tmp_path_factory) -> str:
    """A User image, so that generated PATCH bodies can succeed."""
    try:
        disk = Corpus(tmp_path_factory.mktemp("openapi-corpus"))["blank_fixed"]
    except CorpusToolMissing as e:
        pytest.fail(f"the test command should have installed the disk tools: {e}")
    return make_register(catalog_app, storage, disk)("openapi-patch", imagefamily="openapi-fam")


@schema.parametrize()
@HYPOTHESIS
def test_the_app_behaves_as_its_document_says(case: Any, target: dict[str, Any]) -> None:
    case.call_and_validate(checks=CHECKS, **target)


@schema.include(operation_id="updateImage").parametrize()
@HYPOTHESIS
def test_generated_updates_of_a_user_image_conform(
    case: Any, target: dict[str, Any], patchable: str
) -> None:
    case.path_parameters["name"] = patchable
    case.call_and_validate(checks=WRITE_CHECKS, **target)


STATEFUL_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    of_functions(content_type_conformance),
    of_functions(response_schema_conformance),
    use_after_free,
    ensure_resource_availability,
]


def test_sequences_of_calls_conform(target: dict[str, Any]) -> None:
    """Stateful: chains of calls along the links schemathesis infers (a VM PUT then read
    and deleted, a capture then its operation, ...): a resource is there once created
    and gone once deleted."""

    # Without image updates and removals: followed links would reach the gallery's
    # Community images, which other tests of the session read.
    readonly_images = schema.exclude(operation_id=["updateImage", "deleteImage"])

    class Sequences(readonly_images.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return dict(target)

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(
                response,
                checks=STATEFUL_CHECKS,
                headers=target["headers"],
                transport_kwargs={**target, **kwargs},
                recorder=getattr(self, "recorder", None),
            )

    run_state_machine_as_test(
        Sequences,
        settings=settings(
            max_examples=30,
            stateful_step_count=6,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


# -- the document itself -----------------------------------------------------------


def _openapi_path(route: str) -> str:
    """`api/uploads/{*blobName}` -> `/api/uploads/{blobName}` (constraints and `?` dropped)."""

    def param(m: re.Match[str]) -> str:
        name = m.group(1).lstrip("*").split(":", 1)[0].split("=", 1)[0].rstrip("?")
        return "{" + name + "}"

    return "/" + re.sub(r"\{([^}]*)\}", param, route.strip("/"))


@cache
def _http_functions() -> dict[str, dict[str, Any]]:
    """The app's HTTP functions by name, with their trigger binding, read in-process."""
    import function_app

    app = function_app.app
    app.functions_bindings = {}  # get_functions() refuses a second call in one process
    found = {}
    for function in app.get_functions():
        trigger = json.loads(function.get_function_json())["bindings"][0]
        if trigger["type"] == "httpTrigger":
            found[function.get_function_name()] = trigger
    return found


def _app_routes() -> set[tuple[str, str]]:
    routes = set()
    for trigger in _http_functions().values():
        for method in trigger.get("methods") or ["GET", "POST", "PUT", "PATCH", "DELETE"]:
            routes.add((method.lower(), _openapi_path(trigger["route"])))
    return routes


def test_every_api_route_of_the_app_is_in_the_document(catalog_app: AppHost) -> None:
    doc = requests.get(f"{catalog_app.base_url}/api/openapi.json", timeout=10).json()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    served = {r for r in _app_routes() if r[1].startswith("/api/")}
    assert served, "the app serves no /api/ route?"
    assert served - documented == set(), "routes the document lacks"
    assert documented - served == set(), "documented routes the app does not serve"


def test_the_runner_serves_the_functions_the_app_declares(catalog_app: AppHost) -> None:
    # The in-process view above is the one the runner loaded.
    master = catalog_app.keys()["masterKey"]
    r = requests.get(
        f"{catalog_app.base_url}/admin/functions", headers={"x-functions-key": master}, timeout=10
    )
    assert r.status_code == 200
    served = {f["name"] for f in r.json() if f["trigger"] == "httpTrigger"}
    assert served == set(_http_functions())
    assert "openapi" in served


def test_the_served_document_is_the_generated_one(catalog_app: AppHost) -> None:
    r = requests.get(f"{catalog_app.base_url}/api/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    doc = r.json()
    assert doc == json.loads(json.dumps(document()))
    assert doc["openapi"].startswith("3.1")
    schemes = doc["components"]["securitySchemes"]
    assert schemes["functionKey"] == {"type": "apiKey", "in": "header", "name": "x-functions-key"}
    assert schemes["functionKeyQuery"] == {"type": "apiKey", "in": "query", "name": "code"}


def test_writes_and_only_writes_need_a_key(catalog_app: AppHost) -> None:
    """... and the operators' invariant check, which reads everything."""
    doc = requests.get(f"{catalog_app.base_url}/api/openapi.json", timeout=10).json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            secured = bool(op["security"])
            admin = path.startswith("/api/admin/")
            assert secured == (method != "get" or admin), (method, path)
            assert ("401" in op["responses"]) == secured, (method, path)


def test_parameters_carry_the_services_constraints(catalog_app: AppHost) -> None:
    doc = requests.get(f"{catalog_app.base_url}/api/openapi.json", timeout=10).json()
    params = {p["name"]: p for p in doc["paths"]["/api/images"]["get"]["parameters"]}
    assert (params["top"]["schema"]["minimum"], params["top"]["schema"]["maximum"]) == (1, 1000)
    assert params["os"]["schema"]["enum"] == ["Windows", "Linux"]
    assert params["category"]["schema"]["enum"] == ["Public", "Community", "User"]
    assert params["type"]["schema"]["enum"] == ["OSImage", "VMImage"]
    assert "Label" in params["select"]["schema"]["items"]["enum"]
    assert params["select"]["explode"] is False
    schemas = doc["components"]["schemas"]
    for model in ("Image", "UploadOutcome", "ErrorInfo", "ImagePage", "FamilyList"):
        assert model in schemas
    assert set(schemas["ErrorInfo"]["required"]) == {"Code", "Message"}


def test_the_examples_name_real_gallery_data() -> None:
    images = json.loads(GALLERY.read_text(encoding="utf-8"))["images"]
    example = next(i for i in images if i["ImageName"] == EXAMPLE_IMAGE)
    assert example["Category"] == "Public"  # so generated writes can't remove it
    assert any(i.get("ImageFamily") == EXAMPLE_FAMILY for i in images)
