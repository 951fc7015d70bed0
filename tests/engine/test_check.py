"""Check through the engine facade (reference §2.2), on both stores: the depth budget, Kleene
three-valued set operations, cycles in data, snapshots and caches, Permify's userset rule, request
context, attributes and rules, bulk check and subject permission.

Every schema and data set is small and written by hand; every expected answer is worked out by
hand in the comment or table beside it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from dsl.schema import AttributeType
from engine.engine import Engine
from engine.errors import (
    DepthExceeded,
    InvalidRequest,
    RuleError,
    SchemaNotFound,
    UnknownEntityType,
    UnknownPermission,
)
from engine.types import CheckItem, CheckResult, Context, Entity, RequestOptions, parse_subject
from storage.base import Attribute, Changes, Store, Tuple
from storage.errors import TenantNotFound
from tests.engine.support import BASIC, TENANT, check, load, write

BOOLEAN = AttributeType.BOOLEAN
INTEGER = AttributeType.INTEGER




def expect(outcome: bool | type[Exception], ask: Callable[[], bool]) -> None:
    """``ask()`` answers ``outcome``, or raises it when it is an exception class."""
    if isinstance(outcome, bool):
        assert ask() is outcome
    else:
        with pytest.raises(outcome):
            ask()




def chain(hops: int, last: str = "user:u") -> list[str]:
    """``group:0#member`` reaches ``last`` through ``hops`` nested usersets."""
    tuples = [f"group:{i}#member@group:{i + 1}#member" for i in range(hops)]
    return [*tuples, f"group:{hops}#member@{last}"]


# --- depth ---------------------------------------------------------------------------------------

# Each nested userset costs one unit of depth: group:0 -> group:1 -> ... -> group:5 (5 hops).
CHAIN_DEPTHS = [
    pytest.param(0, 0, "user:u", True, id="direct_tuple_needs_no_depth"),
    pytest.param(5, 5, "user:u", True, id="exactly_enough_depth"),
    pytest.param(5, 50, "user:u", True, id="ample_depth"),
    pytest.param(5, 4, "user:u", DepthExceeded, id="one_short_is_an_error"),
    pytest.param(5, 1, "user:u", DepthExceeded, id="far_short_is_an_error"),
    # A member nowhere in the chain: with the whole chain walked the answer is a proof of
    # "denied"; one hop short it is unknown, and unknown is an error, never "denied".
    pytest.param(5, 5, "user:other", False, id="outsider_denied_when_chain_walked"),
    pytest.param(5, 4, "user:other", DepthExceeded, id="outsider_unknown_when_short"),
]


@pytest.mark.parametrize(("hops", "depth", "subject", "outcome"), CHAIN_DEPTHS)
def test_nested_usersets_cost_one_depth_each(
    store: Store, hops: int, depth: int, subject: str, outcome: bool | type[Exception]
) -> None:
    engine = load(store, BASIC, chain(hops))
    expect(outcome, lambda: check(engine, "group:0", "member", subject, depth=depth))


# view -> edit -> owner: two dispatches before the owner tuple is read.
PERMISSION_DEPTHS = [
    pytest.param(2, True, id="exactly_enough"),
    pytest.param(1, DepthExceeded, id="one_short"),
    pytest.param(0, DepthExceeded, id="none"),
]


@pytest.mark.parametrize(("depth", "outcome"), PERMISSION_DEPTHS)
def test_computed_permissions_cost_one_depth_each(
    store: Store, depth: int, outcome: bool | type[Exception]
) -> None:
    engine = load(store, BASIC, ["doc:1#owner@user:1"])
    expect(outcome, lambda: check(engine, "doc:1", "view", "user:1", depth=depth))


def test_depth_error_names_the_budget(store: Store) -> None:
    engine = load(store, BASIC, chain(10))
    with pytest.raises(DepthExceeded, match=r"depth 7\b"):
        check(engine, "group:0", "member", "user:u", depth=7)


@pytest.mark.parametrize("depth", [-1, -50], ids=["minus_one", "minus_fifty"])
def test_negative_depth_is_refused_even_for_a_direct_tuple(store: Store, depth: int) -> None:
    engine = load(store, BASIC, ["doc:1#owner@user:1"])
    with pytest.raises(DepthExceeded, match=str(depth)):
        check(engine, "doc:1", "owner", "user:1", depth=depth)


@pytest.mark.parametrize("depth", [1000, 10**6], ids=["max_depth", "beyond_max_depth"])
def test_chain_longer_than_the_budget_is_a_depth_error_not_a_crash(
    store: Store, depth: int
) -> None:
    engine = load(store, BASIC, chain(1500))
    with pytest.raises(DepthExceeded, match="1000"):
        check(engine, "group:0", "member", "user:u", depth=depth)


def test_chain_within_the_depth_cap_is_followed_and_beyond_it_is_an_error(store: Store) -> None:
    engine = load(store, BASIC, chain(600))
    cap = engine.depth_cap()
    assert 200 <= cap < 600  # Python's default recursion limit
    assert check(engine, f"group:{600 - cap}", "member", "user:u", depth=1000) is True
    with pytest.raises(DepthExceeded, match=f"depth 1000, capped to {cap}"):
        check(engine, "group:0", "member", "user:u", depth=1000)


# --- three-valued set operations ------------------------------------------------------------------

KLEENE_SCHEMA = """
entity user {}

entity group {
    relation member @user @group#member
}

entity doc {
    relation shaky @group#member
    relation yes @user
    relation no @user
    permission shaky_or_yes = shaky or yes
    permission yes_or_shaky = yes or shaky
    permission shaky_or_no = shaky or no
    permission no_or_shaky = no or shaky
    permission shaky_and_no = shaky and no
    permission no_and_shaky = no and shaky
    permission shaky_and_yes = shaky and yes
    permission yes_and_shaky = yes and shaky
    permission shaky_not_yes = shaky not yes
    permission shaky_not_no = shaky not no
    permission yes_not_shaky = yes not shaky
    permission no_not_shaky = no not shaky
}
"""

# user:1 is in `yes`, not in `no`; `shaky` cannot be decided:
# * doc:unknown stores a userset naming `group#ghost`, which the schema lacks;
# * doc:deep reaches user:1 through ten nested groups, far beyond the depth of 4 asked for.
KLEENE_DATA = [
    "doc:unknown#shaky@group:1#ghost",
    "doc:unknown#yes@user:1",
    "doc:deep#shaky@group:10#member",
    *[f"group:{i}#member@group:{i + 1}#member" for i in range(10, 20)],
    "group:20#member@user:1",
    "doc:deep#yes@user:1",
]
SHAKY_SOURCES = [
    pytest.param("doc:unknown", UnknownPermission, id="unknown_relation"),
    pytest.param("doc:deep", DepthExceeded, id="depth"),
]
ERROR = Exception  # stands for "the shaky child's error" in the table below
KLEENE = [
    pytest.param("shaky_or_yes", True, id="error_or_allowed_is_allowed"),
    pytest.param("yes_or_shaky", True, id="allowed_or_error_is_allowed"),
    pytest.param("shaky_or_no", ERROR, id="error_or_denied_is_error"),
    pytest.param("no_or_shaky", ERROR, id="denied_or_error_is_error"),
    pytest.param("shaky_and_no", False, id="error_and_denied_is_denied"),
    pytest.param("no_and_shaky", False, id="denied_and_error_is_denied"),
    pytest.param("shaky_and_yes", ERROR, id="error_and_allowed_is_error"),
    pytest.param("yes_and_shaky", ERROR, id="allowed_and_error_is_error"),
    pytest.param("shaky_not_yes", False, id="error_not_allowed_is_denied"),
    pytest.param("shaky_not_no", ERROR, id="error_not_denied_is_error"),
    pytest.param("yes_not_shaky", ERROR, id="allowed_not_error_is_error"),
    pytest.param("no_not_shaky", False, id="denied_not_error_is_denied"),
]


@pytest.mark.parametrize(("permission", "outcome"), KLEENE)
@pytest.mark.parametrize(("entity", "error"), SHAKY_SOURCES)
def test_set_operations_are_three_valued(
    store: Store,
    entity: str,
    error: type[Exception],
    permission: str,
    outcome: bool | type[Exception],
) -> None:
    engine = load(store, KLEENE_SCHEMA, KLEENE_DATA)
    expected = error if outcome is ERROR else outcome
    expect(expected, lambda: check(engine, entity, permission, "user:1", depth=4))


def test_undecided_child_is_decided_with_enough_depth(store: Store) -> None:
    # The depth errors above are "unknown", not "denied": with the budget for the whole chain
    # the same child is allowed.
    engine = load(store, KLEENE_SCHEMA, KLEENE_DATA)
    assert check(engine, "doc:deep", "shaky_or_no", "user:1", depth=20) is True
    assert check(engine, "doc:deep", "shaky_not_yes", "user:1", depth=20) is False


# --- cycles in data -------------------------------------------------------------------------------

CYCLES_SCHEMA = """
entity user {}

entity group {
    relation member @user @group#member
}

entity folder {
    relation parent @folder
    relation viewer @user
    permission view = parent.view or viewer
}
"""
# group:1 and group:2 contain each other; user:a is a member of group:2 only.
# folder:1 -> folder:2 -> folder:3 -> folder:1 by `parent`; only folder:1 has a viewer (user:a),
# and each folder's view reaches folder:1 through its parents. folder:4 is its own parent.
# `view` walks the parents *before* its own viewers, so folder:1 is first met again on its own
# path (a cut) and folder:2 and folder:3 look denied on that path although they are allowed.
CYCLES_DATA = [
    "group:1#member@group:2#member",
    "group:2#member@group:1#member",
    "group:2#member@user:a",
    "folder:1#parent@folder:2",
    "folder:2#parent@folder:3",
    "folder:3#parent@folder:1",
    "folder:1#viewer@user:a",
    "folder:4#parent@folder:4",
]
CYCLE_QUESTIONS = [
    ("group:1", "member", "user:a", True),
    ("group:2", "member", "user:a", True),
    ("group:1", "member", "user:b", False),
    ("group:2", "member", "user:b", False),
    ("folder:1", "view", "user:a", True),
    ("folder:2", "view", "user:a", True),
    ("folder:3", "view", "user:a", True),
    ("folder:4", "view", "user:a", False),
    ("folder:1", "view", "user:b", False),
    ("folder:3", "view", "user:b", False),
    ("folder:2", "parent", "folder:3", True),
]


@pytest.mark.parametrize(
    ("entity", "permission", "subject", "expected"),
    CYCLE_QUESTIONS,
    ids=[f"{e}#{p}@{s}" for e, p, s, _ in CYCLE_QUESTIONS],
)
def test_cycles_in_data_are_cut_without_error(
    store: Store, entity: str, permission: str, subject: str, expected: bool
) -> None:
    engine = load(store, CYCLES_SCHEMA, CYCLES_DATA)
    assert check(engine, entity, permission, subject) is expected


def _orders() -> list[object]:
    shuffled = list(CYCLE_QUESTIONS)
    random.Random(7).shuffle(shuffled)
    return [
        pytest.param(list(CYCLE_QUESTIONS), id="forward"),
        pytest.param(list(reversed(CYCLE_QUESTIONS)), id="reversed"),
        pytest.param(shuffled, id="shuffled"),
        pytest.param(
            [q for q in CYCLE_QUESTIONS if q[0] == "folder:1"]
            + [q for q in CYCLE_QUESTIONS if q[0] != "folder:1"],
            id="cut_entity_first",
        ),
    ]


@pytest.mark.parametrize("questions", _orders())
def test_cached_answers_do_not_depend_on_question_order(
    store: Store, questions: list[tuple[str, str, str, bool]]
) -> None:
    load(store, CYCLES_SCHEMA, CYCLES_DATA)
    fresh = [check(Engine(store), e, p, s) for e, p, s, _ in questions]
    shared = Engine(store)
    asked = [check(shared, e, p, s) for e, p, s, _ in questions]
    bulk = shared.bulk_check(
        TENANT,
        [CheckItem(Entity.parse(e), p, parse_subject(s)) for e, p, s, _ in questions],
    )
    assert asked == fresh == [expected for *_, expected in questions]
    assert [r.allowed for r in bulk] == fresh  # type: ignore[union-attr]


def test_bulk_check_does_not_poison_items_after_a_cut(store: Store) -> None:
    # One evaluation serves the whole bulk check: folder:1 (evaluated through a cut) first.
    engine = load(store, CYCLES_SCHEMA, CYCLES_DATA)
    items = [
        CheckItem(Entity("folder", i), "view", parse_subject("user:a")) for i in ("1", "2", "3")
    ]
    assert [r.allowed for r in engine.bulk_check(TENANT, items)] == [True, True, True]  # type: ignore[union-attr]


# --- snapshots and caches -------------------------------------------------------------------------


def test_answer_at_an_old_snap_token_does_not_change(store: Store) -> None:
    engine = load(store, BASIC)
    granted = write(store, ["doc:1#viewer@user:1"])
    assert check(engine, "doc:1", "view", "user:1", snap_token=granted) is True
    revoked = store.write(TENANT, Changes(delete_tuples=[Tuple.parse("doc:1#viewer@user:1")]))
    write(store, ["doc:1#owner@user:2"])
    assert check(engine, "doc:1", "view", "user:1", snap_token=granted) is True
    assert check(engine, "doc:1", "view", "user:1", snap_token=revoked) is False
    assert check(engine, "doc:1", "view", "user:1") is False
    assert check(engine, "doc:1", "view", "user:2", snap_token=granted) is False
    assert check(engine, "doc:1", "view", "user:2") is True


def test_write_is_visible_at_head_at_once(store: Store) -> None:
    engine = load(store, BASIC, ["group:1#member@user:1"])
    # Fill the caches at the current head, then change what they hold.
    assert check(engine, "doc:1", "view", "user:1") is False
    write(store, ["doc:1#viewer@group:1#member"])
    assert check(engine, "doc:1", "view", "user:1") is True
    store.write(TENANT, Changes(delete_tuples=[Tuple.parse("group:1#member@user:1")]))
    assert check(engine, "doc:1", "view", "user:1") is False


SCHEMA_V1 = """
entity user {}
entity doc {
    relation owner @user
    relation viewer @user
    permission view = owner or viewer
}
"""
SCHEMA_V2 = """
entity user {}
entity doc {
    relation owner @user
    relation viewer @user
    permission view = owner
    permission read = viewer
}
"""


def test_schema_version_selects_an_older_schema(store: Store) -> None:
    v1 = store.write_schema(TENANT, SCHEMA_V1).version
    engine = load(store, SCHEMA_V2, ["doc:1#viewer@user:1"])
    assert check(engine, "doc:1", "view", "user:1") is False
    assert check(engine, "doc:1", "view", "user:1", schema_version=v1) is True
    assert check(engine, "doc:1", "read", "user:1") is True
    with pytest.raises(UnknownPermission):
        check(engine, "doc:1", "read", "user:1", schema_version=v1)


ERRORS = [
    pytest.param("empty", "", "doc:1", "view", SchemaNotFound, id="no_schema"),
    pytest.param(
        TENANT, "00000000000000000000", "doc:1", "view", SchemaNotFound, id="unknown_schema_version"
    ),
    pytest.param(
        TENANT, "not-a-version", "doc:1", "view", SchemaNotFound, id="malformed_schema_version"
    ),
    pytest.param(TENANT, "", "page:1", "view", UnknownEntityType, id="unknown_entity_type"),
    pytest.param(TENANT, "", "doc:1", "delete", UnknownPermission, id="unknown_permission"),
    pytest.param("nobody", "", "doc:1", "view", TenantNotFound, id="unknown_tenant"),
]


@pytest.mark.parametrize(("tenant", "version", "entity", "permission", "error"), ERRORS)
def test_check_of_what_does_not_exist_raises(
    store: Store, tenant: str, version: str, entity: str, permission: str, error: type[Exception]
) -> None:
    load(store, BASIC, ["doc:1#owner@user:1"])
    store.create_tenant("empty")
    engine = Engine(store)
    with pytest.raises(error):
        engine.check(
            tenant,
            Entity.parse(entity),
            permission,
            parse_subject("user:1"),
            options=RequestOptions(schema_version=version),
        )


# --- Permify's userset rule and subject forms ----------------------------------------------------

USERSET_SUBJECTS = [
    # entity#permission == subject: allowed before anything is read.
    pytest.param("group:1", "member", "group:1#member", True, id="userset_is_itself"),
    pytest.param("doc:9", "view", "doc:9#view", True, id="permission_userset_is_itself"),
    pytest.param("doc:9", "view", "doc:8#view", False, id="other_userset_is_not"),
    # doc:1#viewer@group:1#member is stored and group:1 has no members.
    pytest.param("doc:1", "viewer", "group:1#member", True, id="stored_userset_matches_exactly"),
    pytest.param("doc:1", "view", "group:1#member", True, id="stored_userset_through_permission"),
    pytest.param("doc:1", "viewer", "group:1", False, id="plain_object_is_not_the_userset"),
    pytest.param("doc:1", "viewer", "group:2#member", False, id="other_group_is_not"),
    # doc:1#owner@user:1#... is stored: `...` means no relation on both sides.
    pytest.param("doc:1", "owner", "user:1", True, id="ellipsis_tuple_matches_plain_subject"),
    pytest.param("doc:1", "owner", "user:1#...", True, id="ellipsis_subject_is_plain"),
    pytest.param("doc:1", "edit", "user:1#...", True, id="ellipsis_subject_through_permission"),
]


@pytest.mark.parametrize(("entity", "permission", "subject", "expected"), USERSET_SUBJECTS)
def test_userset_subjects(
    store: Store, entity: str, permission: str, subject: str, expected: bool
) -> None:
    engine = load(store, BASIC, ["doc:1#viewer@group:1#member", "doc:1#owner@user:1#..."])
    assert check(engine, entity, permission, subject) is expected


# --- request context ------------------------------------------------------------------------------

GRANT = Context(tuples=(Tuple.parse("doc:1#viewer@user:1"),))


def test_contextual_tuples_apply_to_their_request_only(store: Store) -> None:
    engine = load(store, BASIC)
    assert check(engine, "doc:1", "view", "user:1") is False  # fills the shared caches
    assert check(engine, "doc:1", "view", "user:1", context=GRANT) is True
    assert check(engine, "doc:1", "view", "user:1") is False
    [with_context] = engine.bulk_check(
        TENANT, [CheckItem(Entity("doc", "1"), "view", parse_subject("user:1"))],
        options=RequestOptions(context=GRANT)
    )
    assert isinstance(with_context, CheckResult) and with_context.allowed is True
    assert check(engine, "doc:1", "view", "user:1") is False


def test_contextual_tuples_are_not_validated_against_the_schema(store: Store) -> None:
    # `owner` admits only @user, and there is no entity type `robot`: both are followed anyway.
    engine = load(store, BASIC, ["group:1#member@user:1"])
    context = Context(
        tuples=(
            Tuple.parse("doc:1#owner@group:1#member"),
            Tuple.parse("doc:1#viewer@robot:7"),
        )
    )
    assert check(engine, "doc:1", "edit", "user:1", context=context) is True
    assert check(engine, "doc:1", "view", "robot:7", context=context) is True
    assert check(engine, "doc:1", "edit", "user:1") is False


ABAC_SCHEMA = """
entity user {}

entity doc {
    relation viewer @user
    attribute public boolean
    attribute budget integer
    permission view = public or viewer
    permission spend = within_budget(budget)
}

rule within_budget(budget integer) {
    context.data.amount <= budget
}
"""


def public(doc: str, value: bool) -> Attribute:
    return Attribute("doc", doc, "public", BOOLEAN, value)


def budget(value: int) -> Attribute:
    return Attribute("doc", "1", "budget", INTEGER, value)


BOOLEAN_OPERANDS = [
    pytest.param(True, None, True, id="stored_true"),
    pytest.param(False, None, False, id="stored_false"),
    pytest.param(None, None, False, id="missing_is_false"),
    pytest.param(None, True, True, id="context_true"),
    pytest.param(True, False, False, id="context_false_beats_stored_true"),
    pytest.param(False, True, True, id="context_true_beats_stored_false"),
]


@pytest.mark.parametrize(("stored", "contextual", "expected"), BOOLEAN_OPERANDS)
@pytest.mark.parametrize("name", ["view", "public"], ids=["as_operand", "checked_directly"])
def test_boolean_attribute_answers_with_context_first(
    store: Store, name: str, stored: bool | None, contextual: bool | None, expected: bool
) -> None:
    engine = load(store, ABAC_SCHEMA, attributes=[] if stored is None else [public("1", stored)])
    context = Context(attributes=() if contextual is None else (public("1", contextual),))
    assert check(engine, "doc:1", name, "user:9", context=context) is expected


RULE_ARGUMENTS = [
    pytest.param(100, None, 50, True, id="stored_within"),
    pytest.param(10, None, 50, False, id="stored_exceeded"),
    pytest.param(None, None, 0, True, id="missing_is_zero"),
    pytest.param(None, None, 1, False, id="missing_is_zero_exceeded"),
    pytest.param(None, 100, 50, True, id="context_when_nothing_stored"),
    pytest.param(10, 100, 50, False, id="stored_beats_larger_context"),
    pytest.param(100, 10, 50, True, id="stored_beats_smaller_context"),
]


@pytest.mark.parametrize(("stored", "contextual", "amount", "expected"), RULE_ARGUMENTS)
@pytest.mark.parametrize("name", ["spend", "within_budget"], ids=["in_permission", "rule_by_name"])
def test_rule_arguments_prefer_the_stored_value(
    store: Store,
    name: str,
    stored: int | None,
    contextual: int | None,
    amount: int,
    expected: bool,
) -> None:
    engine = load(store, ABAC_SCHEMA, attributes=[] if stored is None else [budget(stored)])
    context = Context(
        attributes=() if contextual is None else (budget(contextual),), data={"amount": amount}
    )
    assert check(engine, "doc:1", name, "user:9", context=context) is expected


def test_context_data_applies_to_its_request_only(store: Store) -> None:
    engine = load(store, ABAC_SCHEMA, attributes=[budget(100)])
    assert check(engine, "doc:1", "spend", "user:9", context=Context(data={"amount": 5})) is True
    with pytest.raises(RuleError, match="amount"):
        check(engine, "doc:1", "spend", "user:9")


def test_contextual_attribute_applies_to_its_request_only(store: Store) -> None:
    engine = load(store, ABAC_SCHEMA)
    opened = Context(attributes=(public("1", True),))
    assert check(engine, "doc:1", "view", "user:9") is False
    assert check(engine, "doc:1", "view", "user:9", context=opened) is True
    assert check(engine, "doc:1", "view", "user:9") is False


# --- bulk check -----------------------------------------------------------------------------------


def item(entity: str, permission: str, subject: str) -> CheckItem:
    return CheckItem(Entity.parse(entity), permission, parse_subject(subject))


def test_bulk_check_answers_in_order_with_errors_in_place(store: Store) -> None:
    engine = load(store, BASIC, ["doc:1#owner@user:1", "doc:2#viewer@group:1#ghost"])
    results = engine.bulk_check(
        TENANT,
        [
            item("doc:1", "view", "user:1"),
            item("doc:1", "view", "user:2"),
            item("doc:1", "delete", "user:1"),
            item("page:1", "view", "user:1"),
            item("doc:2", "view", "user:1"),
            item("doc:1", "edit", "user:1"),
        ],
    )
    kinds = [r.allowed if isinstance(r, CheckResult) else type(r) for r in results]
    assert kinds == [
        True,
        False,
        UnknownPermission,
        UnknownEntityType,
        UnknownPermission,
        True,
    ]


@pytest.mark.parametrize(
    ("count", "accepted"), [(100, True), (101, False)], ids=["at_limit", "over_limit"]
)
def test_bulk_check_takes_at_most_100_items(store: Store, count: int, accepted: bool) -> None:
    engine = load(store, BASIC, ["doc:1#owner@user:1"])
    items = [item(f"doc:{i}", "edit", "user:1") for i in range(count)]
    if accepted:
        results = engine.bulk_check(TENANT, items)
        assert [r.allowed for r in results] == [i == 1 for i in range(count)]  # type: ignore[union-attr]
    else:
        with pytest.raises(InvalidRequest, match="100"):
            engine.bulk_check(TENANT, items)


def test_bulk_check_counts_dispatches_per_item(store: Store) -> None:
    data = chain(3)
    load(store, BASIC, data)
    deep, shallow = item("group:0", "member", "user:u"), item("group:3", "member", "user:u")
    alone = [Engine(store).bulk_check(TENANT, [i])[0] for i in (deep, shallow)]
    results = Engine(store).bulk_check(TENANT, [deep, shallow, deep])
    counts = [r.check_count for r in results]  # type: ignore[union-attr]
    # group:0 -> 1 -> 2 -> 3 is four dispatches; group:3 alone is one, and was already
    # answered inside the first item; the repeated item is answered from the cache.
    assert [r.check_count for r in alone] == [4, 1]  # type: ignore[union-attr]
    assert counts == [4, 0, 0]


# --- subject permission ---------------------------------------------------------------------------

SUBJECT_PERMISSIONS = [
    pytest.param(
        "user:1",
        False,
        {"owner": True, "viewer": False, "edit": True, "view": True},
        id="owner",
    ),
    pytest.param(
        "user:2",
        False,
        {"owner": False, "viewer": True, "edit": False, "view": True},
        id="member_of_viewer_group",
    ),
    pytest.param("user:2", True, {"edit": False, "view": True}, id="only_permission"),
    pytest.param(
        "user:3",
        False,
        {"owner": False, "viewer": False, "edit": False, "view": False},
        id="stranger",
    ),
]


@pytest.mark.parametrize(("subject", "only_permission", "expected"), SUBJECT_PERMISSIONS)
def test_subject_permission_lists_relations_and_permissions(
    store: Store, subject: str, only_permission: bool, expected: dict[str, bool]
) -> None:
    engine = load(
        store,
        BASIC,
        ["doc:1#owner@user:1", "doc:1#viewer@group:1#member", "group:1#member@user:2"],
    )
    answer = engine.subject_permission(
        TENANT, Entity("doc", "1"), parse_subject(subject), only_permission=only_permission
    )
    assert answer == expected


def test_subject_permission_leaves_out_attributes_and_rules(store: Store) -> None:
    engine = load(store, ABAC_SCHEMA, attributes=[public("1", True), budget(3)])
    answer = engine.subject_permission(
        TENANT, Entity("doc", "1"), parse_subject("user:9"),
        options=RequestOptions(context=Context(data={"amount": 5}))
    )
    assert answer == {"viewer": False, "view": True, "spend": False}


def test_subject_permission_fails_whole_on_one_error(store: Store) -> None:
    # `owner` is allowed, but `viewer` follows a userset naming a relation group lacks.
    engine = load(store, BASIC, ["doc:1#owner@user:1", "doc:1#viewer@group:1#ghost"])
    with pytest.raises(UnknownPermission, match="ghost"):
        engine.subject_permission(TENANT, Entity("doc", "1"), parse_subject("user:1"))
    with pytest.raises(UnknownEntityType):
        engine.subject_permission(TENANT, Entity("page", "1"), parse_subject("user:1"))
