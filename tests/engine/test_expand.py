"""Expand builds Permify's tree node for node: the three expand cases taken from Permify's own
tests (read from ../shared, never copied), plus cycles, depth, unknown names and value types."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import yaml

from api.models import expand_json
from dsl.compiler import load
from dsl.schema import AttributeType
from engine.errors import DepthExceeded, UnknownEntityType, UnknownPermission
from engine.expand import expand
from engine.types import Context, Entity
from storage.base import Attribute, AttributeValue, Changes, Scalar, Tuple
from storage.memory import MemoryStore
from tests.conftest import CONFORMANCE, require_shared

TENANT = "t1"
EXTENSIONS = CONFORMANCE / "extracted" / "extensions"
ANY = "type.googleapis.com/base.v1."


# --- helpers -----------------------------------------------------------------------------------


CONVERTERS: dict[AttributeType, Callable[[str], Scalar]] = {
    AttributeType.BOOLEAN: lambda v: v.strip().lower() == "true",
    AttributeType.STRING: str,
    AttributeType.INTEGER: int,
    AttributeType.DOUBLE: float,
}


def parse_attribute(text: str) -> Attribute:
    """``type:id$name|type:value`` (arrays comma-separated), as Permify's files write it."""
    head, _, typed = text.partition("|")
    entity, _, name = head.partition("$")
    entity_type, _, entity_id = entity.partition(":")
    keyword, _, raw = typed.partition(":")
    is_array = keyword.endswith("[]")
    kind = AttributeType.from_keyword(keyword.removesuffix("[]"), is_array)
    assert kind is not None, f"unknown attribute type in {text!r}"
    items = raw.split(",") if is_array else [raw]
    convert = CONVERTERS[kind.element]
    values = [convert(v) for v in items]
    value: AttributeValue = tuple(values) if is_array else values[0]  # type: ignore[assignment]
    return Attribute(entity_type, entity_id, name, kind, value)


def build(
    schema_text: str, tuples: Sequence[str] = (), attributes: Sequence[str] = ()
) -> tuple[Any, MemoryStore]:
    schema = load(schema_text)
    store = MemoryStore()
    store.write(
        TENANT,
        Changes(
            write_tuples=[Tuple.parse(t) for t in tuples],
            write_attributes=[parse_attribute(a) for a in attributes],
        ),
    )
    return schema, store


def run(
    schema: Any,
    store: MemoryStore,
    entity: str,
    permission: str,
    *,
    depth: int = 50,
    context: Context | None = None,
) -> dict[str, Any]:
    """The tree, rendered by the API and without the fields Permify's own test trees leave
    out when empty (a node's ``arguments``, a subject's ``relation``)."""
    tree = expand(
        schema,
        store.reader(TENANT),
        Entity.parse(entity),
        permission,
        context=context or Context(),
        depth=depth,
    )
    return sparse(expand_json(tree))


def sparse(rendered: Any) -> Any:
    """``rendered`` without empty ``arguments`` lists and empty ``relation`` strings."""
    if isinstance(rendered, list):
        return [sparse(item) for item in rendered]
    if isinstance(rendered, dict):
        return {
            key: sparse(value)
            for key, value in rendered.items()
            if not (key in ("arguments", "relation") and value in ([], ""))
        }
    return rendered


def node(entity: str, permission: str, operation: str, *children: dict[str, Any]) -> dict[str, Any]:
    entity_type, entity_id = entity.split(":")
    return {
        "entity": {"type": entity_type, "id": entity_id},
        "permission": permission,
        "expand": {"operation": f"OPERATION_{operation}", "children": list(children)},
    }


def leaf(entity: str, permission: str, *subjects: str) -> dict[str, Any]:
    entity_type, entity_id = entity.split(":")
    out = []
    for text in subjects:
        head, _, relation = text.partition("#")
        subject_type, subject_id = head.split(":")
        out.append(
            {"type": subject_type, "id": subject_id, **({"relation": relation} if relation else {})}
        )
    return {
        "entity": {"type": entity_type, "id": entity_id},
        "permission": permission,
        "leaf": {"subjects": {"subjects": out}},
    }


# --- Permify's own expand cases ----------------------------------------------------------------


def _cases() -> list[Any]:
    if not EXTENSIONS.exists():
        return []
    cases = []
    for path in sorted(EXTENSIONS.glob("expand__*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for scenario in document["scenarios"]:
            for index, item in enumerate(scenario.get("x_expand", [])):
                for permission, expected in item["assertions"].items():
                    case_id = f"{path.stem.split('__')[1]}[{index}]:{permission}"
                    cases.append(pytest.param(document, item, permission, expected, id=case_id))
    return cases


CASES = _cases()


def test_permify_expand_cases_are_present() -> None:
    require_shared(EXTENSIONS)
    assert len(CASES) >= 7


@pytest.mark.parametrize(("document", "item", "permission", "expected"), CASES)
def test_expand_matches_permify_tree(
    document: dict[str, Any], item: dict[str, Any], permission: str, expected: dict[str, Any]
) -> None:
    schema, store = build(
        document["schema"], document.get("relationships") or [], document.get("attributes") or []
    )
    raw_context = item.get("context") or {}
    context = Context(
        tuples=tuple(Tuple.parse(t) for t in raw_context.get("tuples") or []),
        attributes=tuple(parse_attribute(a) for a in raw_context.get("attributes") or []),
        data=raw_context.get("data") or {},
    )
    assert run(schema, store, item["entity"], permission, context=context) == expected


# --- relations, usersets, contextual tuples ----------------------------------------------------

GROUPS = """
entity user {}
entity group {
    relation member @user @group#member
    permission view = member
}
entity folder {
    relation parent @folder
    relation owner @user
    permission view = owner or parent.view
}
"""


def test_direct_relation_lists_users_before_usersets_and_appends_the_leaf_last() -> None:
    schema, store = build(
        GROUPS, ["group:1#member@group:2#member", "group:1#member@user:9", "group:2#member@user:5"]
    )
    assert run(schema, store, "group:1", "member") == node(
        "group:1",
        "member",
        "UNION",
        leaf("group:2", "member", "user:5"),
        leaf("group:1", "member", "user:9", "group:2#member"),
    )


def test_relation_without_tuples_is_an_empty_leaf() -> None:
    schema, store = build(GROUPS)
    assert run(schema, store, "group:1", "member") == leaf("group:1", "member")


def test_tuple_to_userset_without_parents_is_an_empty_union() -> None:
    schema, store = build(GROUPS, ["folder:1#owner@user:1"])
    assert run(schema, store, "folder:1", "view") == node(
        "folder:1",
        "view",
        "UNION",
        leaf("folder:1", "owner", "user:1"),
        node("folder:1", "parent", "UNION"),
    )


def test_contextual_tuples_follow_stored_ones_without_duplicates() -> None:
    schema, store = build(GROUPS, ["group:1#member@user:2", "group:1#member@user:4"])
    context = Context(
        tuples=(
            Tuple.parse("group:1#member@user:3"),
            Tuple.parse("group:1#member@user:2"),
            Tuple.parse("group:1#member@user:1"),
            Tuple.parse("group:1#member@user:3"),
            Tuple.parse("group:7#member@user:8"),
        )
    )
    assert run(schema, store, "group:1", "member", context=context) == leaf(
        "group:1", "member", "user:2", "user:4", "user:3", "user:1"
    )


def test_computed_userset_is_transparent() -> None:
    schema, store = build(GROUPS, ["group:1#member@user:1"])
    assert run(schema, store, "group:1", "view") == leaf("group:1", "member", "user:1")


# --- cycles and depth --------------------------------------------------------------------------


def test_userset_cycle_terminates_with_a_pointer_leaf() -> None:
    schema, store = build(
        GROUPS,
        [
            "group:1#member@user:1",
            "group:1#member@group:2#member",
            "group:2#member@user:2",
            "group:2#member@group:1#member",
        ],
    )
    assert run(schema, store, "group:1", "member") == node(
        "group:1",
        "member",
        "UNION",
        node(
            "group:2",
            "member",
            "UNION",
            leaf("group:1", "member", "group:1#member"),
            leaf("group:2", "member", "user:2", "group:1#member"),
        ),
        leaf("group:1", "member", "user:1", "group:2#member"),
    )


def test_parent_cycle_terminates() -> None:
    schema, store = build(GROUPS, ["folder:1#parent@folder:2", "folder:2#parent@folder:1"])
    assert run(schema, store, "folder:1", "view") == node(
        "folder:1",
        "view",
        "UNION",
        leaf("folder:1", "owner"),
        node(
            "folder:1",
            "parent",
            "UNION",
            node(
                "folder:2",
                "view",
                "UNION",
                leaf("folder:2", "owner"),
                node("folder:2", "parent", "UNION", leaf("folder:1", "view", "folder:1#view")),
            ),
        ),
    )


def test_self_membership_terminates() -> None:
    schema, store = build(GROUPS, ["group:1#member@group:1#member"])
    tree = run(schema, store, "group:1", "member")
    assert tree["expand"]["children"][0] == leaf("group:1", "member", "group:1#member")


CHAIN = [f"group:{i}#member@group:{i + 1}#member" for i in range(1, 5)] + ["group:5#member@user:1"]


@pytest.mark.parametrize(
    ("depth", "ok"), [(3, False), (4, True), (50, True)], ids=["short", "exact", "ample"]
)
def test_each_nested_expansion_costs_one_unit_of_depth(depth: int, ok: bool) -> None:
    schema, store = build(GROUPS, CHAIN)
    if ok:
        tree = run(schema, store, "group:1", "member", depth=depth)
        assert tree["expand"]["children"][-1] == leaf("group:1", "member", "group:2#member")
    else:
        with pytest.raises(DepthExceeded, match="budget"):
            run(schema, store, "group:1", "member", depth=depth)


def test_negative_depth_is_refused() -> None:
    schema, store = build(GROUPS)
    with pytest.raises(DepthExceeded):
        run(schema, store, "group:1", "member", depth=-1)


def test_zero_depth_still_expands_the_root() -> None:
    schema, store = build(GROUPS, ["group:1#member@user:1"])
    assert run(schema, store, "group:1", "member", depth=0) == leaf("group:1", "member", "user:1")


# --- unknown names -----------------------------------------------------------------------------


def test_unknown_entity_type_is_named() -> None:
    schema, store = build(GROUPS)
    with pytest.raises(UnknownEntityType, match="'team'"):
        run(schema, store, "team:1", "member")


def test_unknown_permission_lists_what_exists() -> None:
    schema, store = build(GROUPS)
    with pytest.raises(UnknownPermission, match=r"'edit'.*member, view"):
        run(schema, store, "group:1", "edit")


def test_unknown_subject_type_in_stored_data_is_an_error() -> None:
    schema, store = build(GROUPS)
    context = Context(tuples=(Tuple.parse("group:1#member@team:1#member"),))
    with pytest.raises(UnknownEntityType, match="'team'"):
        run(schema, store, "group:1", "member", context=context)


# --- attributes and rules ----------------------------------------------------------------------

TYPED = """
entity user {}
entity doc {
    attribute b boolean
    attribute bs boolean[]
    attribute s string
    attribute ss string[]
    attribute i integer
    attribute is integer[]
    attribute d double
    attribute ds double[]
    permission view = b and allowed(i, ss)
}
rule allowed(i integer, ss string[]) {
    i > 1 && 'x' in ss
}
"""


@pytest.mark.parametrize(
    ("text", "kind", "data"),
    [
        ("doc:1$b|boolean:true", "BooleanValue", True),
        ("doc:1$bs|boolean[]:true,false", "BooleanArrayValue", [True, False]),
        ("doc:1$s|string:hello", "StringValue", "hello"),
        ("doc:1$ss|string[]:a,b", "StringArrayValue", ["a", "b"]),
        ("doc:1$i|integer:42", "IntegerValue", 42),
        ("doc:1$is|integer[]:1,2,3", "IntegerArrayValue", [1, 2, 3]),
        ("doc:1$d|double:1.5", "DoubleValue", 1.5),
        ("doc:1$ds|double[]:0.5,2", "DoubleArrayValue", [0.5, 2.0]),
        ("doc:1$d|double:nan", "DoubleValue", "NaN"),
        ("doc:1$ds|double[]:inf,-inf", "DoubleArrayValue", ["Infinity", "-Infinity"]),
    ],
    ids=["boolean", "boolean[]", "string", "string[]", "integer", "integer[]", "double",
         "double[]", "nan", "infinities"],
)  # fmt: skip
def test_attribute_leaf_carries_each_value_type(text: str, kind: str, data: Any) -> None:
    schema, store = build(TYPED, attributes=[text])
    name = parse_attribute(text).name
    assert run(schema, store, "doc:1", name) == {
        "entity": {"type": "doc", "id": "1"},
        "permission": name,
        "leaf": {"value": {"@type": ANY + kind, "data": data}},
    }


def test_missing_attribute_is_boolean_false_whatever_its_type() -> None:
    schema, store = build(TYPED)
    assert run(schema, store, "doc:1", "i")["leaf"] == {
        "value": {"@type": ANY + "BooleanValue", "data": False}
    }


def test_contextual_attribute_beats_the_stored_one_in_an_attribute_leaf() -> None:
    schema, store = build(TYPED, attributes=["doc:1$s|string:stored"])
    context = Context(attributes=(parse_attribute("doc:1$s|string:context"),))
    tree = run(schema, store, "doc:1", "s", context=context)
    assert tree["leaf"]["value"]["data"] == "context"


def rule_node(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "entity": {"type": "doc", "id": "1"},
        "permission": "allowed",
        "arguments": [
            {"computed_attribute": {"name": "i"}},
            {"computed_attribute": {"name": "ss"}},
        ],
        "leaf": {"values": {"values": values}},
    }


def test_rule_arguments_missing_are_zero_values() -> None:
    schema, store = build(TYPED, attributes=["doc:1$b|boolean:true"])
    assert run(schema, store, "doc:1", "view") == node(
        "doc:1",
        "view",
        "INTERSECTION",
        {
            "entity": {"type": "doc", "id": "1"},
            "permission": "b",
            "leaf": {"value": {"@type": ANY + "BooleanValue", "data": True}},
        },
        rule_node(
            {
                "i": {"@type": ANY + "IntegerValue", "data": 0},
                "ss": {"@type": ANY + "StringArrayValue", "data": []},
            }
        ),
    )


def test_rule_arguments_prefer_stored_values_then_context() -> None:
    schema, store = build(TYPED, attributes=["doc:1$i|integer:7"])
    context = Context(
        attributes=(
            parse_attribute("doc:1$i|integer:99"),
            parse_attribute("doc:1$ss|string[]:x,y"),
        )
    )
    tree = run(schema, store, "doc:1", "view", context=context)
    assert tree["expand"]["children"][1] == rule_node(
        {
            "i": {"@type": ANY + "IntegerValue", "data": 7},
            "ss": {"@type": ANY + "StringArrayValue", "data": ["x", "y"]},
        }
    )


def test_rule_named_directly_has_no_arguments() -> None:
    schema, store = build(TYPED)
    assert run(schema, store, "doc:1", "allowed") == {
        "entity": {"type": "doc", "id": "1"},
        "permission": "allowed",
        "leaf": {"values": {"values": {}}},
    }


def test_chain_deeper_than_the_interpreter_stack_is_depth_exceeded() -> None:
    links = [f"group:{i}#member@group:{i + 1}#member" for i in range(1, 600)]
    schema, store = build(GROUPS, links)
    with pytest.raises(DepthExceeded, match="deeper than this process"):
        run(schema, store, "group:1", "member", depth=5000)
