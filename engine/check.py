"""Check: is ``subject`` in ``entity#name``? Permify's semantics (reference §2.2), evaluated fast.

Each schema version is compiled once into a `Program`: one closure per (entity type, name), built
from one small function per rewrite-node kind. A request gets an `Evaluation` (its reader, its
context, its caches) and calls `Evaluation.dispatch`.

Semantics worth knowing when reading this file:

* **Answers are three-valued.** A sub-check answers True, False, or raises an `EngineError`
  (depth exhausted, a rule failed, a stored tuple names something the schema lacks). Set
  operations combine them like Kleene logic, so the answer never depends on child order: a union
  is True if any child is True, else it raises the first error, else False; an intersection is
  False if any child is False; an exclusion is False if its base is False or its subtrahend True.
  An error therefore never turns into "denied", and never hides a proof of "allowed".
* **Depth.** Every dispatch (a computed reference, a userset subject, a tuple-to-userset hop, an
  attribute or rule leaf) costs one unit, as in Permify; a dispatch with a negative budget raises
  DepthExceeded. A cached answer is a proven fact whatever budget found it, so a later request
  with a smaller budget may get that answer rather than a depth error (Permify's cache does the
  same); it never gets a wrong one.
* **Cycles in data** (group 1 in group 2 in group 1, a folder that is its own ancestor) are cut:
  a hop to a (entity, name, subject) already being evaluated on the current path answers False.
  For union/intersection this yields the least fixed point, which is the right answer; results
  computed under such an assumption are "tainted" and never shared, because they are only true
  relative to the path they were computed on. Within the request, a tainted result is reused
  while every key it assumed False is still being evaluated (`Evaluation.tainted`): asked again
  then, it would rest on the same assumptions (or more, which can only lower a union or an
  intersection). Without that, a cycle whose members reach the next member twice (``parent.view
  and parent.view``, nested groups in a diamond) is evaluated once per path: exponential in the
  cycle's length.
* **Caches.** `Evaluation.results` memoises untainted hop results and `Evaluation.reads`
  relation and attribute reads. The engine shares both between requests at the same (tenant,
  schema version, revision) -- data at a revision never changes, so a hit is never stale -- and
  gives a request with a context private ones, since its contextual tuples and data change
  answers. For one request, `Evaluation.failed` memoises the errors of hops with the depth they
  had (and, like a tainted result, what they assumed): with no more depth the hop is undecided
  again (less depth decides less), so it is not evaluated again. Without that, a diamond in the
  data (two relations to the same parent at every level) or in the schema (``p0 = p1 and p2``,
  ``p1 = p2 and p3``, ...) that runs out of depth is evaluated once per path: exponential in the
  depth. A permission named from more than one place in its entity is dispatched, and so
  cached, for the same reason; one named once is called directly.

Concurrency: evaluation is synchronous and CPU-bound (storage reads are µs-scale C calls). The
API runs it in a thread pool so the event loop keeps serving; caches are plain dicts whose
single get/set operations are atomic under the GIL, and two threads racing to fill the same key
store the same fact.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from dsl.schema import (
    AttributeType,
    ComputedAttribute,
    ComputedUserSet,
    EntityDef,
    Node,
    Operation,
    Rewrite,
    RuleCall,
    Schema,
    TupleToUserSet,
)
from engine.errors import (
    DepthExceeded,
    EngineError,
    OverBudget,
    RuleError,
    UnknownEntityType,
    UnknownPermission,
)
from engine.rules import RuleSet
from engine.types import FRAMES_PER_DEPTH, Context
from storage.base import (
    Attribute,
    AttributeKey,
    AttributeValue,
    ListSubjects,
    SnapshotReader,
    Subject,
    SubjectSet,
)

Evaluator = Callable[["Evaluation", str, Subject, int], bool]
#: An entity with at most this many tuples is read in one scan (see Evaluation.relation).
PREFETCH_LIMIT = 64
ResultKey = str


def _subject_key(s: Subject) -> tuple[str, str]:
    """The subject's part of a result key: the lengths of its type and relation, and its
    type, relation and id."""
    return f"{len(s[0])}.{len(s[2])}", f"{s[0]}{s[2]}{s[1]}"


def result_key(entity_type: str, eid: str, name: str, s: Subject) -> str:
    """The results-cache key of ``entity_type:eid#name`` for ``s``, as `Evaluation.dispatch`
    builds it inline (a test holds the two to the same text)."""
    sl, st = _subject_key(s)
    return f"{len(entity_type)}.{len(name)}.{len(eid)}.{sl}\x00{entity_type}{name}{eid}{st}"


_NO_SUBJECTS = ListSubjects([])


def objects_of(data: SubjectSet) -> list[tuple[str, str]]:
    """Distinct (type, id) of the subjects: what a tuple-to-userset hop follows (the stored
    subject relation plays no part there)."""
    return list(dict.fromkeys([(s[0], s[1]) for s in data]))


class _Merged:
    """Stored subjects plus a request's contextual ones (a `SubjectSet`)."""

    __slots__ = ("_extra", "_stored", "_tokens", "usersets")

    def __init__(self, stored: SubjectSet, extra: list[Subject], tokens: set[object]) -> None:
        self._stored = stored
        present = set(stored)
        self._extra = [s for s in extra if s not in present]
        self._tokens = tokens
        self.usersets = [*stored.usersets, *(s for s in self._extra if s[2])]

    def has(self, token: object) -> bool:
        return token in self._tokens or self._stored.has(token)

    def __len__(self) -> int:
        return len(self._stored) + len(self._extra)

    def __iter__(self) -> Iterator[Subject]:
        yield from self._stored
        yield from self._extra


def _depth_error(depth: int) -> DepthExceeded:
    # The engine facade adds the request's budget to the message.
    return DepthExceeded("the depth budget ran out before the answer was known")


class Program:
    """The evaluators of one schema version: one closure per (entity type, name)."""

    def __init__(self, schema: Schema, rules: RuleSet) -> None:
        self.schema = schema
        self.rules = rules
        self.evaluators: dict[tuple[str, str], Evaluator] = {}
        #: entity type -> its relations, for types whose relations are read in one scan.
        self.prefetch: dict[str, tuple[str, ...]] = {
            e.name: tuple(e.relations) for e in schema.entities.values() if len(e.relations) > 1
        }
        for entity in schema.entities.values():
            for name in entity.relations:
                self.evaluators[(entity.name, name)] = _direct(entity.name, name)
            for name, attribute in entity.attributes.items():
                self.evaluators[(entity.name, name)] = _attribute_check(
                    entity.name, name, attribute.type
                )
        #: The most set-operation closures one permission stacks (see `frames_per_depth`).
        self.nesting = 0
        # Permissions last, each after the permissions it references, whose evaluators its
        # closures capture. An explicit order, not recursion: a chain of references may be as
        # long as the compiler allows.
        for entity in schema.entities.values():
            shared = _shared(entity)
            for name in _dependency_order(entity):
                child = entity.permissions[name].child
                self.evaluators[(entity.name, name)] = self._node(entity, child, shared)
                self.nesting = max(self.nesting, _nesting(child))
        #: Python frames one unit of depth may take in evaluation: a dispatch, a hop and its
        #: reference (`FRAMES_PER_DEPTH`, 4), plus the set-operation closures of a permission
        #: beyond the first (each calls the next). An attribute, not a property: every check
        #: reads it.
        self.frames_per_depth = FRAMES_PER_DEPTH + max(0, self.nesting - 1)

    def _node(self, entity: EntityDef, node: Node, shared: frozenset[str]) -> Evaluator:
        """The evaluator of ``node``; references to the ``shared`` permissions are dispatched."""
        # Recursion over one rewrite tree: bounded by the parser's MAX_EXPRESSION_DEPTH.
        if isinstance(node, Rewrite):
            if node.operation is Operation.EXCLUSION:
                base, subtract = (self._node(entity, c, shared) for c in node.children)
                return _exclusion(base, subtract)
            # `a or b or c` is nested binary rewrites; flattening gives the same answer with
            # fewer calls.
            children = [
                self._node(entity, c, shared) for c in _flatten(node.operation, node.children)
            ]
            if node.operation is Operation.UNION:
                return _union(tuple(children))
            return _intersection(tuple(children))
        if isinstance(node, ComputedUserSet):
            name = node.relation
            if name in shared:
                return _cached(entity.name, name)
            if name in entity.permissions:
                # Same entity: no data in between, so no cycle is possible (the compiler
                # rejects permission cycles) and no hop bookkeeping is needed. Compiled
                # already (`_dependency_order`), unless a hand-built schema has a cycle.
                target = self.evaluators.get((entity.name, name))
                return _computed(entity.name, name, target or _late(entity.name, name))
            if name in entity.relations:
                return _direct(entity.name, name, computed=True)
            target = self.evaluators.get((entity.name, name))
            if target is None:
                return _unknown(entity.name, name)
            return _computed(entity.name, name, target)
        if isinstance(node, TupleToUserSet):
            return _tuple_to_userset(entity.name, node.tupleset, node.computed)
        if isinstance(node, ComputedAttribute):
            return _computed(
                entity.name, node.name, self.evaluators.get((entity.name, node.name))
                or _unknown(entity.name, node.name)
            )
        if isinstance(node, RuleCall):
            return _rule_call(entity.name, node.rule, node.arguments)
        raise AssertionError(f"unknown node {node!r}")

    def resolve(self, entity_type: str, name: str) -> Evaluator:
        """The evaluator of a name with no compiled one: a rule named directly, or an error."""
        entity = self.schema.entities.get(entity_type)
        if entity is None:
            raise UnknownEntityType.of(entity_type)
        rule = self.schema.rules.get(name)
        if rule is not None:
            arguments = tuple(p for p in rule.parameters if p in entity.attributes)
            return _rule_call(entity_type, name, arguments)
        raise UnknownPermission.of(entity_type, name)


def _dependency_order(entity: EntityDef) -> list[str]:
    """The entity's permissions, each after the permissions it references (depth-first, with an
    explicit stack). A reference closing a cycle is left out of the order's constraints."""
    order: list[str] = []
    placed: set[str] = set()
    for root in entity.permissions:
        if root in placed:
            continue
        placed.add(root)
        stack = [(root, iter(_references(entity, root)))]
        while stack:
            name, targets = stack[-1]
            target = next(targets, None)
            if target is None:
                stack.pop()
                order.append(name)
            elif target not in placed:
                placed.add(target)
                stack.append((target, iter(_references(entity, target))))
    return order


def _shared(entity: EntityDef) -> frozenset[str]:
    """The permissions of ``entity`` named in more than one place of its permissions. Called
    directly, each would be evaluated once per place: nested, exponentially often."""
    seen: set[str] = set()
    shared: set[str] = set()
    for permission in entity.permissions:
        for name in _references(entity, permission):
            (shared if name in seen else seen).add(name)
    return frozenset(shared)


def _references(entity: EntityDef, permission: str) -> list[str]:
    """The permissions of the same entity that ``permission`` names directly."""
    found: list[str] = []
    stack = [entity.permissions[permission].child]
    while stack:
        node = stack.pop()
        if isinstance(node, Rewrite):
            stack.extend(node.children)
        elif isinstance(node, ComputedUserSet) and node.relation in entity.permissions:
            found.append(node.relation)
    return found


def _nesting(node: Node) -> int:
    """How many set-operation closures the compiled ``node`` stacks, at most: nested unions (or
    intersections) are flattened into one closure, exclusions are not."""
    deepest = 0
    stack: list[tuple[Node, int, Operation | None]] = [(node, 0, None)]
    while stack:
        current, depth, parent = stack.pop()
        if isinstance(current, Rewrite):
            operation = current.operation
            if operation is Operation.EXCLUSION or operation is not parent:
                depth += 1
            deepest = max(deepest, depth)
            stack.extend((child, depth, operation) for child in current.children)
    return deepest


def _flatten(operation: Operation, children: tuple[Node, ...]) -> list[Node]:
    """The operands of ``operation`` under ``children``, in order, nested rewrites of the same
    operation opened up (a left-deep ``a or b or c ...``: one stack, linear time)."""
    out: list[Node] = []
    stack = list(reversed(children))
    while stack:
        child = stack.pop()
        if isinstance(child, Rewrite) and child.operation is operation:
            stack.extend(reversed(child.children))
        else:
            out.append(child)
    return out


# --- node kinds ---------------------------------------------------------------------------------


def _union(children: tuple[Evaluator, ...]) -> Evaluator:
    def union(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        error: EngineError | None = None
        for child in children:
            try:
                if child(ev, eid, s, depth):
                    return True
            except EngineError as exc:
                if error is None:
                    error = exc
        if error is not None:
            raise error
        return False

    return union


def _intersection(children: tuple[Evaluator, ...]) -> Evaluator:
    def intersection(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        error: EngineError | None = None
        for child in children:
            try:
                if not child(ev, eid, s, depth):
                    return False
            except EngineError as exc:
                if error is None:
                    error = exc
        if error is not None:
            raise error
        return True

    return intersection


def _exclusion(base: Evaluator, subtract: Evaluator) -> Evaluator:
    def exclusion(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        error: EngineError | None = None
        try:
            if not base(ev, eid, s, depth):
                return False
        except EngineError as exc:
            error = exc
        # The base holds (or is unknown): the subtrahend decides.
        if subtract(ev, eid, s, depth):
            return False
        if error is not None:
            raise error
        return True

    return exclusion


def _computed(entity_type: str, name: str, target: Evaluator) -> Evaluator:
    """A reference to another name of the same entity: one dispatch, no data in between."""

    def computed(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        if s[2] == name and s[1] == eid and s[0] == entity_type:
            return True
        if depth < 1:
            raise _depth_error(depth)
        return target(ev, eid, s, depth - 1)

    return computed


def _cached(entity_type: str, name: str) -> Evaluator:
    """A reference to a permission of the same entity named in several places: a dispatch, so
    it is evaluated once per question however many places reach it."""

    def cached(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        if depth < 1:
            raise _depth_error(depth)
        return ev.dispatch(entity_type, eid, name, s, depth - 1)

    return cached


def _late(entity_type: str, name: str) -> Evaluator:
    """A permission compiled after the closure that references it (only in a cycle, which
    `dsl.compiler` refuses): looked up when called. The reference spends depth, so the cycle
    ends in DepthExceeded."""

    def late(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        return ev.evaluators[(entity_type, name)](ev, eid, s, depth)

    return late


def _unknown(entity_type: str, name: str) -> Evaluator:
    def unknown(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        raise UnknownPermission.of(entity_type, name)

    return unknown


def _direct(entity_type: str, relation: str, *, computed: bool = False) -> Evaluator:
    """``entity#relation``: the subject is stored there, or is in a stored userset.

    With ``computed``, this is a permission's reference to the relation (one dispatch in
    Permify's terms), fused into one closure: the reference's bookkeeping is inlined.
    """
    read_key = f"{entity_type}\x00{relation}\x00"  # + id: the read cache's key

    def direct(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        if computed:
            if s[2] == relation and s[1] == eid and s[0] == entity_type:
                return True
            if depth < 1:
                raise _depth_error(depth)
            depth -= 1
        reads = ev.plain_reads
        data = None if reads is None else reads.get(read_key + eid)
        if data is None:
            data = ev.relation(entity_type, eid, relation)
        if data.has(ev.root_token if s is ev.root else ev.token(s)):
            return True
        usersets = data.usersets
        return bool(usersets) and _any_hop(ev, usersets, None, s, depth)

    direct.__qualname__ = f"direct[{entity_type}#{relation}]"
    return direct


def _tuple_to_userset(entity_type: str, tupleset: str, computed: str) -> Evaluator:
    """``tupleset.computed``: ``computed`` on every subject object of ``tupleset``."""

    def tuple_to_userset(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        objects = ev.objects(entity_type, eid, tupleset)
        return bool(objects) and _any_hop(ev, objects, computed, s, depth)

    return tuple_to_userset


def _any_hop(
    ev: Evaluation,
    hops: Sequence[Sequence[str]],
    name: str | None,
    s: Subject,
    depth: int,
) -> bool:
    """The union (three-valued, like `_union`) of one dispatch per hop, each costing one unit of
    depth: to ``name`` on each (type, id) object, or, with no ``name``, to each userset
    (type, id, relation)."""
    if depth < 1:
        raise _depth_error(depth)
    depth -= 1
    error: EngineError | None = None
    dispatch = ev.dispatch
    for hop in hops:
        try:
            if dispatch(hop[0], hop[1], hop[2] if name is None else name, s, depth):
                return True
        except EngineError as exc:
            if error is None:
                error = exc
    if error is not None:
        raise error
    return False


def _attribute_check(entity_type: str, name: str, kind: AttributeType) -> Evaluator:
    """A boolean attribute as an operand: contextual value first, then the stored one."""

    def attribute(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        if kind is not AttributeType.BOOLEAN:
            raise RuleError(
                f"attribute `{entity_type}.{name}` is `{kind.keyword}`; only boolean "
                "attributes answer a check"
            )
        found = ev.context_attribute(entity_type, eid, name)
        if found is None:
            found = ev.stored_attribute(entity_type, eid, name)
        return found is not None and found.value is True

    return attribute


def _rule_call(entity_type: str, rule: str, arguments: tuple[str, ...]) -> Evaluator:
    """A rule over this entity's attributes (stored value first, as Permify) and context.data."""

    def call(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        if depth < 1:
            raise _depth_error(depth)
        if ev.inline:
            # Never on the event loop: the CEL library holds the GIL while it runs.
            raise OverBudget(ev.limit)
        values: dict[str, AttributeValue] = {}
        for name in arguments:
            found = ev.stored_attribute(entity_type, eid, name)
            if found is None:
                found = ev.context_attribute(entity_type, eid, name)
            if found is not None:
                values[name] = found.value
        return ev.program.rules.evaluate(rule, values, ev.data)

    return call


# --- one request --------------------------------------------------------------------------------


class Evaluation:
    """The state of one request: reader, context, caches, the current path, counters."""

    __slots__ = (
        "_context_attributes",
        "_context_tuples",
        "assumed",
        "context_attributes",
        "context_tuples",
        "count",
        "cuts",
        "data",
        "evaluators",
        "failed",
        "in_progress",
        "inline",
        "limit",
        "plain_reads",
        "program",
        "reader",
        "reads",
        "results",
        "root",
        "root_key",
        "root_token",
        "tainted",
        "tokens",
    )

    def __init__(
        self,
        program: Program,
        reader: SnapshotReader,
        context: Context,
        reads: dict[Any, Any],
        results: dict[ResultKey, bool],
    ) -> None:
        self.program = program
        self.evaluators = program.evaluators
        self.reader = reader
        self.reads = reads
        self.results = results
        #: Hops that raised: the most depth they raised with, the error, and what the error
        #: assumed (None: nothing; see `_settle`).
        self.failed: dict[ResultKey, tuple[int, EngineError, frozenset[ResultKey] | None]] = {}
        #: Tainted answers and the keys they assumed False (see `_settle`).
        self.tainted: dict[ResultKey, tuple[frozenset[ResultKey], bool]] = {}
        #: The keys the hop being computed has assumed False so far (None: none).
        self.assumed: set[ResultKey] | None = None
        self.in_progress: set[ResultKey] = set()
        self.tokens: dict[Subject, object] = {}
        #: The subject most membership tests are about, and its token (see `begin`).
        self.root: Subject | None = None
        self.root_token: object = None
        self.root_key = ("", "")
        #: The shared read cache, or None when contextual tuples must be merged into reads.
        self.plain_reads: dict[Any, Any] | None = None if context.tuples else reads
        self.cuts = 0
        self.count = 0
        #: Dispatches allowed before OverBudget (see `Engine.check`).
        self.limit = sys.maxsize
        #: Set with a dispatch budget: the caller runs on an event loop, so rules (which hold
        #: the GIL while the CEL library runs) give up with OverBudget too.
        self.inline = False
        self.data: Mapping[str, Any] = context.data
        self.context_tuples = context.tuples
        self.context_attributes = context.attributes
        self._context_tuples: dict[tuple[str, str, str], list[Subject]] = {}
        self._context_attributes: dict[AttributeKey, Attribute] = {}
        if context.tuples:
            for t in context.tuples:
                key = (t.entity_type, t.entity_id, t.relation)
                self._context_tuples.setdefault(key, []).append(t.subject)
        if context.attributes:
            self._context_attributes = {a.key: a for a in context.attributes}

    def dispatch(self, entity_type: str, eid: str, name: str, s: Subject, depth: int) -> bool:
        """Check ``entity_type:eid#name`` for ``s``: the one recursion point of evaluation."""
        if s[2] == name and s[1] == eid and s[0] == entity_type:
            return True  # the subject is this very userset
        if s is not self.root and not self.in_progress:
            self.begin(s)  # a new top-level question (bulk check items, confirmations)
        if depth < 0:
            raise _depth_error(depth)
        # A string key (strings are no work for the garbage collector): the lengths of all
        # parts but the last, then the parts, so no two questions share a key.
        sl, st = self.root_key if s is self.root else _subject_key(s)
        key = f"{len(entity_type)}.{len(name)}.{len(eid)}.{sl}\x00{entity_type}{name}{eid}{st}"
        results = self.results
        hit = results.get(key)
        if hit is not None:
            return hit
        progress = self.in_progress
        if key in progress:
            self._assume((key,))
            return False
        failed = self.failed.get(key)
        if failed is not None and depth <= failed[0]:
            assumed = failed[2]
            if assumed is None or assumed <= progress:
                if assumed is not None:
                    self._assume(assumed)
                raise failed[1].with_traceback(None)
        if self.tainted:
            tainted = self.tainted.get(key)
            if tainted is not None and tainted[0] <= progress:
                self._assume(tainted[0])
                return tainted[1]
        fn = self.evaluators.get((entity_type, name))
        if fn is None:
            fn = self.program.resolve(entity_type, name)
        self.count += 1
        if self.count > self.limit:
            raise OverBudget(self.limit)
        progress.add(key)
        cuts = self.cuts
        outer = self.assumed
        self.assumed = None
        try:
            answer = fn(self, eid, s, depth)
        except EngineError as exc:
            progress.discard(key)
            self.failed[key] = (depth, exc, self._settle(outer, cuts))
            raise
        except BaseException:
            progress.discard(key)
            self.assumed = outer
            raise
        progress.discard(key)
        if cuts == self.cuts:
            self.assumed = outer
            results[key] = answer
        else:
            assumed = self._settle(outer, cuts)
            assert assumed is not None
            self.tainted[key] = (assumed, answer)
        return answer

    def _assume(self, keys: Iterable[ResultKey]) -> None:
        """The answer being computed rests on ``keys`` (being evaluated further up the path)
        answering False: it is tainted."""
        self.cuts += 1
        if self.assumed is None:
            self.assumed = set(keys)
        else:
            self.assumed.update(keys)

    def _settle(self, outer: set[ResultKey] | None, cuts: int) -> frozenset[ResultKey] | None:
        """Back in the caller's frame after a hop: None when the hop's answer is untainted,
        else the keys still being evaluated that it assumed False (the caller assumes them
        too). The answer holds while they are all still being evaluated."""
        inner, self.assumed = self.assumed, outer
        if cuts == self.cuts:
            return None
        progress = self.in_progress
        still = frozenset(k for k in inner if k in progress) if inner else frozenset()
        if still:
            if outer is None:
                self.assumed = set(still)
            else:
                outer.update(still)
        return still

    def begin(self, subject: Subject) -> None:
        """Make ``subject`` the one membership tests are mostly about."""
        self.root = subject
        self.root_token = self.token(subject)
        self.root_key = _subject_key(subject)

    def token(self, s: Subject) -> object:
        """The reader's membership token for ``s`` (memoised for the request)."""
        token = self.tokens.get(s)
        if token is None:
            token = self.tokens[s] = self.reader.subject_token(s)
        return token

    def objects(self, entity_type: str, eid: str, relation: str) -> list[tuple[str, str]]:
        """`objects_of` the relation, cached beside it."""
        if self._context_tuples:
            return objects_of(self.relation(entity_type, eid, relation))
        key = f"{entity_type}\x01{relation}\x00{eid}"  # \x01: not a read key
        found: list[tuple[str, str]] | None = self.reads.get(key)
        if found is None:
            found = self.reads[key] = objects_of(self.relation(entity_type, eid, relation))
        return found

    def relation(self, entity_type: str, eid: str, relation: str) -> SubjectSet:
        key = f"{entity_type}\x00{relation}\x00{eid}"
        data: SubjectSet | None = self.reads.get(key)
        if data is None:
            data = self._read_relation(entity_type, eid, relation)
        if self._context_tuples:
            extra = self._context_tuples.get((entity_type, eid, relation))
            if extra:
                data = _Merged(data, extra, {self.reader.subject_token(s) for s in extra})
        return data

    def _read_relation(self, entity_type: str, eid: str, relation: str) -> SubjectSet:
        """Read one relation; for an entity type with several relations, read all of the
        entity's tuples in one scan when there are few (a permission usually needs several)."""
        reads = self.reads
        names = self.program.prefetch.get(entity_type)
        big = f"{entity_type}\x02{eid}"  # \x02: this entity is too big to read whole
        if names is not None and big not in reads:
            found = self.reader.relations(entity_type, eid, limit=PREFETCH_LIMIT)
            if found is not None:
                # Read keys are `type NUL relation NUL id`: schema names (identifiers, no
                # control characters) and the id last, so no two reads share a key (objects and
                # markers use \x01 and \x02 after the type). Relations the schema no longer
                # has are never asked for.
                for name in names:
                    reads[f"{entity_type}\x00{name}\x00{eid}"] = found.get(name, _NO_SUBJECTS)
                data: SubjectSet | None = reads.get(f"{entity_type}\x00{relation}\x00{eid}")
                if data is None:
                    data = reads[f"{entity_type}\x00{relation}\x00{eid}"] = _NO_SUBJECTS
                return data
            reads[big] = True
        data = self.reader.subject_set(entity_type, eid, relation)
        reads[f"{entity_type}\x00{relation}\x00{eid}"] = data
        return data

    def stored_attribute(self, entity_type: str, eid: str, name: str) -> Attribute | None:
        key = (entity_type, eid, "$" + name)
        reads = self.reads
        if key in reads:
            found: Attribute | None = reads[key]
            return found
        found = self.reader.attribute(entity_type, eid, name)
        reads[key] = found
        return found

    def context_attribute(self, entity_type: str, eid: str, name: str) -> Attribute | None:
        if not self._context_attributes:
            return None
        return self._context_attributes.get(AttributeKey(entity_type, eid, name))
