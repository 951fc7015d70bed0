"""Cycle cutting: the questions being evaluated on the current path, and what rests on them.

Data may hold cycles (group 1 in group 2 in group 1, a folder that is its own ancestor). The
dispatcher asks `Path.known` before it evaluates a question, marks it in progress
(`Path.in_progress`) while it is evaluated, and hands an answer resting on a cut to
`Path.taint`, an error to `Path.fail`:

* A question already being evaluated on the path answers False ("cut"). For union and
  intersection that yields the least fixed point, which is the right answer; but every answer
  computed under such an assumption is *tainted*: only true relative to the path it was computed
  on, so it is never put in the shared results cache. Within the request, a tainted answer is
  reused while every question it assumed False is still being evaluated: asked again then, it
  would rest on the same assumptions (or more, which can only lower a union or an
  intersection). Without that, a cycle whose members reach the next member twice is evaluated
  once per path: exponential in the cycle's length.
* A question that raised is remembered with the depth it had (and, like a tainted answer, what
  it assumed): asked again with no more depth it is undecided again (less depth decides less),
  so it is not evaluated again. Without that, a diamond that runs out of depth is evaluated once
  per path: exponential in the depth.

One `Path` belongs to one request (one thread).
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.errors import EngineError


class Path:
    """The questions in progress on the current path, the cuts made, memoised failures and
    tainted answers of one request."""

    __slots__ = ("assumed", "cuts", "failed", "in_progress", "tainted")

    def __init__(self) -> None:
        self.in_progress: set[str] = set()
        #: Questions that raised: the most depth they raised with, the error, and what the
        #: error assumed (None: nothing).
        self.failed: dict[str, tuple[int, EngineError, frozenset[str] | None]] = {}
        #: Tainted answers and the questions they assumed False.
        self.tainted: dict[str, tuple[frozenset[str], bool]] = {}
        #: The questions the one being computed has assumed False so far (None: none).
        self.assumed: set[str] | None = None
        #: How many cuts were made: unchanged over an evaluation means its answer is untainted.
        self.cuts = 0

    def known(self, key: str, depth: int) -> bool | None:
        """The answer to ``key`` without evaluating it, if the path decides it: False when it
        is being evaluated already (a cut), a reusable tainted answer, or the memoised error
        (raised). None: evaluate it."""
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
        return None

    def taint(self, key: str, cuts: int, outer: set[str] | None, answer: bool) -> None:
        """``key`` answered ``answer`` resting on cuts made since ``cuts`` (the caller's
        assumptions were ``outer``): keep it for reuse while what it assumed is in progress."""
        assumed = self._settle(outer, cuts)
        assert assumed is not None
        self.tainted[key] = (assumed, answer)

    def fail(
        self, key: str, cuts: int, outer: set[str] | None, depth: int, error: EngineError
    ) -> None:
        """``key`` raised ``error`` with ``depth`` left."""
        self.in_progress.discard(key)
        self.failed[key] = (depth, error, self._settle(outer, cuts))

    def abandon(self, key: str, outer: set[str] | None) -> None:
        """``key``'s evaluation ended with something other than an answer or an engine error
        (a budget, an interrupt): nothing about it is remembered."""
        self.in_progress.discard(key)
        self.assumed = outer

    def _assume(self, keys: Iterable[str]) -> None:
        """The answer being computed rests on ``keys`` (being evaluated further up the path)
        answering False: it is tainted."""
        self.cuts += 1
        if self.assumed is None:
            self.assumed = set(keys)
        else:
            self.assumed.update(keys)

    def _settle(self, outer: set[str] | None, cuts: int) -> frozenset[str] | None:
        """Back in the caller's frame after a question: None when its answer is untainted, else
        the questions still being evaluated that it assumed False (the caller assumes them
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
