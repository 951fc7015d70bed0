"""Check: is ``subject`` in ``entity#name``? Permify's semantics, evaluated fast.

Where a check is evaluated: each schema version is compiled once into a `Program`
(`engine.program`): one closure per (entity type, name), built from one small function per
rewrite-node kind (`engine.nodes`). A request gets an `Evaluation` (its reader and context,
`engine.reads`; its caches; its path) and asks `Evaluation.dispatch`, the dispatcher: the one
recursion point. Every sub-problem a closure cannot answer from its own node goes back through
`dispatch`, which runs the same steps for it as for the request's question:

1. **Guards.** A subject that is this very userset is in it; a dispatch with no depth left
   raises `DepthExceeded`.
2. **Results cache.** The question's key (`engine.keys.result_key`, the only place result keys
   are built) is looked up among proven answers; a hit is returned.
3. **Cycle cut.** The request's `engine.cycles.Path` decides questions already being evaluated
   on the current path, memoised failures and tainted answers.
4. **Evaluation.** The question's closure runs, counted against the dispatch budget; an
   untainted answer is stored in the results cache.

The cache and the cycle cut are asked *around* the evaluation, not stacked as delegate objects
that call each other: every Python frame on the recursion path is a frame less for the depth a
request can follow (`Program.frames_per_depth`), and a call per layer per hop is measurable on
the first pass.

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
* **Cycles in data** are cut: a hop to a question already being evaluated on the current path
  answers False, and what rests on such an assumption is never shared (`engine.cycles`).
* **Caches.** `Evaluation.results` memoises untainted answers and `Evaluation.reads` relation and
  attribute reads. The engine shares both between requests at the same (tenant, schema version,
  revision) -- data at a revision never changes, so a hit is never stale -- and gives a request
  with a context private ones, since its contextual tuples and data change answers. A permission
  named from more than one place in its entity is dispatched, and so cached, since a diamond in
  the schema (``p0 = p1 and p2``, ``p1 = p2 and p3``, ...) would otherwise be evaluated once per
  path; one named once is called directly.

Concurrency: evaluation is synchronous and CPU-bound (storage reads are µs-scale C calls). The
API runs it in a thread pool so the event loop keeps serving; caches are plain dicts whose
single get/set operations are atomic under the GIL, and two threads racing to fill the same key
store the same fact.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

from engine.cycles import Path
from engine.errors import EngineError, OverBudget
from engine.keys import SubjectKey, result_key, subject_key
from engine.nodes import depth_error
from engine.program import Program
from engine.reads import Reads
from engine.types import Context
from storage.base import SnapshotReader, Subject


class Dispatcher(Protocol):
    """What evaluation recurses through: "is ``s`` in ``entity_type:eid#name``, with ``depth``
    units of depth left?" True, False, or an `EngineError`."""

    def dispatch(self, entity_type: str, eid: str, name: str, s: Subject, depth: int) -> bool:
        """Answer one question (see the module docstring for the steps)."""
        ...


class Evaluation(Reads):
    """One request: its reads (`Reads`), results cache, path, counters; the `Dispatcher`."""

    __slots__ = (
        "count",
        "evaluators",
        "inline",
        "limit",
        "path",
        "program",
        "results",
        "root",
        "root_key",
        "root_token",
    )

    def __init__(
        self,
        program: Program,
        reader: SnapshotReader,
        context: Context,
        reads: dict[Any, Any],
        results: dict[str, bool],
    ) -> None:
        super().__init__(reader, context, reads, program.prefetch)
        self.program = program
        self.evaluators = program.evaluators
        self.results = results
        self.path = Path()
        #: The subject most membership tests are about, its token and key (see `begin`).
        self.root: Subject | None = None
        self.root_token: object = None
        self.root_key: SubjectKey = ("", "")
        #: Dispatches so far, and how many are allowed before OverBudget (see `Engine.check`).
        self.count = 0
        self.limit = sys.maxsize
        #: Set with a dispatch budget: the caller runs on an event loop, so rules (which hold
        #: the GIL while the CEL library runs) give up with OverBudget too.
        self.inline = False

    def dispatch(self, entity_type: str, eid: str, name: str, s: Subject, depth: int) -> bool:
        """Check ``entity_type:eid#name`` for ``s``: the one recursion point of evaluation."""
        if s[2] == name and s[1] == eid and s[0] == entity_type:
            return True  # the subject is this very userset
        path = self.path
        if s is not self.root and not path.in_progress:
            self.begin(s)  # a new top-level question (bulk check items, confirmations)
        if depth < 0:
            raise depth_error(depth)
        sk = self.root_key if s is self.root else subject_key(s)
        key = result_key(entity_type, eid, name, sk)
        results = self.results
        hit = results.get(key)
        if hit is not None:
            return hit
        if key in path.in_progress or path.failed or path.tainted:
            known = path.known(key, depth)
            if known is not None:
                return known
        fn = self.evaluators.get((entity_type, name))
        if fn is None:
            fn = self.program.resolve(entity_type, name)
        self.count += 1
        if self.count > self.limit:
            raise OverBudget(self.limit)
        # The path's bookkeeping, done here rather than in calls to it (a call a dispatch is
        # measurable on the first pass); what a cut or a failure means is `Path`'s to decide.
        progress = path.in_progress
        progress.add(key)
        cuts = path.cuts
        outer = path.assumed
        path.assumed = None
        try:
            answer = fn(self, eid, s, depth)
        except EngineError as exc:
            path.fail(key, cuts, outer, depth, exc)
            raise
        except BaseException:
            path.abandon(key, outer)
            raise
        progress.discard(key)
        if cuts == path.cuts:
            path.assumed = outer
            results[key] = answer
        else:
            path.taint(key, cuts, outer, answer)
        return answer

    def begin(self, subject: Subject, key: SubjectKey | None = None) -> None:
        """Make ``subject`` (whose `subject_key` is ``key``, when known) the one membership
        tests are mostly about."""
        self.root = subject
        self.root_token = self.token(subject)
        self.root_key = subject_key(subject) if key is None else key
