"""Strapi connect/disconnect/set ordering (engine/relations/ordering.py): the worked examples, the
error texts, and properties against naive simulations."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.relations.ordering import (
    CIRCULAR_REFERENCE,
    ConnectItem,
    OrderingError,
    Position,
    apply_partial,
    apply_set,
    to_one,
)

Kind = Literal["before", "after", "start", "end"]


def ref(n: int | str) -> str:
    return f"category:{n}"


def position(kind: Kind, anchor: str | None = None) -> Position:
    shown = {kind: anchor if anchor is not None else True}
    return Position(kind, anchor, json.dumps(shown, separators=(",", ":")))


def items(*specs: str) -> list[ConnectItem]:
    """Connect items from short specs: "9" (no position), "8 end", "10 start", "6 after 1"."""
    out = []
    for index, spec in enumerate(specs):
        match spec.split():
            case [n]:
                out.append(ConnectItem(ref(n), None, index))
            case [n, "start" | "end" as kind]:
                out.append(ConnectItem(ref(n), position(kind), index))
            case [n, "before" | "after" as kind, anchor]:
                out.append(ConnectItem(ref(n), position(kind, ref(anchor)), index))
            case _:
                raise AssertionError(spec)
    return out


def refs(*ns: int) -> list[str]:
    return [ref(n) for n in ns]


# (current, connect specs, disconnect, strict, expected)
ORDERS = [
    (
        [1, 2],
        ["6 after 1", "7 before 2", "8 end", "9", "10 start"],
        [],
        True,
        [10, 1, 6, 7, 2, 8, 9],
    ),
    ([], ["5 before 1", "1 before 2", "2 end", "3 after 1"], [], True, [5, 1, 3, 2]),
    ([], ["5 before 1", "7 end", "1 end"], [], True, [5, 1, 7]),
    ([1, 2, 3], ["5 before 1", "1 before 2", "2 end"], [], True, [5, 1, 3, 2]),
    ([1, 2, 3], ["2"], [], True, [1, 3, 2]),
    ([1, 2, 3], ["3", "2", "1"], [], True, [3, 2, 1]),
    ([1], ["2 after 3"], [], False, [1, 2]),
    ([1, 2, 3], ["4 before 5"], [], False, [1, 2, 3, 4]),
    ([], ["5 before 1", "1 after 9"], [], False, [5, 1]),
    ([1, 2], ["3"], [1, 3], True, [2, 3]),
    ([1, 2, 3], ["5 before 2"], [2], True, [1, 5, 3]),
    ([1, 2, 3], ["5 after 2"], [2], True, [1, 5, 3]),
    ([1, 2], ["5 before 1"], [1], True, [5, 2]),
    ([1, 2], ["5 after 2"], [2], True, [1, 5]),
    ([1, 2], ["5 after 1"], [1, 2], True, [5]),
    ([1, 2, 3, 4], ["5 before 3"], [2, 3], True, [1, 5, 4]),
    ([1, 2, 3], ["5 before 2", "6 before 2"], [2], True, [1, 5, 6, 3]),
    ([1, 2, 3], ["5 after 2", "6 after 2"], [2], True, [1, 6, 5, 3]),
    ([1, 2, 3], ["2 end", "5 before 2"], [2], True, [1, 3, 5, 2]),
    ([1], ["2 after 3"], [3], False, [1, 2]),
    ([1, 2, 3], [], [2], True, [1, 3]),
    ([1, 2, 3], [], [2, 2], True, [1, 3]),
    ([1, 2], [], [7], True, [1, 2]),
    ([1, 2], [], [], True, [1, 2]),
    ([], ["1", "2"], [], True, [1, 2]),
    ([1, 2, 3], ["3 start"], [], True, [3, 1, 2]),
    ([1], ["2 start", "3 start"], [], True, [3, 2, 1]),
    ([1, 2], ["5 after 1", "6 after 1"], [], True, [1, 6, 5, 2]),
    ([1, 2, 3, 4], ["4 after 1"], [], True, [1, 4, 2, 3]),
    ([1, 2, 3], ["1 before 3"], [], True, [2, 1, 3]),
    ([1, 2], ["1 after 3", "3 start"], [], True, [3, 1, 2]),
    ([1], ["2 end", "3 before 2"], [], True, [1, 3, 2]),
    ([1], ["2 after 1", "1 after 2"], [], True, [2, 1]),
]
ORDER_IDS = [
    "case23-docs-combined-example",
    "anchor-first-recursion-on-empty-list",
    "later-anchor-processed-before-earlier-item",
    "case25-existing-anchor-used-where-it-sits",
    "case27-reconnect-moves-to-end",
    "case27-reconnect-all-reverses",
    "case29-non-strict-missing-anchor-appends",
    "non-strict-unknown-anchor-appends",
    "non-strict-missing-anchor-deep-in-chain",
    "case32-connect-wins-over-disconnect",
    "before-disconnected-anchor-lands-in-its-place",
    "after-disconnected-anchor-lands-in-its-place",
    "before-disconnected-first-anchor-goes-to-front",
    "after-disconnected-last-anchor-goes-to-back",
    "disconnected-anchor-with-no-survivors",
    "disconnected-anchor-next-to-another-disconnected",
    "two-before-one-disconnected-anchor-keep-array-order",
    "two-after-one-disconnected-anchor-stack-like-a-present-one",
    "anchor-both-connected-and-disconnected-stays",
    "non-strict-disconnected-unlinked-anchor-appends",
    "disconnect-only",
    "repeated-disconnect-merged",
    "case34-disconnect-unlinked-is-no-op",
    "empty-request-is-no-op",
    "connect-onto-empty-list",
    "start-moves-existing-to-front",
    "two-starts-last-one-first",
    "two-after-same-anchor-last-one-nearest",
    "after-moves-existing",
    "before-moves-existing",
    "existing-item-anchored-on-later-new-item",
    "anchor-on-already-placed-new-item",
    "mutual-anchors-with-one-linked-resolve-in-turn",
]


@pytest.mark.parametrize(
    ("current", "connect", "disconnect", "strict", "expected"), ORDERS, ids=ORDER_IDS
)
def test_partial_update_gives_strapi_order(current, connect, disconnect, strict, expected):
    before = refs(*current)
    current_refs = list(before)
    result = apply_partial(current_refs, items(*connect), refs(*disconnect), strict=strict)
    assert result == refs(*expected)
    assert current_refs == before


ALREADY = (
    "The relation with id {} is already connected. You cannot connect the same relation twice."
)
MISSING = (
    "There was a problem connecting relation with id {} at position {}. "
    "The relation with id {} needs to be connected first."
)


def missing(n: int, kind: str, anchor: int) -> str:
    shown = json.dumps({kind: ref(anchor)}, separators=(",", ":"))
    return MISSING.format(ref(n), shown, ref(anchor))


# (current, connect specs, disconnect, strict, message, index)
ERRORS = [
    ([1], ["2 after 3"], [], True, missing(2, "after", 3), 0),
    ([1, 2, 3], ["4 before 5"], [], True, missing(4, "before", 5), 0),
    ([], ["5 before 1", "1 after 9"], [], True, missing(1, "after", 9), 1),
    ([1], ["2 after 3"], [3], True, missing(2, "after", 3), 0),
    ([], ["2 after 1", "3 after 1", "1 after 3"], [], True, CIRCULAR_REFERENCE, 1),
    ([], ["2 after 1", "3 after 1", "1 after 3"], [], False, CIRCULAR_REFERENCE, 1),
    ([], ["1 before 2", "2 after 1"], [], True, CIRCULAR_REFERENCE, 1),
    ([], ["1 after 1"], [], True, CIRCULAR_REFERENCE, 0),
    ([1], ["1 before 1"], [], False, CIRCULAR_REFERENCE, 0),
    ([], ["1 end", "1 start"], [], True, ALREADY.format(ref(1)), 1),
    ([], ["1", "1"], [], True, ALREADY.format(ref(1)), 1),
    ([5], ["1 end", "2", "1 start", "1"], [], True, ALREADY.format(ref(1)), 2),
    ([], ["2 after 9", "2"], [], True, ALREADY.format(ref(2)), 1),
    ([], ["2 after 1", "1 after 2", "2"], [], True, ALREADY.format(ref(2)), 2),
]
ERROR_IDS = [
    "case28-strict-missing-anchor",
    "strict-missing-before-anchor",
    "strict-missing-anchor-deep-in-chain",
    "strict-disconnected-unlinked-anchor",
    "case30-circular",
    "circular-even-when-not-strict",
    "two-item-cycle",
    "self-anchor-unlinked",
    "self-anchor-linked",
    "case31-same-ref-twice-with-positions",
    "case31-exact-duplicates-also-refused",
    "third-occurrence-reported-at-first-repeat",
    "duplicate-checked-before-anchors",
    "duplicate-checked-before-cycles",
]


@pytest.mark.parametrize(
    ("current", "connect", "disconnect", "strict", "message", "index"), ERRORS, ids=ERROR_IDS
)
def test_unusable_connect_array_is_refused(current, connect, disconnect, strict, message, index):
    with pytest.raises(OrderingError) as caught:
        apply_partial(refs(*current), items(*connect), refs(*disconnect), strict=strict)
    assert caught.value.message == message
    assert str(caught.value) == message
    assert caught.value.index == index


def test_missing_anchor_message_quotes_position_as_sent():
    sent = '{"after":"category:3","note":1}'
    item = ConnectItem(ref(2), Position("after", ref(3), sent), 4)
    with pytest.raises(OrderingError) as caught:
        apply_partial([ref(1)], [item], [])
    assert caught.value.message == MISSING.format(ref(2), sent, ref(3))
    assert caught.value.index == 4


def test_long_anchor_chain_does_not_hit_recursion_limit():
    n = 3000
    connect = [ConnectItem(ref(k), position("before", ref(k + 1)), k) for k in range(n - 1)] + [
        ConnectItem(ref(n - 1), position("end"), n - 1)
    ]
    assert apply_partial([], connect, []) == refs(*range(n))


@pytest.mark.parametrize(
    ("kind", "anchor"),
    [("before", None), ("after", None), ("start", "category:1"), ("end", "category:1")],
    ids=["before-needs-anchor", "after-needs-anchor", "start-takes-none", "end-takes-none"],
)
def test_position_anchor_must_match_kind(kind, anchor):
    with pytest.raises(ValueError, match="anchor"):
        Position(kind, anchor, "{}")


@pytest.mark.parametrize(
    ("given", "expected"),
    [([3, 1], [3, 1]), ([3, 1, 3], [3, 1]), ([], []), ([2, 2, 1, 2], [2, 1])],
    ids=["in-order", "case36-repeat-keeps-first", "empty-clears", "many-repeats"],
)
def test_set_keeps_first_occurrence(given, expected):
    assert apply_set(refs(*given)) == refs(*expected)


# (current, connect specs, disconnect, expected); no positions: the caller drops them on to-one
TO_ONE = [
    ([7], ["1", "2"], [], [2]),
    ([7], ["1"], [], [1]),
    ([7], [], [7], []),
    ([7], [], [9], [7]),
    ([7], ["7"], [], [7]),
    ([7], ["1"], [7], [1]),
    ([], [], [], []),
]
TO_ONE_IDS = [
    "case37-connect-two-last-wins",
    "connect-replaces-current",
    "disconnect-current-empties",
    "disconnect-other-keeps-current",
    "reconnect-current-keeps-it",
    "replace-with-explicit-disconnect",
    "empty-stays-empty",
]


@pytest.mark.parametrize(("current", "connect", "disconnect", "expected"), TO_ONE, ids=TO_ONE_IDS)
def test_to_one_keeps_only_the_last(current, connect, disconnect, expected):
    final = apply_partial(refs(*current), items(*connect), refs(*disconnect))
    assert to_one(final) == refs(*expected)


def test_to_one_set_keeps_last_item():
    assert to_one(apply_set(refs(1, 2))) == refs(2)
    assert to_one([]) == []


# --- properties ---------------------------------------------------------------------------------

POOL = [ref(n) for n in range(12)]
unique_refs = st.lists(st.sampled_from(POOL), unique=True, max_size=8)


@st.composite
def anchorless_requests(draw):
    current = draw(unique_refs)
    connected = draw(unique_refs)
    kinds = draw(
        st.lists(
            st.sampled_from(["start", "end", None]),
            min_size=len(connected),
            max_size=len(connected),
        )
    )
    connect = [
        ConnectItem(r, None if kind is None else position(kind), i)
        for i, (r, kind) in enumerate(zip(connected, kinds, strict=True))
    ]
    disconnect = draw(st.lists(st.sampled_from(POOL), max_size=6))
    return current, connect, disconnect


def naive(current, connect, disconnect):
    kept = set(disconnect) - {item.ref for item in connect}
    order = [r for r in current if r not in kept]
    for item in connect:
        if item.ref in order:
            order.remove(item.ref)
        if item.position is not None and item.position.kind == "start":
            order.insert(0, item.ref)
        else:
            order.append(item.ref)
    return order


@settings(max_examples=300, deadline=None)
@given(anchorless_requests(), st.booleans())
def test_anchorless_connects_match_sequential_simulation(request, strict):
    current, connect, disconnect = request
    result = apply_partial(current, connect, disconnect, strict=strict)
    assert result == naive(current, connect, disconnect)
    assert len(result) == len(set(result))
    dropped = set(disconnect) - {item.ref for item in connect}
    assert set(result) == (set(current) - dropped) | {item.ref for item in connect}


@st.composite
def any_requests(draw):
    current = draw(unique_refs)
    connected = draw(st.lists(st.sampled_from(POOL), max_size=6))
    connect = []
    for i, r in enumerate(connected):
        kind = draw(st.sampled_from(["start", "end", "before", "after", None]))
        if kind in ("before", "after"):
            connect.append(ConnectItem(r, position(kind, draw(st.sampled_from(POOL))), i))
        else:
            connect.append(ConnectItem(r, None if kind is None else position(kind), i))
    disconnect = draw(st.lists(st.sampled_from(POOL), max_size=4))
    return current, connect, disconnect


@settings(max_examples=300, deadline=None)
@given(any_requests(), st.booleans())
def test_result_is_a_permutation_of_survivors_and_connects_or_a_known_error(request, strict):
    current, connect, disconnect = request
    try:
        result = apply_partial(current, connect, disconnect, strict=strict)
    except OrderingError as exc:
        assert 0 <= exc.index < len(connect)
        offender = connect[exc.index].ref
        missing_anchor = f"There was a problem connecting relation with id {offender} at position"
        assert exc.message in (ALREADY.format(offender), CIRCULAR_REFERENCE) or (
            strict and exc.message.startswith(missing_anchor)
        )
        return
    assert len(result) == len(set(result))
    dropped = set(disconnect) - {item.ref for item in connect}
    assert set(result) == (set(current) - dropped) | {item.ref for item in connect}


@st.composite
def anchored_on_disconnected(draw):
    current = draw(st.lists(st.sampled_from(POOL), unique=True, min_size=1, max_size=8))
    anchor = draw(st.sampled_from(current))
    others = draw(st.lists(st.sampled_from(current), unique=True))
    disconnect = [anchor, *others]
    mover = draw(st.sampled_from([r for r in POOL if r not in disconnect]))
    kind = draw(st.sampled_from(["before", "after"]))
    return current, ConnectItem(mover, position(kind, anchor), 0), disconnect


def strapi_rewrite(current, item, disconnect):
    """Strapi's rule for an anchor being disconnected: after the previous survivor, else before the
    next survivor, else at the start (survivors: neither disconnected nor being connected)."""
    anchor = item.position.anchor
    at = current.index(anchor)
    survives = [r not in disconnect and r != item.ref for r in current]
    previous = next((current[i] for i in range(at - 1, -1, -1) if survives[i]), None)
    following = next((current[i] for i in range(at + 1, len(current)) if survives[i]), None)
    order = [r for r in current if r not in disconnect and r != item.ref]
    if previous is not None:
        order.insert(order.index(previous) + 1, item.ref)
    elif following is not None:
        order.insert(order.index(following), item.ref)
    else:
        order.insert(0, item.ref)
    return order


@settings(max_examples=300, deadline=None)
@given(anchored_on_disconnected())
def test_item_anchored_on_disconnected_ref_lands_where_strapi_rewrites_it(request):
    current, item, disconnect = request
    assert apply_partial(current, [item], disconnect) == strapi_rewrite(current, item, disconnect)
