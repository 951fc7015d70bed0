"""The compiler's diagnostics: collected, not raised one at a time, so that one compile reports
every semantic error of a schema, each at the line:col of the offending name with its line
quoted.

Both the diagnostics kept and the work spent on "did you mean" suggestions are bounded
(`MAX_DIAGNOSTICS`, `MAX_SUGGESTION_WORK`), so a pathological schema cannot make reporting
its errors the slow part.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from dsl import ast
from dsl.errors import Diagnostic, SchemaError, line_at
from dsl.limits import MAX_DIAGNOSTICS, MAX_SUGGESTION_WORK


class Reporter:
    """Collects the diagnostics of one compile of ``text``."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.diagnostics: list[Diagnostic] = []
        self.truncated = False
        self.suggestion_work = 0

    def error(self, pos: ast.Pos, message: str) -> None:
        """Record ``message`` at ``pos``, unless `MAX_DIAGNOSTICS` are recorded already."""
        if len(self.diagnostics) >= MAX_DIAGNOSTICS:
            self.truncated = True
            return
        self.diagnostics.append(
            Diagnostic(pos.line, pos.column, message, line_at(self.lines, pos.line))
        )

    def suggest(self, name: str, candidates: Iterable[str]) -> str:
        """`` (did you mean `x`?)`` for the candidate closest to ``name``, or ``""``."""
        if len(self.diagnostics) >= MAX_DIAGNOSTICS:
            return ""  # not shown anyway
        names = list(candidates)
        self.suggestion_work += len(names)
        if self.suggestion_work > MAX_SUGGESTION_WORK:
            return ""
        close = difflib.get_close_matches(name, names, n=1)
        return f" (did you mean `{close[0]}`?)" if close else ""

    def raise_if_any(self) -> None:
        """Raise `SchemaError` with every diagnostic recorded, if there is one."""
        if not self.diagnostics:
            return
        if self.truncated:
            last = max(self.diagnostics)
            self.diagnostics.append(
                Diagnostic(
                    last.line,
                    last.column,
                    f"too many errors: only the first {MAX_DIAGNOSTICS} are reported",
                    last.source_line,
                )
            )
        raise SchemaError(self.diagnostics)
