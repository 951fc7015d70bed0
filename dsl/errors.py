"""Errors of the schema language: one exception, carrying every diagnostic found."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """One problem in a schema, at a 1-based line and column."""

    line: int
    column: int
    message: str
    source_line: str = ""

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.message}"


class SchemaError(Exception):
    """A schema failed to parse or compile.

    ``diagnostics`` holds every problem found, sorted by position: the parser reports the first
    syntax error of each definition (it resumes at the next one), and only a schema without any
    is compiled, which reports all semantic ones.
    """

    def __init__(self, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]) -> None:
        if not diagnostics:
            raise ValueError("SchemaError needs at least one diagnostic")
        self.diagnostics: tuple[Diagnostic, ...] = tuple(sorted(diagnostics))
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @property
    def first(self) -> Diagnostic:
        return self.diagnostics[0]

    def render(self, filename: str) -> str:
        """``file:line:col: message`` lines, the format editors and CI annotate."""
        return "\n".join(f"{filename}:{d}" for d in self.diagnostics)
