"""The engine facade: pick the snapshot and schema version, then evaluate.

Every operation reads one tenant at one snapshot (``snap_token``, or the latest revision) with
one schema version (``schema_version``, or the newest), as its `RequestOptions` say, after one
preparation step (`Engine.prepare`). Schemas are compiled once per version
(rewrite trees into closures, rules into CEL programs, the reverse graph for lookups) and kept
in a bounded cache.

Caching and concurrency: sub-results and reads are cached per (tenant, schema version,
revision) -- an answer at a revision can never go stale, so there is nothing to invalidate; a
write simply makes a new revision whose requests fill fresh caches. At most
``cache_generations`` such generations are kept, each bounded by ``check_cache_entries`` /
``read_cache_entries`` (a full generation is emptied when the next request starts). A request
with a context (contextual tuples, attributes or data) gets private caches. The engine is
synchronous and thread-safe: the API calls it from a thread pool so a slow check never blocks
the event loop; see ``check.py`` for the evaluation model.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from dsl.collector import gc_paused
from dsl.compiler import load
from dsl.errors import SchemaError
from dsl.schema import Schema
from engine import lookup
from engine.check import Evaluation
from engine.errors import (
    DepthExceeded,
    EngineError,
    InvalidRequest,
    OverBudget,
    SchemaNotFound,
    UnknownEntityType,
)
from engine.expand import ExpandTree
from engine.expand import expand as expand_tree
from engine.keys import result_key, subject_key
from engine.program import Program
from engine.rules import RuleSet
from engine.types import (
    DEFAULT_LOOKUP_PAGE_SIZE,
    DEFAULT_OPTIONS,
    FRAMES_PER_DEPTH,
    MAX_BULK_CHECK_ITEMS,
    MAX_DEPTH,
    RESERVED_FRAMES,
    CheckItem,
    CheckResult,
    Context,
    Entity,
    LookupPage,
    RequestOptions,
    SubjectReference,
)
from storage import errors as storage_errors
from storage.base import SnapshotReader, Store, Subject
from storage.compiled import MAX_NESTED_CALLS


class Compiled:
    """Everything derived from one schema version."""

    __slots__ = ("graph", "program", "schema", "version")

    def __init__(self, version: str, schema: Schema) -> None:
        self.version = version
        self.schema = schema
        # One closure and index entry per node, none in a reference cycle: left running, the
        # cyclic collector rescans them again and again (9 s instead of 1 s for 4 MiB).
        with gc_paused():
            self.program = Program(schema, RuleSet.compile(schema.rules))
            self.graph = lookup.Graph(schema)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Bounds of the engine's caches and of the depth budget.

    ``check_cache_entries`` and ``read_cache_entries`` bound each cache's entries in total over
    its ``cache_generations`` generations (one per tenant and revision in use).
    """

    check_cache_entries: int = 200_000
    read_cache_entries: int = 200_000
    schema_cache_entries: int = 64
    cache_generations: int = 16
    max_depth: int = MAX_DEPTH


class Generations:
    """Cache dicts, one per generation key ((tenant, revision) or with the schema version).

    The most recently used ``keep`` generations are kept, so tenants busy at different
    revisions each keep theirs; together they hold about ``entries`` entries: a new generation
    evicts the least recently used ones until the total fits, and a generation grown past
    ``entries`` alone is emptied when next used.
    """

    def __init__(self, keep: int, entries: int) -> None:
        self._keep = keep
        self._entries = entries
        self._dicts: OrderedDict[Any, dict[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> dict[Any, Any]:
        found = self._dicts.get(key)
        if found is not None and len(found) <= self._entries:
            # One C call, atomic under the GIL: no lock on the hot path (and no
            # contextlib.suppress, which costs more than the call).
            try:  # noqa: SIM105
                self._dicts.move_to_end(key)
            except KeyError:  # evicted meanwhile by another thread; this request keeps it
                pass
            return found
        with self._lock:
            found = self._dicts.get(key)
            if found is None:
                found = self._dicts[key] = {}
                # list() copies in one C call: readers move entries without the lock.
                total = sum(len(d) for d in list(self._dicts.values()))
                while len(self._dicts) > 1 and (
                    len(self._dicts) > self._keep or total > self._entries
                ):
                    _, evicted = self._dicts.popitem(last=False)
                    total -= len(evicted)
            elif len(found) > self._entries:
                found.clear()
            return found

    def clear(self) -> None:
        with self._lock:
            self._dicts.clear()


@contextmanager
def _depth_guard(asked: int, depth: int) -> Iterator[None]:
    """Say which budget ran out; and report nesting deeper than Python's stack allows (a chain
    of hundreds of nested usersets) as a depth error, not a crash."""
    try:
        yield
    except DepthExceeded as exc:
        if asked > depth:
            raise DepthExceeded(
                f"{exc} (depth {asked}, capped to {depth}, the most this engine follows: "
                "each nested relation, permission or tuple hop costs 1)"
            ) from None
        raise DepthExceeded(
            f"{exc} (depth {depth}: each nested relation, permission or tuple hop costs 1); "
            "retry with a larger depth"
        ) from None
    except RecursionError:
        raise DepthExceeded(
            f"evaluation nested deeper than this process can follow before the depth budget "
            f"({depth}) ran out; the data holds a chain of hundreds of nested hops"
        ) from None


class Prepared:
    """What `Engine.prepare` found for one request: the compiled schema version, the reader at
    the snapshot, the results cache, the depth the request gets, and its options."""

    __slots__ = ("compiled", "depth", "options", "reader", "results", "tenant")

    def __init__(
        self,
        tenant: str,
        compiled: Compiled,
        reader: SnapshotReader,
        results: dict[str, bool],
        *,
        depth: int,
        options: RequestOptions,
    ) -> None:
        self.tenant = tenant
        self.compiled = compiled
        self.reader = reader
        self.results = results
        #: The depth asked for, capped to what the engine follows for this schema.
        self.depth = depth
        self.options = options

    def guard(self) -> AbstractContextManager[None]:
        """Report a depth error with the request's budget (see `_depth_guard`)."""
        return _depth_guard(self.options.depth, self.depth)


def _unusable(tenant: str, version: str, exc: SchemaError) -> SchemaNotFound:
    """The error for a stored schema version that does not compile (any more)."""
    shown = "; ".join(str(d) for d in exc.diagnostics[:3])
    if len(exc.diagnostics) > 3:
        shown += f"; and {len(exc.diagnostics) - 3} more"
    return SchemaNotFound(
        f"schema version {version} of tenant {tenant!r} does not compile under this server's "
        f"limits, so nothing can be evaluated with it ({shown}); write a new schema to "
        "replace it"
    )


class Engine:
    """Evaluates checks, lookups and expands for every tenant of one store."""

    def __init__(self, store: Store, config: EngineConfig | None = None) -> None:
        self.store = store
        self.config = config = config or EngineConfig()
        #: (tenant, version) -> its compiled schema, or why it does not compile.
        self._compiled: dict[tuple[str, str], Compiled | SchemaNotFound] = {}
        self._compile_lock = threading.Lock()
        self._results = Generations(config.cache_generations, config.check_cache_entries)
        self._reads = Generations(config.cache_generations, config.read_cache_entries)

    # -- schema and snapshot -------------------------------------------------------------------

    def compiled(self, tenant: str, version: str = "") -> Compiled:
        """The compiled schema ``version`` (or head) of ``tenant``; compiled once."""
        if not version:
            version = self.store.schema_head(tenant)
            if not version:
                raise SchemaNotFound(f"tenant {tenant!r} has no schema yet: write one first")
        key = (tenant, version)
        found = self._compiled.get(key)
        if found is None:
            try:
                stored = self.store.read_schema(tenant, version)
            except storage_errors.SchemaNotFound as exc:
                raise SchemaNotFound(str(exc)) from exc
            with self._compile_lock:
                found = self._compiled.get(key)
                if found is None:
                    try:
                        found = Compiled(stored.version, load(stored.text))
                    except SchemaError as exc:
                        # Kept like a compiled one: a stored schema that no longer compiles
                        # (written before a limit it breaks) costs one compile, not one a request.
                        found = _unusable(tenant, stored.version, exc)
                    while len(self._compiled) >= self.config.schema_cache_entries:
                        del self._compiled[next(iter(self._compiled))]
                    self._compiled[key] = found
        if isinstance(found, SchemaNotFound):
            raise SchemaNotFound(str(found))
        return found

    def compiled_already(self, tenant: str, version: str) -> Compiled | None:
        """``version`` (or the head) of ``tenant`` if it is compiled already, else None (also
        when there is no schema, or it does not compile: `compiled` says why). Never
        compiles."""
        if not version:
            version = self.store.schema_head(tenant)
        found = self._compiled.get((tenant, version))
        return found if isinstance(found, Compiled) else None

    def schema(self, tenant: str, version: str = "") -> tuple[str, Schema]:
        """The compiled schema (``version`` or head) and its version id."""
        compiled = self.compiled(tenant, version)
        return compiled.version, compiled.schema

    def prepare(self, tenant: str, options: RequestOptions) -> Prepared:
        """The one preparation step of every evaluating operation (see `_prepare`)."""
        compiled, reader, results, depth = self._prepare(tenant, options, None)
        return Prepared(tenant, compiled, reader, results, depth=depth, options=options)

    def _prepare(
        self,
        tenant: str,
        options: RequestOptions,
        budget: int | None,
        *,
        evaluates: bool = True,
        first: Entity | None = None,
    ) -> tuple[Compiled, SnapshotReader, dict[str, bool], int]:
        """Refuse a negative depth, take the compiled schema version, the reader at the
        snapshot and the results cache, and cap the depth for that schema. A plain tuple, not
        a `Prepared`: the check of a proven answer uses it directly, and an object costs that
        path a tenth of its time.

        The results cache is shared per (tenant, schema version, revision), or private when the
        request has a context, which changes answers. Without ``evaluates`` (expand) it is not
        taken: the first request at a revision starts a generation, which may evict the oldest.
        ``first`` is the entity the evaluation reads first, for the store to read with the
        snapshot when it can (a database store: in the head's round trip).

        With ``budget`` (a dispatch budget for a caller on an event loop), a schema version that
        is not compiled yet raises `OverBudget` instead of being compiled here.
        """
        depth = options.depth
        if depth < 0:
            raise DepthExceeded(f"depth must not be negative, got {depth}")
        reader: SnapshotReader = self.store.reader(
            tenant, options.snap_token, prefetch=None if first is None else (first.type, first.id)
        )
        # A database store reads the schema head with the revision: no second round trip.
        version = options.schema_version or reader.schema_head or ""
        if budget is None:
            compiled = self.compiled(tenant, version)
        else:
            # Compiling a schema (its rules included) is no small step: not on an event loop.
            found = self.compiled_already(tenant, version)
            if found is None:
                raise OverBudget(budget)
            compiled = found
        if evaluates and options.context.is_empty:
            results = self._results.get((tenant, compiled.version, reader.revision))
        else:
            results = {}
        return compiled, reader, results, min(depth, self.depth_cap(compiled))

    def evaluation(self, prepared: Prepared) -> Evaluation:
        """A new evaluation of ``prepared`` (see `_evaluation`)."""
        return self._evaluation(
            prepared.tenant,
            prepared.compiled,
            prepared.reader,
            prepared.options.context,
            prepared.results,
        )

    def _evaluation(
        self,
        tenant: str,
        compiled: Compiled,
        reader: SnapshotReader,
        context: Context,
        results: dict[str, bool],
    ) -> Evaluation:
        """A new evaluation: shared reads at (tenant, revision), or private ones when the
        request has a context."""
        reads = self._reads.get((tenant, reader.revision)) if context.is_empty else {}
        return Evaluation(compiled.program, reader, context, reads, results)

    def depth_cap(self, compiled: Compiled | None = None) -> int:
        """The largest depth a request gets: ``max_depth``, lowered to what Python's recursion
        limit can follow (about 225 with the default limit of 1000; a process that raises the
        limit with ``sys.setrecursionlimit`` gets more). With ``compiled``, for that schema:
        lower when its permissions nest set operations more than one deep, since each unit of
        depth may then take more frames (`Program.frames_per_depth`). Compiled evaluation
        nests its calls on the C stack, which the recursion limit does not watch: it is also
        held to what that stack holds (`storage.compiled.MAX_NESTED_CALLS`)."""
        frames = FRAMES_PER_DEPTH if compiled is None else compiled.program.frames_per_depth
        calls = min(sys.getrecursionlimit(), MAX_NESTED_CALLS)
        room = (calls - RESERVED_FRAMES) // frames
        return max(0, min(self.config.max_depth, room))

    def forget(self, tenant: str) -> None:
        """Drop cached state of ``tenant``. Call it when the tenant is deleted: a tenant created
        again under the same id starts at new revisions, but old snap tokens must not reach
        the deleted tenant's cached reads."""
        with self._compile_lock:
            for key in [k for k in self._compiled if k[0] == tenant]:
                del self._compiled[key]
        self._results.clear()
        self._reads.clear()

    # -- operations ----------------------------------------------------------------------------

    def check(
        self,
        tenant: str,
        entity: Entity,
        permission: str,
        subject: Subject,
        options: RequestOptions = DEFAULT_OPTIONS,
        *,
        max_dispatches: int | None = None,
    ) -> CheckResult:
        """Has ``subject`` got ``permission`` (or relation, attribute, rule) on ``entity``?

        With ``max_dispatches`` the evaluation gives up with `OverBudget` once it needs more
        than that many dispatches (a cached answer needs none), before it would compile the
        schema, and before it would evaluate a rule: the API answers small checks on its event
        loop and sends the rest to a worker thread. Work finished before giving up stays
        cached, so asking again costs only the rest.
        """
        compiled, reader, results, depth = self._prepare(
            tenant, options, max_dispatches, first=entity
        )
        # A proven answer needs no evaluation state (the hot path of a busy server).
        sk = subject_key(subject)
        hit = results.get(result_key(entity.type, entity.id, permission, sk))
        if hit is not None:
            return CheckResult(hit, 0)
        ev = self._evaluation(tenant, compiled, reader, options.context, results)
        ev.begin(subject, sk)
        if max_dispatches is not None:
            ev.limit = max_dispatches
            ev.inline = True
        try:
            allowed = ev.dispatch(entity.type, entity.id, permission, subject, depth)
        except (DepthExceeded, RecursionError):
            with _depth_guard(options.depth, depth):  # a generator: only on the error path
                raise
        return CheckResult(allowed, ev.count)

    def bulk_check(
        self,
        tenant: str,
        items: Sequence[CheckItem],
        options: RequestOptions = DEFAULT_OPTIONS,
    ) -> list[CheckResult | EngineError]:
        """Up to 100 checks at one snapshot, sharing reads and sub-results; an item that fails
        gets its error in place of a result."""
        if len(items) > MAX_BULK_CHECK_ITEMS:
            raise InvalidRequest(
                f"a bulk check takes at most {MAX_BULK_CHECK_ITEMS} items, got {len(items)}"
            )
        prepared = self.prepare(tenant, options)
        ev = self.evaluation(prepared)
        out: list[CheckResult | EngineError] = []
        for item in items:
            before = ev.count
            try:
                with prepared.guard():
                    allowed = ev.dispatch(
                        item.entity.type,
                        item.entity.id,
                        item.permission,
                        item.subject,
                        prepared.depth,
                    )
            except EngineError as exc:
                out.append(exc)
            else:
                out.append(CheckResult(allowed, ev.count - before))
        return out

    def expand(
        self,
        tenant: str,
        entity: Entity,
        permission: str,
        options: RequestOptions = DEFAULT_OPTIONS,
    ) -> ExpandTree:
        """The typed expand tree of ``entity``'s ``permission`` (see `engine.expand`)."""
        # No evaluation, so no results cache; and expand walks on an explicit stack of its own,
        # so only the engine-wide depth cap applies.
        compiled, reader, _, _ = self._prepare(tenant, options, None, evaluates=False)
        depth = min(options.depth, self.depth_cap())
        with _depth_guard(options.depth, depth):
            return expand_tree(
                compiled.schema, reader, entity, permission, context=options.context, depth=depth
            )

    def lookup_entity(
        self,
        tenant: str,
        entity_type: str,
        permission: str,
        subject: Subject,
        options: RequestOptions = DEFAULT_OPTIONS,
        *,
        scope: Mapping[str, Sequence[str]] | None = None,
        page_size: int = DEFAULT_LOOKUP_PAGE_SIZE,
        cursor: str = "",
    ) -> LookupPage:
        """One page of the ids of ``entity_type`` on which ``subject`` has ``permission``."""
        ids = self._lookup_entity(
            tenant, entity_type, permission, subject, options, scope=scope
        )
        return lookup.page(ids, page_size, cursor)

    def lookup_entity_stream(
        self,
        tenant: str,
        entity_type: str,
        permission: str,
        subject: Subject,
        options: RequestOptions = DEFAULT_OPTIONS,
        *,
        scope: Mapping[str, Sequence[str]] | None = None,
        cursor: str = "",
    ) -> Iterator[tuple[str, str]]:
        """Every id in order, each with the cursor that resumes after it. The answer is computed
        when this is called (errors raise here), then handed out lazily."""
        ids = self._lookup_entity(
            tenant, entity_type, permission, subject, options, scope=scope
        )
        return lookup.stream(ids, cursor)

    def _lookup_entity(
        self,
        tenant: str,
        entity_type: str,
        permission: str,
        subject: Subject,
        options: RequestOptions,
        *,
        scope: Mapping[str, Sequence[str]] | None,
    ) -> list[str]:
        prepared = self.prepare(tenant, options)
        ev = self.evaluation(prepared)
        with prepared.guard():
            return lookup.lookup_entity_ids(
                ev,
                prepared.compiled.graph,
                entity_type,
                permission,
                subject,
                depth=prepared.depth,
                scope=scope,
            )

    def lookup_subject(
        self,
        tenant: str,
        entity: Entity,
        permission: str,
        reference: SubjectReference,
        options: RequestOptions = DEFAULT_OPTIONS,
        *,
        page_size: int = DEFAULT_LOOKUP_PAGE_SIZE,
        cursor: str = "",
    ) -> LookupPage:
        """One page of the ids of ``reference`` subjects with ``permission`` on ``entity``."""
        prepared = self.prepare(tenant, options)
        ev = self.evaluation(prepared)
        with prepared.guard():
            ids = lookup.lookup_subject_ids(
                ev,
                prepared.compiled.schema,
                entity.type,
                entity.id,
                permission,
                reference=reference,
                depth=prepared.depth,
            )
        return lookup.page(ids, page_size, cursor)

    def subject_permission(
        self,
        tenant: str,
        entity: Entity,
        subject: Subject,
        options: RequestOptions = DEFAULT_OPTIONS,
        *,
        only_permission: bool = False,
    ) -> dict[str, bool]:
        """Every permission (and, unless ``only_permission``, relation) -> allowed; any error
        fails the whole answer."""
        prepared = self.prepare(tenant, options)
        ev = self.evaluation(prepared)
        definition = prepared.compiled.schema.entities.get(entity.type)
        if definition is None:
            raise UnknownEntityType.of(entity.type)
        names = list(definition.permissions)
        if not only_permission:
            names = list(definition.relations) + names
        depth = prepared.depth
        with prepared.guard():
            return {
                name: ev.dispatch(entity.type, entity.id, name, subject, depth) for name in names
            }
