"""The engine's fast paths for a busy server: ``Engine.check(max_dispatches=)`` gives up with
OverBudget on a check bigger than its budget (never with an answer), and a repeated check is
answered from the results cache by `result_key` without an evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.check import Evaluation
from engine.errors import OverBudget
from engine.keys import read_key, read_prefix, result_key, subject_key
from engine.reads import READ_ONCE
from engine.types import EMPTY_CONTEXT, Entity
from storage.base import Store, Subject
from storage.leveldb import LevelDBStore
from tests.engine.support import BASIC, load

# group:g0 <- g1 <- ... <- g7 <- ann; doc:1 viewer group:g0#member.
CHAIN = [f"group:g{i}#member@group:g{i + 1}#member" for i in range(7)] + [
    "group:g7#member@user:ann",
    "doc:1#viewer@group:g0#member",
    "doc:2#owner@user:ann",
]


def test_a_check_over_its_budget_gives_up_and_is_answered_without_one(store: Store) -> None:
    engine = load(store, BASIC, CHAIN)
    ann = Subject("user", "ann")
    with pytest.raises(OverBudget, match="more than 3 dispatches"):
        engine.check("t1", Entity("doc", "1"), "view", ann, max_dispatches=3)
    assert engine.check("t1", Entity("doc", "1"), "view", ann).allowed
    # Now cached: the same question fits any budget, even none at all.
    assert engine.check("t1", Entity("doc", "1"), "view", ann, max_dispatches=0).allowed


@pytest.mark.parametrize("budget", [0, 1, 2, 3, 5, 8, 13, 1000], ids=lambda b: f"budget{b}")
def test_giving_up_never_changes_an_answer(store: Store, budget: int) -> None:
    """Whatever budget a first attempt had, the answers after it are the unbudgeted ones."""
    questions = [
        (Entity("doc", "1"), "view", Subject("user", "ann"), True),
        (Entity("doc", "1"), "view", Subject("user", "bob"), False),
        (Entity("doc", "2"), "view", Subject("user", "ann"), True),
        (Entity("doc", "2"), "edit", Subject("user", "bob"), False),
        (Entity("doc", "1"), "view", Subject("group", "g3", "member"), True),
    ]
    engine = load(store, BASIC, CHAIN)
    for entity, permission, subject, expected in questions:
        try:
            answer = engine.check("t1", entity, permission, subject, max_dispatches=budget)
        except OverBudget:
            answer = engine.check("t1", entity, permission, subject)
        assert answer.allowed is expected, (entity, permission, subject)


@pytest.mark.parametrize(
    "subject",
    [Subject("user", "ann"), Subject("group", "g3", "member"), Subject("user", "a:b#c")],
    ids=["user", "userset", "odd-id"],
)
def test_result_key_is_the_key_dispatch_caches_under(store: Store, subject: Subject) -> None:
    """The engine answers repeated checks from the results cache by `result_key` without
    building an evaluation: the key must be exactly the one `dispatch` stores."""
    engine = load(store, BASIC, CHAIN)
    results: dict[str, bool] = {}
    ev = Evaluation(engine.compiled("t1").program, store.reader("t1"), EMPTY_CONTEXT, {}, results)
    answer = ev.dispatch("doc", "1", "view", subject, 50)
    assert results[result_key("doc", "1", "view", subject_key(subject))] is answer


@pytest.mark.parametrize("eid", ["1", "a:b#c", "x\x00y", ""], ids=["plain", "odd", "nul", "empty"])
def test_a_relation_closure_reads_under_the_key_the_reads_cache_fills(eid: str) -> None:
    """A relation's closure looks its reads up by `read_prefix` plus the id (built once per
    schema version); the reads cache stores them under `read_key`: the two must agree."""
    assert read_prefix("doc", "viewer") + eid == read_key("doc", "viewer", eid)


def test_reads_from_memory_are_kept_from_their_second_read(tmp_path: Path) -> None:
    """A reader in memory is read one relation at a time, and a set it answers is kept in the
    reads cache only once it is read again (a mark first); a reader that scans LevelDB fills
    every relation of the entity at the first read. Either reader takes the other's cache as it
    finds it, mark included, and answers alike (a warm-up may finish between two readers at one
    revision)."""
    ann = Subject("user", "ann")
    owner = read_key("doc", "owner", "2")
    viewer = read_key("doc", "viewer", "2")
    answers = []
    for resident in (1_000_000, 0):
        store = LevelDBStore(tmp_path / f"r{resident}", gc_interval=None, resident_tuples=resident)
        try:
            engine = load(store, BASIC, CHAIN)
            program = engine.compiled("t1").program
            reader = store.reader("t1")
            assert reader.reads_in_memory is bool(resident)
            reads: dict[Any, Any] = {}
            answers.append(_view(program, reader, reads))
            if resident:
                assert reads[owner] is READ_ONCE
                assert not list(reads[viewer])  # no tuples: one shared empty set, kept at once
                answers.append(_view(program, reader, reads))
                assert list(reads[owner]) == [ann] and not list(reads[viewer])
                # A cache marked by a reader in memory, taken by one that scans LevelDB.
                marked = {viewer: READ_ONCE, owner: READ_ONCE}
                with LevelDBStore(tmp_path / "scan", gc_interval=None, resident_tuples=0) as scan:
                    load(scan, BASIC, CHAIN)
                    answers.append(_view(program, scan.reader("t1"), marked))
                assert list(marked[owner]) == [ann]
            else:
                assert list(reads[owner]) == [ann] and not list(reads[viewer])
        finally:
            store.close()
    assert answers == [True] * 4


def _view(program: Any, reader: Any, reads: dict[Any, Any]) -> bool:
    """Is user:ann allowed doc:2#view, evaluated afresh on ``reads``?"""
    ev = Evaluation(program, reader, EMPTY_CONTEXT, reads, {})
    return ev.dispatch("doc", "2", "view", Subject("user", "ann"), 50)
