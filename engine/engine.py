"""The engine facade: pick the snapshot and schema version, then evaluate.

Every operation reads one tenant at one snapshot (``snap_token``, or the latest revision) with
one schema version (``schema_version``, or the newest). Schemas are compiled once per version
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
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dsl.compiler import load
from dsl.errors import SchemaError
from dsl.gcpause import gc_paused
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
    DEFAULT_DEPTH,
    DEFAULT_LOOKUP_PAGE_SIZE,
    EMPTY_CONTEXT,
    FRAMES_PER_DEPTH,
    MAX_BULK_CHECK_ITEMS,
    MAX_DEPTH,
    RESERVED_FRAMES,
    CheckItem,
    CheckResult,
    Context,
    Entity,
    LookupPage,
    SubjectReference,
)
from storage import errors as storage_errors
from storage.base import SnapshotReader, Store, Subject


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

    def _compiled_already(self, tenant: str, version: str) -> Compiled | None:
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

    def _evaluation(
        self, tenant: str, snap_token: str, schema_version: str, context: Context
    ) -> tuple[Evaluation, Compiled]:
        compiled = self.compiled(tenant, schema_version)
        reader: SnapshotReader = self.store.reader(tenant, snap_token)
        results = self._results_for(tenant, compiled, reader, context)
        return self._evaluation_at(tenant, compiled, reader, context, results), compiled

    def _results_for(
        self, tenant: str, compiled: Compiled, reader: SnapshotReader, context: Context
    ) -> dict[Any, Any]:
        """The results cache a request uses: shared per (tenant, version, revision), or a
        private one when the request has a context."""
        if context.is_empty:
            return self._results.get((tenant, compiled.version, reader.revision))
        return {}

    def _evaluation_at(
        self,
        tenant: str,
        compiled: Compiled,
        reader: SnapshotReader,
        context: Context,
        results: dict[Any, Any],
    ) -> Evaluation:
        reads = self._reads.get((tenant, reader.revision)) if context.is_empty else {}
        return Evaluation(compiled.program, reader, context, reads, results)

    def _depth(self, depth: int) -> int:
        if depth < 0:
            raise DepthExceeded(f"depth must not be negative, got {depth}")
        return min(depth, self.depth_cap())

    def depth_cap(self, compiled: Compiled | None = None) -> int:
        """The largest depth a request gets: ``max_depth``, lowered to what Python's recursion
        limit can follow (about 225 with the default limit of 1000; a process that raises the
        limit with ``sys.setrecursionlimit`` gets more). With ``compiled``, for that schema:
        lower when its permissions nest set operations more than one deep, since each unit of
        depth may then take more frames (`Program.frames_per_depth`)."""
        frames = FRAMES_PER_DEPTH if compiled is None else compiled.program.frames_per_depth
        room = (sys.getrecursionlimit() - RESERVED_FRAMES) // frames
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
        *,
        snap_token: str = "",
        schema_version: str = "",
        depth: int = DEFAULT_DEPTH,
        context: Context = EMPTY_CONTEXT,
        max_dispatches: int | None = None,
    ) -> CheckResult:
        """Has ``subject`` got ``permission`` (or relation, attribute, rule) on ``entity``?

        With ``max_dispatches`` the evaluation gives up with `OverBudget` once it needs more
        than that many dispatches (a cached answer needs none), before it would compile the
        schema, and before it would evaluate a rule: the API answers small checks on its event
        loop and sends the rest to a worker thread. Work finished before giving up stays
        cached, so asking again costs only the rest.
        """
        if depth < 0:
            raise DepthExceeded(f"depth must not be negative, got {depth}")
        if max_dispatches is None:
            compiled = self.compiled(tenant, schema_version)
        else:
            # Compiling a schema (its rules included) is no small step: not on an event loop.
            found = self._compiled_already(tenant, schema_version)
            if found is None:
                raise OverBudget(max_dispatches)
            compiled = found
        asked, depth = depth, min(depth, self.depth_cap(compiled))
        reader: SnapshotReader = self.store.reader(tenant, snap_token)
        results = self._results_for(tenant, compiled, reader, context)
        # A proven answer needs no evaluation state (the hot path of a busy server).
        hit = results.get(result_key(entity.type, entity.id, permission, subject_key(subject)))
        if hit is not None:
            return CheckResult(hit, 0)
        ev = self._evaluation_at(tenant, compiled, reader, context, results)
        if max_dispatches is not None:
            ev.limit = max_dispatches
            ev.inline = True
        try:
            allowed = ev.dispatch(entity.type, entity.id, permission, subject, depth)
        except (DepthExceeded, RecursionError):
            with _depth_guard(asked, depth):
                raise
        return CheckResult(allowed, ev.count)

    def bulk_check(
        self,
        tenant: str,
        items: Sequence[CheckItem],
        *,
        snap_token: str = "",
        schema_version: str = "",
        depth: int = DEFAULT_DEPTH,
        context: Context = EMPTY_CONTEXT,
    ) -> list[CheckResult | EngineError]:
        """Up to 100 checks at one snapshot, sharing reads and sub-results; an item that fails
        gets its error in place of a result."""
        if len(items) > MAX_BULK_CHECK_ITEMS:
            raise InvalidRequest(
                f"a bulk check takes at most {MAX_BULK_CHECK_ITEMS} items, got {len(items)}"
            )
        asked, depth = depth, self._depth(depth)
        ev, compiled = self._evaluation(tenant, snap_token, schema_version, context)
        depth = min(depth, self.depth_cap(compiled))
        out: list[CheckResult | EngineError] = []
        for item in items:
            before = ev.count
            try:
                with _depth_guard(asked, depth):
                    allowed = ev.dispatch(
                        item.entity.type, item.entity.id, item.permission, item.subject, depth
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
        *,
        snap_token: str = "",
        schema_version: str = "",
        depth: int = DEFAULT_DEPTH,
        context: Context = EMPTY_CONTEXT,
    ) -> ExpandTree:
        """The typed expand tree of ``entity``'s ``permission`` (see `engine.expand`)."""
        asked, depth = depth, self._depth(depth)
        compiled = self.compiled(tenant, schema_version)
        reader = self.store.reader(tenant, snap_token)
        with _depth_guard(asked, depth):
            return expand_tree(
                compiled.schema, reader, entity, permission, context=context, depth=depth
            )

    def lookup_entity(
        self,
        tenant: str,
        entity_type: str,
        permission: str,
        subject: Subject,
        *,
        snap_token: str = "",
        schema_version: str = "",
        depth: int = DEFAULT_DEPTH,
        context: Context = EMPTY_CONTEXT,
        scope: Mapping[str, Sequence[str]] | None = None,
        page_size: int = DEFAULT_LOOKUP_PAGE_SIZE,
        cursor: str = "",
    ) -> LookupPage:
        """One page of the ids of ``entity_type`` on which ``subject`` has ``permission``."""
        ids = self._lookup_entity(
            tenant, entity_type=entity_type, permission=permission, subject=subject,
            snap_token=snap_token, schema_version=schema_version, depth=depth,
            context=context, scope=scope,
        )
        return lookup.page(ids, page_size, cursor)

    def _lookup_entity(
        self,
        tenant: str,
        *,
        entity_type: str,
        permission: str,
        subject: Subject,
        snap_token: str,
        schema_version: str,
        depth: int,
        context: Context,
        scope: Mapping[str, Sequence[str]] | None,
    ) -> list[str]:
        asked, depth = depth, self._depth(depth)
        ev, compiled = self._evaluation(tenant, snap_token, schema_version, context)
        depth = min(depth, self.depth_cap(compiled))
        with _depth_guard(asked, depth):
            return lookup.lookup_entity_ids(
                ev, compiled.graph, entity_type, permission, subject, depth=depth, scope=scope
            )

    def lookup_entity_stream(
        self,
        tenant: str,
        entity_type: str,
        permission: str,
        subject: Subject,
        *,
        snap_token: str = "",
        schema_version: str = "",
        depth: int = DEFAULT_DEPTH,
        context: Context = EMPTY_CONTEXT,
        scope: Mapping[str, Sequence[str]] | None = None,
        cursor: str = "",
    ) -> Iterator[tuple[str, str]]:
        """Every id in order, each with the cursor that resumes after it. The answer is computed
        when this is called (errors raise here), then handed out lazily."""
        ids = self._lookup_entity(
            tenant, entity_type=entity_type, permission=permission, subject=subject,
            snap_token=snap_token, schema_version=schema_version, depth=depth,
            context=context, scope=scope,
        )
        return lookup.stream(ids, cursor)

    def lookup_subject(
        self,
        tenant: str,
        entity: Entity,
        permission: str,
        reference: SubjectReference,
        *,
        snap_token: str = "",
        schema_version: str = "",
        depth: int = DEFAULT_DEPTH,
        context: Context = EMPTY_CONTEXT,
        page_size: int = DEFAULT_LOOKUP_PAGE_SIZE,
        cursor: str = "",
    ) -> LookupPage:
        """One page of the ids of ``reference`` subjects with ``permission`` on ``entity``."""
        asked, depth = depth, self._depth(depth)
        ev, compiled = self._evaluation(tenant, snap_token, schema_version, context)
        depth = min(depth, self.depth_cap(compiled))
        with _depth_guard(asked, depth):
            ids = lookup.lookup_subject_ids(
                ev, compiled.schema, entity.type, entity.id, permission,
                reference=reference, depth=depth,
            )
        return lookup.page(ids, page_size, cursor)

    def subject_permission(
        self,
        tenant: str,
        entity: Entity,
        subject: Subject,
        *,
        only_permission: bool = False,
        snap_token: str = "",
        schema_version: str = "",
        depth: int = DEFAULT_DEPTH,
        context: Context = EMPTY_CONTEXT,
    ) -> dict[str, bool]:
        """Every permission (and, unless ``only_permission``, relation) -> allowed; any error
        fails the whole answer."""
        asked, depth = depth, self._depth(depth)
        ev, compiled = self._evaluation(tenant, snap_token, schema_version, context)
        depth = min(depth, self.depth_cap(compiled))
        definition = compiled.schema.entities.get(entity.type)
        if definition is None:
            raise UnknownEntityType.of(entity.type)
        names = list(definition.permissions)
        if not only_permission:
            names = list(definition.relations) + names
        with _depth_guard(asked, depth):
            return {
                name: ev.dispatch(entity.type, entity.id, name, subject, depth) for name in names
            }
