"""The relations layer's write hook for raw writes: one side of a pair cannot be written alone.

A tuple of a bidirectional relationship type is one side of a pair whose other side (the mirror)
and whose metadata rows only the relations layer writes. A raw write (the data API, bundles,
imports) of such a tuple that is not already there is refused, with a message naming the
relations endpoint that writes the pair; writing a tuple that is already there changes nothing
and passes. So every pair in the store is whole and visible in the relations views. Registered
on the app's ``RawWriter`` when the app is built (``engine.hooks``).
"""

from __future__ import annotations

from engine.hooks import Refused
from engine.relations.pairs import PairsCache
from storage.base import Changes, SnapshotReader


class RawWrites:
    """The `WriteHook` that refuses raw writes of new tuples of bidirectional types."""

    def __init__(self, pairs: PairsCache) -> None:
        self._pairs = pairs

    def wants(self, changes: Changes) -> bool:
        return bool(changes.write_tuples)

    def extend(self, reader: SnapshotReader, changes: Changes) -> None:
        pairs = self._pairs.of(reader)
        if not pairs:
            return
        refused = [
            (index, t)
            for index, t in enumerate(changes.write_tuples)
            if pairs.type_of(t) is not None and not reader.has_tuple(t)
        ]
        if not refused:
            return
        index, t = refused[0]
        rt = pairs.type_of(t)
        assert rt is not None
        more = (
            f"; {len(refused) - 1} more tuple(s) of this write are sides of pairs too"
            if len(refused) > 1
            else ""
        )
        raise Refused(
            f"{t} is one side of the bidirectional relationship type "
            f"{rt.source_type} -{rt.role}-> {rt.target_type}, whose other side is "
            f"{pairs.mirror(t)}: write the pair through the relations endpoint "
            f"POST /v1/tenants/{reader.tenant}/entities/{t.entity_type}:{t.entity_id}"
            f'/relations {{"target_entity_id": "{t.subject_type}:{t.subject_id}", '
            f'"relation_type": "{t.relation}"}} (or POST /v1/tenants/{reader.tenant}'
            f'/relationships {{"relationshipTypeId": "{rt.id}", ...}}), which writes '
            f"both sides and their metadata in one write{more}",
            f"tuples[{index}]",
        )
