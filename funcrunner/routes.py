"""HTTP route templates as the Functions host (ASP.NET Core routing) reads them.

Supports literal segments (matched case-insensitively), `{name}`, optional
`{name?}`, defaults `{name=value}`, catch-all `{*rest}` / `{**rest}`, complex
segments such as `{file}.{ext}`, and the inline constraints the host knows
(`int`, `alpha`, `length(3,8)`, `regex(...)`, ...). A value that breaks a
constraint means the route does not match, so the request ends as a 404,
as on the host.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote


class RouteTemplateError(ValueError):
    """A route template the host would refuse to load."""


def _is_int(v: str, bits: int) -> bool:
    if not re.fullmatch(r"[+-]?\d+", v):
        return False
    n = int(v)
    return -(2 ** (bits - 1)) <= n < 2 ** (bits - 1)


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return v.strip().lower() not in {"nan", "inf", "-inf", "+inf", "infinity", "-infinity"}


def _is_decimal(v: str) -> bool:
    try:
        Decimal(v)
    except InvalidOperation:
        return False
    return _is_float(v)


def _is_guid(v: str) -> bool:
    try:
        uuid.UUID(v)
    except ValueError:
        return False
    return True


def _is_datetime(v: str) -> bool:
    try:
        datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


def _int_args(name: str, args: list[str], count: tuple[int, ...]) -> list[int]:
    if len(args) not in count or not all(re.fullmatch(r"-?\d+", a.strip()) for a in args):
        raise RouteTemplateError(f"constraint '{name}' needs {count} integer argument(s)")
    return [int(a) for a in args]


def _numeric(v: str) -> int | None:
    return int(v) if _is_int(v, 64) else None


def build_constraint(name: str, arg_text: str | None) -> Callable[[str], bool]:
    """The predicate for one inline constraint, or RouteTemplateError."""
    args = [] if arg_text is None else [a for a in arg_text.split(",")]
    simple: dict[str, Callable[[str], bool]] = {
        "int": lambda v: _is_int(v, 32),
        "long": lambda v: _is_int(v, 64),
        "bool": lambda v: v.lower() in ("true", "false"),
        "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
        "guid": _is_guid,
        "datetime": _is_datetime,
        "decimal": _is_decimal,
        "double": _is_float,
        "float": _is_float,
        "required": lambda v: v != "",
    }
    if name in simple:
        if arg_text is not None:
            raise RouteTemplateError(f"constraint '{name}' takes no arguments")
        return simple[name]
    if name == "minlength":
        (n,) = _int_args(name, args, (1,))
        return lambda v: len(v) >= n
    if name == "maxlength":
        (n,) = _int_args(name, args, (1,))
        return lambda v: len(v) <= n
    if name == "length":
        bounds = _int_args(name, args, (1, 2))
        lo, hi = (bounds[0], bounds[0]) if len(bounds) == 1 else (bounds[0], bounds[1])
        return lambda v: lo <= len(v) <= hi
    if name in ("min", "max", "range"):
        bounds = _int_args(name, args, (2,) if name == "range" else (1,))
        lo = bounds[0] if name in ("min", "range") else None
        hi = bounds[-1] if name in ("max", "range") else None

        def in_range(v: str) -> bool:
            n = _numeric(v)
            return n is not None and (lo is None or n >= lo) and (hi is None or n <= hi)

        return in_range
    if name == "regex":
        if arg_text is None:
            raise RouteTemplateError("constraint 'regex' needs a pattern")
        try:
            pattern = re.compile(arg_text, re.IGNORECASE)
        except re.error as e:
            raise RouteTemplateError(f"constraint regex({arg_text}) is not valid: {e}") from e
        return lambda v: pattern.search(v) is not None
    raise RouteTemplateError(f"unknown route constraint '{name}'")


@dataclass
class Parameter:
    name: str
    optional: bool = False
    default: str | None = None
    catch_all: bool = False
    constraints: list[Callable[[str], bool]] = field(default_factory=list)


_PARAM = re.compile(r"\{([^{}]*)\}")


def _split_constraints(body: str) -> tuple[str, list[tuple[str, str | None]]]:
    """`id:int:range(1,5)` -> ('id', [('int', None), ('range', '1,5')])."""
    parts: list[str] = []
    depth, current = 0, ""
    for ch in body:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == ":" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    constraints = []
    for c in parts[1:]:
        m = re.fullmatch(r"(\w+)(?:\((.*)\))?", c, re.DOTALL)
        if not m:
            raise RouteTemplateError(f"route constraint '{c}' is not valid")
        constraints.append((m.group(1).lower(), m.group(2)))
    return parts[0], constraints


def _split_default(body: str) -> tuple[str, str | None]:
    """`id:int=5` -> ('id:int', '5'): the first `=` outside a constraint's parentheses."""
    depth = 0
    for i, ch in enumerate(body):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "=" and depth == 0:
            return body[:i], body[i + 1 :]
    return body, None


def _parse_parameter(body: str) -> Parameter:
    # As ASP.NET reads it: name, then constraints, then `=default` or a final `?`
    # (so `{id:int?}` and `{n:alpha=x}` work).
    optional = body.endswith("?")
    body, default = _split_default(body.removesuffix("?"))
    head, constraints = _split_constraints(body)
    catch_all = head.startswith("*")
    head = head.lstrip("*")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", head):
        raise RouteTemplateError(f"route parameter name '{head}' is not valid")
    return Parameter(
        name=head,
        optional=optional or default is not None or catch_all,
        default=default,
        catch_all=catch_all,
        constraints=[build_constraint(n, a) for n, a in constraints],
    )


@dataclass
class RouteTemplate:
    """A parsed route template; `match` returns the route values or None."""

    template: str
    regex: re.Pattern[str]
    parameters: dict[str, Parameter]
    precedence: tuple[int, ...]

    def match(self, path: str) -> dict[str, str] | None:
        m = self.regex.fullmatch(path.strip("/"))
        if m is None:
            return None
        values: dict[str, str] = {}
        for name, param in self.parameters.items():
            raw = m.group(name)
            if raw is None or raw == "":
                if not param.optional:
                    return None
                if param.default is not None:
                    values[name] = param.default
                continue
            value = unquote(raw)  # the host decodes route values, catch-alls too
            if not all(check(value) for check in param.constraints):
                return None
            values[name] = value
        return values


def parse_template(template: str) -> RouteTemplate:
    """Compile a route template (without the route prefix)."""
    text = template.strip().strip("/")
    literals = _PARAM.sub("", text)  # constraints such as regex(^a?b$) may hold '?'
    if "?" in literals or "#" in literals:
        raise RouteTemplateError(f"route '{template}' must not contain '?' or '#'")
    segments = text.split("/") if text else []
    parameters: dict[str, Parameter] = {}
    pieces: list[str] = []
    precedence: list[int] = []
    for index, segment in enumerate(segments):
        if segment == "":
            raise RouteTemplateError(f"route '{template}' has an empty segment")
        seg_regex = ""
        position = 0
        seg_params: list[Parameter] = []
        for m in _PARAM.finditer(segment):
            seg_regex += re.escape(segment[position : m.start()])
            param = _parse_parameter(m.group(1))
            if param.name.lower() in {p.lower() for p in parameters}:
                raise RouteTemplateError(f"route parameter '{param.name}' appears twice")
            if param.catch_all and index != len(segments) - 1:
                raise RouteTemplateError("a catch-all parameter must be the last segment")
            parameters[param.name] = param
            seg_params.append(param)
            # Greedy: in a complex segment such as {file}.{ext}, ASP.NET matches the
            # literals from the right (LastIndexOf), so a.b.c is file=a.b, ext=c.
            seg_regex += f"(?P<{param.name}>{'.*' if param.catch_all else '[^/]+'})"
            position = m.end()
        literal_tail = segment[position:]
        if "{" in literal_tail or "}" in literal_tail:
            raise RouteTemplateError(f"route '{template}' has an unbalanced brace")
        seg_regex += re.escape(literal_tail)
        whole_param = len(seg_params) == 1 and segment == "{" + segment[1:-1] + "}"
        sep = "/" if index else ""
        if whole_param and seg_params[0].optional:
            pieces.append(f"(?:{sep}{seg_regex})?")
        else:
            if any(p.optional and not p.catch_all for p in seg_params) and not whole_param:
                # ASP.NET allows an optional parameter in a complex segment only
                # at its end; we keep it simple and require it to be whole.
                raise RouteTemplateError("an optional parameter must be a whole segment")
            pieces.append(sep + seg_regex)
        if not seg_params:
            precedence.append(0)
        elif seg_params[0].catch_all:
            precedence.append(4)
        elif len(seg_params) > 1 or not whole_param:
            precedence.append(1)
        elif seg_params[0].optional:
            precedence.append(3)
        else:
            precedence.append(1 if seg_params[0].constraints else 2)
    regex = re.compile("".join(pieces), re.IGNORECASE | re.DOTALL)
    return RouteTemplate(template, regex, parameters, tuple(precedence))
