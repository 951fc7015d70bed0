"""The LevelDB store's in-memory copy of each tenant's latest tuples (``resident.py``): every
read it answers must be the answer LevelDB gives at the reader's revision.

The oracle is either a second store on the same writes with the copies turned off
(``resident_tuples=0``, so every read scans LevelDB), or a plain dict model of the tuples at each
revision. A read is checked through the engine's three point reads: ``subject_set``,
``relations`` and ``has_tuple``. Tests assert that the copy was really used (``_entry`` answers
at the latest revision), so they would pass vacuously on no branch.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import open_store
from api.cli import main
from api.config import Config, ConfigError, load_config
from storage.base import Changes, Subject, Tuple, TupleFilter
from storage.errors import StoreClosed
from storage.leveldb import LevelDBReader, LevelDBStore

T1 = "t1"
TYPES = ("doc", "group")
IDS = ("1", "2", "n\x00ul é")  # NUL is escaped in keys, and must decode back
RELATIONS = ("viewer", "owner", "member")
SUBJECTS = (
    Subject("user", "a"),
    Subject("user", "b"),
    Subject("user", "c\x00nul"),
    Subject("group", "1", "member"),
    Subject("group", "2", "member"),
)
ALL = [
    Tuple(et, eid, rel, s.type, s.id, s.relation)
    for et in TYPES
    for eid in IDS
    for rel in RELATIONS
    for s in SUBJECTS
]
ENTITIES = [(et, eid) for et in TYPES for eid in IDS]
State = dict[tuple[str, str, str], list[Subject]]


def state_of(reader: LevelDBReader) -> State:
    """What ``reader`` answers for every relation of the universe, through subject_set."""
    return {
        (et, eid, rel): list(reader.subject_set(et, eid, rel))
        for et, eid in ENTITIES
        for rel in RELATIONS
    }


def model_state(tuples: set[Tuple]) -> State:
    out: State = {(et, eid, rel): [] for et, eid in ENTITIES for rel in RELATIONS}
    for t in sorted(tuples, key=lambda t: (t[0], t[1], t[2], t[3], t[4], t[5])):
        out[(t[0], t[1], t[2])].append(t.subject)
    return out


def assert_reads(reader: LevelDBReader, expected: State) -> None:
    """``reader``'s three point reads agree with ``expected`` (relation -> subjects)."""
    assert state_of(reader) == expected
    for et, eid in ENTITIES:
        rels = {rel: subs for (e, i, rel), subs in expected.items() if (e, i) == (et, eid) and subs}
        total = sum(map(len, rels.values()))
        for limit in (1, 4, 64):
            found = reader.relations(et, eid, limit=limit)
            if total > limit:
                assert found is None
            elif found is not None:  # LevelDB may also decline a history-heavy entity
                assert {rel: list(s) for rel, s in found.items()} == rels
                for rel, s in found.items():
                    assert list(s.usersets) == [x for x in rels[rel] if x.relation]
                    assert s.objects() == tuple(dict.fromkeys((x.type, x.id) for x in rels[rel]))
    for t in ALL:
        assert reader.has_tuple(t) == (t.subject in expected[(t[0], t[1], t[2])])


def uses_copy(store: LevelDBStore, tenant: str = T1) -> bool:
    """Whether the latest reader of ``tenant`` answers every entity of the universe from memory."""
    reader = store.reader(tenant)
    return all(reader._entry(et, eid) is not None for et, eid in ENTITIES)


# -- the model-based test: random histories, reads at every revision ----------------------

op_st = st.one_of(
    st.tuples(
        st.just("write"),
        st.sets(st.sampled_from(ALL), max_size=8),
        st.sets(st.sampled_from(ALL), max_size=8),
    ),
    st.tuples(st.just("delete_entity"), st.sampled_from(ENTITIES), st.none()),
    st.tuples(st.just("reopen"), st.booleans(), st.none()),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(op_st, min_size=1, max_size=10), big=st.sampled_from([1, 2, 1024]))
def test_reads_at_every_revision_match_a_store_without_copies(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[object, object, object]], big: int
) -> None:
    base = tmp_path_factory.mktemp("model")
    cached = LevelDBStore(base / "cached", gc_interval=None)
    cached._resident.big_relation = big
    plain = LevelDBStore(base / "plain", gc_interval=None, resident_tuples=0)
    tokens: list[tuple[str, str]] = [(cached.head(T1), plain.head(T1))]
    try:
        for op, a, b in ops:
            if op == "reopen":
                cached.close()
                cached = LevelDBStore(base / "cached", gc_interval=None)
                cached._resident.big_relation = big
                assert T1 not in cached._resident.copies
                if a:  # warmed now; otherwise reads go to LevelDB (and queue a warm-up)
                    assert cached._resident.warm(T1)
                continue
            if op == "write":
                assert isinstance(a, set) and isinstance(b, set)
                changes = Changes(write_tuples=sorted(a), delete_tuples=sorted(b - a))
            else:
                assert isinstance(a, tuple)
                changes = Changes(delete_tuple_filters=[TupleFilter(a[0], [a[1]])])
            tokens.append((cached.write(T1, changes), plain.write(T1, changes)))
            for cached_token, plain_token in tokens:
                expected = state_of(plain.reader(T1, plain_token))
                assert_reads(cached.reader(T1, cached_token), expected)
            assert_reads(cached.reader(T1), state_of(plain.reader(T1)))
        cached._resident.wait_idle(10)
        cached._resident.warm(T1)
        assert uses_copy(cached)
        assert_reads(cached.reader(T1), state_of(plain.reader(T1)))
        for cached_token, plain_token in tokens:
            assert_reads(cached.reader(T1, cached_token), state_of(plain.reader(T1, plain_token)))
    finally:
        cached.close()
        plain.close()


# -- fixtures for the rest --------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LevelDBStore]:
    s = LevelDBStore(tmp_path / "data", gc_interval=None)
    yield s
    s.close()


def history(seed: int, n: int) -> list[tuple[set[Tuple], Changes]]:
    """``n`` random writes over the universe, each with the tuple set it leaves."""
    rng = random.Random(seed)
    live: set[Tuple] = set()
    out = []
    for _ in range(n):
        adds = set(rng.sample(ALL, rng.randint(0, 4)))
        dels = set(rng.sample(sorted(live, key=str), min(len(live), rng.randint(0, 4)))) - adds
        live = (live - dels) | adds
        out.append((set(live), Changes(write_tuples=sorted(adds), delete_tuples=sorted(dels))))
    return out


# -- concurrency ----------------------------------------------------------------------------


def test_readers_on_several_threads_see_each_revision_exactly_while_a_writer_writes(
    store: LevelDBStore,
) -> None:
    states: dict[int, State] = {store.revision: model_state(set())}
    tokens: list[str] = [store.head(T1)]
    done = threading.Event()
    failures: list[BaseException] = []
    during: list[int] = []  # revisions read while the writer was still writing
    steps = history(7, 300)

    def write() -> None:
        try:
            for i, (live, changes) in enumerate(steps):
                states[store.revision + 1] = model_state(live)  # known before it is visible
                tokens.append(store.write(T1, changes))
                if i % 50 == 49:  # let the readers see this revision (threads run as they may)
                    deadline = time.monotonic() + 5
                    while store.revision not in during and time.monotonic() < deadline:
                        time.sleep(0.001)
        finally:
            done.set()

    def read(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not done.is_set():
                latest = store.reader(T1)
                assert_reads(latest, states[latest.revision])
                if not done.is_set():
                    during.append(latest.revision)
                old = store.reader(T1, rng.choice(tokens))
                assert_reads(old, states[old.revision])
        except BaseException as exc:
            failures.append(exc)
            done.set()

    threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    threads.append(threading.Thread(target=write))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[0]
    assert len(set(during)) > 3  # the readers really raced the writer
    assert uses_copy(store)


# -- warm-up after a restart ----------------------------------------------------------------


def test_a_warm_up_applies_the_writes_that_land_while_it_scans(tmp_path: Path) -> None:
    steps = history(11, 60)
    states: dict[int, State] = {}
    tokens: list[str] = []
    with LevelDBStore(tmp_path / "data", gc_interval=None) as first:
        for live, changes in steps[:20]:
            tokens.append(first.write(T1, changes))
            states[first.revision] = model_state(live)
    with LevelDBStore(tmp_path / "data", gc_interval=None) as store:
        resident = store._resident
        assert T1 not in resident.copies
        warm = resident.begin(T1)
        assert warm is not None
        for live, changes in steps[20:35]:  # before the scan: the scan sees them, filtered out
            tokens.append(store.write(T1, changes))
            states[store.revision] = model_state(live)
        copy = resident.scan(warm)
        for live, changes in steps[35:50]:  # after the scan: only the queue has them
            tokens.append(store.write(T1, changes))
            states[store.revision] = model_state(live)
        changed = [steps[i][0] != steps[i - 1][0] for i in range(20, 50)]
        assert len(warm.pending) == sum(changed) > 20  # every write that changed a tuple
        assert T1 not in resident.copies  # not published before finish
        assert resident.finish(warm, copy)
        assert uses_copy(store)
        for live, changes in steps[50:]:
            tokens.append(store.write(T1, changes))
            states[store.revision] = model_state(live)
        for token in tokens:
            reader = store.reader(T1, token)
            assert_reads(reader, states[reader.revision])


def test_the_first_read_after_a_restart_warms_the_tenant_in_the_background_racing_writes(
    tmp_path: Path,
) -> None:
    steps = history(13, 200)
    with LevelDBStore(tmp_path / "data", gc_interval=None) as first:
        for _, changes in steps[:100]:
            first.write(T1, changes)
        # Enough tuples elsewhere for the scan to take a while.
        for i in range(20):
            first.write(
                T1,
                Changes(
                    write_tuples=[Tuple.parse(f"doc:x{i}-{j}#viewer@user:u") for j in range(500)]
                ),
            )
    with LevelDBStore(tmp_path / "data", gc_interval=None) as store:
        states = {store.head(T1): model_state(steps[99][0])}
        assert T1 not in store._resident.copies
        assert_reads(store.reader(T1), states[store.head(T1)])  # LevelDB; queues a warm-up
        for live, changes in steps[100:]:
            states[store.write(T1, changes)] = model_state(live)
        assert store._resident.wait_idle(30)
        assert uses_copy(store)
        for token, expected in states.items():
            assert_reads(store.reader(T1, token), expected)


# -- the budget -----------------------------------------------------------------------------


def test_a_tenant_whose_copy_passes_the_budget_is_read_from_leveldb(tmp_path: Path) -> None:
    path = tmp_path / "data"
    tuples = sorted(ALL, key=str)
    with LevelDBStore(path, gc_interval=None, resident_tuples=20) as store:
        store.create_tenant("small")
        store.write("small", Changes(write_tuples=tuples[:5]))
        store.write(T1, Changes(write_tuples=tuples[:10]))
        assert uses_copy(store) and uses_copy(store, "small")
        assert store._resident.total == 15
        token = store.write(T1, Changes(write_tuples=tuples[10:20]))
        assert T1 not in store._resident.copies  # 25 > 20: dropped
        assert store._resident.total == 5
        assert uses_copy(store, "small")
        assert_reads(store.reader(T1), model_state(set(tuples[:20])))
        assert_reads(store.reader(T1, token), model_state(set(tuples[:20])))
        store.write(T1, Changes(delete_tuples=tuples[:15]))
        assert_reads(store.reader(T1), model_state(set(tuples[15:20])))
        assert store._resident.wait_idle(10)
        assert T1 not in store._resident.copies  # not warmed again until reopened
    with LevelDBStore(path, gc_interval=None, resident_tuples=4) as store:
        assert not store._resident.warm("small")  # 5 > 4
        assert not store._resident.warm(T1)
        assert not store._resident.copies
    with LevelDBStore(path, gc_interval=None, resident_tuples=5) as store:
        assert store._resident.warm(T1)
        assert not store._resident.warm("small")  # the room is taken
        assert_reads(store.reader("small"), model_state(set(tuples[:5])))
        assert_reads(store.reader(T1), model_state(set(tuples[15:20])))


def test_zero_turns_the_copies_off(tmp_path: Path) -> None:
    with LevelDBStore(tmp_path / "data", gc_interval=None, resident_tuples=0) as store:
        store.write(T1, Changes(write_tuples=ALL[:3]))
        assert not uses_copy(store)
        assert store._resident.wait_idle(1)
        assert not store._resident.copies
        assert_reads(store.reader(T1), model_state(set(ALL[:3])))
    with pytest.raises(ValueError, match="resident_tuples"):
        LevelDBStore(tmp_path / "other", resident_tuples=-1)


# -- big relations ----------------------------------------------------------------------------


def test_a_big_relation_is_read_from_leveldb_and_the_rest_of_its_entity_from_memory(
    store: LevelDBStore,
) -> None:
    store._resident.big_relation = 3
    viewers = [Tuple("doc", "1", "viewer", s.type, s.id, s.relation) for s in SUBJECTS]
    owner = Tuple("doc", "1", "owner", "user", "a", "")
    live = {*viewers, owner}
    token = store.write(T1, Changes(write_tuples=sorted(live)))
    entry = store.reader(T1)._entry("doc", "1")
    assert entry is not None
    _, relations, _, big, size, _ = entry
    assert big == ("viewer",) and size == 6 and relations == ("owner",)
    assert_reads(store.reader(T1), model_state(live))
    store.write(T1, Changes(delete_tuples=viewers[:4]))
    live -= set(viewers[:4])
    assert_reads(store.reader(T1), model_state(live))  # still read from LevelDB, now 1
    assert_reads(store.reader(T1, token), model_state({*viewers, owner}))
    store.write(T1, Changes(delete_tuples=[viewers[4], owner]))
    entry = store.reader(T1)._entry("doc", "1")
    assert entry is not None and entry[1:] == ((), (), (), 0, ())  # big forgotten with the last
    assert_reads(store.reader(T1), model_state(set()))


@pytest.mark.parametrize("size", [1, 8, 9, 40])
def test_membership_in_a_relation_of_many_subjects_is_exact_from_memory_and_from_leveldb(
    tmp_path: Path, size: int
) -> None:
    # Past a few subjects, membership is a bisection of the key bodies: every neighbour of a
    # stored subject in key order (a prefix, one byte more, another relation) must answer False.
    stored = [Subject("user", f"u{i:02}") for i in range(size)] + [Subject("group", "g", "member")]
    near = [
        Subject("user", "u"),
        Subject("user", "u0"),
        Subject("user", "u000"),
        Subject("user", f"u{size:02}"),
        Subject("user", "u\x00"),
        Subject("user", "u00", "member"),
        Subject("group", "g"),
        Subject("group", "g", "owner"),
        Subject("a", "u00"),
        Subject("zz", "u00"),
    ]
    tuples = [Tuple("doc", "1", "viewer", s.type, s.id, s.relation) for s in stored]
    for resident in (1_000_000, 0):
        store = LevelDBStore(tmp_path / f"r{resident}", gc_interval=None, resident_tuples=resident)
        try:
            store.write(T1, Changes(write_tuples=tuples))
            reader = store.reader(T1)
            assert (reader._entry("doc", "1") is not None) == bool(resident)
            found = reader.subject_set("doc", "1", "viewer")
            for s in stored:
                assert found.has(reader.subject_token(s)), s
            for s in near:
                assert found.has(reader.subject_token(s)) == (s in stored), s
            assert list(found.usersets) == [("group", "g", "member")]
            assert found.objects() == (("group", "g"), *((s.type, s.id) for s in stored[:-1]))
        finally:
            store.close()


# -- tombstones, tenants, closing --------------------------------------------------------------


def test_entities_emptied_in_bulk_are_forgotten_yet_old_readers_still_see_them(
    store: LevelDBStore,
) -> None:
    many = [Tuple("doc", f"d{i}", "viewer", "user", "a", "") for i in range(1100)]
    store.write(T1, Changes(write_tuples=many[:550]))
    before = store.write(T1, Changes(write_tuples=many[550:]))
    store.write(T1, Changes(delete_tuple_filters=[TupleFilter("doc")]))
    copy = store._resident.copies[T1]
    assert copy.tombstones == 0 and not copy.types["doc"]
    assert copy.complete_from == store.revision
    assert store._resident.total == 0
    old = store.reader(T1, before)
    assert old._entry("doc", "d5") is None  # older than the copy's start: LevelDB
    assert list(old.subject_set("doc", "d5", "viewer")) == [Subject("user", "a")]
    assert list(store.reader(T1).subject_set("doc", "d5", "viewer")) == []


def test_a_deleted_tenant_reads_empty_and_a_recreated_one_starts_its_own_copy(
    store: LevelDBStore,
) -> None:
    store.create_tenant("t2")
    store.write("t2", Changes(write_tuples=ALL[:5]))
    old = store.reader("t2")
    assert uses_copy(store, "t2")
    store.delete_tenant("t2")
    assert "t2" not in store._resident.copies
    assert_reads(old, model_state(set()))
    store.create_tenant("t2")
    assert_reads(store.reader("t2"), model_state(set()))
    store.write("t2", Changes(write_tuples=ALL[5:7]))
    assert uses_copy(store, "t2")
    assert_reads(store.reader("t2"), model_state(set(ALL[5:7])))
    assert_reads(old, model_state(set()))


def test_reads_after_close_raise_store_closed(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path / "data", gc_interval=None)
    store.write(T1, Changes(write_tuples=ALL[:3]))
    reader = store.reader(T1)
    assert uses_copy(store)
    store.close()
    with pytest.raises(StoreClosed):
        reader.subject_set("doc", "1", "viewer")
    with pytest.raises(StoreClosed):
        reader.relations("doc", "1", limit=64)
    with pytest.raises(StoreClosed):
        reader.has_tuple(ALL[0])


def test_a_transaction_reads_and_writes_through_the_copy(store: LevelDBStore) -> None:
    t = Tuple("doc", "1", "owner", "user", "a", "")
    store.write(T1, Changes(write_tuples=[t]))

    def move(reader: LevelDBReader) -> Changes:
        assert reader._entry("doc", "1") is not None
        assert reader.has_tuple(t)
        return Changes(write_tuples=[t._replace(entity_id="2")], delete_tuples=[t])

    store.transact(T1, move)
    assert_reads(store.reader(T1), model_state({t._replace(entity_id="2")}))


# -- configuration ----------------------------------------------------------------------------


def test_the_budget_is_set_by_flag_environment_or_file_and_reaches_the_store(
    tmp_path: Path,
) -> None:
    assert load_config(environ={"STONETOWN_RESIDENT_TUPLES": "7"}).resident_tuples == 7
    result = CliRunner().invoke(main, ["serve", "--print-config", "--resident-tuples", "0"], env={})
    assert result.exit_code == 0, result.output
    assert "resident_tuples: 0\n" in result.output
    with pytest.raises(ConfigError, match="resident_tuples must not be negative"):
        Config(resident_tuples=-1)
    store = open_store(Config(data_dir=str(tmp_path / "data"), resident_tuples=5))
    try:
        assert isinstance(store, LevelDBStore) and store._resident.budget == 5
    finally:
        store.close()
