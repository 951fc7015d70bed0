"""Data bundles (engine/bundles.py) on both stores: writing, reading and deleting bundles, the
template checks made when a bundle is written, and runs: arguments, schema checks, Permify's
operation order, one write at one revision, and nothing written on any error."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from dsl.schema import AttributeType, Schema
from engine.bundles import (
    ALREADY_EXIST,
    BUNDLE_NOT_FOUND,
    INVALID_ARGUMENT,
    KEYSPACE,
    LISTS,
    MAX_DATA_PER_WRITE_EXCEEDED,
    MISSING_ARGUMENT,
    VALIDATION,
    BundleError,
    BundleNotFound,
    DataBundle,
    Operation,
    delete_bundle,
    read_bundle,
    run_bundle,
    write_bundles,
)
from engine.engine import Engine
from engine.errors import InvalidWrite
from engine.writes import attribute_text
from storage.base import Attribute, AttributeFilter, Store, TupleFilter
from tests.engine.support import TENANT, write

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


def bundle_with(list_name: str, text: str, *, arguments: tuple[str, ...] = ("id",)) -> DataBundle:
    """A bundle `b` whose operations[1].<list_name>[1] is ``text`` (everything before it valid)."""
    valid = {
        "relationships_write": "doc:{{.id}}#owner@user:1",
        "relationships_delete": "doc:{{.id}}#owner@user:2",
        "attributes_write": "doc:{{.id}}$public|boolean:true",
        "attributes_delete": "doc:{{.id}}$tags",
    }
    first = Operation(relationships_write=("doc:{{.id}}#viewer@user:1",))
    second = Operation(**{list_name: (valid[list_name], text)})
    return DataBundle("b", arguments, (first, second))


# --- writing, reading, deleting ----------------------------------------------------------------


def test_a_written_bundle_reads_back_and_deletes(store: Store) -> None:
    assert write_bundles(store, TENANT, [SHARE]) == ["share"]
    assert read_bundle(store, TENANT, "share") == SHARE

    assert delete_bundle(store, TENANT, "share") == "share"
    with pytest.raises(BundleNotFound) as caught:
        read_bundle(store, TENANT, "share")
    assert caught.value.code == BUNDLE_NOT_FOUND
    assert "share" in str(caught.value)
    # Deleting what is not there is BUNDLE_NOT_FOUND too, as in Permify.
    error = raises_nothing_written(
        store, BundleNotFound, lambda: delete_bundle(store, TENANT, "share")
    )
    assert isinstance(error, BundleError) and error.code == BUNDLE_NOT_FOUND


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
    token = run_bundle(store, schema, TENANT, "b", {"id": "7"})
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
    assert error.code == ALREADY_EXIST
    assert "'a'" in str(error) and "bundles[0]" in str(error) and "bundles[2]" in str(error)
    with pytest.raises(BundleNotFound):  # not even the distinct one
        read_bundle(store, TENANT, "other")


def test_an_empty_write_is_rejected(store: Store) -> None:
    error = raises_nothing_written(store, BundleError, lambda: write_bundles(store, TENANT, []))
    assert isinstance(error, BundleError) and error.code == VALIDATION


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
    assert error.code == VALIDATION
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
    token = run_bundle(store, schema, TENANT, "b", {"id": "9"})
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
        lambda: run_bundle(store, schema, TENANT, name, {}),
    ]
    for call in calls:
        error = raises_nothing_written(store, BundleError, call)
        assert isinstance(error, BundleError)
        assert error.code == VALIDATION
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
    assert error.code == VALIDATION
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

    token = run_bundle(
        counting, schema, TENANT, "share", {"id": "1", "user": "ann", "group": "eng"}
    )  # type: ignore[arg-type]

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
    token = run_bundle(store, schema, TENANT, "order", {"id": "1"})
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
    token = run_bundle(store, schema, TENANT, "b", {"id": "1"})
    assert state(store, token) == (set(), set())


def test_a_bundle_without_arguments_runs(store: Store, schema: Schema) -> None:
    write_bundles(store, TENANT, [DataBundle("fixed", (), (Operation(("doc:1#owner@user:1",)),))])
    token = run_bundle(store, schema, TENANT, "fixed", {})
    assert state(store, token)[0] == {"doc:1#owner@user:1"}


def test_a_run_without_every_argument_writes_nothing(store: Store, schema: Schema) -> None:
    write_bundles(store, TENANT, [SHARE])
    error = raises_nothing_written(
        store, BundleError, lambda: run_bundle(store, schema, TENANT, "share", {"user": "ann"})
    )
    assert isinstance(error, BundleError)
    assert error.code == MISSING_ARGUMENT
    assert "missing: `id`, `group`" in str(error)
    assert "declared: `id`, `user`, `group`" in str(error)


def test_a_run_with_an_undeclared_argument_writes_nothing(store: Store, schema: Schema) -> None:
    write_bundles(store, TENANT, [SHARE])
    arguments = {"id": "1", "user": "ann", "group": "eng", "usr": "bob"}
    error = raises_nothing_written(
        store, BundleError, lambda: run_bundle(store, schema, TENANT, "share", arguments)
    )
    assert isinstance(error, BundleError)
    assert error.code == INVALID_ARGUMENT
    assert "declares no argument `usr`" in str(error)


def test_running_an_unknown_bundle_is_bundle_not_found(store: Store, schema: Schema) -> None:
    error = raises_nothing_written(
        store, BundleNotFound, lambda: run_bundle(store, schema, TENANT, "nope", {})
    )
    assert isinstance(error, BundleError) and error.code == BUNDLE_NOT_FOUND


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
        store, InvalidWrite, lambda: run_bundle(store, schema, TENANT, "b", {"id": "42"})
    )
    assert isinstance(error, InvalidWrite)
    assert error.code == code
    assert str(error).startswith(f"bundle `b`: operations[1].{list_name}[1] `{text}`: ")
    assert text.replace("{{.id}}", "42").split("|")[0] in str(error)
    assert state(store) == before == (set(), set())


def test_tuple_deletes_are_not_checked_against_the_schema(store: Store, schema: Schema) -> None:
    write(store, ["doc:1#editor@user:1"])  # admitted by an older schema, say
    bundle = DataBundle("b", (), (Operation(relationships_delete=("doc:1#editor@user:1",)),))
    write_bundles(store, TENANT, [bundle])
    token = run_bundle(store, schema, TENANT, "b", {})
    assert state(store, token) == (set(), set())


MALFORMED = [
    ("relationships_write", "doc:{{.v}}#owner@user:1", "1#x", "invalid tuple"),
    ("relationships_write", "doc:{{.v}}#owner@user:1", "", "invalid tuple"),
    ("relationships_delete", "doc:{{.v}}#owner@user:1", "a@b", "invalid tuple"),
    ("attributes_write", "doc:1$public|boolean:{{.v}}", "maybe", "'maybe' is not a boolean"),
    ("attributes_write", "doc:{{.v}}$public|boolean:true", "1|x", "invalid attribute"),
    ("attributes_delete", "doc:{{.v}}$tags", "1$x", "invalid attribute"),
]


@pytest.mark.parametrize(
    ("list_name", "text", "value", "fragment"),
    MALFORMED,
    ids=[f"{m[0]}-{m[2] or 'empty'}" for m in MALFORMED],
)
def test_a_rendered_string_that_does_not_parse_writes_nothing(
    store: Store,
    schema: Schema,
    list_name: str,
    text: str,
    value: str,
    fragment: str,
) -> None:
    rendered = text.replace("{{.v}}", value)
    write_bundles(store, TENANT, [bundle_with(list_name, text, arguments=("id", "v"))])
    error = raises_nothing_written(
        store, BundleError, lambda: run_bundle(store, schema, TENANT, "b", {"id": "1", "v": value})
    )
    assert isinstance(error, BundleError)
    assert error.code == INVALID_ARGUMENT
    assert str(error).startswith(
        f"bundle `b`: operations[1].{list_name}[1] `{text}` renders `{rendered}`: "
    )
    assert fragment in str(error)
    assert state(store) == (set(), set())


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
        store, BundleError, lambda: run_bundle(store, schema, TENANT, "over", {"id": "1"})
    )
    assert isinstance(error, BundleError)
    assert error.code == MAX_DATA_PER_WRITE_EXCEEDED
    assert f"has {limit + 1} items" in str(error) and f"at most {limit}" in str(error)
    assert state(store) == (set(), set())

    token = run_bundle(store, schema, TENANT, "fits", {"id": "1"})
    assert len(state(store, token)[0]) == limit


def test_bundles_belong_to_one_tenant(store: Store, schema: Schema) -> None:
    store.create_tenant("other")
    store.write_schema("other", SCHEMA)
    write_bundles(store, TENANT, [SHARE])

    with pytest.raises(BundleNotFound):
        read_bundle(store, "other", "share")
    with pytest.raises(BundleNotFound):
        run_bundle(store, schema, "other", "share", {"id": "1", "user": "ann", "group": "eng"})
    with pytest.raises(BundleNotFound):
        delete_bundle(store, "other", "share")
    assert read_bundle(store, TENANT, "share") == SHARE

    theirs = DataBundle("share", (), (Operation(("doc:9#owner@user:9",)),))
    write_bundles(store, "other", [theirs])
    assert read_bundle(store, TENANT, "share") == SHARE
    assert read_bundle(store, "other", "share") == theirs
    token = run_bundle(store, schema, "other", "share", {})
    assert state(store, token, "other")[0] == {"doc:9#owner@user:9"}
    assert state(store, token)[0] == set()
    delete_bundle(store, "other", "share")
    assert read_bundle(store, TENANT, "share") == SHARE
