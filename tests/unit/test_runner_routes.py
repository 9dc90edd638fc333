"""Route templates of the local runner (funcrunner.routes), as ASP.NET Core routing reads them."""

from __future__ import annotations

import pytest

from funcrunner.routes import RouteTemplateError, parse_template


def match(template: str, path: str) -> dict[str, str] | None:
    return parse_template(template).match(path)


# -- constraints ---------------------------------------------------------------------------

CONSTRAINTS = [
    # (constraint, accepted values, refused values)
    ("int", ["0", "12", "-7", "2147483647"], ["abc", "1.5", "2147483648", "12a"]),
    ("long", ["9223372036854775807", "-3"], ["9223372036854775808", "x"]),
    ("bool", ["true", "False", "TRUE"], ["yes", "1", "truth"]),
    ("alpha", ["abc", "ABCdef"], ["ab1", "a-b", "é"]),
    (
        "guid",
        ["6f9619ff-8b86-d011-b42d-00cf4fc964ff", "6F9619FF8B86D011B42D00CF4FC964FF"],
        ["not-a-guid", "6f9619ff-8b86-d011-b42d"],
    ),
    ("length(3)", ["abc", "123"], ["ab", "abcd"]),
    ("length(2,4)", ["ab", "abcd"], ["a", "abcde"]),
    ("minlength(2)", ["ab", "abcdef"], ["a"]),
    ("maxlength(3)", ["a", "abc"], ["abcd"]),
    ("min(5)", ["5", "100"], ["4", "-5", "five"]),
    ("max(10)", ["10", "-3"], ["11", "ten"]),
    ("range(1,3)", ["1", "2", "3"], ["0", "4", "x"]),
    ("regex(^[a-z]+-[0-9]+$)", ["abc-12", "ABC-12"], ["abc12", "abc-"]),
    # Not anchored by the host either: IsMatch finds the pattern anywhere.
    ("regex(b)", ["abc"], ["xyz"]),
]


@pytest.mark.parametrize(("constraint", "accepted", "refused"), CONSTRAINTS)
def test_constraint_accepts_and_refuses(
    constraint: str, accepted: list[str], refused: list[str]
) -> None:
    route = parse_template(f"v/{{value:{constraint}}}")
    for value in accepted:
        assert route.match(f"v/{value}") == {"value": value}, value
    for value in refused:
        assert route.match(f"v/{value}") is None, value


def test_constraints_combine() -> None:
    route = parse_template("n/{id:int:range(1,5)}")
    assert route.match("n/3") == {"id": "3"}
    assert route.match("n/6") is None
    assert route.match("n/x") is None


def test_constraint_names_are_case_insensitive() -> None:
    assert match("n/{id:INT}", "n/4") == {"id": "4"}


# -- parameters ----------------------------------------------------------------------------


def test_plain_parameter() -> None:
    assert match("users/{name}", "users/ada") == {"name": "ada"}
    assert match("users/{name}", "users") is None
    assert match("users/{name}", "users/ada/extra") is None


def test_parameter_value_is_url_decoded() -> None:
    assert match("users/{name}", "users/ada%20lovelace") == {"name": "ada lovelace"}


def test_optional_parameter() -> None:
    assert match("opt/{name?}", "opt/x") == {"name": "x"}
    assert match("opt/{name?}", "opt") == {}


def test_optional_parameter_with_constraint() -> None:
    assert match("opt/{id:int?}", "opt/5") == {"id": "5"}
    assert match("opt/{id:int?}", "opt") == {}
    assert match("opt/{id:int?}", "opt/x") is None


def test_default_value() -> None:
    assert match("greet/{name=world}", "greet") == {"name": "world"}
    assert match("greet/{name=world}", "greet/ada") == {"name": "ada"}


def test_default_value_after_constraints() -> None:
    assert match("greet/{name:alpha=world}", "greet") == {"name": "world"}
    assert match("greet/{name:alpha=world}", "greet/ada") == {"name": "ada"}
    assert match("greet/{name:alpha=world}", "greet/a1") is None


def test_equals_sign_inside_a_constraint_is_not_a_default() -> None:
    route = parse_template("q/{expr:regex(^a=b$)}")
    assert route.match("q/a=b") == {"expr": "a=b"}
    assert route.match("q") is None


def test_catch_all_takes_the_rest() -> None:
    assert match("files/{*path}", "files/a/b/c") == {"path": "a/b/c"}
    assert match("files/{**path}", "files/a/b") == {"path": "a/b"}
    assert match("files/{*path}", "files") == {}


def test_complex_segment() -> None:
    assert match("docs/{file}.{ext}", "docs/report.pdf") == {"file": "report", "ext": "pdf"}
    assert match("docs/{file}.{ext}", "docs/report") is None


def test_complex_segment_matches_literals_from_the_right() -> None:
    # ASP.NET finds each literal with LastIndexOf, right to left.
    assert match("{file}.{ext}", "archive.tar.gz") == {"file": "archive.tar", "ext": "gz"}
    # So a constrained left part sees everything up to the last separator.
    assert match("{a:int}-{b}", "1-2-3") is None
    assert match("{a}-{b}", "1-2-3") == {"a": "1-2", "b": "3"}


def test_complex_segment_with_literal_prefix() -> None:
    assert match("img/v{version:int}", "img/v12") == {"version": "12"}
    assert match("img/v{version:int}", "img/12") is None


def test_literals_are_case_insensitive() -> None:
    assert match("Things/Special", "things/SPECIAL") == {}
    assert match("api/{x}", "API/y") == {"x": "y"}


def test_leading_and_trailing_slashes_are_ignored() -> None:
    assert match("/items/{id}/", "/items/3/") == {"id": "3"}


def test_empty_template_matches_root() -> None:
    assert match("", "") == {}
    assert match("", "x") is None


# -- precedence ----------------------------------------------------------------------------


def test_precedence_orders_literal_constrained_plain_catch_all() -> None:
    templates = ["things/{*rest}", "things/{name}", "things/{id:int}", "things/special"]
    ordered = sorted(templates, key=lambda t: parse_template(t).precedence)
    assert ordered == ["things/special", "things/{id:int}", "things/{name}", "things/{*rest}"]


def test_precedence_prefers_a_complex_segment_to_a_plain_parameter() -> None:
    complex_route, plain = parse_template("d/{file}.{ext}"), parse_template("d/{name}")
    assert complex_route.precedence < plain.precedence


def test_precedence_prefers_the_shorter_literal_route_to_a_catch_all() -> None:
    assert parse_template("files").precedence < parse_template("files/{*path}").precedence


# -- invalid templates ---------------------------------------------------------------------

INVALID = [
    "items/{id:bogus}",  # unknown constraint
    "items/{id",  # unbalanced brace
    "items/id}",
    "a//b",  # empty segment
    "{x}/{x}",  # the same parameter twice
    "{x}/{X}",  # names are case-insensitive
    "{*rest}/more",  # catch-all not last
    "{1abc}",  # not an identifier
    "{}",
    "a?b",  # query characters
    "a#b",
    "{id:length(a)}",  # non-integer argument
    "{id:min(1,2)}",  # wrong argument count
    "{id:int(3)}",  # arguments to a constraint that takes none
    "{id:regex([)}",  # invalid regular expression
    "{id:regex}",  # regex without a pattern
]


@pytest.mark.parametrize("template", INVALID)
def test_invalid_template_raises(template: str) -> None:
    with pytest.raises(RouteTemplateError):
        parse_template(template)


def test_catch_all_values_are_url_decoded_like_the_host() -> None:
    t = parse_template("api/uploads/{*blobName}")
    assert t.match("api/uploads/my%20disk/v%C3%A9.vhd") == {"blobName": "my disk/vé.vhd"}


def test_a_regex_constraint_may_hold_a_question_mark() -> None:
    t = parse_template("colors/{name:regex(^gr[ae]y?$)}")
    assert t.match("colors/grey") == {"name": "grey"}
    assert t.match("colors/gr") is None
    with pytest.raises(RouteTemplateError):
        parse_template("colors?/{name}")
