"""The Azure templates (infra/, azure.yaml) against what the code really reads and uses.

No Azure access and no Bicep compiler: the Bicep text is read as written (bicep-format
layout: a block ends at the first closing line with the indentation it opened with).
Settings the code reads are collected from the code itself: shared/settings.py DEFAULTS,
the `%NAME%` expressions and connections in the app's bindings (`app.get_functions()`),
and every environment read (`os.environ.get("X")`, `env.get("X")`, `os.getenv("X")`,
`os.environ["X"]`) in shared/ and functions/.
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from shared.settings import DEFAULTS, Settings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
RBAC = INFRA / "app" / "rbac.bicep"
UPLOAD_EVENTS = INFRA / "app" / "upload-events.bicep"
HOOK = INFRA / "hooks" / "subscribe-uploads.sh"
AZURE_YAML = ROOT / "azure.yaml"
CODE_DIRS = [ROOT / "shared", ROOT / "functions"]

# Settings the code reads that Azure must not get, and why.
LOCAL_ONLY = {
    "FAULT_KILL_CAPTURE_AT": "chaos testing: kills the worker at a capture step (tests/e2e)",
    "FAULT_TRANSIENT_CAPTURE_AT": "chaos testing: fails a capture step once (tests/e2e)",
    "FAULT_KILL_CONVERSION_AT": "chaos testing: kills the worker at a conversion step (tests/e2e)",
    "AzureWebJobsStorage": "a connection string, local only: on Azure the identity-based "
    "AzureWebJobsStorage__accountName/__credential/__clientId replace it",
}
# Settings the platform sets on every app, so infra/main.bicep must not.
PLATFORM = {
    "WEBSITE_HOSTNAME": "the app's default host name (App Service); the local runner sets its "
    "address (shared/adapters/host_keys.py asks the host whether a function key is good)",
}
LOCAL_ONLY_PREFIXES = {
    "FUNCRUNNER_": "the local runner's own settings",
    "AZURITE_": "the tests' emulator",
}
# Reads whose name is computed, by the expression as written, and what covers them.
COMPUTED_READS = {
    "f.name.upper()": "shared/settings.py: a Settings field's name, i.e. a DEFAULTS key",
    "f'{prefix}__credential'": "AzureWebJobsStorage__credential, required below",
    "f'{prefix}__clientId'": "AzureWebJobsStorage__clientId, required below",
    "f'{CONNECTION}__{kind}ServiceUri'": "optional alternatives to __accountName",
}
IDENTITY_CONNECTION = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
}
ROLES = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
}
# ---------------------------------------------------------------- what the code reads


def _mentions_environ(node: ast.AST | None) -> bool:
    return node is not None and any(
        (isinstance(n, ast.Attribute) and n.attr in ("environ", "_Environ")) for n in ast.walk(node)
    )


def _environment_names(scope: ast.AST) -> set[str]:
    """Names bound to the environment in a function: `e = os.environ if env is None else env`,
    or a parameter annotated `os._Environ[str]`."""
    names = set()
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign) and _mentions_environ(node.value):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.arg) and _mentions_environ(node.annotation):
            names.add(node.arg)
    return names


def _is_environ(node: ast.expr, names: set[str]) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id in names
    )


def _module_constants(tree: ast.Module) -> dict[str, str]:
    return {
        t.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for t in node.targets
        if isinstance(t, ast.Name)
    }


def _resolve(arg: ast.expr, constants: dict[str, str]) -> str | None:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.Name):
        return constants.get(arg.id)
    if isinstance(arg, ast.JoinedStr):
        parts = [
            _resolve(v.value if isinstance(v, ast.FormattedValue) else v, constants)
            for v in arg.values
        ]
        return None if None in parts else "".join(p or "" for p in parts)
    return None


@cache
def environment_reads() -> tuple[frozenset[str], frozenset[str]]:
    """(names read from the environment, computed read expressions left unresolved)."""
    names: set[str] = set()
    unresolved: set[str] = set()
    for path in sorted(p for d in CODE_DIRS for p in d.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        constants = _module_constants(tree)
        scopes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))]
        for scope in scopes:
            env_names = _environment_names(scope) if scope is not tree else set()
            for node in ast.walk(scope):
                arg = None
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    receiver, method = node.func.value, node.func.attr
                    if node.args and (
                        (method == "get" and _is_environ(receiver, env_names))
                        or (method == "getenv" and ast.unparse(receiver) == "os")
                    ):
                        arg = node.args[0]
                elif isinstance(node, ast.Subscript) and _is_environ(node.value, env_names):
                    arg = node.slice
                if arg is None:
                    continue
                name = _resolve(arg, constants)
                if name is None:
                    unresolved.add(ast.unparse(arg))
                else:
                    names.add(name)
    return frozenset(names), frozenset(unresolved)


@cache
def app_bindings() -> dict[str, list[dict[str, Any]]]:
    """The app's functions, by name, with their bindings as the host reads them."""
    import function_app

    app = function_app.app
    app.functions_bindings = {}  # get_functions() refuses a second call in one process
    return {
        f.get_function_name(): json.loads(f.get_function_json())["bindings"]
        for f in app.get_functions()
    }


def binding_settings() -> set[str]:
    found = set()
    for bindings in app_bindings().values():
        for b in bindings:
            for value in b.values():
                if isinstance(value, str):
                    found.update(re.findall(r"%([^%]+)%", value))
    return found


def binding_connections() -> set[str]:
    return {b["connection"] for bs in app_bindings().values() for b in bs if b.get("connection")}


def settings_the_code_reads() -> set[str]:
    names, _ = environment_reads()
    return set(DEFAULTS) | binding_settings() | set(names)


def local_only(name: str) -> bool:
    return name in LOCAL_ONLY or name.startswith(tuple(LOCAL_ONLY_PREFIXES))


# ---------------------------------------------------------------- what the templates say


class Bicep:
    """Just enough of a Bicep file, as laid out by `bicep format`, to check names."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text()
        self.lines = self.text.splitlines()

    def block(self, opening: str) -> list[str]:
        """The lines of the block whose first line matches `opening`, up to its closing line."""
        pattern = re.compile(opening)
        for i, line in enumerate(self.lines):
            if pattern.search(line):
                indent = len(line) - len(line.lstrip())
                for j in range(i + 1, len(self.lines)):
                    closing = self.lines[j]
                    closes = closing.strip()[:1] in ("}", "]", ")")
                    if closes and len(closing) - len(closing.lstrip()) == indent:
                        return self.lines[i : j + 1]
                raise AssertionError(f"{self.path.name}: the block '{line.strip()}' never closes")
        raise AssertionError(f"{self.path.name}: no line matches {opening!r}")

    def object_var(self, name: str) -> dict[str, str]:
        body = self.block(rf"^var {name} = \{{$")[1:-1]
        pairs = [re.fullmatch(r"\s*(\w+): '([^']*)'", line) for line in body]
        assert all(pairs), f"{self.path.name}: var {name} holds more than 'KEY: literal' lines"
        return {m.group(1): m.group(2) for m in pairs if m}

    def string_var_or_param(self, name: str) -> str | None:
        m = re.search(rf"^(?:var {name}|param {name} string) = '([^'$]*)'$", self.text, re.M)
        return m.group(1) if m else None

    def evaluate(self, expr: str) -> str:
        """A literal, `'${obj.KEY}-suffix'`, `obj.KEY` or the name of a string var or param."""
        expr = expr.strip()
        if m := re.fullmatch(r"'([^']*)'", expr):
            return re.sub(r"\$\{([^}]+)\}", lambda g: self.evaluate(g.group(1)), m.group(1))
        if m := re.fullmatch(r"(\w+)\.(\w+)", expr):
            return self.object_var(m.group(1))[m.group(2)]
        value = self.string_var_or_param(expr) if re.fullmatch(r"\w+", expr) else None
        if value is None:
            raise AssertionError(f"{self.path.name}: can't evaluate {expr!r}")
        return value

    def array_var(self, name: str) -> list[str]:
        body = self.block(rf"^var {name} = \[$")[1:-1]
        return [self.evaluate(line) for line in body if not line.strip().startswith("//")]

    def names_in(self, module_body: list[str], prop: str) -> list[str]:
        """`prop: X` in a module, X = [for name in Y: { name: name }], Y an array var."""
        m = next(
            (
                re.fullmatch(rf"\s*{prop}: (\w+)", line)
                for line in module_body
                if re.fullmatch(rf"\s*{prop}: (\w+)", line)
            ),
            None,
        )
        assert m, f"{self.path.name}: the storage module sets no '{prop}: <var>'"
        loop = re.search(
            rf"^var {m.group(1)} = \[for name in (\w+): \{{ name: name \}}\]$", self.text, re.M
        )
        assert loop, f"{self.path.name}: var {m.group(1)} is not [for name in <array>: {{...}}]"
        return self.array_var(loop.group(1))

    def app_settings(self) -> dict[str, str]:
        """The function app's settings: var appSettings = union(<object var>, { ... })."""
        body = self.block(r"^var appSettings = union\(\w+, \{$")
        base = re.match(r"var appSettings = union\((\w+),", body[0])
        settings = dict(self.object_var(base.group(1))) if base else {}
        for line in body[1:-1]:
            if m := re.fullmatch(r"\s*(\w+): (.+)", line):
                settings[m.group(1)] = m.group(2).strip()
        return settings

    def module(self, symbol: str) -> list[str]:
        return self.block(rf"^module {symbol} '")


@pytest.fixture(scope="module")
def main() -> Bicep:
    return Bicep(MAIN)


@pytest.fixture(scope="module")
def events() -> Bicep:
    return Bicep(UPLOAD_EVENTS)


def _literal(value: str) -> str:
    m = re.fullmatch(r"'([^']*)'", value)
    assert m, f"expected a literal, found {value}"
    return m.group(1)


# ---------------------------------------------------------------- app settings


def test_every_setting_the_code_reads_is_set_on_azure(main: Bicep) -> None:
    settings = main.app_settings()
    needed = {n for n in settings_the_code_reads() if not local_only(n) and n not in PLATFORM}
    missing = sorted(needed - set(settings))
    assert not missing, f"read by the code but not set by infra/main.bicep: {missing}"


def test_computed_reads_are_accounted_for() -> None:
    _, unresolved = environment_reads()
    unexplained = sorted(set(unresolved) - set(COMPUTED_READS))
    assert not unexplained, (
        f"environment reads with a computed name: {unexplained}; "
        "read a constant, or list the expression in COMPUTED_READS with what covers it"
    )


def test_the_collection_sees_the_reads_it_should() -> None:
    # Guards the collector itself: one read of each kind it must find.
    names, _ = environment_reads()
    assert {"UPLOAD_SETTLE_SECONDS", "PAGING_TOKEN_SECRET", "CAPTURE_MAX_ATTEMPTS"} <= names
    assert {"CLASSIC_SUBSCRIPTION_ID", "AzureWebJobsStorage__accountName"} <= names
    assert "FAULT_KILL_CAPTURE_AT" in names
    assert {"UPLOADS_CONTAINER", "CAPTURE_QUEUE", "UPLOAD_CHECKS_QUEUE"} <= binding_settings()


def test_storage_is_reached_with_the_managed_identity(main: Bicep) -> None:
    settings = main.app_settings()
    for connection in binding_connections() | {"AzureWebJobsStorage"}:
        assert f"{connection}__accountName" in settings, connection
    assert set(settings) >= IDENTITY_CONNECTION
    assert _literal(settings["AzureWebJobsStorage__credential"]) == "managedidentity"
    assert "identity.outputs.clientId" in settings["AzureWebJobsStorage__clientId"]
    for name in LOCAL_ONLY:
        assert name not in settings, f"{name} is local only ({LOCAL_ONLY[name]})"


def test_telemetry_and_secrets_settings(main: Bicep) -> None:
    settings = main.app_settings()
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"].endswith(".connectionString")
    assert "Authorization=AAD" in settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert settings["PAGING_TOKEN_SECRET"] == "pagingTokenSecret"
    assert re.search(r"^@secure\(\)\n(@.*\n)*param pagingTokenSecret string", main.text, re.M)
    assert settings["CLASSIC_SUBSCRIPTION_ID"] == "classicSubscriptionId"
    assert re.search(
        r"^param classicSubscriptionId string = subscription\(\)\.subscriptionId$", main.text, re.M
    )


def test_catalog_setting_values_match_the_code_defaults(main: Bicep) -> None:
    catalog = main.object_var("catalog")
    names = {k: v for k, v in DEFAULTS.items() if k != "CLASSIC_SUBSCRIPTION_ID"}
    assert catalog == names


# ---------------------------------------------------------------- storage


def _created(main: Bicep) -> dict[str, set[str]]:
    storage = main.module("storage")
    return {
        "containers": set(main.names_in(storage, "containers")),
        "queues": set(main.names_in(storage, "queues")),
        "tables": set(main.names_in(storage, "tables")),
    }


@pytest.mark.parametrize("env", ["defaults", "app settings"])
def test_every_container_queue_and_table_is_created(main: Bicep, env: str) -> None:
    values = {} if env == "defaults" else {k: _unquote(v) for k, v in main.app_settings().items()}
    settings = Settings.from_env(values)
    created = _created(main)
    for kind, used in [
        ("containers", settings.containers),
        ("queues", settings.queues),
        ("tables", settings.tables),
    ]:
        missing = sorted(set(used) - created[kind])
        assert not missing, f"{kind} the app uses but infra/main.bicep doesn't create: {missing}"


def _unquote(value: str) -> str:
    m = re.fullmatch(r"'([^']*)'", value)
    return m.group(1) if m else value


def test_flex_consumption_has_its_deployment_container(main: Bicep) -> None:
    app = "\n".join(main.module("functionApp"))
    m = re.search(r"value: '\$\{storage\.outputs\.primaryBlobEndpoint\}\$\{(\w+)\}'", app)
    assert m, "functionAppConfig.deployment.storage.value is not <blob endpoint><container>"
    assert main.evaluate(m.group(1)) in _created(main)["containers"]
    assert "type: 'UserAssignedIdentity'" in app


def test_shared_key_access_is_disabled(main: Bicep) -> None:
    storage = [line.strip() for line in main.module("storage")]
    assert "allowSharedKeyAccess: false" in storage
    assert "allowBlobPublicAccess: false" in storage
    for path in [MAIN, RBAC, UPLOAD_EVENTS]:
        text = path.read_text()
        assert "AccountKey" not in text and "listKeys(storage" not in text, path.name


def test_the_app_identity_has_the_data_roles() -> None:
    rbac = Bicep(RBAC)
    roles = rbac.object_var("roles")
    app_roles = [line.strip() for line in rbac.block(r"^var appStorageRoles = \[$")[1:-1]]
    granted = {roles[r.removeprefix("roles.")] for r in app_roles}
    for role, guid in ROLES.items():
        assert guid in granted, f"the app's identity lacks {role} ({guid})"
    assert "principalId: appPrincipalId" in rbac.text


# ---------------------------------------------------------------- the function app


def test_function_app_is_python_311_on_flex_consumption(main: Bicep) -> None:
    plan = "\n".join(main.module("plan"))
    assert "name: 'FC1'" in plan and "tier: 'FlexConsumption'" in plan
    app = "\n".join(main.module("functionApp"))
    assert "kind: 'functionapp,linux'" in app
    assert re.search(r"runtime: \{\s*name: 'python'\s*version: '3\.11'\s*\}", app)
    assert "appSettingsKeyValuePairs: appSettings" in app
    assert "'azd-service-name': 'api'" in app
    assert re.search(r"instanceMemoryMB: \w+", app) and re.search(r"maximumInstanceCount: \w+", app)


def test_client_certificates_are_optional_and_forwarded(main: Bicep) -> None:
    # Classic clients authenticate with a management certificate (X-ARR-ClientCert); in
    # Optional mode a client without one (JSON, browsers) is served as before.
    params = [line.strip() for line in main.module("functionApp")]
    assert "clientCertEnabled: true" in params
    assert "clientCertMode: 'Optional'" in params
    assert not any(p.startswith("clientCertExclusionPaths") for p in params)


def test_modules_are_pinned_verified_modules() -> None:
    for path in INFRA.rglob("*.bicep"):
        for ref in re.findall(r"^module \w+ '([^']+)'", path.read_text(), re.M):
            if ref.startswith("br/"):
                assert re.fullmatch(r"br/public:avm/res/[\w/-]+:\d+\.\d+\.\d+", ref), ref
            else:
                assert (path.parent / ref).is_file(), f"{path.name}: no module {ref}"


def test_azure_yaml_deploys_this_folder_and_subscribes_after_deploy() -> None:
    text = AZURE_YAML.read_text()
    service = re.search(r"^services:\n  api:\n((?:    .*\n)+)", text, re.M)
    assert service, "azure.yaml has no service 'api'"
    body = service.group(1)
    for line in ["project: .", "language: python", "host: function"]:
        assert f"    {line}\n" in body, line
    assert re.search(
        r"^  postdeploy:\n(    .*\n)*    run: \./infra/hooks/subscribe-uploads\.sh$", text, re.M
    )


# ---------------------------------------------------------------- Event Grid


def test_event_grid_delivers_uploads_blob_created_to_register_upload(
    main: Bicep, events: Bicep
) -> None:
    uploads = Settings.from_env({}).uploads_container
    # The filter is on the uploads container, given by main.bicep's output through the hook.
    subject = re.search(r"subjectBeginsWith: ('[^']*')", events.text)
    assert subject, "no subjectBeginsWith filter"
    assert events.evaluate(subject.group(1)) == f"/blobServices/default/containers/{uploads}/"
    assert re.search(
        r"^output UPLOADS_CONTAINER string = catalog\.UPLOADS_CONTAINER$", main.text, re.M
    )
    assert main.object_var("catalog")["UPLOADS_CONTAINER"] == uploads
    hook = HOOK.read_text()
    assert 'uploadsContainer="$UPLOADS_CONTAINER"' in hook
    assert 'functionAppName="$AZURE_FUNCTION_APP_NAME"' in hook
    assert 'systemTopicName="$UPLOADS_SYSTEM_TOPIC_NAME"' in hook
    for output in ["AZURE_RESOURCE_GROUP", "AZURE_FUNCTION_APP_NAME", "UPLOADS_SYSTEM_TOPIC_NAME"]:
        assert re.search(rf"^output {output} string = ", main.text, re.M), output

    types = events.block(r"^\s+includedEventTypes: \[$")[1:-1]
    assert [t.strip() for t in types] == ["'Microsoft.Storage.BlobCreated'"]
    assert "eventDeliverySchema: 'EventGridSchema'" in events.text


def test_webhook_names_the_blob_triggered_function_the_app_has(events: Bicep) -> None:
    url = re.search(r"endpointUrl: '([^']*)'", events.text)
    assert url, "no webhook endpointUrl"
    m = re.fullmatch(
        r"https://\$\{functionApp\.properties\.defaultHostName\}/runtime/webhooks/blobs"
        r"\?functionName=Host\.Functions\.\$\{(\w+)\}&code=\$\{(\w+)\}",
        url.group(1),
    )
    assert m, f"unexpected webhook URL {url.group(1)}"
    function_name = events.evaluate(m.group(1))
    assert re.search(
        rf"^var {m.group(2)} = listKeys\('\$\{{functionApp\.id\}}/host/default', '[\d-]+'\)"
        r"\.systemKeys\.blobs_extension$",
        events.text,
        re.M,
    ), "the webhook key is not the host's blobs_extension system key"

    bindings = app_bindings()
    assert function_name in bindings, f"function_app.py has no function {function_name}"
    trigger = next(b for b in bindings[function_name] if b["type"].endswith("Trigger"))
    assert trigger["type"] == "blobTrigger"
    assert trigger["source"] == "EventGrid"
    assert trigger["path"].split("/")[0] == "%UPLOADS_CONTAINER%"


# ---------------------------------------------------------------- the portal


def test_the_portal_can_upload_from_the_browser_and_is_deployed(main: Bicep) -> None:
    storage = "\n".join(main.module("storage"))
    rule = re.search(r"corsRules: \[\s*\{(.*?)\}\s*\]", storage, re.S)
    assert rule, "no CORS rule on the blob service: the portal's browser upload can't work"
    assert "allowedOrigins: [portalOrigin]" in rule.group(1)
    assert "'PUT'" in rule.group(1) and "'OPTIONS'" in rule.group(1)
    assert "var portalOrigin = 'https://${functionAppName}.azurewebsites.net'" in main.text
    assert main.app_settings().get("AzureWebJobsDisableHomepage") == "'true'"
    # The built portal ships; its sources and the build tools don't.
    lines = (ROOT / ".funcignore").read_text().splitlines()
    ignored = [line.strip() for line in lines if not line.startswith("#")]
    assert "portal/" in ignored and "node_modules/" in ignored and "static/" not in ignored
    text = AZURE_YAML.read_text()
    assert re.search(r"^      prepackage:\n(        .*\n)*        run: .*npm run build", text, re.M)
