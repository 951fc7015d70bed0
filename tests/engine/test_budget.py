"""``Engine.check(max_dispatches=)``: a check bigger than its budget gives up with OverBudget
(never an answer), and asking again without a budget gets the right one."""

from __future__ import annotations

import pytest

from engine.errors import OverBudget
from engine.types import Entity
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
