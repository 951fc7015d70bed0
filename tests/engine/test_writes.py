"""Write validation (engine/writes.py): every Permify error code, the accepted cases, and the codes
the conformance files document for their unvalidated tuples."""

from __future__ import annotations

import pytest
import yaml

from api.errors import reason_of
from dsl.compiler import load
from dsl.schema import AttributeType
from engine.errors import InvalidWrite
from engine.writes import attribute_text, check_attribute, check_tuple
from storage.base import Attribute, Tuple
from tests.conftest import CONFORMANCE, conformance_files

SCHEMA = load(
    """
entity user {}

entity group {
    relation member @user @group#member
    relation owner @user
    permission admin = owner
}

entity folder {
    relation parent @folder
    relation viewer @user @group#member
}

entity doc {
    relation parent @folder
    relation owner @user @group#member
    attribute public boolean
    attribute tags string[]
    attribute score integer
    permission view = owner or parent.viewer or public
}
"""
)

TUPLES = [
    ("doc:1#owner@user:1", None),
    ("doc:1#owner@group:1#member", None),
    ("doc:1#parent@folder:1", None),
    ("doc:1#parent@folder:1#...", None),
    ("folder:1#parent@folder:2", None),
    ("folder:1#parent@folder:1", None),
    ("group:1#member@group:1", "ERROR_CODE_SUBJECT_TYPE_NOT_FOUND"),
    ("group:1#member@group:2#member", None),
    ("page:1#owner@user:1", "ERROR_CODE_ENTITY_DEFINITION_NOT_FOUND"),
    ("doc:1#editor@user:1", "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND"),
    ("doc:1#view@user:1", "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND"),
    ("doc:1#public@user:1", "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND"),
    ("doc:1#owner@folder:1", "ERROR_CODE_SUBJECT_TYPE_NOT_FOUND"),
    ("doc:1#owner@group:1", "ERROR_CODE_SUBJECT_TYPE_NOT_FOUND"),
    ("doc:1#owner@group:1#owner", "ERROR_CODE_SUBJECT_TYPE_NOT_FOUND"),
    ("doc:1#owner@nobody:1", "ERROR_CODE_SUBJECT_TYPE_NOT_FOUND"),
    ("group:1#member@group:1#member", "ERROR_CODE_ENTITY_AND_SUBJECT_CANNOT_BE_EQUAL"),
    # Permify compares before looking at the relation: equal wins over "no such relation".
    ("group:1#nope@group:1#nope", "ERROR_CODE_ENTITY_AND_SUBJECT_CANNOT_BE_EQUAL"),
]


@pytest.mark.parametrize(("text", "code"), TUPLES, ids=[t for t, _ in TUPLES])
def test_tuple_validation_gives_permifys_code(text: str, code: str | None) -> None:
    t = Tuple.parse(text)
    if code is None:
        check_tuple(SCHEMA, t)
        return
    with pytest.raises(InvalidWrite) as caught:
        check_tuple(SCHEMA, t)
    assert reason_of(caught.value) == code
    assert str(t) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            "page:1#owner@user:1",
            ["entity type `page`", "defined entities: doc, folder, group, user"],
        ),
        (
            "doc:1#view@user:1",
            ["`view` is a permission, not a relation", "relations: owner, parent"],
        ),
        ("doc:1#public@user:1", ["`public` is an attribute, not a relation"]),
        ("doc:1#editor@user:1", ["`editor` is not defined on entity `doc`"]),
        ("doc:1#owner@folder:1", ["subject type `folder`", "admits: group#member, user"]),
        ("doc:1#owner@group:1#owner", ["subject type `group#owner`", "`doc#owner`"]),
    ],
    ids=["entity", "permission", "attribute", "unknown-relation", "subject", "subject-relation"],
)
def test_tuple_messages_say_what_the_schema_allows(text: str, fragments: list[str]) -> None:
    with pytest.raises(InvalidWrite) as caught:
        check_tuple(SCHEMA, Tuple.parse(text))
    message = str(caught.value)
    assert message.startswith(f"tuple {Tuple.parse(text)}: ")
    for fragment in fragments:
        assert fragment in message


ATTRIBUTES = [
    (Attribute("doc", "1", "public", AttributeType.BOOLEAN, True), None),
    (Attribute("doc", "1", "tags", AttributeType.STRING_ARRAY, ("a", "b")), None),
    (Attribute("doc", "1", "score", AttributeType.INTEGER, 3), None),
    (
        Attribute("page", "1", "public", AttributeType.BOOLEAN, True),
        "ERROR_CODE_ENTITY_DEFINITION_NOT_FOUND",
    ),
    (
        Attribute("doc", "1", "color", AttributeType.STRING, "red"),
        "ERROR_CODE_ATTRIBUTE_DEFINITION_NOT_FOUND",
    ),
    (
        Attribute("doc", "1", "owner", AttributeType.STRING, "x"),
        "ERROR_CODE_ATTRIBUTE_DEFINITION_NOT_FOUND",
    ),
    (
        Attribute("doc", "1", "public", AttributeType.STRING, "true"),
        "ERROR_CODE_ATTRIBUTE_TYPE_MISMATCH",
    ),
    (
        Attribute("doc", "1", "tags", AttributeType.STRING, "a"),
        "ERROR_CODE_ATTRIBUTE_TYPE_MISMATCH",
    ),
    (
        Attribute("doc", "1", "score", AttributeType.DOUBLE, 3.0),
        "ERROR_CODE_ATTRIBUTE_TYPE_MISMATCH",
    ),
]


@pytest.mark.parametrize(
    ("attribute", "code"), ATTRIBUTES, ids=[attribute_text(a) for a, _ in ATTRIBUTES]
)
def test_attribute_validation_gives_permifys_code(attribute: Attribute, code: str | None) -> None:
    if code is None:
        check_attribute(SCHEMA, attribute)
        return
    with pytest.raises(InvalidWrite) as caught:
        check_attribute(SCHEMA, attribute)
    assert reason_of(caught.value) == code
    assert attribute_text(attribute) in str(caught.value)


def test_attribute_messages_name_the_declared_type_and_the_alternatives() -> None:
    with pytest.raises(InvalidWrite) as caught:
        check_attribute(SCHEMA, Attribute("doc", "1", "public", AttributeType.STRING, "yes"))
    assert "`doc#public` is declared `boolean`, the value is `string`" in str(caught.value)
    with pytest.raises(InvalidWrite) as caught:
        check_attribute(SCHEMA, Attribute("doc", "1", "owner", AttributeType.STRING, "x"))
    assert "`owner` is a relation, not an attribute" in str(caught.value)
    assert "its attributes: public, score, tags" in str(caught.value)


def test_attribute_text_is_permifys_string_form() -> None:
    assert attribute_text(
        Attribute("a", "1", "on", AttributeType.BOOLEAN_ARRAY, (True, False))
    ) == ("a:1$on|boolean[]:true,false")
    assert attribute_text(Attribute("a", "1", "n", AttributeType.DOUBLE, 1.5)) == "a:1$n|double:1.5"


def _unvalidated_cases() -> list[tuple[str, str, str]]:
    cases = []
    for path in conformance_files():
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for item in document.get("x_unvalidated_relationships") or []:
            cases.append((str(path.relative_to(CONFORMANCE)), item["tuple"], item["error"]))
    return cases


UNVALIDATED = _unvalidated_cases()


@pytest.mark.parametrize(
    ("file", "text", "code"), UNVALIDATED, ids=[f"{f}:{t}" for f, t, _ in UNVALIDATED]
)
def test_conformance_unvalidated_tuples_fail_with_their_documented_code(
    file: str, text: str, code: str
) -> None:
    document = yaml.safe_load((CONFORMANCE / file).read_text(encoding="utf-8"))
    with pytest.raises(InvalidWrite) as caught:
        check_tuple(load(document["schema"]), Tuple.parse(text))
    assert reason_of(caught.value) == code
