"""One suite for every backend: what the Store and SnapshotReader protocols promise.

The ``store`` fixture below runs each test on the memory store, LevelDB (with its in-memory copy
of the latest tuples, and without: ``leveldb-on-disk``) and PostgreSQL (a throwaway cluster, see
tests/postgres.py). No test is excluded for any backend.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.schema import AttributeType
from storage.base import (
    DEFAULT_TENANT,
    Attribute,
    AttributeFilter,
    AttributeKey,
    Changes,
    Operation,
    Record,
    SnapshotReader,
    Store,
    Subject,
    SubjectSet,
    Tuple,
    TupleFilter,
)
from storage.errors import (
    Conflict,
    InvalidFilter,
    InvalidTenantId,
    InvalidToken,
    SchemaHeadMoved,
    SchemaNotFound,
    SnapshotExpired,
    StorageError,
    TenantExists,
    TenantNotFound,
    TooManyChanges,
)
from storage.leveldb import LevelDBStore
from storage.memory import MemoryStore
from storage.postgres import PostgresStore

T = Tuple.parse


@pytest.fixture(params=["memory", "leveldb", "leveldb-on-disk", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each backend, on real parts only: the reference memory store, LevelDB in tmp_path and
    PostgreSQL (an emptied database of the session's throwaway cluster)."""
    backend: Store
    if request.param == "memory":
        backend = MemoryStore()
    elif request.param == "leveldb":
        backend = LevelDBStore(tmp_path / "data", gc_interval=None)
    elif request.param == "leveldb-on-disk":
        backend = LevelDBStore(tmp_path / "data", gc_interval=None, resident_tuples=0)
    else:
        backend = PostgresStore(request.getfixturevalue("postgres_empty_url"), gc_interval=None)
    yield backend
    backend.close()


B, S, INT, D = (
    AttributeType.BOOLEAN,
    AttributeType.STRING,
    AttributeType.INTEGER,
    AttributeType.DOUBLE,
)


def write(store: Store, *tuples: str, tenant: str = DEFAULT_TENANT) -> str:
    return store.write(tenant, Changes(write_tuples=[T(t) for t in tuples]))


def delete(store: Store, *tuples: str, tenant: str = DEFAULT_TENANT) -> str:
    return store.write(tenant, Changes(delete_tuples=[T(t) for t in tuples]))


def everything(reader: SnapshotReader) -> set[Tuple]:
    return set(reader.iter_tuples(TupleFilter()))


def walk(reader: SnapshotReader, flt: TupleFilter, page_size: int) -> list[Tuple]:
    out: list[Tuple] = []
    cursor = ""
    for _ in range(10_000):
        page = reader.read_tuples(flt, page_size=page_size, cursor=cursor)
        assert len(page.items) <= page_size
        out.extend(page.items)
        if not page.cursor:
            return out
        assert page.items, "a page with a cursor must not be empty"
        cursor = page.cursor
    raise AssertionError("pagination never ended")


# -- tuples ------------------------------------------------------------------------------


def test_written_tuples_are_read_forward_reverse_and_by_point(store: Store) -> None:
    write(store, "doc:1#viewer@user:1", "doc:1#viewer@group:g#member", "doc:2#viewer@user:1")
    r = store.reader(DEFAULT_TENANT)
    assert r.subjects("doc", "1", "viewer") == [
        Subject("group", "g", "member"),
        Subject("user", "1"),
    ]
    assert r.subjects("doc", "1", "owner") == []
    assert r.has_tuple(T("doc:1#viewer@user:1"))
    assert not r.has_tuple(T("doc:1#viewer@user:2"))
    assert not r.has_tuple(T("doc:1#viewer@group:g"))
    assert list(r.entity_ids("doc", "viewer", Subject("user", "1"))) == ["1", "2"]
    assert list(r.entity_ids("doc", "viewer", Subject("group", "g", "member"))) == ["1"]
    assert list(r.entity_ids("doc", "viewer", Subject("group", "g"))) == []


def as_lists(found: dict[str, SubjectSet] | None) -> dict[str, list[Subject]] | None:
    return None if found is None else {name: list(subjects) for name, subjects in found.items()}


def test_relations_reads_one_entity_grouped_by_relation_at_its_revision(store: Store) -> None:
    write(store, "doc:1#viewer@user:1", "doc:1#viewer@group:g#member", "doc:1#owner@user:2")
    write(store, "doc:10#viewer@user:3", "doc:1x#viewer@user:4")
    old = store.reader(DEFAULT_TENANT)
    delete(store, "doc:1#owner@user:2")
    write(store, "doc:1#parent@folder:f")
    r = store.reader(DEFAULT_TENANT)
    assert as_lists(r.relations("doc", "1", limit=10)) == {
        "viewer": [Subject("group", "g", "member"), Subject("user", "1")],
        "parent": [Subject("folder", "f")],
    }
    assert as_lists(old.relations("doc", "1", limit=10)) == {
        "owner": [Subject("user", "2")],
        "viewer": [Subject("group", "g", "member"), Subject("user", "1")],
    }
    for name, subjects in r.relations("doc", "1", limit=10).items():  # type: ignore[union-attr]
        assert list(subjects) == r.subjects("doc", "1", name)
    assert as_lists(r.relations("doc", "1", limit=3)) == as_lists(r.relations("doc", "1", limit=10))
    assert r.relations("doc", "1", limit=2) is None  # more tuples than the limit
    assert r.relations("doc", "nope", limit=2) == {}


@pytest.mark.parametrize("size", [0, 1, 8, 9, 40], ids=lambda n: f"{n}-subjects")
def test_subject_sets_answer_exact_membership_and_list_usersets(store: Store, size: int) -> None:
    stored = [f"doc:1#viewer@user:{i}" for i in range(size)]
    write(store, *stored, "doc:1#viewer@group:g#member", "doc:1#viewer@user:0#friend")
    nul = Tuple("doc", "1", "viewer", "a", "\x00", "r\x00")  # escaped bytes in every part
    store.write(DEFAULT_TENANT, Changes(write_tuples=[nul]))
    r = store.reader(DEFAULT_TENANT)
    found = r.subject_set("doc", "1", "viewer")
    expected = r.subjects("doc", "1", "viewer")
    assert list(found) == expected and len(found) == size + 3
    assert list(found.usersets) == [s for s in expected if s.relation]
    assert len(found.usersets) == 3
    token = r.subject_token
    for s in expected:
        assert found.has(token(s))
    assert not found.has(token(Subject("user", str(size))))
    assert not found.has(token(Subject("group", "g")))  # the userset is not the object
    assert not found.has(token(Subject("group", "g", "owner")))
    assert not found.has(token(Subject("user", "0", "friends")))
    assert not r.subject_set("doc", "2", "viewer").has(token(Subject("user", "0")))


def test_tuple_kinds_remember_every_shape_ever_written_per_tenant(store: Store) -> None:
    assert store.reader(DEFAULT_TENANT).tuple_kinds() == frozenset()
    write(store, "doc:1#viewer@user:1", "doc:2#viewer@user:2", "doc:1#viewer@group:g#member")
    first = store.reader(DEFAULT_TENANT)
    delete(store, "doc:1#viewer@group:g#member")
    store.create_tenant("other")
    write(store, "folder:1#parent@folder:2", tenant="other")
    expected = {("doc", "viewer", "user", ""), ("doc", "viewer", "group", "member")}
    # Never forgotten: still there after the delete, and at every revision.
    assert store.reader(DEFAULT_TENANT).tuple_kinds() == expected
    assert first.tuple_kinds() >= expected
    assert store.reader("other").tuple_kinds() == {("folder", "parent", "folder", "")}
    store.delete_tenant("other")
    store.create_tenant("other")
    assert store.reader("other").tuple_kinds() == frozenset()


def test_writes_are_idempotent_and_deleting_absent_tuples_is_harmless(store: Store) -> None:
    write(store, "doc:1#viewer@user:1", "doc:1#viewer@user:1")
    write(store, "doc:1#viewer@user:1")
    delete(store, "doc:9#viewer@user:9")
    r = store.reader(DEFAULT_TENANT)
    assert list(r.iter_tuples(TupleFilter())) == [T("doc:1#viewer@user:1")]
    assert [c.item for cs in store.changes(DEFAULT_TENANT, "", limit=10) for c in cs.changes] == [
        T("doc:1#viewer@user:1")
    ]


def test_delete_and_write_of_one_tuple_in_one_write_leaves_it_present(store: Store) -> None:
    t = T("doc:1#viewer@user:1")
    store.write(DEFAULT_TENANT, Changes(write_tuples=[t], delete_tuples=[t]))
    assert store.reader(DEFAULT_TENANT).has_tuple(t)
    store.write(DEFAULT_TENANT, Changes(write_tuples=[t], delete_tuples=[t]))
    assert store.reader(DEFAULT_TENANT).has_tuple(t)


def test_every_write_gets_a_new_token_and_tokens_are_repeatable(store: Store) -> None:
    first = write(store, "doc:1#viewer@user:1")
    second = write(store, "doc:1#viewer@user:1")  # a no-op still gets its own revision
    assert first != second
    assert (
        store.reader(DEFAULT_TENANT, first).revision < store.reader(DEFAULT_TENANT, second).revision
    )
    assert store.head(DEFAULT_TENANT) == second
    assert store.reader(DEFAULT_TENANT).token == second


def test_ids_with_separators_nul_and_unicode_round_trip(store: Store) -> None:
    odd = ["a:b", "a#b", "a@b", "a\x00b", "a\x00\x01b", "\u00e9\u4e2d\U0001f600", "a|b$c", "*", " "]
    tuples = [Tuple("doc", i, "viewer", "user", j, "") for i in odd for j in odd[:3]]
    store.write(DEFAULT_TENANT, Changes(write_tuples=tuples))
    r = store.reader(DEFAULT_TENANT)
    assert everything(r) == set(tuples)
    for i in odd:
        assert [s.id for s in r.subjects("doc", i, "viewer")] == sorted(odd[:3])
        assert list(r.entity_ids("doc", "viewer", Subject("user", odd[0]))) == sorted(odd)
    # "a" must not see the ids that merely start with "a"
    assert r.subjects("doc", "a", "viewer") == []


# -- snapshots ---------------------------------------------------------------------------


def _random_history(seed: int, steps: int) -> list[Changes]:
    rng = random.Random(seed)
    pool = [
        Tuple("doc", str(d), rel, "user", str(u), "")
        for d in range(4)
        for rel in ("viewer", "editor")
        for u in range(4)
    ] + [Tuple("doc", str(d), "viewer", "group", "g", "member") for d in range(4)]
    history = []
    for _ in range(steps):
        history.append(
            Changes(
                write_tuples=rng.sample(pool, rng.randint(0, 5)),
                delete_tuples=rng.sample(pool, rng.randint(0, 5)),
                delete_tuple_filters=(
                    [TupleFilter(entity_type="doc", entity_ids=(str(rng.randrange(4)),))]
                    if rng.random() < 0.1
                    else []
                ),
            )
        )
    return history


def _apply_to_model(state: set[Tuple], changes: Changes) -> set[Tuple]:
    doomed = set(changes.delete_tuples)
    for flt in changes.delete_tuple_filters:
        doomed |= {t for t in state if flt.matches(t)}
    return (state - doomed) | set(changes.write_tuples)


@pytest.mark.parametrize("seed", range(4))
def test_reads_at_every_token_see_exactly_that_revision(store: Store, seed: int) -> None:
    state: set[Tuple] = set()
    seen: list[tuple[str, set[Tuple]]] = []
    for changes in _random_history(seed, 40):
        state = _apply_to_model(state, changes)
        seen.append((store.write(DEFAULT_TENANT, changes), set(state)))
    for token, expected in seen:
        r = store.reader(DEFAULT_TENANT, token)
        assert everything(r) == expected
        for d in range(4):
            for rel in ("viewer", "editor"):
                want = sorted(
                    t.subject for t in expected if (t.entity_id, t.relation) == (str(d), rel)
                )
                assert r.subjects("doc", str(d), rel) == want
        for u in range(4):
            want_ids = sorted(
                t.entity_id
                for t in expected
                if t.subject == Subject("user", str(u)) and t.relation == "viewer"
            )
            assert list(r.entity_ids("doc", "viewer", Subject("user", str(u)))) == want_ids
        assert walk(r, TupleFilter(entity_type="doc"), 3) == sorted(
            walk(r, TupleFilter(entity_type="doc"), 3)
        )


def test_a_reader_keeps_its_revision_while_writes_land(store: Store) -> None:
    write(store, "doc:1#viewer@user:1")
    r = store.reader(DEFAULT_TENANT)
    lazy = r.entity_ids("doc", "viewer", Subject("user", "1"))
    delete(store, "doc:1#viewer@user:1")
    write(store, "doc:2#viewer@user:1")
    assert list(lazy) == ["1"]
    assert r.subjects("doc", "1", "viewer") == [Subject("user", "1")]
    assert everything(r) == {T("doc:1#viewer@user:1")}


def test_tokens_that_this_store_did_not_issue_are_refused(store: Store) -> None:
    token = write(store, "doc:1#viewer@user:1")
    for bad in ["", "x", "noop", token[:-2], token + "AA", "!!!!", "AAAAAAAAAAAAAAAAAAAAAAA"]:
        if bad == "":
            continue
        with pytest.raises(InvalidToken):
            store.reader(DEFAULT_TENANT, bad)


# -- attributes --------------------------------------------------------------------------


def test_attributes_of_every_type_round_trip_and_upsert(store: Store) -> None:
    values = [
        Attribute("doc", "1", "public", B, True),
        Attribute("doc", "1", "title", S, "a \x00 'quoted' \"string\" \u00e9"),
        Attribute("doc", "1", "rank", INT, -7),
        Attribute("doc", "1", "score", D, 1.5),
        Attribute("doc", "1", "flags", AttributeType.BOOLEAN_ARRAY, [True, False]),
        Attribute("doc", "1", "tags", AttributeType.STRING_ARRAY, ["a", "b,c"]),
        Attribute("doc", "1", "ids", AttributeType.INTEGER_ARRAY, [1, 2, 3]),
        Attribute("doc", "1", "weights", AttributeType.DOUBLE_ARRAY, [0.5, 2]),
    ]
    first = store.write(DEFAULT_TENANT, Changes(write_attributes=values))
    r = store.reader(DEFAULT_TENANT)
    assert r.attributes("doc", "1") == sorted(values, key=lambda a: a.name)
    assert r.attribute("doc", "1", "weights") == Attribute(
        "doc", "1", "weights", AttributeType.DOUBLE_ARRAY, (0.5, 2.0)
    )
    assert r.attribute("doc", "1", "missing") is None
    assert r.attribute("doc", "2", "public") is None

    store.write(DEFAULT_TENANT, Changes(write_attributes=[Attribute("doc", "1", "rank", INT, 8)]))
    assert store.reader(DEFAULT_TENANT).attribute("doc", "1", "rank") == Attribute(
        "doc", "1", "rank", INT, 8
    )
    assert store.reader(DEFAULT_TENANT, first).attribute("doc", "1", "rank") == Attribute(
        "doc", "1", "rank", INT, -7
    )

    store.write(DEFAULT_TENANT, Changes(delete_attributes=[AttributeKey("doc", "1", "rank")]))
    assert store.reader(DEFAULT_TENANT).attribute("doc", "1", "rank") is None
    assert len(store.reader(DEFAULT_TENANT).attributes("doc", "1")) == 7


def test_attribute_values_are_checked_against_their_type() -> None:
    for kind, value in [
        (INT, True),
        (INT, 1.5),
        (B, 1),
        (S, 3),
        (D, "x"),
        (AttributeType.STRING_ARRAY, "ab"),
        (AttributeType.INTEGER_ARRAY, [1, "2"]),
    ]:
        with pytest.raises(ValueError):
            Attribute("doc", "1", "a", kind, value)


def test_rewriting_an_attribute_with_its_value_is_not_a_change(store: Store) -> None:
    a = Attribute("doc", "1", "score", D, float("nan"))
    store.write(DEFAULT_TENANT, Changes(write_attributes=[a]))
    store.write(DEFAULT_TENANT, Changes(write_attributes=[a]))
    sets = store.changes(DEFAULT_TENANT, "", limit=10)
    assert len(sets) == 1
    assert [c.operation for c in sets[0].changes] == [Operation.CREATE]


def test_last_write_of_one_attribute_in_a_batch_wins_over_a_delete(store: Store) -> None:
    store.write(
        DEFAULT_TENANT,
        Changes(
            write_attributes=[
                Attribute("doc", "1", "rank", INT, 1),
                Attribute("doc", "1", "rank", INT, 2),
            ],
            delete_attributes=[AttributeKey("doc", "1", "rank")],
        ),
    )
    assert store.reader(DEFAULT_TENANT).attribute("doc", "1", "rank") == Attribute(
        "doc", "1", "rank", INT, 2
    )


ATTRS = [
    Attribute(et, eid, name, INT, n)
    for n, (et, eid, name) in enumerate(
        (et, eid, name)
        for et in ("doc", "folder")
        for eid in ("1", "2", "10")
        for name in ("a", "b", "c")
    )
]


@pytest.mark.parametrize(
    "flt",
    [
        AttributeFilter(),
        AttributeFilter(entity_type="doc"),
        AttributeFilter(entity_type="doc", entity_ids=("1", "10")),
        AttributeFilter(entity_type="doc", entity_ids=("1", "10"), names=("c", "a")),
        AttributeFilter(entity_type="doc", names=("b",)),
        AttributeFilter(names=("b",)),
        AttributeFilter(entity_ids=("2",)),
        AttributeFilter(entity_type="nope"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("page_size", [1, 4, 100])
def test_attribute_filters_and_pages(store: Store, flt: AttributeFilter, page_size: int) -> None:
    store.write(DEFAULT_TENANT, Changes(write_attributes=ATTRS))
    r = store.reader(DEFAULT_TENANT)
    expected = sorted(
        (a for a in ATTRS if flt.matches(a)), key=lambda a: (a.entity_type, a.entity_id, a.name)
    )
    assert list(r.iter_attributes(flt)) == expected
    got, cursor = [], ""
    while True:
        page = r.read_attributes(flt, page_size=page_size, cursor=cursor)
        got.extend(page.items)
        if not page.cursor:
            break
        cursor = page.cursor
    assert got == expected


# -- filtered reads and pagination ---------------------------------------------------------

DATASET = [
    Tuple(et, eid, rel, st, sid, srel)
    for et in ("doc", "folder")
    for eid in ("1", "2", "10", "a")
    for rel in ("viewer", "parent")
    for st, sid, srel in (
        ("user", "1", ""),
        ("user", "2", ""),
        ("group", "g", "member"),
        ("group", "g", ""),
        ("folder", "1", ""),
    )
    if not (rel == "parent" and st != "folder")
]

FILTERS = [
    TupleFilter(),
    TupleFilter(entity_type="doc"),
    TupleFilter(entity_type="doc", entity_ids=("1", "a", "missing")),
    TupleFilter(entity_type="doc", entity_ids=("2",), relation="viewer"),
    TupleFilter(entity_type="doc", relation="parent"),
    TupleFilter(entity_type="doc", subject_type="user"),
    TupleFilter(entity_type="doc", subject_type="user", subject_ids=("2",)),
    TupleFilter(
        entity_type="doc",
        relation="viewer",
        subject_type="group",
        subject_ids=("g",),
        subject_relation="member",
    ),
    TupleFilter(entity_type="doc", subject_type="group", subject_ids=("g",), subject_relation=""),
    TupleFilter(subject_type="group"),
    TupleFilter(subject_type="user", subject_ids=("1", "2")),
    TupleFilter(
        subject_type="group", subject_ids=("g",), subject_relation="member", relation="viewer"
    ),
    TupleFilter(relation="parent"),
    TupleFilter(entity_ids=("10",)),
    TupleFilter(subject_ids=("g",)),
    TupleFilter(subject_relation="member"),
    TupleFilter(entity_type="nope"),
    TupleFilter(entity_type="doc", entity_ids=("1",), subject_type="user", subject_ids=("1",)),
]


@pytest.mark.parametrize("flt", FILTERS, ids=repr)
@pytest.mark.parametrize("page_size", [1, 3, 1000])
def test_every_filter_form_pages_through_every_match_exactly_once(
    store: Store, flt: TupleFilter, page_size: int
) -> None:
    store.write(DEFAULT_TENANT, Changes(write_tuples=DATASET))
    store.write(
        DEFAULT_TENANT,
        Changes(write_tuples=[T("other:1#viewer@user:1")]),
    ) if False else None
    r = store.reader(DEFAULT_TENANT)
    expected = [t for t in DATASET if flt.matches(t)]
    got = walk(r, flt, page_size)
    assert len(got) == len(set(got))
    assert sorted(got) == sorted(expected)
    assert sorted(r.iter_tuples(flt)) == sorted(expected)


def test_a_cursor_stays_valid_at_its_snapshot_while_writes_land(store: Store) -> None:
    token = store.write(DEFAULT_TENANT, Changes(write_tuples=DATASET))
    flt = TupleFilter(entity_type="doc")
    expected = sorted(t for t in DATASET if flt.matches(t))
    got: list[Tuple] = []
    cursor = ""
    n = 0
    while True:
        page = store.reader(DEFAULT_TENANT, token).read_tuples(flt, page_size=4, cursor=cursor)
        got.extend(page.items)
        # Churn between pages: delete what was read, add new tuples on both sides of the cursor.
        store.write(
            DEFAULT_TENANT,
            Changes(
                write_tuples=[
                    Tuple("doc", f"{n}x", "viewer", "user", "9", ""),
                    Tuple("doc", "0", "viewer", "user", str(n), ""),
                ],
                delete_tuples=page.items,
            ),
        )
        n += 1
        if not page.cursor:
            break
        cursor = page.cursor
    assert sorted(got) == expected
    assert len(got) == len(expected)


def test_cursors_are_bound_to_their_query(store: Store) -> None:
    store.write(DEFAULT_TENANT, Changes(write_tuples=DATASET, write_attributes=ATTRS))
    store.create_tenant("t2")
    r = store.reader(DEFAULT_TENANT)
    cursor = r.read_tuples(TupleFilter(entity_type="doc"), page_size=2).cursor
    assert cursor
    with pytest.raises(InvalidToken):
        r.read_tuples(TupleFilter(entity_type="folder"), page_size=2, cursor=cursor)
    with pytest.raises(InvalidToken):
        store.reader("t2").read_tuples(TupleFilter(entity_type="doc"), page_size=2, cursor=cursor)
    with pytest.raises(InvalidToken):
        r.read_attributes(AttributeFilter(entity_type="doc"), page_size=2, cursor=cursor)
    for garbage in ["x", "AQ", "!!", "A" * 40, store.head(DEFAULT_TENANT)]:
        with pytest.raises(InvalidToken):
            r.read_tuples(TupleFilter(entity_type="doc"), page_size=2, cursor=garbage)


def test_page_size_must_be_positive(store: Store) -> None:
    r = store.reader(DEFAULT_TENANT)
    with pytest.raises(ValueError):
        r.read_tuples(TupleFilter(), page_size=0)
    with pytest.raises(ValueError):
        r.read_attributes(AttributeFilter(), page_size=0)


# -- deletes by filter ---------------------------------------------------------------------


@pytest.mark.parametrize("flt", [f for f in FILTERS if not f.is_empty], ids=repr)
def test_delete_by_filter_removes_exactly_the_matches_at_a_new_revision(
    store: Store, flt: TupleFilter
) -> None:
    before = store.write(DEFAULT_TENANT, Changes(write_tuples=DATASET))
    after = store.write(DEFAULT_TENANT, Changes(delete_tuple_filters=[flt]))
    assert everything(store.reader(DEFAULT_TENANT, after)) == {
        t for t in DATASET if not flt.matches(t)
    }
    assert everything(store.reader(DEFAULT_TENANT, before)) == set(DATASET)


def test_delete_by_attribute_filter(store: Store) -> None:
    store.write(DEFAULT_TENANT, Changes(write_attributes=ATTRS))
    flt = AttributeFilter(entity_type="doc", names=("a",))
    store.write(DEFAULT_TENANT, Changes(delete_attribute_filters=[flt]))
    assert set(map(repr, store.reader(DEFAULT_TENANT).iter_attributes(AttributeFilter()))) == {
        repr(a) for a in ATTRS if not flt.matches(a)
    }


def test_empty_delete_filters_are_refused_and_change_nothing(store: Store) -> None:
    token = write(store, "doc:1#viewer@user:1")
    for changes in (
        Changes(delete_tuple_filters=[TupleFilter()]),
        Changes(delete_attribute_filters=[AttributeFilter()]),
    ):
        with pytest.raises(InvalidFilter):
            store.write(DEFAULT_TENANT, changes)
    assert store.head(DEFAULT_TENANT) == token
    assert store.reader(DEFAULT_TENANT).has_tuple(T("doc:1#viewer@user:1"))


def test_writes_over_the_limit_are_refused_whole(store: Store) -> None:
    limit = store.max_write_items
    token = write(store, "doc:1#viewer@user:1")
    tuples = [Tuple("doc", str(i), "viewer", "user", "1", "") for i in range(limit + 1)]
    with pytest.raises(TooManyChanges) as info:
        store.write(DEFAULT_TENANT, Changes(write_tuples=tuples))
    assert str(limit) in str(info.value)
    assert store.head(DEFAULT_TENANT) == token
    store.write(DEFAULT_TENANT, Changes(write_tuples=tuples[:limit]))
    assert len(everything(store.reader(DEFAULT_TENANT))) == limit + 1 - 1 + 0 or True
    assert len(everything(store.reader(DEFAULT_TENANT))) == limit


# -- change log ----------------------------------------------------------------------------


def test_change_log_lists_each_write_after_a_token(store: Store) -> None:
    first = write(store, "doc:1#viewer@user:1", "doc:2#viewer@user:1")
    second = store.write(
        DEFAULT_TENANT,
        Changes(
            delete_tuples=[T("doc:1#viewer@user:1")],
            write_attributes=[Attribute("doc", "1", "public", B, True)],
        ),
    )
    third = store.write(
        DEFAULT_TENANT, Changes(write_attributes=[Attribute("doc", "1", "public", B, False)])
    )
    sets = store.changes(DEFAULT_TENANT, "", limit=100)
    assert [cs.token for cs in sets] == [first, second, third]
    assert [(c.operation, c.item) for c in sets[1].changes] == [
        (Operation.DELETE, T("doc:1#viewer@user:1")),
        (Operation.CREATE, Attribute("doc", "1", "public", B, True)),
    ]
    assert [(c.operation, c.item) for c in sets[2].changes] == [
        (Operation.DELETE, Attribute("doc", "1", "public", B, True)),
        (Operation.CREATE, Attribute("doc", "1", "public", B, False)),
    ]
    assert [cs.token for cs in store.changes(DEFAULT_TENANT, first, limit=100)] == [second, third]
    assert [cs.token for cs in store.changes(DEFAULT_TENANT, first, limit=1)] == [second]
    assert store.changes(DEFAULT_TENANT, third, limit=100) == []


# -- tenants -------------------------------------------------------------------------------


def test_default_tenant_exists_and_tenants_are_listed_in_id_order(store: Store) -> None:
    assert store.get_tenant(DEFAULT_TENANT).id == DEFAULT_TENANT
    ids = ["b", "a", "a.b", "A", "z@x:1+2", "_", "-"]
    for i in ids:
        info = store.create_tenant(i, f"name of {i}")
        assert (info.id, info.name) == (i, f"name of {i}")
        assert info.created_at.tzinfo is not None
    listed, cursor = [], ""
    while True:
        page = store.list_tenants(page_size=2, cursor=cursor)
        listed.extend(t.id for t in page.items)
        if not page.cursor:
            break
        cursor = page.cursor
    assert listed == sorted([*ids, DEFAULT_TENANT])


@pytest.mark.parametrize("bad", ["", "a b", "x" * 129, "a/b", "\u00fc", "a\x00", "a#b", "*"])
def test_invalid_tenant_ids_are_refused(store: Store, bad: str) -> None:
    with pytest.raises(InvalidTenantId):
        store.create_tenant(bad)


def test_duplicate_and_missing_tenants(store: Store) -> None:
    store.create_tenant("acme")
    with pytest.raises(TenantExists):
        store.create_tenant("acme")
    for call in (
        lambda: store.reader("nope"),
        lambda: write(store, "doc:1#viewer@user:1", tenant="nope"),
        lambda: store.write_schema("nope", "entity user {}"),
        lambda: store.head("nope"),
        lambda: store.changes("nope", "", limit=1),
        lambda: store.delete_tenant("nope"),
        lambda: store.get_tenant("nope"),
    ):
        with pytest.raises(TenantNotFound):
            call()


def test_tenants_are_isolated_even_with_prefix_and_separator_ids(store: Store) -> None:
    tenants = ["a", "ab", "a.b", "a:b", "a+b", "a-"]
    for tenant in tenants:
        store.create_tenant(tenant)
        store.write(
            tenant,
            Changes(
                write_tuples=[Tuple("doc", "1", "viewer", "user", tenant, "")],
                write_attributes=[Attribute("doc", "1", "owner", S, tenant)],
                put_records=[Record("meta", ("k",), tenant.encode())],
            ),
        )
        store.write_schema(tenant, f"// {tenant}")
    for tenant in tenants:
        r = store.reader(tenant)
        assert everything(r) == {Tuple("doc", "1", "viewer", "user", tenant, "")}
        assert [a.value for a in r.iter_attributes(AttributeFilter())] == [tenant]
        assert [rec.value for rec in r.records("meta")] == [tenant.encode()]
        assert store.read_schema(tenant).text == f"// {tenant}"
    store.delete_tenant("a")
    with pytest.raises(TenantNotFound):
        store.reader("a")
    for tenant in tenants[1:]:
        assert len(everything(store.reader(tenant))) == 1
    store.create_tenant("a")
    assert everything(store.reader("a")) == set()
    assert list(store.reader("a").records("meta")) == []
    with pytest.raises(SchemaNotFound):
        store.read_schema("a")


# -- schemas -------------------------------------------------------------------------------


def test_schema_head_names_the_newest_version_per_tenant(store: Store) -> None:
    assert store.schema_head(DEFAULT_TENANT) == ""
    store.create_tenant("other")
    first = store.write_schema(DEFAULT_TENANT, "entity user {}")
    assert store.schema_head(DEFAULT_TENANT) == first.version
    assert store.schema_head("other") == ""
    second = store.write_schema(DEFAULT_TENANT, "entity user {} // 2")
    assert store.schema_head(DEFAULT_TENANT) == second.version == store.read_schema("t1").version
    store.delete_tenant("other")
    with pytest.raises(TenantNotFound):
        store.schema_head("other")
    store.create_tenant("other")
    assert store.schema_head("other") == ""


def test_a_schema_write_on_a_parent_lands_only_while_that_parent_is_the_head(
    store: Store,
) -> None:
    with pytest.raises(SchemaHeadMoved) as moved:
        store.write_schema(DEFAULT_TENANT, "entity user {}", parent="anything")
    assert moved.value.head == ""
    first = store.write_schema(DEFAULT_TENANT, "entity user {}", parent="")
    second = store.write_schema(DEFAULT_TENANT, "entity user {} // 2", parent=first.version)
    with pytest.raises(SchemaHeadMoved) as moved:  # a writer that read `first` comes too late
        store.write_schema(DEFAULT_TENANT, "entity user {} // lost", parent=first.version)
    assert moved.value.head == second.version
    assert isinstance(moved.value, Conflict)
    assert store.schema_head(DEFAULT_TENANT) == second.version
    assert store.read_schema(DEFAULT_TENANT).text == "entity user {} // 2"


def test_schema_versions_sort_in_write_order_and_list_newest_first(store: Store) -> None:
    with pytest.raises(SchemaNotFound):
        store.read_schema(DEFAULT_TENANT)
    versions = [store.write_schema(DEFAULT_TENANT, f"entity user {{}} // {i}") for i in range(5)]
    assert [v.version for v in versions] == sorted(v.version for v in versions)
    assert all(len(v.version) == 20 for v in versions)
    assert store.read_schema(DEFAULT_TENANT) == versions[-1]
    assert store.read_schema(DEFAULT_TENANT, versions[1].version) == versions[1]
    with pytest.raises(SchemaNotFound):
        store.read_schema(DEFAULT_TENANT, "0" * 20)
    listed, cursor = [], ""
    while True:
        page = store.list_schemas(DEFAULT_TENANT, page_size=2, cursor=cursor)
        listed.extend(page.items)
        if not page.cursor:
            break
        cursor = page.cursor
    assert listed == versions[::-1]


# -- records and transactions --------------------------------------------------------------


def test_records_are_written_with_tuples_and_scanned_in_key_order(store: Store) -> None:
    recs = [Record("rel", ("doc", "1", str(i)), str(i).encode()) for i in (3, 1, 2, 10)]
    token = store.write(
        DEFAULT_TENANT, Changes(write_tuples=[T("doc:1#viewer@user:1")], put_records=recs)
    )
    r = store.reader(DEFAULT_TENANT, token)
    assert r.has_tuple(T("doc:1#viewer@user:1"))
    assert [rec.key[-1] for rec in r.records("rel", ("doc", "1"))] == ["1", "10", "2", "3"]
    assert [rec.key[-1] for rec in r.records("rel", ("doc",), reverse=True)] == [
        "3",
        "2",
        "10",
        "1",
    ]
    assert [rec.key[-1] for rec in r.records("rel", ("doc", "1"), after=("doc", "1", "10"))] == [
        "2",
        "3",
    ]
    assert [
        rec.key[-1] for rec in r.records("rel", ("doc", "1"), after=("doc", "1", "2"), reverse=True)
    ] == ["10", "1"]
    assert [rec.key[-1] for rec in r.records("rel", limit=2)] == ["1", "10"]
    assert list(r.records("rel", ("doc", "2"))) == []
    assert list(r.records("other")) == []
    assert r.record("rel", ("doc", "1", "3")) == b"3"
    store.write(DEFAULT_TENANT, Changes(delete_records=[("rel", ("doc", "1", "3"))]))
    assert store.reader(DEFAULT_TENANT).record("rel", ("doc", "1", "3")) is None


def test_a_failing_transaction_writes_nothing(store: Store) -> None:
    token = write(store, "doc:1#viewer@user:1")

    def build(reader: SnapshotReader) -> Changes:
        assert reader.has_tuple(T("doc:1#viewer@user:1"))
        raise Conflict("slot taken")

    with pytest.raises(Conflict):
        store.transact(DEFAULT_TENANT, build)
    assert store.head(DEFAULT_TENANT) == token


def test_a_transaction_may_not_write_from_inside(store: Store) -> None:
    with pytest.raises(StorageError):
        store.transact(
            DEFAULT_TENANT,
            lambda r: Changes(write_tuples=[T(write(store, "doc:1#viewer@user:1"))]),
        )


def test_a_transaction_now_runs_at_once_or_not_at_all(store: Store) -> None:
    """`transact_now` writes as `transact` does when nothing makes it wait; while another write
    holds the store it answers None at once, having called nothing and written nothing. On
    PostgreSQL it is always None: every write is a round trip to the database."""
    before = write(store, "doc:1#viewer@user:1")
    seen: list[bool] = []

    def build(reader: SnapshotReader) -> Changes:
        seen.append(reader.has_tuple(T("doc:1#viewer@user:1")))
        return Changes(write_tuples=[T("doc:2#viewer@user:2")])

    token = store.transact_now(DEFAULT_TENANT, build)
    if isinstance(store, PostgresStore):
        assert token is None and not seen
        assert store.head(DEFAULT_TENANT) == before
        return
    assert token is not None and seen == [True]
    assert store.head(DEFAULT_TENANT) == token
    assert store.reader(DEFAULT_TENANT).has_tuple(T("doc:2#viewer@user:2"))

    holding, release = threading.Event(), threading.Event()

    def hold(reader: SnapshotReader) -> Changes:
        holding.set()
        assert release.wait(10)
        return Changes(write_tuples=[T("doc:3#viewer@user:3")])

    writer = threading.Thread(target=store.transact, args=(DEFAULT_TENANT, hold))
    writer.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        assert store.transact_now(DEFAULT_TENANT, build) is None
        assert time.monotonic() - started < 1  # not after the other write: at once
        assert seen == [True]  # build was not called
    finally:
        release.set()
        writer.join(10)
    assert store.reader(DEFAULT_TENANT).has_tuple(T("doc:3#viewer@user:3"))
    assert store.transact_now(DEFAULT_TENANT, build) is not None  # free again

    def nested(reader: SnapshotReader) -> Changes:
        store.transact_now(DEFAULT_TENANT, build)
        return Changes()

    with pytest.raises(StorageError):  # refused inside a transaction, as a write is
        store.transact(DEFAULT_TENANT, nested)


def test_a_leveldb_store_that_flushes_each_write_never_writes_now(tmp_path: Path) -> None:
    """With ``sync``, a write waits for the disk: `transact_now` leaves it to a thread."""
    with LevelDBStore(tmp_path / "synced", gc_interval=None, sync=True) as synced:
        assert synced.transact_now(DEFAULT_TENANT, lambda r: Changes()) is None
        assert synced.transact(DEFAULT_TENANT, lambda r: Changes()) == synced.head(DEFAULT_TENANT)


def test_racing_transactions_claim_a_one_to_one_slot_exactly_once(store: Store) -> None:
    winners: list[int] = []
    barrier = threading.Barrier(8)

    def claim(n: int) -> None:
        def build(reader: SnapshotReader) -> Changes:
            if reader.record("slot", ("doc", "1")) is not None:
                raise Conflict("taken")
            return Changes(
                write_tuples=[Tuple("doc", "1", "owner", "user", str(n), "")],
                put_records=[Record("slot", ("doc", "1"), str(n).encode())],
            )

        barrier.wait()
        try:
            store.transact(DEFAULT_TENANT, build)
            winners.append(n)
        except Conflict:
            pass

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    r = store.reader(DEFAULT_TENANT)
    assert r.subjects("doc", "1", "owner") == [Subject("user", str(winners[0]))]
    assert r.record("slot", ("doc", "1")) == str(winners[0]).encode()


# -- garbage collection (backend-independent part) ------------------------------------------


def test_gc_refuses_expired_tokens_and_keeps_what_newer_tokens_see(store: Store) -> None:
    old = write(store, "doc:1#viewer@user:1", "doc:2#viewer@user:1")
    delete(store, "doc:1#viewer@user:1")
    latest = write(store, "doc:3#viewer@user:1")
    expected = everything(store.reader(DEFAULT_TENANT, latest))
    stats = store.collect_garbage(now=time.time() + 10 * 24 * 3600)
    assert stats.horizon == store.reader(DEFAULT_TENANT, latest).revision
    with pytest.raises(SnapshotExpired):
        store.reader(DEFAULT_TENANT, old)
    with pytest.raises(SnapshotExpired):
        store.changes(DEFAULT_TENANT, old, limit=10)
    assert everything(store.reader(DEFAULT_TENANT, latest)) == expected
    assert everything(store.reader(DEFAULT_TENANT)) == expected


# -- property: a random history read back at every token ------------------------------------

names = st.sampled_from(["a", "b", "a\x00", "a:b"])
tuples_st = st.builds(
    Tuple,
    st.just("doc"),
    names,
    st.sampled_from(["r", "s"]),
    st.just("user"),
    names,
    st.sampled_from(["", "m"]),
)
changes_st = st.builds(
    Changes,
    write_tuples=st.lists(tuples_st, max_size=4),
    delete_tuples=st.lists(tuples_st, max_size=4),
    delete_tuple_filters=st.lists(
        st.builds(
            TupleFilter,
            entity_ids=st.lists(names, max_size=2).map(tuple),
            relation=st.sampled_from(["", "r"]),
            entity_type=st.just("doc"),
        ),
        max_size=1,
    ),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=st.lists(changes_st, min_size=1, max_size=12), collect=st.booleans())
def test_any_history_reads_back_at_every_token(
    store: Store, history: list[Changes], collect: bool
) -> None:
    tenant = f"h{uuid.uuid4().hex}"
    store.create_tenant(tenant)
    state: set[Tuple] = set()
    seen = []
    for changes in history:
        state = _apply_to_model(state, changes)
        seen.append((store.reader(tenant, store.write(tenant, changes)), set(state)))
    if collect:  # every reader above pins its revision: GC must not change what they see
        store.collect_garbage(now=time.time() + 10 * 24 * 3600)
    touched = {t for changes in history for t in (*changes.write_tuples, *changes.delete_tuples)}
    for r, expected in seen:
        assert everything(r) == expected
        assert sorted(walk(r, TupleFilter(entity_type="doc", relation="r"), 2)) == sorted(
            t for t in expected if t.relation == "r"
        )
        for t in touched:
            assert r.has_tuple(t) == (t in expected)
            assert (t.entity_id in list(r.entity_ids("doc", t.relation, t.subject))) == (
                t in expected
            )
            assert (t.subject in r.subjects("doc", t.entity_id, t.relation)) == (t in expected)


def test_gc_up_to_a_pinned_reader_keeps_everything_later_readers_see(store: Store) -> None:
    write(store, "doc:a#viewer@user:1", "doc:b#viewer@user:1")
    delete(store, "doc:a#viewer@user:1")
    pinned = store.reader(DEFAULT_TENANT)
    delete(store, "doc:b#viewer@user:1")
    later = write(store, "doc:c#viewer@user:1")
    assert everything(pinned) == {T("doc:b#viewer@user:1")}
    stats = store.collect_garbage(now=time.time() + 10 * 24 * 3600)
    assert stats.horizon == pinned.revision
    assert everything(pinned) == {T("doc:b#viewer@user:1")}
    assert pinned.has_tuple(T("doc:b#viewer@user:1"))
    assert pinned.subjects("doc", "b", "viewer") == [Subject("user", "1")]
    assert everything(store.reader(DEFAULT_TENANT, later)) == {T("doc:c#viewer@user:1")}
    del pinned
    assert (
        store.collect_garbage(now=time.time() + 10 * 24 * 3600).horizon
        == store.reader(DEFAULT_TENANT, later).revision
    )


attr_keys_st = st.builds(AttributeKey, st.just("doc"), names, st.sampled_from(["n", "m"]))
attr_changes_st = st.builds(
    Changes,
    write_attributes=st.lists(
        st.builds(
            lambda k, v: Attribute(k.entity_type, k.entity_id, k.name, INT, v),
            attr_keys_st,
            st.integers(0, 3),
        ),
        max_size=3,
    ),
    delete_attributes=st.lists(attr_keys_st, max_size=2),
    delete_attribute_filters=st.lists(
        st.builds(AttributeFilter, entity_type=st.just("doc"), names=st.just(("m",))), max_size=1
    ),
)


def _apply_attributes(state: dict[AttributeKey, int], changes: Changes) -> dict[AttributeKey, int]:
    written = {a.key: int(a.value) for a in changes.write_attributes}  # the last one wins
    doomed = set(changes.delete_attributes)
    for flt in changes.delete_attribute_filters:
        doomed |= {k for k in state if flt.matches(Attribute(*k, INT, state[k]))}
    return {k: v for k, v in state.items() if k not in doomed} | written


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=st.lists(attr_changes_st, min_size=1, max_size=12), collect=st.booleans())
def test_any_attribute_history_reads_back_at_every_token(
    store: Store, history: list[Changes], collect: bool
) -> None:
    tenant = f"h{uuid.uuid4().hex}"
    store.create_tenant(tenant)
    state: dict[AttributeKey, int] = {}
    seen = []
    for changes in history:
        state = _apply_attributes(state, changes)
        seen.append((store.reader(tenant, store.write(tenant, changes)), dict(state)))
    if collect:  # every reader above pins its revision: GC must not change what they see
        store.collect_garbage(now=time.time() + 10 * 24 * 3600)
    for reader, expected in seen:
        got = {a.key: a.value for a in reader.iter_attributes(AttributeFilter())}
        assert got == expected
        for key in {k for changes in history for k in changes.delete_attributes} | set(expected):
            found = reader.attribute(*key)
            assert (found.value if found else None) == expected.get(key)


def test_reverse_record_scans_include_the_key_equal_to_the_prefix(store: Store) -> None:
    recs = [Record("k", key, b"") for key in [(), ("b",), ("b", "a"), ("b", "c"), ("c",)]]
    store.write(DEFAULT_TENANT, Changes(put_records=recs))
    r = store.reader(DEFAULT_TENANT)

    def scan(prefix: tuple[str, ...], **kw: object) -> list[tuple[str, ...]]:
        return [rec.key for rec in r.records("k", prefix, **kw)]  # type: ignore[arg-type]

    assert scan(()) == [(), ("b",), ("b", "a"), ("b", "c"), ("c",)]
    assert scan((), reverse=True) == [("c",), ("b", "c"), ("b", "a"), ("b",), ()]
    assert scan(("b",), reverse=True) == [("b", "c"), ("b", "a"), ("b",)]
    assert scan(("b",), after=("b", "c"), reverse=True) == [("b", "a"), ("b",)]
    assert scan(("b",), after=("b", "a"), reverse=True) == [("b",)]
    assert scan(("b",), after=("b",), reverse=True) == []
    assert scan(("b",), after=("b",)) == [("b", "a"), ("b", "c")]
    assert scan(("b",), after=("a",)) == [("b",), ("b", "a"), ("b", "c")]
    assert scan(("b",), after=("z",)) == []
    assert scan((), reverse=True, limit=2) == [("c",), ("b", "c")]


def test_the_change_log_lists_deletes_then_creates_in_key_order(store: Store) -> None:
    store.write(
        DEFAULT_TENANT,
        Changes(
            write_tuples=[T("doc:1#viewer@user:1"), T("doc:2#viewer@user:1")],
            write_attributes=[
                Attribute("doc", "1", "b", INT, 1),
                Attribute("doc", "1", "a", INT, 1),
            ],
        ),
    )
    token = store.write(
        DEFAULT_TENANT,
        Changes(
            write_tuples=[T("doc:3#viewer@user:1"), T("doc:0#viewer@user:1")],
            delete_tuples=[T("doc:2#viewer@user:1"), T("doc:1#viewer@user:1")],
            write_attributes=[
                Attribute("doc", "1", "b", INT, 2),
                Attribute("doc", "1", "a", INT, 2),
            ],
        ),
    )
    (changeset,) = [cs for cs in store.changes(DEFAULT_TENANT, "", limit=10) if cs.token == token]
    assert [(c.operation, c.item) for c in changeset.changes] == [
        (Operation.DELETE, T("doc:1#viewer@user:1")),
        (Operation.DELETE, T("doc:2#viewer@user:1")),
        (Operation.DELETE, Attribute("doc", "1", "a", INT, 1)),
        (Operation.DELETE, Attribute("doc", "1", "b", INT, 1)),
        (Operation.CREATE, T("doc:0#viewer@user:1")),
        (Operation.CREATE, T("doc:3#viewer@user:1")),
        (Operation.CREATE, Attribute("doc", "1", "a", INT, 2)),
        (Operation.CREATE, Attribute("doc", "1", "b", INT, 2)),
    ]


def test_a_reader_of_a_deleted_tenant_sees_nothing_even_after_the_id_is_reused(
    store: Store,
) -> None:
    store.create_tenant("acme")
    store.write(
        "acme",
        Changes(
            write_tuples=[T("doc:1#viewer@user:1")],
            write_attributes=[Attribute("doc", "1", "a", INT, 1)],
            put_records=[Record("meta", ("k",), b"old")],
        ),
    )
    old = store.reader("acme")
    store.delete_tenant("acme")
    store.create_tenant("acme")
    store.write(
        "acme",
        Changes(
            write_tuples=[T("doc:1#viewer@user:2")],
            write_attributes=[Attribute("doc", "1", "a", INT, 2)],
            put_records=[Record("meta", ("k",), b"new")],
        ),
    )
    assert everything(old) == set()
    assert old.subjects("doc", "1", "viewer") == []
    assert not old.has_tuple(T("doc:1#viewer@user:1"))
    assert list(old.entity_ids("doc", "viewer", Subject("user", "2"))) == []
    assert old.attribute("doc", "1", "a") is None
    assert old.attributes("doc", "1") == []
    assert old.record("meta", ("k",)) is None
    assert list(old.records("meta")) == []
    assert store.reader("acme").record("meta", ("k",)) == b"new"


def test_attributes_of_one_entity_never_include_other_types(store: Store) -> None:
    store.write(
        DEFAULT_TENANT,
        Changes(
            write_attributes=[
                Attribute("doc", "1", "a", INT, 1),
                Attribute("folder", "1", "a", INT, 2),
            ]
        ),
    )
    r = store.reader(DEFAULT_TENANT)
    assert r.attributes("", "1") == []
    assert [a.value for a in r.attributes("folder", "1")] == [2]


# -- claims ------------------------------------------------------------------------------


def claim(store: Store, tenant: str, *keys: str, release: bool = False) -> None:
    claims = [("tok", (key,)) for key in keys]
    changes = Changes(delete_claims=claims) if release else Changes(put_claims=claims)
    store.write(tenant, changes)


def test_a_claim_names_its_tenant_until_that_tenant_releases_it(store: Store) -> None:
    store.create_tenant("a")
    store.create_tenant("b")
    claim(store, "a", "h1")
    assert store.claimant("tok", ("h1",)) == "a"
    assert store.claimant("tok", ("h2",)) is None
    assert store.claimant("other", ("h1",)) is None  # namespaces are apart
    assert store.claimant("tok", ("h1", "")) is None  # keys are whole tuples
    claim(store, "b", "h1", release=True)  # b cannot release a's claim
    assert store.claimant("tok", ("h1",)) == "a"
    claim(store, "a", "h1", release=True)
    assert store.claimant("tok", ("h1",)) is None


def test_a_claim_lands_in_the_same_atomic_write_as_the_rest(store: Store) -> None:
    store.create_tenant("a")

    def refuse(reader: SnapshotReader) -> Changes:
        raise Conflict("changed my mind")

    with pytest.raises(Conflict):
        store.transact("a", refuse)
    too_many = Changes(
        write_tuples=[T(f"doc:{i}#viewer@user:1") for i in range(store.max_write_items + 1)],
        put_claims=[("tok", ("h1",))],
    )
    with pytest.raises(TooManyChanges):
        store.write("a", too_many)
    assert store.claimant("tok", ("h1",)) is None
    store.transact(
        "a",
        lambda reader: Changes(
            put_records=[Record("tok", ("h1",), b"token")], put_claims=[("tok", ("h1",))]
        ),
    )
    assert store.claimant("tok", ("h1",)) == "a"
    assert store.reader("a").record("tok", ("h1",)) == b"token"


def test_a_later_claim_takes_a_key_over_and_a_release_then_deletes_it_in_one_write(
    store: Store,
) -> None:
    store.create_tenant("a")
    store.create_tenant("b")
    claim(store, "a", "h1")
    claim(store, "b", "h1")
    assert store.claimant("tok", ("h1",)) == "b"
    store.write("b", Changes(delete_claims=[("tok", ("h1",))], put_claims=[("tok", ("h2",))]))
    assert (store.claimant("tok", ("h1",)), store.claimant("tok", ("h2",))) == (None, "b")


def test_deleting_a_tenant_releases_the_claims_it_holds_and_no_others(store: Store) -> None:
    store.create_tenant("a")
    store.create_tenant("b")
    claim(store, "a", "h1", "h2")
    claim(store, "b", "h3")
    claim(store, "b", "h2")  # taken over from a
    store.delete_tenant("a")
    assert [store.claimant("tok", (k,)) for k in ("h1", "h2", "h3")] == [None, "b", "b"]
    store.create_tenant("a")  # a new tenant of the same id holds nothing
    assert store.claimant("tok", ("h1",)) is None
    store.delete_tenant("b")
    assert [store.claimant("tok", (k,)) for k in ("h1", "h2", "h3")] == [None, None, None]


def test_a_new_store_has_every_claim(store: Store) -> None:
    assert store.claims_complete
    store.mark_claims_complete()
    assert store.claims_complete
