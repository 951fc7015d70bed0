"""Lookups through the engine facade (reference §2.3, §2.4), on both stores: pages and cursors,
the stream, string order, scope, entities reachable only through attributes and rules, exclusion
and intersection candidates, request context, tuples the schema does not declare, and
lookup-subject's subject references and wildcard.

Every expected list is worked out by hand beside its data; where it matters the same list is also
derived by asking check about every id, since a lookup must answer exactly what check answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from dsl.schema import AttributeType
from engine.engine import Engine
from engine.errors import (
    DepthExceeded,
    InvalidRequest,
    UnknownEntityType,
    UnknownPermission,
)
from engine.types import Context, Entity, RequestOptions, SubjectReference, parse_subject
from storage.base import Attribute, Changes, Store, Tuple
from tests.engine.support import BASIC, TENANT, check, load

BOOLEAN = AttributeType.BOOLEAN
#: The keywords of `RequestOptions`; the helpers below pass the rest to the engine as they are.
OPTIONS = frozenset(RequestOptions.__dataclass_fields__)
INTEGER = AttributeType.INTEGER


def entities(
    engine: Engine, entity_type: str, permission: str, subject: str, **options: object
) -> list[str]:
    """Every id, following cursors page by page."""
    ids: list[str] = []
    cursor = ""
    while True:
        page = engine.lookup_entity(
            TENANT,
            entity_type,
            permission,
            parse_subject(subject),
            RequestOptions(**{k: v for k, v in options.items() if k in OPTIONS}),
            cursor=cursor,
            **{k: v for k, v in options.items() if k not in OPTIONS},  # type: ignore[arg-type]
        )
        ids.extend(page.ids)
        if not page.cursor:
            return ids
        cursor = page.cursor


def subjects(
    engine: Engine, entity: str, permission: str, reference: str, **options: object
) -> list[str]:
    ids: list[str] = []
    cursor = ""
    while True:
        page = engine.lookup_subject(
            TENANT,
            Entity.parse(entity),
            permission,
            SubjectReference.parse(reference),
            RequestOptions(**{k: v for k, v in options.items() if k in OPTIONS}),
            cursor=cursor,
            **{k: v for k, v in options.items() if k not in OPTIONS},  # type: ignore[arg-type]
        )
        ids.extend(page.ids)
        if not page.cursor:
            return ids
        cursor = page.cursor


def allowed_by_check(
    engine: Engine,
    entity_type: str,
    ids: Sequence[str],
    permission: str,
    subject: str,
    context: Context | None = None,
) -> list[str]:
    """The ids of ``ids`` on which check allows ``subject``, sorted as strings."""
    options = {"context": context} if context else {}
    return sorted(
        i for i in ids if check(engine, f"{entity_type}:{i}", permission, subject, **options)
    )


# user:1 views doc 1, 10 and 2 directly, 11 and 3 through group:1, and 20 as owner; user:2
# views doc 4 only. As strings the ids sort 1 10 11 2 20 3.
VIEWS = [
    "doc:1#viewer@user:1",
    "doc:10#viewer@user:1",
    "doc:2#viewer@user:1",
    "doc:11#viewer@group:1#member",
    "doc:3#viewer@group:1#member",
    "group:1#member@user:1",
    "doc:20#owner@user:1",
    "doc:4#viewer@user:2",
]
VIEWED_BY_1 = ["1", "10", "11", "2", "20", "3"]


# --- lookup-entity pages, cursors, the stream -----------------------------------------------------


@pytest.mark.parametrize("page_size", range(1, 8), ids=lambda n: f"page_size_{n}")
def test_lookup_entity_pages_chain_to_the_full_sorted_list(store: Store, page_size: int) -> None:
    engine = load(store, BASIC, VIEWS)
    pages = []
    cursor = ""
    for _ in range(len(VIEWED_BY_1) + 1):
        page = engine.lookup_entity(
            TENANT, "doc", "view", parse_subject("user:1"), page_size=page_size, cursor=cursor
        )
        pages.append(page.ids)
        cursor = page.cursor
        if not cursor:
            break
    assert not cursor, "the cursor chain did not end"
    assert [i for ids in pages for i in ids] == VIEWED_BY_1
    assert all(0 < len(ids) <= page_size for ids in pages)
    assert len(pages) == -(-len(VIEWED_BY_1) // page_size)


def test_lookup_entity_ids_sort_as_strings(store: Store) -> None:
    engine = load(
        store, BASIC, ["doc:2#viewer@user:1", "doc:10#viewer@user:1", "doc:1#viewer@user:1"]
    )
    assert entities(engine, "doc", "view", "user:1") == ["1", "10", "2"]


def test_lookup_entity_stream_resumes_after_any_cursor(store: Store) -> None:
    engine = load(store, BASIC, VIEWS)
    streamed = list(engine.lookup_entity_stream(TENANT, "doc", "view", parse_subject("user:1")))
    assert [i for i, _ in streamed] == VIEWED_BY_1
    for position, (_, cursor) in enumerate(streamed):
        rest = engine.lookup_entity_stream(
            TENANT, "doc", "view", parse_subject("user:1"), cursor=cursor
        )
        assert list(rest) == streamed[position + 1 :]


GARBAGE_CURSORS = [
    pytest.param("garbage", id="not_base64_of_a_cursor"),
    pytest.param("Zm9vYmFy", id="base64_of_something_else"),
    pytest.param("Mf8", id="invalid_utf8_id"),
]


@pytest.mark.parametrize("cursor", GARBAGE_CURSORS)
def test_lookups_refuse_a_cursor_they_did_not_issue(store: Store, cursor: str) -> None:
    engine = load(store, BASIC, VIEWS)
    user = parse_subject("user:1")
    with pytest.raises(InvalidRequest):
        engine.lookup_entity(TENANT, "doc", "view", user, cursor=cursor)
    with pytest.raises(InvalidRequest):
        engine.lookup_entity_stream(TENANT, "doc", "view", user, cursor=cursor)
    with pytest.raises(InvalidRequest):
        engine.lookup_subject(
            TENANT, Entity("doc", "1"), "view", SubjectReference("user"), cursor=cursor
        )


@pytest.mark.parametrize("page_size", [0, -1], ids=["zero", "negative"])
def test_lookups_refuse_a_page_size_below_one(store: Store, page_size: int) -> None:
    engine = load(store, BASIC, VIEWS)
    with pytest.raises(InvalidRequest, match="page_size"):
        engine.lookup_entity(TENANT, "doc", "view", parse_subject("user:1"), page_size=page_size)
    with pytest.raises(InvalidRequest, match="page_size"):
        engine.lookup_subject(
            TENANT, Entity("doc", "1"), "view", SubjectReference("user"), page_size=page_size
        )


LOOKUP_ERRORS = [
    pytest.param("page", "view", UnknownEntityType, id="unknown_entity_type"),
    pytest.param("doc", "delete", UnknownPermission, id="unknown_permission"),
]


@pytest.mark.parametrize(("entity_type", "permission", "error"), LOOKUP_ERRORS)
def test_lookups_of_what_does_not_exist_raise(
    store: Store, entity_type: str, permission: str, error: type[Exception]
) -> None:
    engine = load(store, BASIC, VIEWS)
    user = parse_subject("user:1")
    with pytest.raises(error):
        engine.lookup_entity(TENANT, entity_type, permission, user)
    with pytest.raises(error):  # raised by the call, before anything is iterated
        engine.lookup_entity_stream(TENANT, entity_type, permission, user)
    with pytest.raises(error):
        engine.lookup_subject(
            TENANT, Entity(entity_type, "1"), permission, SubjectReference("user")
        )


def test_lookups_refuse_a_negative_depth(store: Store) -> None:
    engine = load(store, BASIC, VIEWS)
    with pytest.raises(DepthExceeded):
        engine.lookup_entity(TENANT, "doc", "view", parse_subject("user:1"),
            options=RequestOptions(depth=-1))
    with pytest.raises(DepthExceeded):
        engine.lookup_subject(
            TENANT, Entity("doc", "1"), "view", SubjectReference("user"),
            options=RequestOptions(depth=-1)
        )


SCOPES = [
    pytest.param({"doc": ["1", "2", "4", "99"]}, ["1", "2"], id="result_type"),
    pytest.param({"doc": ["4"]}, [], id="result_type_excludes_all"),
    # Only group:2 may be walked, so docs reached only through group:1 drop out.
    pytest.param({"group": ["2"]}, ["1", "10", "2", "20"], id="intermediate_type"),
    pytest.param({"page": ["1"]}, VIEWED_BY_1, id="unrelated_type"),
]


@pytest.mark.parametrize(("scope", "expected"), SCOPES)
def test_scope_restricts_the_ids_considered(
    store: Store, scope: dict[str, list[str]], expected: list[str]
) -> None:
    engine = load(store, BASIC, VIEWS)
    assert entities(engine, "doc", "view", "user:1", scope=scope) == expected


def test_lookup_entity_sees_each_revision(store: Store) -> None:
    engine = load(store, BASIC, VIEWS)
    before = store.head(TENANT)
    assert entities(engine, "doc", "view", "user:2") == ["4"]  # fills the caches
    store.write(TENANT, Changes(write_tuples=[Tuple.parse("group:1#member@user:2")]))
    assert entities(engine, "doc", "view", "user:2") == ["11", "3", "4"]
    assert entities(engine, "doc", "view", "user:2", snap_token=before) == ["4"]


# --- attributes, rules, exclusion, intersection ---------------------------------------------------

ABAC = """
entity user {}

entity doc {
    relation viewer @user
    relation banned @user
    attribute is_public boolean
    attribute level integer
    permission view = is_public or viewer
    permission see = high(level) or viewer
    permission edit = viewer not banned
    permission both = viewer and is_public
}

rule high(level integer) {
    level >= 3
}
"""


def attr(doc: str, name: str, value: bool | int) -> Attribute:
    return Attribute("doc", doc, name, BOOLEAN if isinstance(value, bool) else INTEGER, value)


# doc:1 viewer 1 | doc:2 public, nothing else | doc:3 not public, viewer 2 | doc:4 public, viewer 1
# doc:5 level 5, nothing else | doc:6 level 1, nothing else | doc:7 viewer 1 but banned 1
# doc:8 level 3, viewer 2
ABAC_TUPLES = [
    "doc:1#viewer@user:1",
    "doc:3#viewer@user:2",
    "doc:4#viewer@user:1",
    "doc:7#viewer@user:1",
    "doc:7#banned@user:1",
    "doc:8#viewer@user:2",
]
ABAC_ATTRIBUTES = [
    attr("2", "is_public", True),
    attr("3", "is_public", False),
    attr("4", "is_public", True),
    attr("5", "level", 5),
    attr("6", "level", 1),
    attr("8", "level", 3),
]
ABAC_IDS = [str(i) for i in range(1, 9)]
ABAC_LOOKUPS = [
    pytest.param("view", "user:1", ["1", "2", "4", "7"], id="public_or_viewer"),
    pytest.param("view", "user:3", ["2", "4"], id="public_for_subject_without_tuples"),
    pytest.param("see", "user:1", ["1", "4", "5", "7", "8"], id="rule_or_viewer"),
    pytest.param("see", "user:3", ["5", "8"], id="rule_for_subject_without_tuples"),
    pytest.param("edit", "user:1", ["1", "4"], id="exclusion_confirmed"),
    pytest.param("edit", "user:2", ["3", "8"], id="exclusion_without_bans"),
    pytest.param("both", "user:1", ["4"], id="intersection_confirmed"),
    pytest.param("both", "user:2", [], id="intersection_empty"),
    pytest.param("is_public", "user:1", ["2", "4"], id="attribute_itself"),
]


@pytest.mark.parametrize(("permission", "subject", "expected"), ABAC_LOOKUPS)
def test_lookup_entity_finds_attribute_rule_and_set_operation_results(
    store: Store, permission: str, subject: str, expected: list[str]
) -> None:
    engine = load(store, ABAC, ABAC_TUPLES, ABAC_ATTRIBUTES)
    assert entities(engine, "doc", permission, subject) == expected
    assert allowed_by_check(engine, "doc", ABAC_IDS, permission, subject) == expected


def test_contextual_tuples_and_attributes_take_part_in_lookups(store: Store) -> None:
    engine = load(store, ABAC, ABAC_TUPLES, ABAC_ATTRIBUTES)
    context = Context(
        tuples=(Tuple.parse("doc:9#viewer@user:1"), Tuple.parse("doc:1#banned@user:1")),
        attributes=(attr("10", "is_public", True), attr("2", "is_public", False)),
    )
    # doc:9 (contextual viewer) and doc:10 (public only in the context) join; doc:2 is private
    # in the context; doc:1 is banned in the context.
    assert entities(engine, "doc", "view", "user:1", context=context) == ["1", "10", "4", "7", "9"]
    assert entities(engine, "doc", "edit", "user:1", context=context) == ["4", "9"]
    streamed = engine.lookup_entity_stream(
        TENANT, "doc", "view", parse_subject("user:1"), options=RequestOptions(context=context)
    )
    assert [i for i, _ in streamed] == ["1", "10", "4", "7", "9"]
    # ... for that request only.
    assert entities(engine, "doc", "view", "user:1") == ["1", "2", "4", "7"]
    assert entities(engine, "doc", "edit", "user:1") == ["1", "4"]


def test_lookup_entity_confirms_candidates_within_the_depth_budget(store: Store) -> None:
    # doc:1's `edit` needs a check (exclusion), and that check needs five hops: a lookup whose
    # budget is short fails rather than returning a shorter list.
    engine = load(
        store,
        BASIC + "\nentity page {\n relation viewer @group#member\n relation banned @user\n"
        " permission edit = viewer not banned\n}\n",
        [
            "page:1#viewer@group:0#member",
            *[f"group:{i}#member@group:{i + 1}#member" for i in range(4)],
            "group:4#member@user:u",
        ],
    )
    with pytest.raises(DepthExceeded):
        entities(engine, "page", "edit", "user:u", depth=3)
    # A fresh engine: answers cached by an earlier request hold whatever budget a later one has.
    assert entities(Engine(store), "page", "edit", "user:u", depth=10) == ["1"]


# --- tuples the schema does not declare -----------------------------------------------------------

# `owner` admits only @user and `viewer` only @user and @group#member, and `robot` is no entity
# type; the store takes these tuples as they are (Permify: tuples written under an older schema),
# and check follows them.
UNDECLARED = [
    *VIEWS,
    "doc:7#owner@group:1#member",
    "doc:8#viewer@robot:1",
    "doc:5#viewer@doc:6#owner",
    "doc:6#owner@user:2",
]
DOC_IDS = ["1", "10", "11", "2", "20", "3", "4", "5", "6", "7", "8"]
UNDECLARED_LOOKUPS = [
    pytest.param("edit", "user:1", ["20", "7"], id="userset_of_undeclared_type"),
    pytest.param("view", "user:1", [*VIEWED_BY_1, "7"], id="through_permission"),
    pytest.param("view", "robot:1", ["8"], id="subject_of_undeclared_entity_type"),
    pytest.param("view", "user:2", ["4", "5", "6"], id="userset_naming_a_permission_relation"),
]


@pytest.mark.parametrize(("permission", "subject", "expected"), UNDECLARED_LOOKUPS)
def test_lookup_entity_follows_undeclared_tuples_as_check_does(
    store: Store, permission: str, subject: str, expected: list[str]
) -> None:
    engine = load(store, BASIC, UNDECLARED)
    assert allowed_by_check(engine, "doc", DOC_IDS, permission, subject) == sorted(expected)
    assert entities(engine, "doc", permission, subject) == sorted(expected)


def test_lookup_entity_follows_undeclared_contextual_tuples(store: Store) -> None:
    engine = load(store, BASIC, ["group:1#member@user:1"])
    context = Context(tuples=(Tuple.parse("doc:1#owner@group:1#member"),))
    assert allowed_by_check(engine, "doc", ["1"], "edit", "user:1", context) == ["1"]
    assert entities(engine, "doc", "edit", "user:1", context=context) == ["1"]


# --- lookup-subject -------------------------------------------------------------------------------

# doc:1: viewer user:1 and group:1#member, owner user:4; group:1 holds user:2 and group:2#member;
# group:2 holds user:3. doc:2's viewer user:5 is unrelated to doc:1.
MEMBERS = [
    "doc:1#viewer@user:1",
    "doc:1#viewer@group:1#member",
    "group:1#member@user:2",
    "group:1#member@group:2#member",
    "group:2#member@user:3",
    "doc:1#owner@user:4",
    "doc:2#viewer@user:5",
]
SUBJECT_LOOKUPS = [
    pytest.param("doc:1", "view", "user", ["1", "2", "3", "4"], id="users_through_groups"),
    pytest.param("doc:1", "view", "user#...", ["1", "2", "3", "4"], id="ellipsis_reference"),
    pytest.param("doc:1", "edit", "user", ["4"], id="users_of_a_permission"),
    pytest.param("doc:1", "viewer", "user", ["1", "2", "3"], id="users_of_a_relation"),
    pytest.param("doc:1", "view", "group#member", ["1", "2"], id="nested_usersets"),
    pytest.param("doc:1", "view", "group", [], id="plain_group_is_not_a_userset"),
    # group:1#member has itself (Permify's rule) and group:2#member.
    pytest.param("group:1", "member", "group#member", ["1", "2"], id="userset_is_itself"),
    pytest.param("doc:3", "view", "user", [], id="entity_without_tuples"),
]


@pytest.mark.parametrize(("entity", "permission", "reference", "expected"), SUBJECT_LOOKUPS)
def test_lookup_subject_follows_references(
    store: Store, entity: str, permission: str, reference: str, expected: list[str]
) -> None:
    engine = load(store, BASIC, MEMBERS)
    assert subjects(engine, entity, permission, reference) == expected
    subject_type, _, relation = reference.partition("#")
    relation = "" if relation in ("", "...") else f"#{relation}"
    by_check = [
        i
        for i in ["1", "2", "3", "4", "5"]
        if engine.check(
            TENANT, Entity.parse(entity), permission, parse_subject(f"{subject_type}:{i}{relation}")
        ).allowed
    ]
    assert by_check == expected


@pytest.mark.parametrize("page_size", range(1, 6), ids=lambda n: f"page_size_{n}")
def test_lookup_subject_pages_chain_to_the_full_sorted_list(store: Store, page_size: int) -> None:
    engine = load(store, BASIC, [f"doc:1#viewer@user:{i}" for i in ("3", "10", "1", "2")])
    pages = []
    cursor = ""
    for _ in range(6):
        page = engine.lookup_subject(
            TENANT,
            Entity("doc", "1"),
            "view",
            SubjectReference("user"),
            page_size=page_size,
            cursor=cursor,
        )
        pages.append(page.ids)
        cursor = page.cursor
        if not cursor:
            break
    assert not cursor, "the cursor chain did not end"
    assert [i for ids in pages for i in ids] == ["1", "10", "2", "3"]
    assert all(0 < len(ids) <= page_size for ids in pages)
    assert len(pages) == -(-4 // page_size)


WILDCARD = """
entity user {}

entity group {
    relation member @user @group#member
}

entity doc {
    relation viewer @user @group#member
    relation banned @user
    attribute is_public boolean
    permission view = is_public or viewer
    permission open = is_public not banned
}
"""
# doc:1 is public and bans user:3; doc:3 is private. Users seen as subjects anywhere: 2, 3 (in
# group:1), 5 (doc:2). group:1#member is the only group#member subject.
WILDCARD_TUPLES = [
    "doc:1#banned@user:3",
    "group:1#member@user:2",
    "group:1#member@user:3",
    "doc:2#viewer@user:5",
    "doc:2#viewer@group:1#member",
]
WILDCARD_ATTRIBUTES = [
    Attribute("doc", "1", "is_public", BOOLEAN, True),
    Attribute("doc", "3", "is_public", BOOLEAN, False),
]
WILDCARD_LOOKUPS = [
    pytest.param("doc:1", "view", "user", ["2", "3", "5"], id="every_user_seen_in_a_tuple"),
    pytest.param("doc:1", "open", "user", ["2", "5"], id="every_user_minus_excluded"),
    pytest.param("doc:1", "is_public", "user", ["2", "3", "5"], id="attribute_itself"),
    pytest.param("doc:1", "view", "group#member", ["1"], id="every_userset_seen_in_a_tuple"),
    pytest.param("doc:3", "view", "user", [], id="private_entity"),
    pytest.param("doc:2", "view", "user", ["2", "3", "5"], id="private_entity_with_viewers"),
]


@pytest.mark.parametrize(("entity", "permission", "reference", "expected"), WILDCARD_LOOKUPS)
def test_lookup_subject_wildcard_is_every_subject_seen(
    store: Store, entity: str, permission: str, reference: str, expected: list[str]
) -> None:
    engine = load(store, WILDCARD, WILDCARD_TUPLES, WILDCARD_ATTRIBUTES)
    assert subjects(engine, entity, permission, reference) == expected


def test_lookup_subject_wildcard_includes_contextual_subjects_for_that_request(
    store: Store,
) -> None:
    engine = load(store, WILDCARD, WILDCARD_TUPLES, WILDCARD_ATTRIBUTES)
    context = Context(tuples=(Tuple.parse("group:1#member@user:8"),))
    assert subjects(engine, "doc:1", "view", "user", context=context) == ["2", "3", "5", "8"]
    assert subjects(engine, "doc:1", "view", "user") == ["2", "3", "5"]
    # A contextual attribute makes a private entity public for that request only.
    opened = Context(attributes=(Attribute("doc", "3", "is_public", BOOLEAN, True),))
    assert subjects(engine, "doc:3", "view", "user", context=opened) == ["2", "3", "5"]
    assert subjects(engine, "doc:3", "view", "user") == []


# --- cycles and userset subjects ------------------------------------------------------------------

CYCLIC = """
entity user {}

entity group {
    relation member @user @group#member
}

entity folder {
    relation parent @folder
    relation viewer @user
    permission view = parent.view or viewer
}

entity doc {
    relation parent @folder
    relation viewer @user @group#member
    permission view = parent.view or viewer
}
"""
# folder:1 -> 2 -> 3 -> 1 by `parent`, user:a views folder:1 (so every folder); doc:1's parent is
# folder:2. group:1 and group:2 contain each other's members; user:a is in group:1 and doc:3's
# viewers are group:2's members. user:b views doc:4 only.
CYCLIC_TUPLES = [
    "folder:1#parent@folder:2",
    "folder:2#parent@folder:3",
    "folder:3#parent@folder:1",
    "folder:1#viewer@user:a",
    "doc:1#parent@folder:2",
    "group:1#member@user:a",
    "group:1#member@group:2#member",
    "group:2#member@group:1#member",
    "doc:3#viewer@group:2#member",
    "doc:4#viewer@user:b",
]
CYCLIC_ENTITY_LOOKUPS = [
    pytest.param("doc", "view", "user:a", ["1", "3"], id="docs_through_cycles"),
    pytest.param("folder", "view", "user:a", ["1", "2", "3"], id="folder_cycle"),
    pytest.param("doc", "view", "user:b", ["4"], id="outside_the_cycles"),
    pytest.param("doc", "view", "group:1#member", ["3"], id="userset_subject"),
    pytest.param("group", "member", "group:1#member", ["1", "2"], id="userset_subject_itself"),
    pytest.param("doc", "view", "folder:3#view", ["1"], id="permission_userset_subject"),
]


@pytest.mark.parametrize(
    ("entity_type", "permission", "subject", "expected"), CYCLIC_ENTITY_LOOKUPS
)
def test_lookup_entity_through_cycles_and_usersets(
    store: Store, entity_type: str, permission: str, subject: str, expected: list[str]
) -> None:
    engine = load(store, CYCLIC, CYCLIC_TUPLES)
    assert entities(engine, entity_type, permission, subject) == expected
    every = ["1", "2", "3", "4"]
    assert allowed_by_check(Engine(store), entity_type, every, permission, subject) == expected


CYCLIC_SUBJECT_LOOKUPS = [
    pytest.param("doc:3", "view", "user", ["a"], id="users_through_group_cycle"),
    pytest.param("doc:1", "view", "user", ["a"], id="users_through_folder_cycle"),
    pytest.param("group:2", "member", "group#member", ["1", "2"], id="usersets_in_group_cycle"),
    # folder:2#view is itself, and reaches folder:3#view and folder:1#view through its parents.
    pytest.param("folder:2", "view", "folder#view", ["1", "2", "3"], id="permission_usersets"),
]


@pytest.mark.parametrize(("entity", "permission", "reference", "expected"), CYCLIC_SUBJECT_LOOKUPS)
def test_lookup_subject_through_cycles_and_usersets(
    store: Store, entity: str, permission: str, reference: str, expected: list[str]
) -> None:
    engine = load(store, CYCLIC, CYCLIC_TUPLES)
    assert subjects(engine, entity, permission, reference) == expected
