"""Big writes on PostgreSQL: the insert that counts the tuples it created, and the lookup of the
tuples that were live already when the count falls short.

Every write goes to a PostgreSQL store and to the in-memory reference alike; after each, both
must hold the same tuples at every revision written so far and the same change log (each
write's changes, in the same order), and the database must hold exactly one live row per live
tuple, created at the revision that created it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import psycopg
import pytest

from dsl.schema import AttributeType
from storage.base import (
    DEFAULT_TENANT,
    Attribute,
    Changes,
    Operation,
    Store,
    Tuple,
    TupleFilter,
)
from storage.memory import MemoryStore
from storage.postgres import PostgresStore
from storage.postgres.codec import enc
from storage.postgres.migrations import LIVE

TENANT = DEFAULT_TENANT
BIG = 5_000


class Twins:
    """A PostgreSQL store and the reference, written alike and compared after every write."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pg = PostgresStore(url, gc_interval=None, max_write_items=BIG)
        self.ref = MemoryStore(max_write_items=BIG)
        self.tokens: list[tuple[str, str]] = []  # (PostgreSQL's, the reference's), per write

    def close(self) -> None:
        self.pg.close()
        self.ref.close()

    def write(self, changes: Changes) -> None:
        self.tokens.append((self.pg.write(TENANT, changes), self.ref.write(TENANT, changes)))
        self.check()

    def check(self) -> None:
        for pg_token, ref_token in self.tokens:
            assert _tuples(self.pg, pg_token) == _tuples(self.ref, ref_token)
        pg_log = [c.changes for c in self.pg.changes(TENANT, "", limit=1_000)]
        ref_log = [c.changes for c in self.ref.changes(TENANT, "", limit=1_000)]
        assert pg_log == ref_log
        self._check_rows()

    def _check_rows(self) -> None:
        """One live row per live tuple, created at the revision of the write that created it
        (the last create of that tuple in the change log)."""
        created: dict[Tuple, int] = {}
        for change_set in self.pg.changes(TENANT, "", limit=1_000):
            for change in change_set.changes:
                if isinstance(change.item, Tuple) and change.operation is Operation.CREATE:
                    created[change.item] = int(change_set.revision)
        live = _tuples(self.pg, "")
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                "SELECT entity_type, entity_id, relation, subject_type, subject_id,"
                " subject_relation, created FROM stonetown_tuples WHERE deleted = %s",
                (LIVE,),
                binary=True,
            ).fetchall()
        found = [(tuple(bytes(c) for c in row[:6]), row[6]) for row in rows]
        assert len(found) == len(live)
        assert dict(found) == {_columns(t): created[t] for t in live}


def _tuples(store: Store, token: str) -> list[Tuple]:
    return sorted(store.reader(TENANT, token).iter_tuples(TupleFilter()))


def _columns(t: Tuple) -> tuple[bytes, ...]:
    return tuple(enc(part) for part in t)


@pytest.fixture
def twins(postgres_empty_url: str) -> Iterator[Twins]:
    pair = Twins(postgres_empty_url)
    yield pair
    pair.close()


def docs(start: int, count: int, relation: str = "viewer") -> list[Tuple]:
    return [
        Tuple("doc", str(i), relation, "user", f"u{i % 97}") for i in range(start, start + count)
    ]


def test_a_big_write_with_repeats_creates_each_tuple_once(twins: Twins) -> None:
    tuples = docs(0, 4_000)
    repeated = tuples + tuples[::7]  # a thousand repeats, later in the same write
    random.Random(1).shuffle(repeated)
    twins.write(Changes(write_tuples=repeated))
    (created,) = twins.pg.changes(TENANT, "", limit=10)
    assert [c.item for c in created.changes] == sorted(tuples)


def test_rewriting_live_tuples_creates_only_the_new_ones(twins: Twins) -> None:
    first = docs(0, 3_000)
    twins.write(Changes(write_tuples=first))
    # Half already live, in another order, beside 1,500 new ones: the count falls short.
    again = first[::2] + docs(3_000, 1_500)
    random.Random(2).shuffle(again)
    twins.write(Changes(write_tuples=again))
    second = twins.pg.changes(TENANT, "", limit=10)[1]
    assert [c.item for c in second.changes] == sorted(docs(3_000, 1_500))
    # All of them live already: the write changes nothing, and logs nothing.
    twins.write(Changes(write_tuples=first))
    assert len(twins.pg.changes(TENANT, "", limit=10)) == 2


def test_deletes_and_writes_in_one_big_write(twins: Twins) -> None:
    twins.write(Changes(write_tuples=docs(0, 3_000) + docs(0, 500, "owner")))
    twins.write(
        Changes(
            # written and deleted in one write: the write wins
            write_tuples=docs(1_000, 1_000) + docs(5_000, 1_000),
            delete_tuples=docs(0, 2_000) + docs(9_000, 10),  # ten never written
            delete_tuple_filters=[TupleFilter(relation="owner", entity_ids=("1", "2", "3"))],
        )
    )
    # Deleted, then created again: a new version from this revision on.
    twins.write(Changes(write_tuples=docs(0, 1_000), delete_tuples=docs(5_000, 500)))


def test_a_big_write_beside_attributes(twins: Twins) -> None:
    attributes = [
        Attribute("doc", str(i), "public", AttributeType.BOOLEAN, True) for i in range(50)
    ]
    twins.write(Changes(write_tuples=docs(0, 2_000), write_attributes=attributes))
    twins.write(Changes(write_tuples=docs(1_000, 2_000), write_attributes=attributes[:10]))


#: Ids that might trip an encoding, a separator or a sort: NUL and control characters, the
#: tuple form's separators, lone surrogates, characters beyond the BMP, and the empty string.
ODD_IDS = [
    "\x00",
    "a\x00b",
    "\x00\x00",
    "\x01",
    "\x7f",
    "#",
    "@",
    ":",
    "a#b@c:d",
    "...",
    "\\",
    "'",
    '"',
    "%s",
    "%b",
    "{}",
    "é",
    "e\u0301",
    "\ud800",
    "\udfff",
    "\ue000",
    "\uffff",
    "😀",
    "\U0010ffff",
    " ",
    "\t\n",
    "x" * 300,
]


def test_odd_ids_round_trip_in_a_big_write(twins: Twins) -> None:
    rng = random.Random(3)
    tuples = {
        Tuple(rng.choice(["doc", "é", "\x00t"]), eid, rel, "user", sid, srel)
        for eid in ODD_IDS
        for sid in rng.sample(ODD_IDS, 12)
        for rel, srel in (("viewer", ""), ("member", "\x00"), ("m", "#x"))
    }
    batch = list(tuples)
    rng.shuffle(batch)
    twins.write(Changes(write_tuples=batch))
    (created,) = twins.pg.changes(TENANT, "", limit=10)
    assert [c.item for c in created.changes] == sorted(tuples)  # code-point order
    # Half of them again beside the other half deleted, and a few new.
    rng.shuffle(batch)
    half = len(batch) // 2
    fresh = [Tuple("doc", eid, "editor", "user", "\x00") for eid in ODD_IDS]
    twins.write(Changes(write_tuples=batch[:half] + fresh, delete_tuples=batch[half:]))
    twins.write(Changes(write_tuples=batch))
