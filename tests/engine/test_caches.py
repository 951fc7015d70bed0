"""Bounded caches: eviction never changes an answer, and busy generations stay cached."""

from __future__ import annotations

import random

from engine.engine import Engine, EngineConfig, Generations
from engine.types import Entity
from storage.base import Store, Subject
from tests.engine.support import TENANT, load, write

SCHEMA = """
entity user {}
entity group { relation member @user @group#member }
entity folder {
    relation parent @folder
    relation viewer @user @group#member
    permission view = viewer or parent.view
}
"""


def dataset(seed: int) -> list[str]:
    rng = random.Random(seed)
    tuples = [f"group:{g}#member@user:{rng.randrange(20)}" for g in range(10)]
    tuples += [
        f"group:{rng.randrange(10)}#member@group:{rng.randrange(10)}#member" for _ in range(8)
    ]
    tuples += [f"folder:{f}#parent@folder:{rng.randrange(30)}" for f in range(30)]
    tuples += [
        f"folder:{rng.randrange(30)}#viewer@group:{rng.randrange(10)}#member" for _ in range(10)
    ]
    return tuples


def views(engine: Engine, folder: int, user: int) -> bool:
    return engine.check(
        TENANT, Entity("folder", str(folder)), "view", Subject("user", str(user))
    ).allowed


def test_tiny_caches_give_the_same_answers_as_roomy_ones(store: Store) -> None:
    roomy = load(store, SCHEMA, dataset(1))
    config = EngineConfig(check_cache_entries=3, read_cache_entries=3, cache_generations=1)
    tiny = Engine(store, config)
    questions = [(f, u) for f in range(30) for u in range(20)]
    expected = [views(roomy, f, u) for f, u in questions]
    assert any(expected) and not all(expected)
    for _ in range(2):  # the second round runs on whatever the tiny caches kept
        assert [views(tiny, f, u) for f, u in questions] == expected
    assert not views(tiny, 0, 99)
    write(store, ["folder:0#viewer@user:99"])  # a new revision: a new generation
    assert views(tiny, 0, 99)


def test_generations_keep_the_most_recently_used() -> None:
    gens = Generations(keep=2, entries=100)
    a, b = gens.get("a"), gens.get("b")
    a["x"] = b["x"] = 1
    assert gens.get("a") is a  # a is now the most recent
    gens.get("c")
    assert gens.get("a") is a
    assert gens.get("b") is not b  # b was evicted: a fresh, empty dict


def test_generations_hold_about_entries_in_total() -> None:
    gens = Generations(keep=10, entries=5)
    first = gens.get(1)
    first.update({i: i for i in range(4)})
    second = gens.get(2)
    second.update({i: i for i in range(4)})
    gens.get(3)  # 8 entries held > 5: the least recently used generation goes
    assert gens.get(1) is not first
    crowded = gens.get(4)
    crowded.update({i: i for i in range(6)})
    assert gens.get(4) == {}  # grown past the bound alone: emptied when next used
