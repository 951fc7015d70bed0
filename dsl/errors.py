"""Errors of the schema language: one exception, carrying every diagnostic found, and the
helpers that place a diagnostic in the schema text (line, column, the line quoted)."""

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


def line_at(lines: list[str], line: int) -> str:
    """Line ``line`` of ``text.split("\n")``: only ``\n`` ends a line, as Lark counts (not U+2028,
    form feed...); a CRLF line is quoted without its ``\r``."""
    return lines[line - 1].removesuffix("\r") if 0 < line <= len(lines) else ""


def end_of(text: str) -> tuple[int, int]:
    """Line and column just past the end of ``text``."""
    return text.count("\n") + 1, len(text) - (text.rfind("\n") + 1) + 1


def diagnostic_at(
    text: str, line: int, column: int, message: str, lines: list[str] | None = None
) -> Diagnostic:
    """A diagnostic quoting its line; ``lines`` is ``text`` already split, if at hand."""
    quoted = line_at(text.split("\n") if lines is None else lines, line)
    return Diagnostic(line, column, message, quoted)
