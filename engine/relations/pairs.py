"""Managed pairs: which tuples are one side of a bidirectional relationship type, and their
mirrors.

A bidirectional type ``(S, R, T)`` with inverse role ``R'`` says that ``S:a#R@T:b`` and
``T:b#R'@S:a`` are one fact seen from both ends: the relations layer writes and deletes them
together. The raw-write hooks (``raw_deletes``, ``raw_writes``) use this to keep that true for
writes that come from below the layer (the data API, bundles, imports).
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.relations import layout
from engine.relations.model import RelationType
from storage.base import SnapshotReader, Tuple

#: (entity type, relation, subject type) of one side of a pair.
Side = tuple[str, str, str]


class Pairs:
    """The sides of every bidirectional type of a tenant, and the mirror of a tuple."""

    def __init__(self, types: Iterable[RelationType]) -> None:
        by_id = {rt.id: rt for rt in types}
        self._inverse_role: dict[Side, str] = {}
        self._types: dict[Side, RelationType] = {}
        for rt in by_id.values():
            if not rt.bidirectional or rt.inverse_id is None:
                continue
            inverse = by_id.get(rt.inverse_id)
            if inverse is None:
                continue
            side = (rt.source_type, rt.role, rt.target_type)
            self._inverse_role.setdefault(side, inverse.role)
            self._types.setdefault(side, rt)

    def __bool__(self) -> bool:
        return bool(self._inverse_role)

    @property
    def relations(self) -> frozenset[str]:
        """Every relation name that is a side of some pair."""
        return frozenset(side[1] for side in self._inverse_role)

    def type_of(self, t: Tuple) -> RelationType | None:
        """The bidirectional type ``t`` is a side of (plain subjects only), or None."""
        if t.subject_relation:
            return None
        return self._types.get((t.entity_type, t.relation, t.subject_type))

    def mirror(self, t: Tuple) -> Tuple | None:
        """The other side of ``t`` when ``t`` is one side of a pair, else None."""
        if t.subject_relation:
            return None
        role = self._inverse_role.get((t.entity_type, t.relation, t.subject_type))
        if role is None:
            return None
        return Tuple(t.subject_type, t.subject_id, role, t.entity_type, t.entity_id)


class PairsCache:
    """Each tenant's `Pairs`, kept by the generation of its types (`layout.types_generation`):
    a write's hook then reads one record, not every type, when no type changed since. Bounded
    to ``entries`` tenants. Shared by threads: single dict operations, and two threads racing
    store equal values."""

    def __init__(self, entries: int = 1024) -> None:
        self._entries = entries
        self._by_tenant: dict[str, tuple[bytes, Pairs]] = {}

    def of(self, reader: SnapshotReader) -> Pairs:
        """The pairs of ``reader``'s tenant at its revision."""
        generation = layout.types_generation(reader)
        if generation is None:  # no type written since generations were kept
            return Pairs(layout.types(reader))
        found = self._by_tenant.get(reader.tenant)
        if found is not None and found[0] == generation:
            return found[1]
        pairs = Pairs(layout.types(reader))
        if reader.tenant not in self._by_tenant and len(self._by_tenant) >= self._entries:
            self._by_tenant.pop(next(iter(self._by_tenant)), None)
        self._by_tenant[reader.tenant] = (generation, pairs)
        return pairs
