"""An image's text fields keep one set of rules, whichever way they come in.

The rules live in shared/domain/images.py (TextRule, LABEL, FAMILY, ...): no
control characters (tab and newlines too), DEL, C1, lone surrogates or U+FFFE/U+FFFF,
and each field's longest value. The Image model enforces them, and so does every
way in, each naming the field in its own terms: blob metadata, a manifest, PATCH,
the classic XML API, capture requests and the VM inventory.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from functions._http import json_response
from shared.domain.captures import InvalidCaptureRequest, parse_capture
from shared.domain.errors import InvalidParameter
from shared.domain.images import (
    FAMILY,
    LABEL,
    TEXT,
    TEXT_RULES,
    Image,
    TextRule,
    check_text,
)
from shared.domain.uploads import InvalidMetadata, VmImageManifest, check_declared
from shared.domain.vms import VmBody
from shared.services import catalog as catalog_service
from shared.services import classic as cx

# Each kind of character no text field may hold, with how the error names it.
BAD = {
    "NUL": ("a\x00b", "a control character (U+0000 at offset 1)"),
    "tab": ("a\tb", "a control character (U+0009 at offset 1)"),
    "newline": ("a\nb", "a control character (U+000A at offset 1)"),
    "DEL": ("a\x7fb", "a control character (U+007F at offset 1)"),
    "NEL": ("a\x85b", "a control character (U+0085 at offset 1)"),
    "C1": ("a\x9fb", "a control character (U+009F at offset 1)"),
    "lone surrogate": ("a\ud800b", "a lone surrogate (U+D800 at offset 1)"),
    "lone low surrogate": ("\udc00", "a lone surrogate (U+DC00 at offset 0)"),
    "noncharacter": ("a\uffffb", "a noncharacter (U+FFFF at offset 1)"),
}
# The longest value of each field (what PATCH and the classic API allowed before).
LONGEST = {
    "Label": 4096,
    "Description": 4096,
    "ImageFamily": 256,
    "Eula": 4096,
    "RecommendedVMSize": 64,
    "PublisherName": 4096,
    "Location": 4096,
    "IconUri": 2048,
    "SmallIconUri": 2048,
    "PrivacyUri": 2048,
    "PricingDetailLink": 2048,
}
GOOD = ["Ubuntu 22.04", "é€ 😀 中文", "a/b#c?d\\e%41|x", "x"]


def image(**changes: Any) -> Image:
    doc: dict[str, Any] = {
        "ImageName": "img",
        "Label": "An image",
        "OS": "Linux",
        "PublishedDate": datetime(2024, 1, 1, tzinfo=UTC),
        "LogicalSizeInGB": 1,
    }
    return Image.model_validate({**doc, **changes})


def refused(field: str, **changes: Any) -> str:
    with pytest.raises(ValidationError) as e:
        image(**changes)
    (error,) = e.value.errors()
    assert error["loc"] == (field,)
    return str(error["msg"])


# -- the rules ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", BAD)
def test_a_rule_refuses_each_bad_character_naming_it_not_echoing_the_value(kind: str) -> None:
    value, said = BAD[kind]
    with pytest.raises(ValueError) as e:
        TEXT.check(value)
    assert str(e.value) == f"must not contain {said}"


def test_a_rule_keeps_a_good_value_as_given() -> None:
    for value in [*GOOD, " spaced ", ""]:
        assert TEXT.check(value) == value


def test_lengths_required_and_trimmed() -> None:
    rule = TextRule(5, required=True, trimmed=True)
    assert rule.check("abcde") == "abcde"
    for value, said in [
        ("abcdef", "must be at most 5 characters, not 6"),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        (" ab", "must not start or end with whitespace"),
        ("ab\u3000", "must not start or end with whitespace"),
        (5, "must be a string"),
        (None, "must be a string"),
    ]:
        with pytest.raises(ValueError, match=re.escape(said)):
            rule.check(value)


def test_check_text_names_the_field_with_the_error_asked_for() -> None:
    with pytest.raises(
        InvalidParameter, match=r"^InvalidParameter: ImageFamily: must not contain a control"
    ):
        check_text("ImageFamily", "a\tb", FAMILY)
    with pytest.raises(
        InvalidMetadata, match=r"^InvalidMetadata: blob metadata label: must not be empty"
    ):
        check_text("blob metadata label", " ", LABEL, InvalidMetadata)


# Shorter than any rule's limit: the pattern leaves lengths to minLength/maxLength.
_ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)


@given(_ANY_TEXT, st.sampled_from([TEXT, LABEL, FAMILY, TextRule(99, trimmed=True)]))
def test_the_json_schema_pattern_says_what_the_rule_checks(value: str, rule: TextRule) -> None:
    # Lone surrogates are the one thing the pattern leaves to the service.
    if re.search("[\ud800-\udfff]", value):
        return
    try:
        rule.check(value)
        kept = True
    except ValueError:
        kept = False
    assert kept == bool(re.fullmatch(rule.pattern.removeprefix("^").removesuffix("$"), value))


# -- the Image model ---------------------------------------------------------------


@pytest.mark.parametrize("field", LONGEST)
@pytest.mark.parametrize("kind", BAD)
def test_the_image_refuses_each_bad_character_in_each_text_field(field: str, kind: str) -> None:
    value, said = BAD[kind]
    msg = refused(field, **{field: value})
    # pydantic's own str check finds a lone surrogate first, in its words
    assert said in msg or ("surrogate" in kind and "unicode" in msg), msg


@pytest.mark.parametrize("field", LONGEST)
def test_the_image_keeps_each_fields_longest_value(field: str) -> None:
    longest = LONGEST[field]
    assert getattr(image(**{field: "x" * longest}), field) == "x" * longest
    assert "at most" in refused(field, **{field: "x" * (longest + 1)})
    for value in GOOD:
        assert getattr(image(**{field: value}), field) == value


def test_a_label_and_a_family_are_never_blank_and_a_family_never_padded() -> None:
    for value in ["", " ", "\u3000"]:
        refused("Label", Label=value)
        refused("ImageFamily", ImageFamily=value)
    for value in [" Ubuntu", "Ubuntu ", "Ubuntu\u00a0"]:
        assert "whitespace" in refused("ImageFamily", ImageFamily=value)
    assert image(Label=" padded label ").Label == " padded label "


def test_the_updatable_text_fields_share_the_images_rules() -> None:
    for field, rule in TEXT_RULES.items():
        assert LONGEST[field] == rule.max_len
        schema = Image.model_json_schema()["properties"][field]
        string = next(s for s in schema.get("anyOf", [schema]) if s["type"] == "string")
        assert (string["maxLength"], string["pattern"]) == (rule.max_len, rule.pattern)


# -- every way in ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("imagefamily", "Ubuntu\t22.04", "must not contain a control character (U+0009"),
        ("label", "x" * 7000, "must be at most 4096 characters, not 7000"),
        ("description", "a\x7f", "must not contain a control character (U+007F"),
        ("imagefamily", "f" * 257, "must be at most 256 characters"),
        ("label", "a\x85", "must not contain a control character (U+0085"),
    ],
)
def test_upload_metadata_is_invalid_metadata_naming_the_key(
    key: str, value: str, said: str
) -> None:
    with pytest.raises(InvalidMetadata) as e:
        check_declared({"os": "Linux", key: value})
    assert e.value.code == "InvalidMetadata"
    assert e.value.message.startswith(f"blob metadata {key}: {said}")


def test_upload_metadata_that_an_image_keeps_passes() -> None:
    check_declared({"label": "x" * 4096, "imagefamily": "f" * 256, "description": "ok é"})


@pytest.mark.parametrize(
    ("field", "value"),
    [("ImageFamily", "SQL\tVMs"), ("Label", "x" * 4097), ("Description", "a\x00")],
)
def test_a_manifest_field_is_refused_by_name(field: str, value: str) -> None:
    doc = {"OSDisk": {"Blob": "vm.image/os.vhd"}, field: value}
    with pytest.raises(ValidationError) as e:
        VmImageManifest.model_validate_json(json.dumps(doc))
    assert [err["loc"] for err in e.value.errors()] == [(field,)]


def test_a_manifest_with_a_json_lone_surrogate_is_refused() -> None:
    with pytest.raises(ValidationError):
        VmImageManifest.model_validate_json(
            b'{"OSDisk": {"Blob": "a.image/b.vhd"}, "Label": "\\ud800"}'
        )


class NoCatalog:
    """update_image must refuse a bad value before it reads anything."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the catalog was used ({name}) for an invalid change")


@pytest.mark.parametrize("field", [f for f in TEXT_RULES])
@pytest.mark.parametrize("kind", BAD)
def test_patch_refuses_each_bad_value_naming_the_field(field: str, kind: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        catalog_service.update_image(NoCatalog(), "img", {field.lower(): BAD[kind][0]})  # type: ignore[arg-type]
    assert e.value.message == f"{field}: must not contain {BAD[kind][1]}"


@pytest.mark.parametrize("field", [f for f in TEXT_RULES])
def test_patch_refuses_a_value_too_long_for_the_field(field: str) -> None:
    too_long = "x" * (TEXT_RULES[field].max_len + 1)
    with pytest.raises(InvalidParameter, match=f"^InvalidParameter: {field}: must be at most"):
        catalog_service.update_image(NoCatalog(), "img", {field: too_long})  # type: ignore[arg-type]


def test_patch_refuses_a_blank_label_and_a_padded_family() -> None:
    for changes in ({"Label": "  "}, {"Label": None}, {"ImageFamily": " x"}, {"Eula": 5}):
        with pytest.raises(InvalidParameter):
            catalog_service.update_image(NoCatalog(), "img", changes)  # type: ignore[arg-type]


def test_the_family_filter_refuses_what_no_family_holds() -> None:
    for family in ["a\tb", "a\x85", "a\ud800", "x" * 257, ""]:
        with pytest.raises(InvalidParameter):
            catalog_service.parse_list_query({"family": family})


def _classic_update(inner: str) -> bytes:
    return f"<OSImage xmlns='{cx.NS}'>{inner}</OSImage>".encode()


@pytest.mark.parametrize(
    ("element", "value", "said"),
    [
        ("Label", "a\x7fb", "Label: must not contain a control character (U+007F"),
        ("Label", "a&#9;b", "Label: must not contain a control character (U+0009"),
        ("ImageFamily", "a\tb", "ImageFamily: must not contain a control character (U+0009"),
        ("Description", "a\x85b", "Description: must not contain a control character (U+0085"),
        ("Eula", "e" * 4097, "Eula: must be at most 4096 characters"),
        ("RecommendedVMSize", "s" * 65, "RecommendedVMSize: must be at most 64 characters"),
    ],
)
def test_classic_update_add_and_create_refuse_a_bad_field_by_name(
    element: str, value: str, said: str
) -> None:
    current = image(Category="User")
    body = _classic_update(f"<{element}>{value}</{element}>")
    with pytest.raises(InvalidParameter, match=re.escape(said)):
        cx.update_changes(current, cx.parse_update_os_image(body))
    fields = {"Name": "img", "Label": "L", "MediaLink": "http://a/b/c.vhd", "OS": "Linux"}
    fields[element] = value
    add = _classic_update("".join(f"<{k}>{v}</{k}>" for k, v in fields.items()))
    with pytest.raises(InvalidParameter, match=re.escape(said)):
        cx.parse_add_os_image(add)
    os_disk = (
        "<OSDiskConfiguration><OSState>Generalized</OSState><OS>Linux</OS>"
        "<MediaLink>http://a/b/c.vhd</MediaLink></OSDiskConfiguration>"
    )
    create = {"Name": "img", "Label": "L", element: value}
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in create.items())
    body = f"<VMImage xmlns='{cx.NS}'>{inner}{os_disk}</VMImage>".encode()
    with pytest.raises(InvalidParameter, match=re.escape(said)):
        cx.parse_create_vm_image(body)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ImageLabel", "a\x00"),
        ("ImageLabel", "x" * 4097),
        ("ImageLabel", ""),
        ("ImageFamily", "Fam\tily"),
        ("ImageFamily", "Family "),
        ("Description", "\ud800"),
        ("RecommendedVMSize", "Small\x7f"),
    ],
)
def test_a_capture_request_refuses_a_bad_field_by_name(field: str, value: str) -> None:
    doc = {"ServiceName": "svc", "Name": "vm", "ImageName": "img", field: value}
    with pytest.raises(InvalidCaptureRequest, match=f"{field}: "):
        parse_capture(doc)


def test_an_error_repeating_a_lone_surrogate_is_still_an_error_not_a_crash() -> None:
    # pydantic can't carry a lone surrogate in a validator's message: that was a 500
    with pytest.raises(InvalidCaptureRequest) as e:
        parse_capture({"ServiceName": "svc", "Name": "v\ud800", "ImageName": "a\ud800"})
    assert "'a\\ud800' is not a valid image name" in e.value.message
    assert "'v\\ud800' is not a valid VM name" in e.value.message
    with pytest.raises(InvalidParameter, match=r"not 'x\\u0000'"):
        catalog_service.parse_list_query({"os": "x\x00"})


def test_a_capture_request_keeps_the_images_limits() -> None:
    doc = {"ServiceName": "svc", "Name": "vm", "ImageName": "img", "ImageLabel": "L" * 4096}
    assert parse_capture({**doc, "ImageFamily": "F" * 256}).label == "L" * 4096


def test_an_empty_classic_capture_label_is_no_label() -> None:
    body = (
        f"<CaptureRoleOperation xmlns='{cx.NS}'><OperationType>CaptureRoleOperation"
        "</OperationType><PostCaptureAction>Delete</PostCaptureAction>"
        "<TargetImageLabel></TargetImageLabel><TargetImageName>img</TargetImageName>"
        "</CaptureRoleOperation>"
    ).encode()
    assert parse_capture(cx.parse_capture_operation(body, "svc", "vm", "op-1")).label == "img"


@pytest.mark.parametrize("kind", ["NUL", "DEL", "C1", "lone surrogate", "noncharacter"])
def test_a_vm_disk_link_holds_no_control_character(kind: str) -> None:
    link = f"https://acct.blob.core.windows.net/vhds/a{BAD[kind][0]}.vhd"
    with pytest.raises(ValidationError):
        VmBody.model_validate({"State": "Stopped", "OSDisk": {"OS": "Linux", "MediaLink": link}})


# -- answers -----------------------------------------------------------------------


def test_a_json_answer_never_carries_a_lone_surrogate() -> None:
    # e.g. an error message that echoes a request's value
    body = json_response({"Message": "'a\ud800b' is not valid", "Ok": "é😀"}).get_body()
    text = body.decode("utf-8")  # strict: would fail on a surrogate encoded anyhow
    assert json.loads(text) == {"Message": "'a\ufffdb' is not valid", "Ok": "é😀"}
