"""Checks from many threads while writes land: every answer is the one its snap token names."""

from __future__ import annotations

import random
import threading

from engine.engine import Engine
from engine.types import Entity, RequestOptions
from storage.base import Store, Subject
from tests.engine.support import TENANT, load, write

SCHEMA = """
entity user {}
entity group { relation member @user @group#member }
entity doc { relation viewer @user @group#member  permission view = viewer }
"""


def test_concurrent_checks_answer_at_their_snapshot_while_writes_land(store: Store) -> None:
    engine: Engine = load(store, SCHEMA, ["doc:1#viewer@group:g#member"])
    tokens: list[str] = []
    failures: list[str] = []
    done = threading.Event()

    def writer() -> None:
        for i in range(40):  # user i joins at tokens[i]
            tokens.append(write(store, [f"group:g#member@user:{i}"]))
        done.set()

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        while not done.is_set() or rng.random() < 0.999:
            if not tokens:
                continue
            at = rng.randrange(len(tokens))
            user = rng.randrange(40)
            got = engine.check(
                TENANT,
                Entity("doc", "1"),
                "view",
                Subject("user", str(user)),
                options=RequestOptions(snap_token=tokens[at]),
            ).allowed
            if got != (user <= at):
                failures.append(f"user {user} at token {at}: {got}")
            if done.is_set() and len(failures) > 0:
                return

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert len(tokens) == 40
    assert not failures, failures[:5]
