"""The engine's fast paths for a busy server: ``Engine.check(max_dispatches=)`` gives up with
OverBudget on a check bigger than its budget (never with an answer), and a repeated check is
answered from the results cache by `result_key` without an evaluation."""

from __future__ import annotations

import pytest

from engine.check import Evaluation
from engine.errors import OverBudget
from engine.keys import read_key, read_prefix, result_key, subject_key
from engine.types import EMPTY_CONTEXT, Entity
from storage.base import Store, Subject
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
