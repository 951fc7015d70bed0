"""Close-match suggestions for unknown names (difflib, case-insensitive, best first)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def suggest(name: str, known: Iterable[str], *, n: int = 3) -> tuple[str, ...]:
    canonical: dict[str, str] = {}
    for item in known:
        canonical.setdefault(item.lower(), item)
    matches = difflib.get_close_matches(name.lower(), list(canonical), n=n, cutoff=0.6)
    return tuple(canonical[m] for m in matches)
