"""Did-you-mean suggestions: the known names closest to an unknown one (difflib,
case-insensitive, best first), for error messages anywhere in the engine and above it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def suggest(name: str, known: Iterable[str], *, n: int = 3) -> tuple[str, ...]:
    """Up to ``n`` of ``known`` that look like ``name``, each spelt as in ``known``."""
    canonical: dict[str, str] = {}
    for item in known:
        canonical.setdefault(item.lower(), item)
    matches = difflib.get_close_matches(name.lower(), list(canonical), n=n, cutoff=0.6)
    return tuple(canonical[m] for m in matches)
