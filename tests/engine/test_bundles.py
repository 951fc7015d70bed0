"""Data bundles (engine/bundles/) on both stores: writing, reading and deleting bundles, the
template and shape checks made when a bundle is written, and runs: arguments filled in and checked
one component at a time (no argument can change what a string means), schema checks, Permify's
operation order, one write at one revision, and nothing written on any error."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.errors import reason_of
from dsl.schema import AttributeType, Schema
from engine.bundles import (
    ATTRIBUTE,
    ATTRIBUTE_KEY,
    KEYSPACE,
    LISTS,
    SEPARATORS,
    TUPLE,
    ArgumentProblem,
    BundleError,
    BundleNotFound,
    DataBundle,
    Form,
    Operation,
    delete_bundle,
    parse_item,
    read_bundle,
    render_attribute,
    render_attribute_key,
    render_tuple,
    run_bundle,
    write_bundles,
)
from engine.engine import Engine
from engine.errors import InvalidWrite
from engine.hooks import RawWriter
from engine.writes import attribute_text
from storage.base import Attribute, AttributeFilter, Changes, Record, Store, Tuple, TupleFilter
from tests.engine.support import TENANT, write

#: Permify's error codes the API's table gives the bundle errors.
ALREADY_EXIST = "ERROR_CODE_ALREADY_EXIST"
BUNDLE_NOT_FOUND = "ERROR_CODE_BUNDLE_NOT_FOUND"
INVALID_ARGUMENT = "ERROR_CODE_INVALID_ARGUMENT"
MAX_DATA_PER_WRITE_EXCEEDED = "ERROR_CODE_MAX_DATA_PER_WRITE_EXCEEDED"
MISSING_ARGUMENT = "ERROR_CODE_MISSING_ARGUMENT"
VALIDATION = "ERROR_CODE_VALIDATION"

SCHEMA = """
entity user {}

entity group {
    relation member @user @group#member
}

entity doc {
    relation owner @user
    relation viewer @user @group#member
    attribute public boolean
    attribute tags string[]
    attribute title string
    permission view = viewer or owner or public
}
"""

#: Every list of an operation used once; the arguments appear with and without inner spaces.
SHARE = DataBundle(
    "share",
    ("id", "user", "group"),
    (
        Operation(
            relationships_write=(
                "doc:{{.id}}#owner@user:{{ .user }}",
                "doc:{{ .id }}#viewer@group:{{.group}}#member",
            ),
            relationships_delete=("doc:{{.id}}#viewer@user:old",),
            attributes_write=("doc:{{.id}}$public|boolean:false",),
            attributes_delete=("doc:{{.id}}$tags",),
        ),
    ),
)


class CountingStore:
    """The real store, counting the calls that write (``write`` and ``transact``)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.writes = 0

    def write(self, tenant: str, changes: Any) -> str:
        self.writes += 1
        return self._store.write(tenant, changes)

    def transact(self, tenant: str, build: Any) -> str:
        self.writes += 1
        return self._store.transact(tenant, build)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.fixture
def schema(store: Store) -> Schema:
    """SCHEMA written to the store, compiled as the API gets it (the tenant's head)."""
    store.write_schema(TENANT, SCHEMA)
    return Engine(store).compiled(TENANT).schema


def state(store: Store, token: str = "", tenant: str = TENANT) -> tuple[set[str], set[str]]:
    """Every tuple and attribute of ``tenant`` at ``token``, as Permify's strings."""
    reader = store.reader(tenant, token)
    tuples = {
        str(t)
        for kind in ("doc", "group")
        for t in reader.iter_tuples(TupleFilter(entity_type=kind))
    }
    attributes = {
        attribute_text(a) for a in reader.iter_attributes(AttributeFilter(entity_type="doc"))
    }
    return tuples, attributes


def raises_nothing_written(
    store: Store, error: type[Exception], call: Callable[[], object]
) -> Exception:
    """``call`` raises ``error`` and the store's head revision does not move."""
    before = store.head(TENANT)
    with pytest.raises(error) as caught:
        call()
    assert store.head(TENANT) == before
    return caught.value


#: A valid string for each list.
VALID = {
    "relationships_write": "doc:{{.id}}#owner@user:1",
    "relationships_delete": "doc:{{.id}}#owner@user:2",
    "attributes_write": "doc:{{.id}}$public|boolean:true",
    "attributes_delete": "doc:{{.id}}$tags",
}


def bundle_with(list_name: str, text: str, *, arguments: tuple[str, ...] = ("id",)) -> DataBundle:
    """A bundle `b` whose operations[1].<list_name>[1] is ``text`` (everything before it valid)."""
    first = Operation(relationships_write=("doc:{{.id}}#viewer@user:1",))
    second = Operation(**{list_name: (VALID[list_name], text)})
    return DataBundle("b", arguments, (first, second))


# --- writing, reading, deleting ----------------------------------------------------------------


def test_a_written_bundle_reads_back_and_deletes(store: Store) -> None:
    assert write_bundles(store, TENANT, [SHARE]) == ["share"]
    assert read_bundle(store, TENANT, "share") == SHARE

    assert delete_bundle(store, TENANT, "share") == "share"
    with pytest.raises(BundleNotFound) as caught:
        read_bundle(store, TENANT, "share")
    assert reason_of(caught.value) == BUNDLE_NOT_FOUND
    assert "share" in str(caught.value)
    # Deleting what is not there is BUNDLE_NOT_FOUND too, as in Permify.
    error = raises_nothing_written(
        store, BundleNotFound, lambda: delete_bundle(store, TENANT, "share")
    )
    assert isinstance(error, BundleError) and reason_of(error) == BUNDLE_NOT_FOUND


def test_one_write_stores_every_bundle_and_returns_names_in_request_order(store: Store) -> None:
    bundles = [DataBundle(name) for name in ("b", "a", "c")]
    counting = CountingStore(store)
    assert write_bundles(counting, TENANT, bundles) == ["b", "a", "c"]  # type: ignore[arg-type]
    assert counting.writes == 1
    assert [read_bundle(store, TENANT, name) for name in ("a", "b", "c")] == sorted(
        bundles, key=lambda b: b.name
    )


def test_writing_a_bundle_again_replaces_it(store: Store, schema: Schema) -> None:
    write_bundles(
        store, TENANT, [DataBundle("b", ("id",), (Operation(("doc:{{.id}}#owner@user:1",)),))]
    )
    newer = DataBundle("b", ("id",), (Operation(("doc:{{.id}}#viewer@user:2",)),))
    write_bundles(store, TENANT, [newer])

    assert read_bundle(store, TENANT, "b") == newer
    token = run_bundle(RawWriter(store), schema, TENANT, "b", {"id": "7"})
    assert state(store, token)[0] == {"doc:7#viewer@user:2"}


def test_the_record_is_compact_json_with_sorted_keys(store: Store) -> None:
    write_bundles(store, TENANT, [SHARE])
    raw = store.reader(TENANT).record(KEYSPACE, ("share",))
    assert raw is not None
    document = json.loads(raw)
    assert document == {
        "name": "share",
        "arguments": ["id", "user", "group"],
        "operations": [
            {
                "relationships_write": list(SHARE.operations[0].relationships_write),
                "relationships_delete": ["doc:{{.id}}#viewer@user:old"],
                "attributes_write": ["doc:{{.id}}$public|boolean:false"],
                "attributes_delete": ["doc:{{.id}}$tags"],
            }
        ],
    }
    assert raw == json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def test_model_values_are_immutable_and_compare_by_value() -> None:
    built = DataBundle("b", ["x"], [Operation(relationships_write=["doc:{{.x}}#owner@user:1"])])  # type: ignore[arg-type]
    assert built == DataBundle("b", ("x",), (Operation(("doc:{{.x}}#owner@user:1",)),))
    assert isinstance(built.arguments, tuple)
    assert isinstance(built.operations[0].relationships_write, tuple)
    with pytest.raises(TypeError, match="not one string"):
        DataBundle("b", "xy")  # type: ignore[arg-type]


def test_duplicate_names_in_one_write_are_rejected(store: Store) -> None:
    bundles = [DataBundle("a"), DataBundle("other"), DataBundle("a")]
    error = raises_nothing_written(
        store, BundleError, lambda: write_bundles(store, TENANT, bundles)
    )
    assert isinstance(error, BundleError)
    assert reason_of(error) == ALREADY_EXIST
    assert "'a'" in str(error) and "bundles[0]" in str(error) and "bundles[2]" in str(error)
    with pytest.raises(BundleNotFound):  # not even the distinct one
        read_bundle(store, TENANT, "other")


def test_an_empty_write_is_rejected(store: Store) -> None:
    error = raises_nothing_written(store, BundleError, lambda: write_bundles(store, TENANT, []))
    assert isinstance(error, BundleError) and reason_of(error) == VALIDATION


INVALID_TEMPLATES = [
    ("doc:{{.id#owner@user:1", "`{{` at column 5 is never closed"),
    ("doc:.id}}#owner@user:1", "`}}` at column 8 closes no `{{`"),
    ("doc:{{.id}}}}#owner@user:1", "`}}` at column 12 closes no `{{`"),
    ("doc:{{ {{.id}}#owner@user:1", "not closed before the next `{{` at column 8"),
    ("doc:{{.nope}}#owner@user:1", "`nope` is not a declared argument; declared: `id`"),
    ("doc:{{.ID}}#owner@user:1", "`ID` is not a declared argument"),
    ("doc:{{}}#owner@user:1", "the action is empty"),
    ("doc:{{ }}#owner@user:1", "the action is empty"),
    ("doc:{{.}}#owner@user:1", "the whole argument map"),
    ("doc:{{- .id}}#owner@user:1", "trim markers"),
    ("doc:{{.id -}}#owner@user:1", "trim markers"),
    ("doc:{{/* note */}}#owner@user:1", "comments are not supported"),
    ("doc:{{if .id}}1{{end}}#owner@user:1", "`if` actions are not supported"),
    ("doc:{{range .id}}1{{end}}#owner@user:1", "`range` actions are not supported"),
    ('doc:{{.id | printf "%s"}}#owner@user:1', "pipelines are not supported"),
    ('doc:{{printf "%s" .id}}#owner@user:1', "functions and other expressions"),
    ("doc:{{$x := .id}}#owner@user:1", "variables are not supported"),
    ("doc:{{.id.x}}#owner@user:1", "field chains"),
    ("doc:{{.i-d}}#owner@user:1", "`i-d` is not an argument name"),
    ("doc:{{{.id}}#owner@user:1", "a stray `{` or `}`"),
    ("", "the string is empty"),
    ("   ", "the string is empty"),
]


@pytest.mark.parametrize(
    ("text", "fragment"), INVALID_TEMPLATES, ids=[t or "<empty>" for t, _ in INVALID_TEMPLATES]
)
def test_an_invalid_template_is_rejected_when_written(
    store: Store, text: str, fragment: str
) -> None:
    bundle = bundle_with("relationships_write", text)
    error = raises_nothing_written(
        store, BundleError, lambda: write_bundles(store, TENANT, [bundle])
    )
    assert isinstance(error, BundleError)
    assert reason_of(error) == VALIDATION
    assert error.problems == (str(error),)
    assert str(error).startswith(f"bundle `b`: operations[1].relationships_write[1] `{text}`: ")
    assert fragment in str(error)
    with pytest.raises(BundleNotFound):
        read_bundle(store, TENANT, "b")


@pytest.mark.parametrize("list_name", LISTS)
def test_template_errors_name_the_list_they_are_in(store: Store, list_name: str) -> None:
    bundle = bundle_with(list_name, "doc:{{.who}}")
    error = raises_nothing_written(
        store, BundleError, lambda: write_bundles(store, TENANT, [bundle])
    )
    assert f"bundle `b`: operations[1].{list_name}[1] `doc:{{{{.who}}}}`" in str(error)


def test_spaces_inside_the_braces_are_allowed(store: Store, schema: Schema) -> None:
    texts = [
        "doc:{{.id}}#owner@user:1",
        "doc:{{ .id }}#owner@user:2",
        "doc:{{\t.id\n}}#owner@user:3",
    ]
    write_bundles(store, TENANT, [DataBundle("b", ("id",), (Operation(tuple(texts)),))])
    token = run_bundle(RawWriter(store), schema, TENANT, "b", {"id": "9"})
    assert state(store, token)[0] == {
        "doc:9#owner@user:1",
        "doc:9#owner@user:2",
        "doc:9#owner@user:3",
    }


INVALID_NAMES = ["", "1b", "a-b", "a b", "b.c", "é", "x" * 65]


@pytest.mark.parametrize("name", INVALID_NAMES, ids=[n[:8] or "<empty>" for n in INVALID_NAMES])
def test_an_invalid_bundle_name_is_rejected_everywhere(
    store: Store, schema: Schema, name: str
) -> None:
    calls: list[Callable[[], object]] = [
        lambda: write_bundles(store, TENANT, [DataBundle(name)]),
        lambda: read_bundle(store, TENANT, name),
        lambda: delete_bundle(store, TENANT, name),
        lambda: run_bundle(RawWriter(store), schema, TENANT, name, {}),
    ]
    for call in calls:
        error = raises_nothing_written(store, BundleError, call)
        assert isinstance(error, BundleError)
        assert reason_of(error) == VALIDATION
        assert "bundle name" in str(error)
        assert ("is empty" if not name else repr(name)) in str(error)


@pytest.mark.parametrize("name", ["_", "b", "_a1", "A" * 64])
def test_valid_names_are_accepted(store: Store, name: str) -> None:
    bundle = DataBundle(name, (name,), (Operation((f"doc:{{{{.{name}}}}}#owner@user:1",)),))
    write_bundles(store, TENANT, [bundle])
    assert read_bundle(store, TENANT, name) == bundle


def test_every_problem_of_a_write_is_reported(store: Store) -> None:
    bundles = [
        DataBundle("a", ("id", "1x", "id"), (Operation(("doc:{{.nope}}#owner@user:1",)),)),
        DataBundle("", (), (Operation(attributes_delete=("doc:{{.id",)),)),
    ]
    error = raises_nothing_written(
        store, BundleError, lambda: write_bundles(store, TENANT, bundles)
    )
    assert isinstance(error, BundleError)
    assert reason_of(error) == VALIDATION
    assert str(error).startswith("5 problems: ")
    assert error.problems == (
        "bundle `a`: arguments[1] '1x' is invalid: expected letters, digits and `_`, "
        "not starting with a digit, at most 64 characters",
        "bundle `a`: argument `id` is declared twice (arguments[0] and arguments[2])",
        "bundle `a`: operations[0].relationships_write[0] `doc:{{.nope}}#owner@user:1`: "
        "`nope` is not a declared argument; declared: `id`",
        "bundles[1]: the bundle name is empty",
        "bundles[1]: operations[0].attributes_delete[0] `doc:{{.id`: "
        "`{{` at column 5 is never closed by `}}`",
    )


# --- running -----------------------------------------------------------------------------------


def test_a_run_applies_every_change_at_one_revision(store: Store, schema: Schema) -> None:
    before = write(
        store,
        ["doc:1#viewer@user:old", "doc:2#viewer@user:old"],
        [
            Attribute("doc", "1", "tags", AttributeType.STRING_ARRAY, ("x",)),
            Attribute("doc", "1", "public", AttributeType.BOOLEAN, True),
        ],
    )
    write_bundles(store, TENANT, [SHARE])
    previous = store.head(TENANT)
    counting = CountingStore(store)

    arguments = {"id": "1", "user": "ann", "group": "eng"}
    token = run_bundle(RawWriter(counting), schema, TENANT, "share", arguments)  # type: ignore[arg-type]

    assert counting.writes == 1
    old = (
        {"doc:1#viewer@user:old", "doc:2#viewer@user:old"},
        {"doc:1$tags|string[]:x", "doc:1$public|boolean:true"},
    )
    assert state(store, before) == old
    assert state(store, previous) == old
    assert state(store, token) == (
        {"doc:1#owner@user:ann", "doc:1#viewer@group:eng#member", "doc:2#viewer@user:old"},
        {"doc:1$public|boolean:false"},
    )
    # One change set, at the returned token, holds every change of the run.
    [change_set] = store.changes(TENANT, previous, limit=10)
    assert change_set.token == token
    shown = {
        (
            c.operation.name,
            str(c.item) if not isinstance(c.item, Attribute) else attribute_text(c.item),
        )
        for c in change_set.changes
    }
    assert shown == {
        ("CREATE", "doc:1#owner@user:ann"),
        ("CREATE", "doc:1#viewer@group:eng#member"),
        ("DELETE", "doc:1#viewer@user:old"),
        ("DELETE", "doc:1$tags|string[]:x"),
        ("DELETE", "doc:1$public|boolean:true"),
        ("CREATE", "doc:1$public|boolean:false"),
    }


def test_operations_apply_in_order_as_permify_does(store: Store, schema: Schema) -> None:
    write(store, ["doc:1#viewer@user:kept", "doc:1#viewer@user:gone"])
    bundle = DataBundle(
        "order",
        ("id",),
        (
            # Inside one operation deletes come after writes: the delete wins.
            Operation(
                relationships_write=("doc:{{.id}}#owner@user:1",),
                relationships_delete=("doc:{{.id}}#owner@user:1", "doc:{{.id}}#viewer@user:kept"),
                attributes_write=("doc:{{.id}}$public|boolean:true",),
                attributes_delete=("doc:{{.id}}$public",),
            ),
            # A later operation's write wins over an earlier delete.
            Operation(
                relationships_write=("doc:{{.id}}#viewer@user:kept",),
                relationships_delete=("doc:{{.id}}#viewer@user:gone",),
                attributes_write=("doc:{{.id}}$tags|string[]:a,b",),
            ),
            # The last write of an attribute wins.
            Operation(attributes_write=("doc:{{.id}}$tags|string[]:c",)),
        ),
    )
    write_bundles(store, TENANT, [bundle])
    token = run_bundle(RawWriter(store), schema, TENANT, "order", {"id": "1"})
    assert state(store, token) == ({"doc:1#viewer@user:kept"}, {"doc:1$tags|string[]:c"})


def test_an_attribute_delete_takes_permifys_full_form_too(store: Store, schema: Schema) -> None:
    write(
        store,
        attributes=[
            Attribute("doc", "1", "tags", AttributeType.STRING_ARRAY, ("x",)),
            Attribute("doc", "1", "public", AttributeType.BOOLEAN, True),
        ],
    )
    bundle = DataBundle(
        "b",
        ("id",),
        (Operation(attributes_delete=("doc:{{.id}}$tags", "doc:{{.id}}$public|boolean:false")),),
    )
    write_bundles(store, TENANT, [bundle])
    token = run_bundle(RawWriter(store), schema, TENANT, "b", {"id": "1"})
    assert state(store, token) == (set(), set())


def test_a_bundle_without_arguments_runs(store: Store, schema: Schema) -> None:
    write_bundles(store, TENANT, [DataBundle("fixed", (), (Operation(("doc:1#owner@user:1",)),))])
    token = run_bundle(RawWriter(store), schema, TENANT, "fixed", {})
    assert state(store, token)[0] == {"doc:1#owner@user:1"}


def test_a_run_without_every_argument_writes_nothing(store: Store, schema: Schema) -> None:
    write_bundles(store, TENANT, [SHARE])
    error = raises_nothing_written(
        store,
        BundleError,
        lambda: run_bundle(RawWriter(store), schema, TENANT, "share", {"user": "ann"}),
    )
    assert isinstance(error, BundleError)
    assert reason_of(error) == MISSING_ARGUMENT
    assert "missing: `id`, `group`" in str(error)
    assert "declared: `id`, `user`, `group`" in str(error)


def test_a_run_with_an_undeclared_argument_writes_nothing(store: Store, schema: Schema) -> None:
    write_bundles(store, TENANT, [SHARE])
    arguments = {"id": "1", "user": "ann", "group": "eng", "usr": "bob"}
    error = raises_nothing_written(
        store, BundleError, lambda: run_bundle(RawWriter(store), schema, TENANT, "share", arguments)
    )
    assert isinstance(error, BundleError)
    assert reason_of(error) == INVALID_ARGUMENT
    assert "declares no argument `usr`" in str(error)


def test_running_an_unknown_bundle_is_bundle_not_found(store: Store, schema: Schema) -> None:
    error = raises_nothing_written(
        store, BundleNotFound, lambda: run_bundle(RawWriter(store), schema, TENANT, "nope", {})
    )
    assert isinstance(error, BundleError) and reason_of(error) == BUNDLE_NOT_FOUND


SCHEMA_VIOLATIONS = [
    (
        "relationships_write",
        "doc:{{.id}}#editor@user:1",
        "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND",
    ),
    ("relationships_write", "doc:{{.id}}#view@user:1", "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND"),
    (
        "relationships_write",
        "doc:{{.id}}#owner@group:1#member",
        "ERROR_CODE_SUBJECT_TYPE_NOT_FOUND",
    ),
    ("relationships_write", "doc:{{.id}}#owner@doc:2", "ERROR_CODE_SUBJECT_TYPE_NOT_FOUND"),
    ("relationships_write", "page:{{.id}}#owner@user:1", "ERROR_CODE_ENTITY_DEFINITION_NOT_FOUND"),
    ("attributes_write", "doc:{{.id}}$public|string:yes", "ERROR_CODE_ATTRIBUTE_TYPE_MISMATCH"),
    (
        "attributes_write",
        "doc:{{.id}}$secret|boolean:true",
        "ERROR_CODE_ATTRIBUTE_DEFINITION_NOT_FOUND",
    ),
    ("attributes_delete", "doc:{{.id}}$secret", "ERROR_CODE_ATTRIBUTE_DEFINITION_NOT_FOUND"),
    ("attributes_delete", "doc:{{.id}}$owner", "ERROR_CODE_ATTRIBUTE_DEFINITION_NOT_FOUND"),
    ("attributes_delete", "page:{{.id}}$public", "ERROR_CODE_ENTITY_DEFINITION_NOT_FOUND"),
]


@pytest.mark.parametrize(
    ("list_name", "text", "code"), SCHEMA_VIOLATIONS, ids=[t for _, t, _ in SCHEMA_VIOLATIONS]
)
def test_a_run_the_schema_rejects_writes_nothing(
    store: Store, schema: Schema, list_name: str, text: str, code: str
) -> None:
    write_bundles(store, TENANT, [bundle_with(list_name, text)])
    before = state(store)
    error = raises_nothing_written(
        store, InvalidWrite, lambda: run_bundle(RawWriter(store), schema, TENANT, "b", {"id": "42"})
    )
    assert isinstance(error, InvalidWrite)
    assert reason_of(error) == code
    assert str(error).startswith(f"bundle `b`: operations[1].{list_name}[1] `{text}`: ")
    assert text.replace("{{.id}}", "42").split("|")[0] in str(error)
    assert state(store) == before == (set(), set())


def test_tuple_deletes_are_not_checked_against_the_schema(store: Store, schema: Schema) -> None:
    write(store, ["doc:1#editor@user:1"])  # admitted by an older schema, say
    bundle = DataBundle("b", (), (Operation(relationships_delete=("doc:1#editor@user:1",)),))
    write_bundles(store, TENANT, [bundle])
    token = run_bundle(RawWriter(store), schema, TENANT, "b", {})
    assert state(store, token) == (set(), set())


# --- components: the shape is fixed when the bundle is written ----------------------------------

SEPARATOR_HINT = "an argument fills part of one component and cannot supply a separator"
INVALID_SHAPES = [
    ("relationships_write", "doc:{{.id}}@user:1", "missing `#` after the entity_id"),
    ("relationships_write", "doc:{{.id}}#owner", "missing `@` after the relation"),
    ("relationships_write", "doc:{{.id}}#owner@{{.id}}", "missing `:` after the subject_type"),
    (
        "relationships_write",
        "{{.id}}#owner@user:1",
        "expected `:` after the entity_type, found `#`",
    ),
    ("relationships_write", "doc:{{.id}}#owner@user:1#member#x", "nothing may follow the subj"),
    ("relationships_write", "doc:{{.id}}#owner@user:1#", "subject_relation '' is invalid"),
    ("relationships_write", "doc:#owner@user:{{.id}}", "entity_id '' is invalid: it is empty"),
    ("relationships_write", "doc:a b#owner@user:{{.id}}", "entity_id 'a b' is invalid"),
    ("relationships_write", "1doc:{{.id}}#owner@user:1", "entity_type '1doc' is invalid"),
    ("relationships_write", "doc:{{.id}}#own-er@user:1", "relation 'own-er' is invalid"),
    ("relationships_write", "doc:{{.id}}x y#owner@user:1", "`{{.id}}x y` holds ' '"),
    ("relationships_write", "doc:*{{.id}}#owner@user:1", "`*{{.id}}` holds '*', which an id"),
    ("relationships_write", "doc-{{.id}}:1#owner@user:1", "`doc-{{.id}}` holds '-', which a name"),
    ("relationships_delete", "doc:{{.id}}#owner@user:é", "subject_id 'é' is invalid"),
    ("attributes_write", "doc:{{.id}}$public", "missing `|` after the attribute"),
    ("attributes_write", "doc:{{.id}}$public|boolean", "missing `:` after the value_type"),
    ("attributes_write", "doc:{{.id}}|boolean:true", "expected `$` after the entity_id, found `|`"),
    ("attributes_write", "doc:{{.id}}$public|bool:true", "value_type 'bool' is invalid"),
    ("attributes_write", "doc:{{.id}}$public|boolean:maybe", "'maybe' is not a boolean"),
    ("attributes_write", "doc:{{.id}}$tags|integer[]:1,x,{{.id}}", "value[1] is invalid"),
    ("attributes_delete", "doc:{{.id}}#tags", "expected `$` after the entity_id, found `#`"),
    ("attributes_delete", "doc:{{.id}}$tags:x", "expected `|` after the attribute, found `:`"),
    ("attributes_delete", "doc:{{.id}}$tags|", "missing `:` after the value_type"),
]


@pytest.mark.parametrize(
    ("list_name", "text", "fragment"),
    INVALID_SHAPES,
    ids=[f"{s[0]}-{s[1]}" for s in INVALID_SHAPES],
)
def test_a_string_of_the_wrong_shape_is_rejected_when_written(
    store: Store, list_name: str, text: str, fragment: str
) -> None:
    bundle = bundle_with(list_name, text)
    error = raises_nothing_written(
        store, BundleError, lambda: write_bundles(store, TENANT, [bundle])
    )
    assert isinstance(error, BundleError)
    assert reason_of(error) == VALIDATION
    assert str(error).startswith(f"bundle `b`: operations[1].{list_name}[1] `{text}`: ")
    assert fragment in str(error)
    with pytest.raises(BundleNotFound):
        read_bundle(store, TENANT, "b")


@pytest.mark.parametrize(
    "text",
    ["doc:{{.ref}}@user:1", "doc:{{.id}}#{{.ref}}", "doc:1$public|{{.ref}}"],
    ids=["id-and-relation", "relation-and-subject", "type-and-value"],
)
def test_an_argument_cannot_stand_for_a_separator(store: Store, text: str) -> None:
    list_name = "attributes_write" if "$" in text else "relationships_write"
    bundle = DataBundle("b", ("id", "ref"), (Operation(**{list_name: (text,)}),))
    error = raises_nothing_written(
        store, BundleError, lambda: write_bundles(store, TENANT, [bundle])
    )
    assert isinstance(error, BundleError) and reason_of(error) == VALIDATION
    assert SEPARATOR_HINT in str(error)


def test_literal_ids_may_hold_colon_and_at(store: Store, schema: Schema) -> None:
    bundle = DataBundle(
        "b", (), (Operation(("doc:a@b#owner@user:c:d", "doc:a@b#viewer@user:e:f#...")),)
    )
    write_bundles(store, TENANT, [bundle])
    token = run_bundle(RawWriter(store), schema, TENANT, "b", {})
    assert state(store, token)[0] == {"doc:a@b#owner@user:c:d", "doc:a@b#viewer@user:e:f"}


# --- runs: every component is filled in and checked on its own -----------------------------------

#: Every component of a tuple is an argument; these values make a valid tuple.
TUPLE_TEMPLATE = "{{.et}}:{{.eid}}#{{.rel}}@{{.st}}:{{.sid}}#{{.srel}}"
TUPLE_ARGUMENTS = {
    "et": "doc",
    "eid": "1",
    "rel": "viewer",
    "st": "group",
    "sid": "eng",
    "srel": "member",
}
#: The same for an attribute.
ATTRIBUTE_TEMPLATE = "{{.et}}:{{.eid}}${{.attr}}|{{.vt}}:{{.val}}"
ATTRIBUTE_ARGUMENTS = {"et": "doc", "eid": "1", "attr": "public", "vt": "boolean", "val": "true"}
COMPONENTS = {
    "et": "entity_type",
    "eid": "entity_id",
    "rel": "relation",
    "st": "subject_type",
    "sid": "subject_id",
    "srel": "subject_relation",
    "attr": "attribute",
    "vt": "value_type",
    "val": "value",
}
IDS = {"eid", "sid"}


def _injections() -> list[tuple[str, str, str]]:
    """(list, argument, value): each value makes that one component invalid."""
    cases = []
    for list_name, arguments in (
        ("relationships_write", TUPLE_ARGUMENTS),
        ("attributes_write", ATTRIBUTE_ARGUMENTS),
    ):
        for argument in arguments:
            values = [f"1{separator}x" for separator in SEPARATORS]
            if argument in IDS:  # Permify's ids may hold `:` and `@`
                values = [v for v in values if v[1] not in ":@"]
            if argument == "val":
                values = ["true,false", "true|string:x", "true#x", "", "tru\x00e", "true "]
            else:
                values += ["", "x" * (129 if argument in IDS else 65), "é", "1\x00", "1\n", " 1"]
            cases += [(list_name, argument, value) for value in values]
    # The two shapes an argument could once have forged.
    cases += [
        ("relationships_write", "sid", "1#owner"),  # a userset instead of a user
        ("relationships_write", "eid", "x#owner@user:2"),  # another tuple entirely
    ]
    return cases


INJECTIONS = _injections()


@pytest.mark.parametrize(
    ("list_name", "argument", "value"),
    INJECTIONS,
    ids=[f"{lst.split('_')[0]}-{COMPONENTS[a]}-{v[:12]!r}" for lst, a, v in INJECTIONS],
)
def test_an_argument_that_makes_its_component_invalid_writes_nothing(
    store: Store, schema: Schema, list_name: str, argument: str, value: str
) -> None:
    tuples = list_name == "relationships_write"
    template, valid = (
        (TUPLE_TEMPLATE, TUPLE_ARGUMENTS) if tuples else (ATTRIBUTE_TEMPLATE, ATTRIBUTE_ARGUMENTS)
    )
    bundle = DataBundle("inj", tuple(valid), (Operation(**{list_name: (template,)}),))
    write_bundles(store, TENANT, [bundle])
    error = raises_nothing_written(
        store,
        BundleError,
        lambda: run_bundle(RawWriter(store), schema, TENANT, "inj", {**valid, argument: value}),
    )
    assert isinstance(error, BundleError)
    assert reason_of(error) == INVALID_ARGUMENT
    message = str(error)
    assert message.startswith(f"bundle `inj`: operations[0].{list_name}[0] `{template}`: ")
    assert f"argument `{argument}` = {value[:40]!r}" in message
    assert COMPONENTS[argument] in message
    assert state(store) == (set(), set())


def test_the_injection_table_starts_from_valid_arguments(store: Store, schema: Schema) -> None:
    bundle = DataBundle(
        "ok",
        tuple(sorted({*TUPLE_ARGUMENTS, *ATTRIBUTE_ARGUMENTS})),
        (Operation(relationships_write=(TUPLE_TEMPLATE,), attributes_write=(ATTRIBUTE_TEMPLATE,)),),
    )
    write_bundles(store, TENANT, [bundle])
    token = run_bundle(
        RawWriter(store), schema, TENANT, "ok", {**TUPLE_ARGUMENTS, **ATTRIBUTE_ARGUMENTS}
    )
    assert state(store, token) == ({"doc:1#viewer@group:eng#member"}, {"doc:1$public|boolean:true"})


@pytest.mark.parametrize("list_name", LISTS)
def test_every_list_checks_its_arguments(store: Store, schema: Schema, list_name: str) -> None:
    text = VALID[list_name].replace("{{.id}}", "{{.v}}")
    bundle = bundle_with(list_name, text, arguments=("id", "v"))
    write_bundles(store, TENANT, [bundle])
    error = raises_nothing_written(
        store,
        BundleError,
        lambda: run_bundle(RawWriter(store), schema, TENANT, "b", {"id": "1", "v": "1#x"}),
    )
    assert isinstance(error, BundleError) and reason_of(error) == INVALID_ARGUMENT
    assert f"operations[1].{list_name}[1]" in str(error)
    assert "argument `v` = '1#x' is not a valid entity_id" in str(error)


def test_ids_from_arguments_may_hold_colon_and_at(store: Store, schema: Schema) -> None:
    by_argument = DataBundle("args", ("id", "u"), (Operation(("doc:{{.id}}#owner@user:{{.u}}",)),))
    literal = DataBundle("literal", (), (Operation(("doc:a@b:c#owner@user:x:y@z",)),))
    write_bundles(store, TENANT, [by_argument, literal])
    token = run_bundle(RawWriter(store), schema, TENANT, "args", {"id": "a@b:c", "u": "x:y@z"})
    assert state(store, token)[0] == {"doc:a@b:c#owner@user:x:y@z"}
    assert store.reader(TENANT, token).iter_tuples(TupleFilter(entity_type="doc")).__next__() == (
        Tuple("doc", "a@b:c", "owner", "user", "x:y@z")
    )
    # The same literal text writes the same tuple (the run changes nothing).
    token = run_bundle(RawWriter(store), schema, TENANT, "literal", {})
    assert state(store, token)[0] == {"doc:a@b:c#owner@user:x:y@z"}


@pytest.mark.parametrize(
    "value", ["128", "*", "_-@.:+"], ids=["128-characters", "star", "every-punctuation"]
)
def test_every_id_permifys_pattern_allows_is_accepted(
    store: Store, schema: Schema, value: str
) -> None:
    value = "x" * 128 if value == "128" else value
    write_bundles(
        store, TENANT, [DataBundle("b", ("u",), (Operation(("doc:1#owner@user:{{.u}}",)),))]
    )
    token = run_bundle(RawWriter(store), schema, TENANT, "b", {"u": value})
    assert state(store, token)[0] == {f"doc:1#owner@user:{value}"}


def test_three_dots_from_an_argument_mean_no_subject_relation(store: Store, schema: Schema) -> None:
    bundle = DataBundle("b", ("r",), (Operation(("doc:1#owner@user:1#{{.r}}",)),))
    write_bundles(store, TENANT, [bundle])
    token = run_bundle(RawWriter(store), schema, TENANT, "b", {"r": "..."})
    assert state(store, token)[0] == {"doc:1#owner@user:1"}


def test_a_string_value_is_taken_verbatim(store: Store, schema: Schema) -> None:
    value = "a:b|c$d#e@f,g {{.t}} é\x00 " + "x" * 10_000
    bundle = DataBundle("b", ("t",), (Operation(attributes_write=("doc:1$title|string:{{.t}}",)),))
    write_bundles(store, TENANT, [bundle])
    token = run_bundle(RawWriter(store), schema, TENANT, "b", {"t": value})
    [stored] = store.reader(TENANT, token).iter_attributes(AttributeFilter(entity_type="doc"))
    assert stored == Attribute("doc", "1", "title", AttributeType.STRING, value)


ARRAY_ELEMENT = "doc:1$tags|string[]:admin,{{.tag}}"
WHOLE_ARRAY = "doc:1$tags|string[]:{{.tags}}"
ARRAYS = [
    (ARRAY_ELEMENT, "x", ("admin", "x")),
    (ARRAY_ELEMENT, "", ("admin", "")),
    (ARRAY_ELEMENT, "x,y", None),
    (ARRAY_ELEMENT, ",", None),
    (WHOLE_ARRAY, "x", ("x",)),
    (WHOLE_ARRAY, "x,y", ("x", "y")),
    (WHOLE_ARRAY, "", ("",)),
    (WHOLE_ARRAY, "a:b|c,$", ("a:b|c", "$")),
]


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    ARRAYS,
    ids=[f"{'element' if t == ARRAY_ELEMENT else 'whole'}-{v!r}" for t, v, _ in ARRAYS],
)
def test_an_argument_fills_one_array_element_unless_it_is_the_whole_value(
    store: Store, schema: Schema, text: str, value: str, expected: tuple[str, ...] | None
) -> None:
    argument = "tag" if text == ARRAY_ELEMENT else "tags"
    bundle = DataBundle("b", (argument,), (Operation(attributes_write=(text,)),))
    write_bundles(store, TENANT, [bundle])
    if expected is None:
        error = raises_nothing_written(
            store,
            BundleError,
            lambda: run_bundle(RawWriter(store), schema, TENANT, "b", {argument: value}),
        )
        assert isinstance(error, BundleError) and reason_of(error) == INVALID_ARGUMENT
        assert f"argument `{argument}` = {value!r} is not a valid value[1]" in str(error)
        assert "may not hold `,`" in str(error)
        return
    token = run_bundle(RawWriter(store), schema, TENANT, "b", {argument: value})
    [stored] = store.reader(TENANT, token).iter_attributes(AttributeFilter(entity_type="doc"))
    assert stored.value == expected
    # Exactly what the same literal text writes.
    literal = text.replace(f"{{{{.{argument}}}}}", value)
    write_bundles(
        store, TENANT, [DataBundle("literal", (), (Operation(attributes_write=(literal,)),))]
    )
    token = run_bundle(RawWriter(store), schema, TENANT, "literal", {})
    [again] = store.reader(TENANT, token).iter_attributes(AttributeFilter(entity_type="doc"))
    assert again == stored


INVALID_VALUES = [
    ("integer", "\u0661", "is not an integer"),  # Arabic-Indic 1: a digit to int(), not to Go
    ("integer", "\uff11", "is not an integer"),  # fullwidth 1
    ("integer", " 1", "is not an integer"),
    ("integer", "2147483648", "out of range"),
    ("integer", "9" * 5000, "out of range"),
    ("integer[]", "1,,2", "value[1]"),
    ("double", "1e999", "out of range"),
    ("double", "1_0", "is not a double"),
    ("boolean", "yes", "is not a boolean"),
    ("boolean[]", "true,maybe", "value[1]"),
]


@pytest.mark.parametrize(
    ("keyword", "value", "fragment"),
    INVALID_VALUES,
    ids=[f"{k}-{v[:8]!r}" for k, v, _ in INVALID_VALUES],
)
def test_a_value_is_parsed_as_permify_parses_it(keyword: str, value: str, fragment: str) -> None:
    item = parse_item(f"doc:1$a|{keyword}:{{{{.v}}}}", ATTRIBUTE)
    with pytest.raises(ArgumentProblem) as caught:
        render_attribute(item, {"v": value})
    assert caught.value.arguments == (("v", value),)
    assert fragment in str(caught.value)
    assert len(str(caught.value)) < 400  # a huge value is shown cut short


def test_a_stored_bundle_whose_literal_text_is_invalid_fails_as_validation(
    store: Store, schema: Schema
) -> None:
    # Written before the checks existed (or by hand): the run refuses it and writes nothing.
    document = {
        "name": "old",
        "arguments": [],
        "operations": [{"relationships_write": ["doc:a b#owner@user:1"]}],
    }
    store.write(
        TENANT, Changes(put_records=[Record(KEYSPACE, ("old",), json.dumps(document).encode())])
    )
    error = raises_nothing_written(
        store, BundleError, lambda: run_bundle(RawWriter(store), schema, TENANT, "old", {})
    )
    assert isinstance(error, BundleError) and reason_of(error) == VALIDATION
    assert "the stored template is invalid" in str(error)
    assert "entity_id 'a b' is invalid" in str(error)


# Separators, spaces at either end, unicode, NUL and commas: what an argument value may hold.
VALUES = st.text(alphabet=st.sampled_from([*SEPARATORS, "a", "1", ",", ".", "*", " ", "é", "\x00"]))
TEMPLATES = [
    (TUPLE, render_tuple, "doc:{{.v}}#owner@user:1"),
    (TUPLE, render_tuple, "doc:1#owner@user:{{.v}}"),
    (TUPLE, render_tuple, "doc:1#owner@group:x{{.v}}#member"),
    (TUPLE, render_tuple, "doc:1#owner@group:1#{{.v}}"),
    (TUPLE, render_tuple, "doc:1#{{.v}}@user:1"),
    (ATTRIBUTE, render_attribute, "doc:{{.v}}$tags|string[]:a"),
    (ATTRIBUTE, render_attribute, "doc:1$tags|string[]:a,{{.v}},b"),
    (ATTRIBUTE, render_attribute, "doc:1$tags|integer[]:{{.v}}"),
    (ATTRIBUTE, render_attribute, "doc:1$tags|{{.v}}:1"),
    (ATTRIBUTE_KEY, render_attribute_key, "doc:1${{.v}}"),
]


@pytest.mark.parametrize(
    ("form", "render", "text"), TEMPLATES, ids=[text for _, _, text in TEMPLATES]
)
@settings(max_examples=150, deadline=None)
@given(value=VALUES)
def test_an_argument_does_what_the_same_literal_text_does_or_nothing(
    form: Form, render: Callable[..., object], text: str, value: str
) -> None:
    try:
        by_argument = render(parse_item(text, form), {"v": value})
    except ArgumentProblem:
        return  # refused, whatever the literal text would be
    # Accepted: the literal text parses to the very same item, components and all. (Spaces at
    # either end of the whole string are dropped from literal text; the argument is verbatim.)
    literal = text.replace("{{.v}}", value)
    if literal != literal.strip():
        return
    assert render(parse_item(literal, form), {}) == by_argument


def test_too_many_items_for_one_write_writes_nothing(store: Store, schema: Schema) -> None:
    limit = store.max_write_items
    texts = tuple(f"doc:{{{{.id}}}}#viewer@user:{i}" for i in range(limit))
    fits = DataBundle(
        "fits", ("id",), (Operation(texts[: limit // 2]), Operation(texts[limit // 2 :]))
    )
    over = DataBundle(
        "over", ("id",), (*fits.operations, Operation(attributes_delete=("doc:{{.id}}$tags",)))
    )
    write_bundles(store, TENANT, [fits, over])

    error = raises_nothing_written(
        store,
        BundleError,
        lambda: run_bundle(RawWriter(store), schema, TENANT, "over", {"id": "1"}),
    )
    assert isinstance(error, BundleError)
    assert reason_of(error) == MAX_DATA_PER_WRITE_EXCEEDED
    assert f"has {limit + 1} items" in str(error) and f"at most {limit}" in str(error)
    assert state(store) == (set(), set())

    token = run_bundle(RawWriter(store), schema, TENANT, "fits", {"id": "1"})
    assert len(state(store, token)[0]) == limit


def test_bundles_belong_to_one_tenant(store: Store, schema: Schema) -> None:
    store.create_tenant("other")
    store.write_schema("other", SCHEMA)
    write_bundles(store, TENANT, [SHARE])

    with pytest.raises(BundleNotFound):
        read_bundle(store, "other", "share")
    with pytest.raises(BundleNotFound):
        run_bundle(
            RawWriter(store), schema, "other", "share", {"id": "1", "user": "ann", "group": "eng"}
        )
    with pytest.raises(BundleNotFound):
        delete_bundle(store, "other", "share")
    assert read_bundle(store, TENANT, "share") == SHARE

    theirs = DataBundle("share", (), (Operation(("doc:9#owner@user:9",)),))
    write_bundles(store, "other", [theirs])
    assert read_bundle(store, TENANT, "share") == SHARE
    assert read_bundle(store, "other", "share") == theirs
    token = run_bundle(RawWriter(store), schema, "other", "share", {})
    assert state(store, token, "other")[0] == {"doc:9#owner@user:9"}
    assert state(store, token)[0] == set()
    delete_bundle(store, "other", "share")
    assert read_bundle(store, TENANT, "share") == SHARE
