"""The engine at the schema language's limits: every operation on a schema the compiler accepts
answers, or raises DepthExceeded; none recurses past Python's recursion limit.

These tests run at the interpreter's default recursion limit (checked below): the depth a request
gets is capped from it, per schema (`Engine.depth_cap`), and the bound must hold there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from api.models import expand_json
from dsl.compiler import MAX_REFERENCE_DEPTH
from dsl.compiler import load as compile_text
from dsl.parser import MAX_EXPRESSION_DEPTH
from dsl.schema import (
    ComputedUserSet,
    EntityDef,
    PermissionDef,
    ReferenceKind,
    RelationDef,
    RelationRef,
    Schema,
)
from engine.check import Evaluation
from engine.engine import Engine
from engine.errors import DepthExceeded, SchemaNotFound
from engine.expand import MAX_TREE_DEPTH, SubjectsLeaf, expand
from engine.program import Program
from engine.rules import RuleSet
from engine.types import EMPTY_CONTEXT, CheckItem, Entity, RequestOptions, SubjectReference
from storage.base import Store, Subject
from storage.leveldb import LevelDBStore
from storage.memory import MemoryStore
from tests.engine.support import TENANT, check, deep_folders, load, nested, write

USER = "user:u"


@pytest.fixture(autouse=True)
def default_recursion_limit() -> None:
    # Every bound here is about the default limit; a raised one would hide a broken bound.
    assert sys.getrecursionlimit() == 1000


def chain_schema(references: int, levels: int = 0) -> str:
    """``doc#q0`` reaches relation ``viewer`` through ``references`` computed references, each
    permission nesting its reference ``levels`` deep; ``other#view`` is unrelated."""
    lines = ["entity user {}", "entity other { relation viewer @user\n permission view = viewer }"]
    lines += ["entity doc {", "relation viewer @user", "relation yes @user", "relation no @user"]
    lines += [f"permission q{i} = {nested(levels, f'q{i + 1}')}" for i in range(references - 1)]
    lines += [f"permission q{references - 1} = {nested(levels, 'viewer')}", "}"]
    return "\n".join(lines)


CHAIN_DATA = ["doc:1#viewer@user:u", "doc:1#yes@user:u", "other:1#viewer@user:u"]


# --- a chain of references at the limit -----------------------------------------------------------


def test_a_chain_at_the_limit_is_followed_with_enough_depth(store: Store) -> None:
    engine = load(store, chain_schema(MAX_REFERENCE_DEPTH), CHAIN_DATA)
    # Depth errors first: an answer once proven is cached, whatever depth a later request has.
    for depth in (MAX_REFERENCE_DEPTH - 1, 50):
        with pytest.raises(DepthExceeded, match=f"depth {depth}"):
            check(engine, "doc:1", "q0", USER, depth=depth)
    assert check(engine, "doc:1", "q0", USER, depth=MAX_REFERENCE_DEPTH) is True
    assert check(engine, "doc:1", "q0", "user:other", depth=MAX_REFERENCE_DEPTH) is False
    assert check(engine, "other:1", "view", USER) is True


def test_lookups_expand_and_subject_permission_answer_on_a_chain_at_the_limit(
    store: Store,
) -> None:
    engine = load(store, chain_schema(MAX_REFERENCE_DEPTH), CHAIN_DATA)
    subject = Subject("user", "u")
    # Reached through unions only: certain without a check, whatever the depth.
    assert engine.lookup_entity(TENANT, "doc", "q0", subject).ids == ("1",)
    found = engine.lookup_subject(TENANT, Entity("doc", "1"), "q0", SubjectReference("user"))
    assert found.ids == ("u",)
    # A reference is transparent in expand: the tree is the relation's leaf.
    tree = engine.expand(TENANT, Entity("doc", "1"), "q0",
        options=RequestOptions(depth=MAX_REFERENCE_DEPTH))
    assert tree == SubjectsLeaf(Entity("doc", "1"), "viewer", (Subject("user", "u"),))
    with pytest.raises(DepthExceeded):
        engine.expand(TENANT, Entity("doc", "1"), "q0",
            options=RequestOptions(depth=MAX_REFERENCE_DEPTH - 1))
    with pytest.raises(DepthExceeded):  # before the answers below are cached
        engine.subject_permission(TENANT, Entity("doc", "1"), subject)
    answers = engine.subject_permission(
        TENANT, Entity("doc", "1"), subject, only_permission=True,
        options=RequestOptions(depth=MAX_REFERENCE_DEPTH)
    )
    assert set(answers.values()) == {True}


def test_the_worst_schema_the_compiler_accepts_answers_every_operation_or_depth_exceeded(
    store: Store,
) -> None:
    # The longest chain, every link nested 64 operators deep: far more frames a unit of depth
    # than the global cap assumes, so this schema gets a lower cap.
    engine = load(store, chain_schema(MAX_REFERENCE_DEPTH, 64), CHAIN_DATA)
    subject = Subject("user", "u")
    doc = Entity("doc", "1")
    cap = engine.depth_cap(engine.compiled(TENANT))
    with pytest.raises(DepthExceeded, match=f"capped to {cap}"):
        engine.check(TENANT, doc, "q0", subject, options=RequestOptions(depth=1000))
    (item,) = engine.bulk_check(TENANT, [CheckItem(doc, "q0", subject)],
        options=RequestOptions(depth=1000))
    assert isinstance(item, DepthExceeded)
    with pytest.raises(DepthExceeded, match="more than 256 nodes"):
        engine.expand(TENANT, doc, "q0", options=RequestOptions(depth=1000))
    # Reached through an intersection: a candidate, whose confirming check runs out of depth.
    with pytest.raises(DepthExceeded):
        engine.lookup_entity(TENANT, "doc", "q0", subject, options=RequestOptions(depth=1000))
    with pytest.raises(DepthExceeded):
        engine.lookup_subject(TENANT, doc, "q0", SubjectReference("user"),
            options=RequestOptions(depth=1000))
    with pytest.raises(DepthExceeded):
        engine.subject_permission(TENANT, doc, subject, options=RequestOptions(depth=1000))
    assert check(engine, "other:1", "view", USER) is True


# --- the depth cap follows the schema's nesting ---------------------------------------------------

LEVELS = 40


def folder_chain(hops: int, prefix: str = "") -> list[str]:
    """folder:``prefix``0 is ``hops`` parents above folder:``prefix````hops``, whose viewer is
    user:u."""
    tuples = [f"folder:{prefix}{i}#parent@folder:{prefix}{i + 1}" for i in range(hops)]
    tuples += [f"folder:{prefix}{i}#yes@user:u" for i in range(hops + 1)]
    return [*tuples, f"folder:{prefix}{hops}#viewer@user:u"]


def test_a_schema_that_nests_deeper_gets_a_lower_depth_cap(store: Store) -> None:
    engine = load(store, deep_folders(LEVELS))
    cap = engine.depth_cap(engine.compiled(TENANT))
    assert cap == (1000 - 100) // (3 + LEVELS) < engine.depth_cap()


def test_a_path_as_deep_as_the_cap_is_followed_and_one_deeper_is_a_depth_error(
    store: Store,
) -> None:
    # Each parent costs a unit and the viewer one more: `cap - 1` parents need the whole cap,
    # the deepest stack this schema can build; with the global cap this was a RecursionError.
    engine = load(store, deep_folders(LEVELS))
    cap = engine.depth_cap(engine.compiled(TENANT))
    write(store, folder_chain(cap - 1, "a") + folder_chain(cap, "b"))
    assert check(engine, "folder:a0", "view", USER, depth=1000) is True
    with pytest.raises(DepthExceeded, match=f"capped to {cap}"):
        check(engine, "folder:b0", "view", USER, depth=1000)


def test_a_branch_out_of_depth_does_not_hide_an_allowed_one(store: Store) -> None:
    # The deep branch runs out of depth (an error the union sets aside) and `viewer` allows.
    engine = load(store, deep_folders(LEVELS))
    cap = engine.depth_cap(engine.compiled(TENANT))
    write(store, [*folder_chain(cap + 5), "folder:0#viewer@user:u"])
    assert check(engine, "folder:0", "view", USER, depth=1000) is True


# --- schemas the compiler never produces ----------------------------------------------------------


def hand_built(references: int, *, cycle: bool = False) -> Schema:
    """``doc#q0`` -> ... -> ``q{references - 1}`` -> relation ``viewer``, built without the
    compiler (which refuses it); with ``cycle`` the last permission leads back to ``q0``."""
    permissions = {
        f"q{i}": PermissionDef(f"q{i}", ComputedUserSet(f"q{i + 1}"))
        for i in range(references - 1)
    }
    last = f"q{references - 1}"
    permissions[last] = PermissionDef(last, ComputedUserSet("q0" if cycle else "viewer"))
    references_of = {name: ReferenceKind.PERMISSION for name in permissions}
    doc = EntityDef(
        "doc",
        {"viewer": RelationDef("viewer", (RelationRef("user"),))},
        permissions,
        {},
        {"viewer": ReferenceKind.RELATION, **references_of},
    )
    user = EntityDef("user", {}, {}, {}, {})
    return Schema({"doc": doc, "user": user}, {}, {}, {})


@pytest.mark.parametrize("cycle", [False, True], ids=["chain", "cycle"])
def test_closures_compile_without_recursion_whatever_the_schema(cycle: bool) -> None:
    store = MemoryStore()
    write(store, ["doc:1#viewer@user:u"])
    program = Program(hand_built(20 * sys.getrecursionlimit(), cycle=cycle), RuleSet.compile({}))
    ev = Evaluation(program, store.reader(TENANT), EMPTY_CONTEXT, {}, {})
    with pytest.raises(DepthExceeded):
        ev.dispatch("doc", "1", "q0", Subject("user", "u"), 200)
    short = Program(hand_built(3, cycle=cycle), RuleSet.compile({}))
    ev = Evaluation(short, store.reader(TENANT), EMPTY_CONTEXT, {}, {})
    if cycle:
        with pytest.raises(DepthExceeded):
            ev.dispatch("doc", "1", "q0", Subject("user", "u"), 200)
    else:
        assert ev.dispatch("doc", "1", "q0", Subject("user", "u"), 200) is True


# --- a stored schema written before a limit existed -----------------------------------------------

TOO_LONG = chain_schema(601)


def test_a_stored_schema_over_a_limit_is_a_schema_error_until_a_new_one_is_written(
    store: Store,
) -> None:
    # The store keeps whatever text it was given, as it did before the limits existed.
    engine = load(store, TOO_LONG, CHAIN_DATA)
    message = (
        r"does not compile under this server's limits, so nothing can be evaluated with it "
        r"\(8:12: reference chain deeper than 128: q0 -> q1 -> q2 -> … -> q599 -> q600 -> "
        r"viewer .*\); write a new schema to replace it"
    )
    for _ in range(2):  # and again: the failure is kept, not compiled once a request
        with pytest.raises(SchemaNotFound, match=message):
            check(engine, "other:1", "view", USER)
    with pytest.raises(SchemaNotFound, match=message):
        engine.lookup_entity(TENANT, "other", "view", Subject("user", "u"))
    store.write_schema(TENANT, chain_schema(3))
    assert check(engine, "other:1", "view", USER) is True
    assert check(engine, "doc:1", "q0", USER) is True


def test_a_stored_schema_over_a_limit_fails_clearly_after_a_restart(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path / "data", gc_interval=None)
    store.write_schema(TENANT, TOO_LONG)
    write(store, CHAIN_DATA)
    store.close()
    store = LevelDBStore(tmp_path / "data", gc_interval=None)
    try:
        engine = Engine(store)
        with pytest.raises(SchemaNotFound, match="write a new schema"):
            check(engine, "other:1", "view", USER)
        store.write_schema(TENANT, chain_schema(3))
        assert check(engine, "other:1", "view", USER) is True
    finally:
        store.close()


# --- expand trees -------------------------------------------------------------------------------

GROUPS = "entity user {}\nentity group { relation member @user @group#member }"


def groups(nested_groups: int) -> MemoryStore:
    """group:0 holds group:1 holds ... group:``nested_groups``, which holds user:u."""
    store = MemoryStore()
    tuples = [f"group:{i}#member@group:{i + 1}#member" for i in range(nested_groups)]
    write(store, [*tuples, f"group:{nested_groups}#member@user:u"])
    return store


def tree_depth(tree: dict[str, object]) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        inner = node.get("expand")
        if isinstance(inner, dict):
            stack.extend((child, depth + 1) for child in inner["children"])
    return deepest


def test_an_expand_tree_may_be_as_deep_as_its_limit_and_no_deeper() -> None:
    schema = compile_text(GROUPS)
    # Each nested group is one union; the innermost group's leaf is one node below it.
    store = groups(MAX_TREE_DEPTH - 1)
    tree = expand_json(expand(schema, store.reader(TENANT), Entity("group", "0"), "member",
                              context=EMPTY_CONTEXT, depth=10 * MAX_TREE_DEPTH))
    assert tree_depth(tree) == MAX_TREE_DEPTH
    assert json.loads(json.dumps(tree)) == tree  # serialisable at the default recursion limit
    store = groups(MAX_TREE_DEPTH)
    with pytest.raises(DepthExceeded, match=f"more than {MAX_TREE_DEPTH} nodes"):
        expand(schema, store.reader(TENANT), Entity("group", "0"), "member",
               context=EMPTY_CONTEXT, depth=10 * MAX_TREE_DEPTH)


def test_expand_of_operators_nested_to_the_limit_needs_no_stack() -> None:
    store = MemoryStore()
    write(store, CHAIN_DATA)
    # One permission nested to the limit: its operators, then the leaves below them.
    schema = compile_text(chain_schema(1, MAX_EXPRESSION_DEPTH))
    tree = expand_json(expand(schema, store.reader(TENANT), Entity("doc", "1"), "q0",
                              context=EMPTY_CONTEXT, depth=2))
    assert tree_depth(tree) == MAX_EXPRESSION_DEPTH + 1
    # Two such permissions, one referencing the other, nest past the tree's limit.
    schema = compile_text(chain_schema(2, MAX_EXPRESSION_DEPTH))
    with pytest.raises(DepthExceeded, match=f"more than {MAX_TREE_DEPTH} nodes"):
        expand(schema, store.reader(TENANT), Entity("doc", "1"), "q0",
               context=EMPTY_CONTEXT, depth=3)
