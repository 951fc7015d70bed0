"""Hypothesis strategies for request bodies close to the usual shape, shared by the tests of the
plain (model-free) readings of check and write bodies: whatever a plain reading accepts must
read as the models read it."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: Names and ids: mostly ones that match their patterns, some that miss them narrowly.
NAMES = st.sampled_from(
    ["doc", "user", "view", "viewer", "_x", "a" * 64] * 8
    + ["a" * 65, "1doc", "", "...", "doc\n", "é", "doc\nuser"]
)
IDS = st.sampled_from(
    ["1", "u-1", "a@b.c:d+e", "*", "x" * 128] * 8
    + ["x" * 129, "**", "", "a\n", "\x00", "\ud800", "1\n2"]
)
RELATIONS = st.sampled_from(["", "...", "member"] * 4 + ["....", "1x", "a" * 65])
TEXT = st.one_of(NAMES, IDS, st.text(max_size=6))
VALUE = st.one_of(TEXT, st.none(), st.integers(), st.booleans(), st.just([]), st.just({}))


def bend(
    obj: dict[str, Any], data: st.DataObject, *, extra: list[str], odds: int
) -> dict[str, Any]:
    """Mostly ``obj``; one time in about ``odds / 3`` with a key dropped, one of ``extra``
    added, or a value of another type."""
    choice = data.draw(st.integers(0, odds))
    out = dict(obj)
    if choice == 0 and out:
        out.pop(data.draw(st.sampled_from(sorted(out))))
    elif choice == 1:
        out[data.draw(st.sampled_from(extra))] = data.draw(VALUE)
    elif choice == 2 and out:
        out[data.draw(st.sampled_from(sorted(out)))] = data.draw(VALUE)
    return out
