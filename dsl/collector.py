"""Pausing the cyclic garbage collector while a schema is built.

Parsing and compiling allocate one object per token and node, and none of them form reference
cycles. Left running, the collector rescans the growing tree again and again: about a third of the
time of a large schema (bench/dsl_bench.py). Reference counting still frees everything as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block; re-enable it only if it was enabled."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
