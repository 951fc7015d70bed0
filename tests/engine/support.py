"""Helpers of the engine tests: a small schema, loading it and data straight into a store, and
asking a check in the string forms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.engine import Engine
from engine.types import Entity, RequestOptions, parse_subject
from storage.base import Attribute, Changes, Store, Tuple

TENANT = "t1"  # every store starts with this tenant

#: Users, nested groups, and documents with an owner and viewers.
BASIC = """
entity user {}

entity group {
    relation member @user @group#member
}

entity doc {
    relation owner @user
    relation viewer @user @group#member
    permission edit = owner
    permission view = viewer or edit
}
"""


def write(store: Store, tuples: Sequence[str] = (), attributes: Sequence[Attribute] = ()) -> str:
    """Write tuple strings and attributes (in batches the store accepts); the new token."""
    parsed = [Tuple.parse(t) for t in tuples]
    token = store.head(TENANT)
    for start in range(0, max(len(parsed), 1), store.max_write_items):
        token = store.write(
            TENANT,
            Changes(
                write_tuples=parsed[start : start + store.max_write_items],
                write_attributes=list(attributes) if start == 0 else [],
            ),
        )
    return token


def load(
    store: Store,
    schema: str,
    tuples: Sequence[str] = (),
    attributes: Sequence[Attribute] = (),
) -> Engine:
    """Write ``schema`` and data straight to the store (the store validates nothing, so tuples
    the schema does not admit land as they are) and return a fresh engine over it."""
    store.write_schema(TENANT, schema)
    write(store, tuples, attributes)
    return Engine(store)


def check(engine: Engine, entity: str, permission: str, subject: str, **options: Any) -> bool:
    """``engine.check`` of ``entity#permission@subject`` in TENANT, with the `RequestOptions`
    fields given as keywords."""
    result = engine.check(
        TENANT, Entity.parse(entity), permission, parse_subject(subject), RequestOptions(**options)
    )
    return result.allowed


def nested(levels: int, leaf: str) -> str:
    """``leaf`` under ``levels`` alternating set operations that all go on to it (`no` never
    holds, `yes` always does): each level is one more closure at check time."""
    expr = leaf
    for level in range(levels):
        expr = f"(no or {expr})" if level % 2 else f"(yes and {expr})"
    return expr


def deep_folders(levels: int, width: int = 0) -> str:
    """``folder#view``: its viewers, or the parent's view found ``levels`` set operations deep,
    beside ``width`` more relations in the union (they hold nothing; each is one more closure)."""
    wide = "".join(f" or w{i}" for i in range(width))
    relations = "\n".join(f"relation w{i} @user" for i in range(width))
    return f"""
    entity user {{}}
    entity folder {{
        relation parent @folder
        relation viewer @user
        relation yes @user
        relation no @user
        {relations}
        permission view = {nested(levels, "parent.view")} or viewer{wide}
    }}
    """
