"""Load a v2 Python function app the way the worker does, and refuse what it refuses.

The worker imports the script, takes the `FunctionRegister` from its globals,
enumerates the functions once, and checks every signature against the
bindings: each binding needs a parameter of that name and each parameter a
binding (an unbound `context` gets the invocation context), OUT bindings take
`func.Out[T]`, IN bindings must not, and a return annotation needs a
`$return` binding. A violation stops the start with a message naming the
function.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func

from .routes import RouteTemplate, RouteTemplateError, parse_template


class FunctionLoadError(RuntimeError):
    def __init__(self, function_name: str, message: str) -> None:
        super().__init__(f"cannot load the {function_name} function: {message}")
        self.function_name = function_name


TRIGGERS = {"httpTrigger", "queueTrigger", "blobTrigger"}
OUTPUTS = {"http", "queue", "table"}


@dataclass
class Binding:
    name: str
    type: str
    direction: str  # "IN" | "OUT" | "INOUT"
    raw: dict[str, Any]
    annotation: Any = None  # the parameter's annotation (Out[T] unwrapped)

    @property
    def connection(self) -> str | None:
        return self.raw.get("connection")


@dataclass
class FunctionSpec:
    name: str
    user_function: Any
    trigger: Binding
    bindings: list[Binding]
    is_async: bool
    wants_context: bool
    has_return_binding: bool
    route: RouteTemplate | None = None
    methods: set[str] | None = None  # None: every method
    auth_level: str = "function"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def outputs(self) -> list[Binding]:
        return [b for b in self.bindings if b.direction == "OUT"]


def _is_out(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, func.Out)


def _out_inner(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    return args[0] if args else None


def _sdk_blob_types() -> tuple[type, ...]:
    try:
        import azurefunctions.extensions.bindings.blob as blob_ext
    except ImportError:
        return ()
    return (blob_ext.BlobClient, blob_ext.ContainerClient, blob_ext.StorageStreamDownloader)


def _accepts(binding_type: str, annotation: Any) -> bool:
    """The worker's input type check for the trigger types the runner serves."""
    if annotation is inspect.Parameter.empty:
        return True
    allowed: dict[str, tuple[Any, ...]] = {
        "httpTrigger": (func.HttpRequest,),
        "queueTrigger": (func.QueueMessage, str, bytes),
        "blobTrigger": (func.InputStream, str, bytes, *_sdk_blob_types()),
    }
    if binding_type not in allowed:
        return True
    return isinstance(annotation, type) and issubclass(annotation, allowed[binding_type])


def _find_app(module: Any, script: str) -> func.FunctionRegister:
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    if not apps:
        raise FunctionLoadError(script, "no FunctionApp instance was found in the script")
    if len({id(a) for a in apps}) > 1:
        raise FunctionLoadError(script, "more than one FunctionApp instance in the script")
    return apps[0]


def _direction(value: Any) -> str:
    text = str(getattr(value, "name", value)).upper()
    return {"0": "IN", "1": "OUT", "2": "INOUT"}.get(text, text)


def build_spec(function: Any, default_auth: str) -> FunctionSpec:
    name = function.get_function_name()
    doc = json.loads(function.get_function_json())
    user_function = function.get_user_function()
    bindings = [
        Binding(b["name"], b["type"], _direction(b["direction"]), b) for b in doc["bindings"]
    ]
    triggers = [b for b in bindings if b.type.endswith("Trigger")]
    if len(triggers) != 1:
        raise FunctionLoadError(name, "a function needs exactly one trigger binding")
    trigger = triggers[0]
    if trigger.type not in TRIGGERS:
        raise FunctionLoadError(
            name, f"the local runner does not serve '{trigger.type}' (only {sorted(TRIGGERS)})"
        )
    for b in bindings:
        if b.direction == "OUT" and b.type not in OUTPUTS:
            raise FunctionLoadError(name, f"the local runner has no '{b.type}' output binding")
        if b.direction == "IN" and b is not trigger:
            raise FunctionLoadError(name, f"the local runner has no '{b.type}' input binding")

    signature = inspect.signature(user_function)
    hints = typing.get_type_hints(user_function) if user_function.__annotations__ else {}
    params = {
        p.name: hints.get(p.name, inspect.Parameter.empty) for p in signature.parameters.values()
    }
    bound = {b.name: b for b in bindings if b.name != "$return"}
    wants_context = "context" in params and "context" not in bound
    if wants_context:
        params.pop("context")
    missing = sorted(set(bound) - set(params))
    extra = sorted(set(params) - set(bound))
    if extra:
        raise FunctionLoadError(
            name,
            "the following parameters are declared in Python but not in the bindings: "
            + ", ".join(extra),
        )
    if missing:
        raise FunctionLoadError(
            name,
            "the following parameters are declared in the bindings but not in Python: "
            + ", ".join(missing),
        )
    for pname, annotation in params.items():
        b = bound[pname]
        if b.direction == "OUT":
            if not _is_out(annotation):
                raise FunctionLoadError(
                    name,
                    f'binding {pname} is declared to have the "out" direction, but its '
                    "annotation in Python is not a subclass of azure.functions.Out",
                )
            b.annotation = _out_inner(annotation)
        else:
            if _is_out(annotation):
                raise FunctionLoadError(
                    name,
                    f'binding {pname} is declared to have the "in" direction, but its '
                    "annotation is azure.functions.Out in Python",
                )
            if not _accepts(b.type, annotation):
                raise FunctionLoadError(
                    name,
                    f'type of {pname} binding "{b.type}" does not match its Python '
                    f'annotation "{getattr(annotation, "__name__", annotation)}"',
                )
            b.annotation = annotation
    has_return = any(b.name == "$return" for b in bindings)
    ret = hints.get("return", inspect.Parameter.empty)
    if not has_return and ret not in (inspect.Parameter.empty, None, type(None)):
        raise FunctionLoadError(
            name,
            f'the Python return annotation "{getattr(ret, "__name__", ret)}" needs a '
            '"$return" output binding, and the function has none',
        )

    spec = FunctionSpec(
        name=name,
        user_function=user_function,
        trigger=trigger,
        bindings=bindings,
        is_async=inspect.iscoroutinefunction(user_function),
        wants_context=wants_context,
        has_return_binding=has_return,
    )
    if trigger.type == "httpTrigger":
        route = trigger.raw.get("route") or name
        try:
            spec.route = parse_template(route)
        except RouteTemplateError as e:
            raise FunctionLoadError(name, f"route '{route}': {e}") from e
        methods = trigger.raw.get("methods")
        spec.methods = {str(m).upper() for m in methods} if methods else None
        spec.auth_level = str(trigger.raw.get("authLevel") or default_auth).lower()
        if spec.auth_level not in ("anonymous", "function", "admin"):
            raise FunctionLoadError(name, f"unknown authLevel '{spec.auth_level}'")
    return spec


def load_app(app_dir: Path, script: str = "function_app.py") -> list[FunctionSpec]:
    """Import the app's script and return its checked functions (enumerated once)."""
    path = app_dir / script
    if not path.exists():
        raise FunctionLoadError(script, f"{path} does not exist")
    sys.path.insert(0, str(app_dir))
    module_name = path.stem
    sys.modules.pop(module_name, None)
    module = importlib.import_module(module_name)
    app = _find_app(module, script)
    default_auth = str(getattr(app, "auth_level", None) or "function")
    default_auth = str(getattr(getattr(app, "auth_level", None), "value", default_auth))
    functions = app.get_functions()  # may be called once per app instance
    specs: list[FunctionSpec] = []
    seen: set[str] = set()
    for function in functions:
        spec = build_spec(function, default_auth)
        if spec.name.lower() in seen:
            raise FunctionLoadError(spec.name, "two functions share this name")
        seen.add(spec.name.lower())
        specs.append(spec)
    return specs
