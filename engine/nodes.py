"""The evaluators of the rewrite-node kinds: one small function per kind.

`engine.program.Program` compiles each permission of a schema version into a tree of these
closures. Each takes the request's `Evaluation`, an entity id, the subject and the depth left,
and answers True or False or raises an `EngineError`. Set operations combine answers as Kleene
logic (see `engine.check`), so the answer never depends on child order. A closure that needs
a sub-problem answered (a userset, a tuple-to-userset hop, a permission named from several
places) hands it to `Evaluation.dispatch`, the one recursion point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from dsl.schema import AttributeType
from engine.errors import DepthExceeded, EngineError, OverBudget, RuleError, UnknownPermission
from engine.keys import objects_prefix, read_prefix
from engine.reads import READ_ONCE
from storage.base import AttributeValue, Subject, SubjectSet

if TYPE_CHECKING:
    from engine.check import Evaluation

Evaluator = Callable[["Evaluation", str, Subject, int], bool]


def depth_error(depth: int) -> DepthExceeded:
    """The error of a dispatch with no depth left (the engine facade adds the request's
    budget to the message)."""
    return DepthExceeded("the depth budget ran out before the answer was known")


def union_of(children: tuple[Evaluator, ...]) -> Evaluator:
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


def intersection_of(children: tuple[Evaluator, ...]) -> Evaluator:
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


def exclusion_of(base: Evaluator, subtract: Evaluator) -> Evaluator:
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


def reference_to(entity_type: str, name: str, target: Evaluator) -> Evaluator:
    """A reference to another name of the same entity: one dispatch, no data in between."""

    def computed(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        if s[2] == name and s[1] == eid and s[0] == entity_type:
            return True
        if depth < 1:
            raise depth_error(depth)
        return target(ev, eid, s, depth - 1)

    return computed


def dispatched_reference_to(entity_type: str, name: str) -> Evaluator:
    """A reference to a permission of the same entity named in several places: a dispatch, so
    it is evaluated once per question however many places reach it."""

    def cached(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        if depth < 1:
            raise depth_error(depth)
        return ev.dispatch(entity_type, eid, name, s, depth - 1)

    return cached


def late_reference_to(entity_type: str, name: str) -> Evaluator:
    """A permission compiled after the closure that references it (only in a cycle, which
    `dsl.compiler` refuses): looked up when called. The reference spends depth, so the cycle
    ends in DepthExceeded."""

    def late(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        return ev.evaluators[(entity_type, name)](ev, eid, s, depth)

    return late


def unknown_name(entity_type: str, name: str) -> Evaluator:
    def unknown(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        raise UnknownPermission.of(entity_type, name)

    return unknown


def relation_of(entity_type: str, relation: str, *, computed: bool = False) -> Evaluator:
    """``entity#relation``: the subject is stored there, or is in a stored userset.

    With ``computed``, this is a permission's reference to the relation (one dispatch in
    Permify's terms), fused into one closure: the reference's bookkeeping is inlined.
    """
    prefix = read_prefix(entity_type, relation)  # + id: the read cache's key

    def direct(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        if computed:
            if s[2] == relation and s[1] == eid and s[0] == entity_type:
                return True
            if depth < 1:
                raise depth_error(depth)
            depth -= 1
        reads = ev.plain_reads
        if reads is None:  # contextual tuples are merged in
            data = ev.relation(entity_type, eid, relation)
        else:
            key = prefix + eid
            found: SubjectSet | None = reads.get(key)
            if found is None or found is READ_ONCE:
                data = ev.read(entity_type, eid, relation, key)
            else:
                data = found
        if data.has(ev.root_token if s is ev.root else ev.token(s)):
            return True
        usersets = data.usersets
        return bool(usersets) and _any_hop(ev, usersets, None, s, depth)

    direct.__qualname__ = f"direct[{entity_type}#{relation}]"
    return direct


def tuple_to_userset_of(entity_type: str, tupleset: str, computed: str) -> Evaluator:
    """``tupleset.computed``: ``computed`` on every subject object of ``tupleset``."""

    prefix = objects_prefix(entity_type, tupleset)  # + id: the objects' key

    def tuple_to_userset(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        objects = ev.objects(entity_type, eid, tupleset, prefix + eid)
        return bool(objects) and _any_hop(ev, objects, computed, s, depth)

    return tuple_to_userset


def _any_hop(
    ev: Evaluation,
    hops: Sequence[Sequence[str]],
    name: str | None,
    s: Subject,
    depth: int,
) -> bool:
    """The union (three-valued, like `union_of`) of one dispatch per hop, each costing one unit
    of depth: to ``name`` on each (type, id) object, or, with no ``name``, to each userset
    (type, id, relation)."""
    # The loop of `union_of`, written again: sharing it would cost a closure and a call per hop,
    # and this is the check's inner loop.
    if depth < 1:
        raise depth_error(depth)
    depth -= 1
    error: EngineError | None = None
    for hop in hops:
        try:
            # Called as a method, not through a local: compiled, that is a direct C call.
            if ev.dispatch(hop[0], hop[1], hop[2] if name is None else name, s, depth):
                return True
        except EngineError as exc:
            if error is None:
                error = exc
    if error is not None:
        raise error
    return False


def attribute_of(entity_type: str, name: str, kind: AttributeType) -> Evaluator:
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


def rule_call_of(entity_type: str, rule: str, arguments: tuple[str, ...]) -> Evaluator:
    """A rule over this entity's attributes (stored value first, as Permify) and context.data."""

    def call(ev: Evaluation, eid: str, s: Subject, depth: int) -> bool:
        if depth < 1:
            raise depth_error(depth)
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
