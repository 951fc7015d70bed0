"""Strapi's connect/disconnect/set ordering, computed on plain lists of refs.

A relation role holds an ordered list of target refs (``"category:1"``). A Strapi-style request
either replaces that list (``set``) or edits it (``connect`` with optional positions, plus
``disconnect``). This module turns the current list and the request into the final list; the
caller has already resolved and validated every ref, and diffs the result against storage.

Nothing here touches storage or does I/O. Every function returns a new list and leaves its
arguments alone, so the module is safe to call from any thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, assert_never

CIRCULAR_REFERENCE = (
    "A circular reference was found in the connect array. One relation is trying to connect "
    "before/after another one that is trying to connect before/after it"
)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a connected ref goes: ``start``, ``end``, or ``before``/``after`` an anchor ref.

    ``shown`` is the position as the client wrote it, in compact JSON; error messages quote it.
    """

    kind: Literal["before", "after", "start", "end"]
    anchor: str | None
    shown: str

    def __post_init__(self) -> None:
        if (self.anchor is None) == (self.kind in ("before", "after")):
            raise ValueError(f"position {self.kind!r} with anchor {self.anchor!r}")


@dataclass(frozen=True, slots=True)
class ConnectItem:
    """One entry of a ``connect`` array; ``index`` is its place in that array (for error paths)."""

    ref: str
    position: Position | None
    index: int


class OrderingError(Exception):
    """A connect array that cannot be applied; .message is the client-facing text, .index the
    connect index it concerns."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


def apply_partial(
    current: Sequence[str],
    connect: Sequence[ConnectItem],
    disconnect: Sequence[str],
    *,
    strict: bool = True,
) -> list[str]:
    """The final ordered list after Strapi's partial update (spec 3.7 step 5).

    ``current`` is the role's list in position order, without repeats. Each connected ref is
    removed if present and inserted at its position (default: the end), in the order Strapi's
    anchor-first recursion gives. A ref both connected and disconnected stays connected.
    Disconnecting a ref that is not in the list does nothing.

    An anchor that is neither in the list nor connected by the same request raises in strict
    mode; otherwise that item goes to the end. Raises ``OrderingError`` for a ref connected twice,
    for anchors that refer to each other in a loop, and (strict) for a missing anchor.
    """
    _reject_repeats(connect)
    by_ref = {item.ref: item for item in connect}
    # Refs being disconnected keep their place while the connect items are positioned, so an
    # item anchored on one of them lands where it was; they are dropped only at the end.
    dropped = set(disconnect).difference(by_ref)
    placer = _Placer(list(current), strict)
    done: set[str] = set()
    for item in connect:
        if item.ref in done:
            continue
        chain = _anchor_chain(item, by_ref, placer.present)
        for link in reversed(chain):
            placer.place(link)
            done.add(link.ref)
    return [ref for ref in placer.order if ref not in dropped]


def apply_set(items: Sequence[str]) -> list[str]:
    """set: the items in order, repeated refs keeping their first occurrence."""
    return list(dict.fromkeys(items))


def to_one(final: Sequence[str]) -> list[str]:
    """For to-one roles: only the last element counts ([] stays [])."""
    return [final[-1]] if final else []


def _reject_repeats(connect: Sequence[ConnectItem]) -> None:
    # Strapi merges exact duplicates silently; we refuse every repeat (spec 3.7 step 2).
    seen: set[str] = set()
    for item in connect:
        if item.ref in seen:
            raise OrderingError(
                f"The relation with id {item.ref} is already connected. "
                "You cannot connect the same relation twice.",
                item.index,
            )
        seen.add(item.ref)


def _anchor_of(item: ConnectItem) -> str | None:
    return item.position.anchor if item.position is not None else None


def _anchor_chain(
    item: ConnectItem, by_ref: dict[str, ConnectItem], present: set[str]
) -> list[ConnectItem]:
    """``item`` followed by the not-yet-placed connect items its anchor transitively waits for.

    Placing the chain from its end back to ``item`` puts every anchor in the list before the item
    that refers to it. A loop back into the chain (an item anchored on itself included) is the
    circular-reference error, reported at the item whose anchor closes the loop. Built with a
    loop rather than recursion, so a long chain cannot hit Python's recursion limit.
    """
    chain = [item]
    on_chain = {item.ref}
    while True:
        tail = chain[-1]
        anchor = _anchor_of(tail)
        if anchor == tail.ref:
            raise OrderingError(CIRCULAR_REFERENCE, tail.index)
        if anchor is None or anchor in present:
            return chain
        waited_for = by_ref.get(anchor)
        if waited_for is None:
            # A missing anchor: placing ``tail`` reports it or sends it to the end.
            return chain
        if anchor in on_chain:
            raise OrderingError(CIRCULAR_REFERENCE, tail.index)
        chain.append(waited_for)
        on_chain.add(anchor)


class _Placer:
    """The list being built, with a set mirroring its members for constant-time lookups."""

    __slots__ = ("order", "present", "strict")

    def __init__(self, order: list[str], strict: bool) -> None:
        self.order = order
        self.present = set(order)
        self.strict = strict

    def place(self, item: ConnectItem) -> None:
        """Move ``item.ref`` (or add it) to its position."""
        if item.ref in self.present:
            self.order.remove(item.ref)
        else:
            self.present.add(item.ref)
        position = item.position
        kind = "end" if position is None else position.kind
        match kind:
            case "end":
                self.order.append(item.ref)
            case "start":
                self.order.insert(0, item.ref)
            case "before" | "after":
                assert position is not None and position.anchor is not None
                anchor = position.anchor
                if anchor not in self.present:
                    if self.strict:
                        raise OrderingError(
                            f"There was a problem connecting relation with id {item.ref} at "
                            f"position {position.shown}. The relation with id {anchor} needs to be "
                            "connected first.",
                            item.index,
                        )
                    self.order.append(item.ref)
                    return
                at = self.order.index(anchor)
                self.order.insert(at + 1 if kind == "after" else at, item.ref)
            case _:
                assert_never(kind)
