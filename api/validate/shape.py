"""A Permify validation file (a "shape"), parsed: its schema text, relationships, attributes and
scenarios as frozen dataclasses, and the errors that stop a file from running.

``loader`` builds these from the YAML; ``runner`` runs them. Every position is 1-based and
points into the file the user edits, the YAML file or the schema file it names.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from dsl.errors import Diagnostic
from engine.types import Context, Entity, SubjectReference
from storage.base import Attribute, Subject, Tuple


class ValidationFileError(Exception):
    """The file cannot be run: unreadable, not a validation file, a malformed item, a schema error
    or a relationship/attribute the schema rejects. ``lines`` are ready to print, each starting
    with the file (``file:line:col: ...`` where the position is known)."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines: tuple[str, ...] = tuple(lines)
        super().__init__("\n".join(self.lines))


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """A schema diagnostic placed in the file the user edits."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class SchemaFileError(ValidationFileError):
    """The schema does not compile; ``problems`` has every diagnostic, positioned in the file."""

    def __init__(self, problems: Sequence[SchemaProblem]) -> None:
        self.problems: tuple[SchemaProblem, ...] = tuple(problems)
        super().__init__([str(p) for p in self.problems])


class Pos(NamedTuple):
    """A 1-based line and column in a file."""

    line: int
    column: int


_FILE_START = Pos(1, 1)


@dataclass(frozen=True, slots=True)
class SchemaSource:
    """The schema text and how to place its positions in the file the user edits.

    ``inline`` text sits in the YAML file: ``anchors`` gives the file position of each of its
    non-whitespace characters (found by walking the YAML scalar, so literal, folded and quoted
    styles all map), or is None when they could not be matched, and positions then fall back to
    ``start`` with the schema-relative position in the message. Otherwise the text is the whole
    of ``file``.
    """

    text: str
    file: str
    inline: bool = False
    anchors: tuple[Pos, ...] | None = None
    start: Pos = _FILE_START

    def problem(self, d: Diagnostic) -> SchemaProblem:
        if not self.inline:
            return SchemaProblem(self.file, d.line, d.column, d.message)
        pos = self._locate(d.line, d.column)
        if pos is None:
            message = f"{d.message} (schema line {d.line}, column {d.column})"
            return SchemaProblem(self.file, self.start.line, self.start.column, message)
        return SchemaProblem(self.file, pos.line, pos.column, d.message)

    def _locate(self, line: int, column: int) -> Pos | None:
        anchors = self.anchors
        if not anchors:
            return None
        text = self.text
        lines = text.split("\n")
        index = sum(len(s) + 1 for s in lines[: line - 1]) + column - 1
        index = max(0, min(index, len(text)))
        solid = [i for i, ch in enumerate(text) if not ch.isspace()]
        k = bisect.bisect_left(solid, index)
        if k < len(solid) and solid[k] == index:
            return anchors[k]
        # Whitespace (an indentation, the end of the text) has no anchor: folding may have moved
        # it, so place the position beside the nearest anchored character on the same line.
        line_start = text.rfind("\n", 0, index) + 1
        line_end = len(text) if (end := text.find("\n", index)) < 0 else end
        if k > 0 and solid[k - 1] >= line_start:
            before = anchors[k - 1]
            return Pos(before.line, before.column + index - solid[k - 1])
        if k < len(solid) and solid[k] < line_end:
            after = anchors[k]
            return Pos(after.line, max(1, after.column - (solid[k] - index)))
        if k > 0:
            before = anchors[k - 1]
            return Pos(before.line, before.column + 1)
        return anchors[0]


@dataclass(frozen=True, slots=True)
class CheckCase:
    """``checks[]``: one Check per assertion (permission, relation, attribute or rule name)."""

    entity: Entity
    subject: Subject
    depth: int
    context: Context
    assertions: Mapping[str, bool]


@dataclass(frozen=True, slots=True)
class EntityFilterCase:
    """``entity_filters[]``: one LookupEntity per assertion; expected ids as a multiset."""

    entity_type: str
    subject: Subject
    depth: int
    context: Context
    assertions: Mapping[str, tuple[str, ...]]
    page_size: int | None = None
    scope: Mapping[str, tuple[str, ...]] | None = None


@dataclass(frozen=True, slots=True)
class SubjectFilterCase:
    """``subject_filters[]``: one LookupSubject per assertion."""

    reference: SubjectReference
    entity: Entity
    depth: int
    context: Context
    assertions: Mapping[str, tuple[str, ...]]
    page_size: int | None = None


@dataclass(frozen=True, slots=True)
class ExpandCase:
    """``x_expand[]``: permission -> the expected tree (proto-JSON names)."""

    entity: Entity
    depth: int
    context: Context
    assertions: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SubjectPermissionCase:
    """``x_subject_permission[]``: the exact expected name -> allowed map."""

    entity: Entity
    subject: Subject
    only_permission: bool
    depth: int
    context: Context
    results: Mapping[str, bool]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str = ""
    checks: tuple[CheckCase, ...] = ()
    entity_filters: tuple[EntityFilterCase, ...] = ()
    subject_filters: tuple[SubjectFilterCase, ...] = ()
    expands: tuple[ExpandCase, ...] = ()
    subject_permissions: tuple[SubjectPermissionCase, ...] = ()


@dataclass(frozen=True, slots=True)
class UnvalidatedTuple:
    """``x_unvalidated_relationships[]``: written as-is; ``error`` is the code validation gives."""

    tuple: Tuple
    error: str


@dataclass(frozen=True, slots=True)
class Shape:
    """A parsed validation file. ``*_at`` hold the file position of each relationship and
    attribute, for messages; ``warnings`` are ``file:line:col: warning: ...`` lines about items
    that were skipped."""

    file: str
    schema: SchemaSource
    relationships: tuple[Tuple, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    unvalidated: tuple[UnvalidatedTuple, ...] = ()
    scenarios: tuple[Scenario, ...] = ()
    relationships_at: tuple[Pos, ...] = ()
    attributes_at: tuple[Pos, ...] = ()
    warnings: tuple[str, ...] = ()
