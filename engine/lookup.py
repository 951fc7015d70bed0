"""Lookups: which entities a subject reaches, and which subjects reach an entity.

Both are *candidate generation + confirmation*, arranged so that the common case needs no
confirmation at all:

* **lookup-entity** walks the permission graph *backwards* from the subject through the reverse
  index: the subject's usersets, the relations that store them, the permissions computed from
  those, and the entities whose tuple-to-userset relation points at a reached object. A node
  reached only through unions is *certain* (union is monotone: reaching a leaf proves the
  permission). A node reached through an intersection, the base of an exclusion or a rule is only
  a *candidate*, and every candidate of the asked type is confirmed with a full check. Attribute
  and rule leaves hold for entities the subject has no tuple path to, so when the asked
  permission depends on one, every known entity of that leaf's type is a candidate.
* **lookup-subject** walks *forwards* from the entity over its tuples with the same certainty
  rule; an attribute or rule leaf on the way makes every known subject of the asked type a
  candidate (Permify's wildcard), and candidates are confirmed by check.

Results are complete: a confirmation that fails with an error fails the whole lookup, never a
silently shorter list. The walks themselves follow every path (their visited sets end cycles),
so a result reached through unions alone is returned even where a check with the same depth
would run out of budget; only confirmations spend depth. Ids are sorted ascending as strings
(Permify's order), and pages are cut from that order with a cursor naming the last id returned.

The walk's edges come from the schema (which permission reads which name) completed with the
tuple kinds present in the data (which entity relations hold which subject types), so a tuple
the current schema does not admit -- written under an older one -- is followed by a lookup just
as check follows it, and a declared relation that holds nothing costs no read.
"""

from __future__ import annotations

import base64
import binascii
import threading
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from dsl.schema import (
    ComputedAttribute,
    ComputedUserSet,
    Node,
    Operation,
    Rewrite,
    RuleCall,
    Schema,
    TupleToUserSet,
)
from engine.check import Evaluation
from engine.errors import InvalidCursor, InvalidRequest, UnknownEntityType, UnknownPermission
from engine.types import LookupPage, SubjectReference
from storage.base import AttributeFilter, Subject, TupleFilter, TupleKind

CANDIDATE = 1
CERTAIN = 2

NodeKey = tuple[str, str]  # (entity type, relation/permission/attribute name)


@dataclass(frozen=True, slots=True)
class _Leaf:
    """A leaf of a permission tree in a position that can make the permission true."""

    node: Node
    monotone: bool  # only unions above it: the leaf holding proves the permission


def positive_leaves(node: Node, monotone: bool = True) -> list[_Leaf]:
    """Leaves that can make ``node`` true, and whether each alone proves it.

    The subtrahend of an exclusion never makes it true. Of an intersection one child's leaves
    suffice as candidates (every member is in all children); the child chosen is one without
    attribute/rule leaves when there is one, since those make every entity a candidate.
    """
    if isinstance(node, Rewrite):
        if node.operation is Operation.UNION:
            return [leaf for child in node.children for leaf in positive_leaves(child, monotone)]
        if node.operation is Operation.EXCLUSION:
            return positive_leaves(node.children[0], False)
        options = [positive_leaves(child, False) for child in node.children]
        for leaves in options:
            if not any(_is_open(leaf.node) for leaf in leaves):
                return leaves
        return [leaf for leaves in options for leaf in leaves]
    return [_Leaf(node, monotone)]


def _is_open(node: Node) -> bool:
    """True for leaves that hold independently of the subject."""
    return isinstance(node, ComputedAttribute | RuleCall)


class Graph:
    """The reverse permission graph of one schema version: the schema's part is built once;
    the tuple kinds present in the data (`SnapshotReader.tuple_kinds`) complete it per lookup,
    so that tuples the schema does not declare (left by an older schema) are followed exactly
    as check follows them."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        #: (T, r) -> (p, monotone): permission p of T has r as a positive leaf.
        self.computed: dict[NodeKey, list[tuple[str, bool]]] = {}
        #: (E, tupleset) -> (p, computed, monotone) for each ``tupleset.computed`` leaf of E#p.
        self.arrows: dict[NodeKey, list[tuple[str, str, bool]]] = {}
        #: (E, p) -> monotone, for names that an attribute or rule can make true.
        self.open: dict[NodeKey, bool] = {}
        for entity in schema.entities.values():
            e = entity.name
            for attribute in entity.attributes:
                self.open[(e, attribute)] = True
            for permission in entity.permissions.values():
                p = permission.name
                for leaf in positive_leaves(permission.child):
                    node = leaf.node
                    if isinstance(node, ComputedUserSet):
                        self.computed.setdefault((e, node.relation), []).append((p, leaf.monotone))
                    elif isinstance(node, TupleToUserSet):
                        self.arrows.setdefault((e, node.tupleset), []).append(
                            (p, node.computed, leaf.monotone)
                        )
                    else:
                        self.open[(e, p)] = self.open.get((e, p), True) and leaf.monotone
        self._bound: dict[frozenset[TupleKind], Reach] = {}
        self._lock = threading.Lock()

    def reach(self, kinds: frozenset[TupleKind]) -> Reach:
        """The graph completed with ``kinds``; cached for the few latest kind sets."""
        found = self._bound.get(kinds)
        if found is None:
            found = Reach(self, kinds)
            with self._lock:
                while len(self._bound) >= 4:
                    del self._bound[next(iter(self._bound))]
                self._bound[kinds] = found
        return found


class Reach:
    """A `Graph` completed with the tuple kinds of the data: every edge a walk can take."""

    def __init__(self, graph: Graph, kinds: frozenset[TupleKind]) -> None:
        self.schema = graph.schema
        self.computed = graph.computed
        self.open = graph.open
        #: (T, r) -> (E, rel): tuples ``E:x#rel@T:id#r`` exist; a member of T:id#r is in
        #: E:x#rel (r = "" : T:id itself).
        self.entrances: dict[NodeKey, list[NodeKey]] = {}
        #: (T, c) -> (E, p, ts, subject relations, monotone): p of E has ``ts.c`` and tuples
        #: ``E:x#ts@T:id[#srel]`` exist.
        self.walks: dict[NodeKey, list[tuple[str, str, str, tuple[str, ...], bool]]] = {}
        feeds: dict[NodeKey, set[NodeKey]] = {}
        walked: dict[tuple[str, str, str], list[str]] = {}
        for et, rel, st, srel in sorted(kinds):
            self.entrances.setdefault((st, srel), []).append((et, rel))
            feeds.setdefault((st, srel), set()).add((et, rel))
            if (et, rel) in graph.arrows:
                walked.setdefault((et, rel, st), []).append(srel)
        for (et, rel, st), srels in walked.items():
            for p, c, monotone in graph.arrows[(et, rel)]:
                self.walks.setdefault((st, c), []).append((et, p, rel, tuple(srels), monotone))
                feeds.setdefault((st, c), set()).add((et, p))
        for (t, r), permissions in graph.computed.items():
            feeds.setdefault((t, r), set()).update((t, p) for p, _ in permissions)
        self._back: dict[NodeKey, set[NodeKey]] = {}
        for source, targets in feeds.items():
            for target in targets:
                self._back.setdefault(target, set()).add(source)
        self._relevant: dict[NodeKey, frozenset[NodeKey]] = {}

    def relevant(self, target: NodeKey) -> frozenset[NodeKey]:
        """Every (type, name) from which ``target`` can be reached (itself included)."""
        found = self._relevant.get(target)
        if found is None:
            seen = {target}
            queue = [target]
            while queue:
                for source in self._back.get(queue.pop(), ()):
                    if source not in seen:
                        seen.add(source)
                        queue.append(source)
            found = self._relevant[target] = frozenset(seen)
        return found


def check_target(schema: Schema, entity_type: str, name: str) -> None:
    entity = schema.entities.get(entity_type)
    if entity is None:
        raise UnknownEntityType.of(entity_type)
    if name not in entity.references:
        raise UnknownPermission.of(entity_type, name)


# --- lookup-entity ------------------------------------------------------------------------------


def lookup_entity_ids(
    ev: Evaluation,
    graph: Graph,
    entity_type: str,
    permission: str,
    subject: Subject,
    *,
    depth: int,
    scope: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Every id of ``entity_type`` on which ``subject`` has ``permission``, sorted."""
    check_target(graph.schema, entity_type, permission)
    kinds = ev.reader.tuple_kinds()
    if ev.context_tuples:
        kinds = kinds | {(t[0], t[2], t[3], t[5]) for t in ev.context_tuples}
    reach_graph = graph.reach(kinds)
    target = (entity_type, permission)
    relevant = reach_graph.relevant(target)
    scopes = {t: frozenset(ids) for t, ids in (scope or {}).items()}
    reader = ev.reader
    context = _ContextIndex(ev)
    state: dict[tuple[str, str, str], int] = {}
    queue: deque[tuple[str, str, str]] = deque()

    def reach(t: str, i: str, r: str, st: int) -> None:
        if (t, r) not in relevant:
            return
        allowed_ids = scopes.get(t)
        if allowed_ids is not None and i not in allowed_ids:
            return
        key = (t, i, r)
        if state.get(key, 0) < st:
            state[key] = st
            queue.append(key)

    reach(subject.type, subject.id, subject.relation, CERTAIN)
    for t, name in relevant:
        if (t, name) in reach_graph.open:
            for i in known_ids(ev, t):
                reach(t, i, name, CANDIDATE)

    entrances, computed, walks = reach_graph.entrances, reach_graph.computed, reach_graph.walks
    while queue:
        key = queue.popleft()
        t, i, r = key
        st = state[key]
        for e, rel in entrances.get((t, r), ()):
            if (e, rel) in relevant:
                for eid in _entity_ids(reader, context, e, rel, Subject(t, i, r)):
                    reach(e, eid, rel, st)
        for p, monotone in computed.get((t, r), ()):
            reach(t, i, p, st if monotone else CANDIDATE)
        for e, p, tupleset, relations, monotone in walks.get((t, r), ()):
            if (e, p) not in relevant:
                continue
            walked = st if monotone else CANDIDATE
            for srel in relations:
                for eid in _entity_ids(reader, context, e, tupleset, Subject(t, i, srel)):
                    reach(e, eid, p, walked)

    found: list[str] = []
    for (t, i, r), st in state.items():
        if t != entity_type or r != permission:
            continue
        if st == CERTAIN or ev.dispatch(entity_type, i, permission, subject, depth):
            found.append(i)
    found.sort()
    return found


def _entity_ids(
    reader: object, context: _ContextIndex, entity_type: str, relation: str, subject: Subject
) -> Iterable[str]:
    stored = reader.entity_ids(entity_type, relation, subject)  # type: ignore[attr-defined]
    extra = context.reverse.get((entity_type, relation, subject))
    if not extra:
        return stored  # type: ignore[no-any-return]
    return [*stored, *extra]


class _ContextIndex:
    """The request's contextual tuples, indexed for reverse and forward walks."""

    __slots__ = ("reverse",)

    def __init__(self, ev: Evaluation) -> None:
        self.reverse: dict[tuple[str, str, Subject], list[str]] = {}
        for t in ev.context_tuples:
            self.reverse.setdefault((t.entity_type, t.relation, t.subject), []).append(
                t.entity_id
            )


def known_ids(ev: Evaluation, entity_type: str) -> set[str]:
    """Every id of ``entity_type`` that appears anywhere: as a tuple's entity or subject, with
    an attribute, or in the request's context."""
    reader = ev.reader
    ids: set[str] = set()
    for t in reader.iter_tuples(TupleFilter(entity_type=entity_type)):
        ids.add(t.entity_id)
    for t in reader.iter_tuples(TupleFilter(subject_type=entity_type)):
        ids.add(t.subject_id)
    for a in reader.iter_attributes(AttributeFilter(entity_type=entity_type)):
        ids.add(a.entity_id)
    for t in ev.context_tuples:
        if t.entity_type == entity_type:
            ids.add(t.entity_id)
        if t.subject_type == entity_type:
            ids.add(t.subject_id)
    for a in ev.context_attributes:
        if a.entity_type == entity_type:
            ids.add(a.entity_id)
    return ids


# --- lookup-subject -----------------------------------------------------------------------------


def lookup_subject_ids(
    ev: Evaluation,
    schema: Schema,
    entity_type: str,
    entity_id: str,
    permission: str,
    *,
    reference: SubjectReference,
    depth: int,
) -> list[str]:
    """Every id of subjects ``reference`` (``type`` or ``type#relation``) with ``permission``
    on ``entity_type:entity_id``, sorted."""
    check_target(schema, entity_type, permission)
    want_type, want_relation = reference.type, reference.relation
    state: dict[tuple[str, str, str], int] = {}
    results: dict[str, int] = {}
    queue: deque[tuple[str, str, str]] = deque()
    wildcard = False
    leaves: dict[NodeKey, list[_Leaf]] = {}

    def found(i: str, st: int) -> None:
        if results.get(i, 0) < st:
            results[i] = st

    def reach(t: str, i: str, r: str, st: int) -> None:
        key = (t, i, r)
        if state.get(key, 0) < st:
            state[key] = st
            queue.append(key)

    reach(entity_type, entity_id, permission, CERTAIN)
    while queue:
        key = queue.popleft()
        t, i, r = key
        st = state[key]
        if t == want_type and r == want_relation:
            found(i, st)  # the userset itself (Permify's rule: entity#perm == subject)
        entity = schema.entities.get(t)
        if entity is None:
            continue
        if r in entity.relations:
            for s in ev.relation(t, i, r):
                if s[0] == want_type and s[2] == want_relation:
                    found(s[1], st)
                if s[2]:
                    reach(s[0], s[1], s[2], st)
        elif r in entity.permissions:
            cached = leaves.get((t, r))
            if cached is None:
                cached = leaves[(t, r)] = positive_leaves(entity.permissions[r].child)
            for leaf in cached:
                node = leaf.node
                leaf_state = st if leaf.monotone else CANDIDATE
                if isinstance(node, ComputedUserSet):
                    reach(t, i, node.relation, leaf_state)
                elif isinstance(node, TupleToUserSet):
                    for ot, oid in ev.relation(t, i, node.tupleset).objects():
                        reach(ot, oid, node.computed, leaf_state)
                else:
                    wildcard = True
        elif r in entity.attributes:
            wildcard = True

    if wildcard:
        for i in _known_subjects(ev, want_type, want_relation):
            found(i, CANDIDATE)
    subject_ids: list[str] = []
    for i, st in results.items():
        if st == CERTAIN or ev.dispatch(
            entity_type, entity_id, permission, Subject(want_type, i, want_relation), depth
        ):
            subject_ids.append(i)
    subject_ids.sort()
    return subject_ids


def _known_subjects(ev: Evaluation, subject_type: str, relation: str) -> set[str]:
    """Every id appearing as a ``subject_type[#relation]`` subject of a tuple (stored or
    contextual): Permify's universe when an attribute or rule grants to everyone."""
    ids = {
        t.subject_id
        for t in ev.reader.iter_tuples(
            TupleFilter(subject_type=subject_type, subject_relation=relation)
        )
    }
    for t in ev.context_tuples:
        if t.subject_type == subject_type and t.subject_relation == relation:
            ids.add(t.subject_id)
    return ids


# --- pages --------------------------------------------------------------------------------------


def encode_cursor(last_id: str) -> str:
    raw = b"1" + last_id.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        if not raw.startswith(b"1"):
            raise ValueError("unknown version")
        return raw[1:].decode("utf-8", "surrogatepass")
    except (ValueError, binascii.Error) as exc:
        raise InvalidCursor(
            f"continuous_token {cursor!r} is not a cursor this engine issued"
        ) from exc


def _after(ids: list[str], cursor: str) -> int:
    """Where the ids after ``cursor`` start in sorted ``ids`` (raises on a bad cursor)."""
    return bisect_right(ids, decode_cursor(cursor)) if cursor else 0


def page(ids: list[str], page_size: int, cursor: str) -> LookupPage:
    """The page of sorted ``ids`` after ``cursor``."""
    if page_size < 1:
        raise InvalidRequest(f"page_size must be at least 1, got {page_size}")
    start = _after(ids, cursor)
    chunk = ids[start : start + page_size]
    more = start + page_size < len(ids)
    return LookupPage(tuple(chunk), encode_cursor(chunk[-1]) if more and chunk else "")


def stream(ids: list[str], cursor: str) -> Iterator[tuple[str, str]]:
    """The ids after ``cursor``, each with its own cursor; a bad cursor raises here, not on
    the first ``next``."""
    return ((i, encode_cursor(i)) for i in ids[_after(ids, cursor) :])
