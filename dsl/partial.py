"""Partial schema writes (Permify's ``Schema.PartialWrite``): a schema's text plus per-entity
member edits -> the new schema's text.

For each entity named, in this order: ``write`` adds new members after the entity's last
member, ``update`` replaces the member of the same name where it stands (whatever its kind),
``delete`` removes members by name. Each write or update is one member statement in the schema
language (``relation owner @user``), so a member written in a call may be updated or deleted
later in the same call. Problems with the request itself (a statement that does not parse, an
entity or member that is not there, a name taken) are all collected into one
`PartialWriteError`; the resulting schema must then compile, or the compiler's `SchemaError` is
raised with positions in the new text. Entities are edited independently of each other.

The result is the base schema in canonical form (`dsl.format`) with the edits applied: the
base is formatted first, so every member sits on its own line, and the edits are made line by
line on that text before it is formatted again. Comments stay where they were, except that a
deleted member takes along the comment on its line and the comment lines directly above it (no
blank line between), and an updated member loses the comment on its own line (it described the
statement replaced) but keeps those above. Comments written in a statement are kept with it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final

from dsl import ast
from dsl.compiler import load
from dsl.errors import SchemaError
from dsl.format import format_schema
from dsl.limits import MAX_SCHEMA_BYTES, MAX_SUGGESTION_WORK
from dsl.parser import parse, parse_member


class PartialProblemCode(Enum):
    """What is wrong with one part of a partial write."""

    #: The entity to edit is not in the schema.
    ENTITY_NOT_FOUND = "entity not found"
    #: The member to update or delete is not in the entity.
    REFERENCE_NOT_FOUND = "member not found"
    #: The member written is already in the entity.
    ALREADY_EXIST = "member already exists"
    #: A statement does not parse, or the statements are too large for a schema.
    SCHEMA_PARSE = "statement does not parse"


#: Shorthands for the codes.
ENTITY_NOT_FOUND: Final = PartialProblemCode.ENTITY_NOT_FOUND
REFERENCE_NOT_FOUND: Final = PartialProblemCode.REFERENCE_NOT_FOUND
ALREADY_EXIST: Final = PartialProblemCode.ALREADY_EXIST
SCHEMA_PARSE: Final = PartialProblemCode.SCHEMA_PARSE


@dataclass(frozen=True, slots=True)
class Partial:
    """The edits for one entity: member statements to write and update, names to delete."""

    write: tuple[str, ...] = ()
    update: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PartialProblem:
    """One thing wrong with the request: what kind of problem (``code``), where it is in the
    request (``partials.document.update[1]``) and what is wrong."""

    code: PartialProblemCode
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class PartialWriteError(Exception):
    """The partials cannot be applied; ``problems`` lists every one found, in request order."""

    def __init__(self, problems: list[PartialProblem]) -> None:
        if not problems:
            raise ValueError("PartialWriteError needs at least one problem")
        self.problems: tuple[PartialProblem, ...] = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))

    @property
    def code(self) -> PartialProblemCode:
        """The first problem's code (Permify reports only the first)."""
        return self.problems[0].code


def apply_partials(base: str | bytes, partials: Mapping[str, Partial]) -> str:
    """The text of ``base`` with ``partials`` (entity name -> edits) applied, canonical.

    Raises `PartialWriteError` listing every problem with the request, or `SchemaError` when
    ``base`` does not parse or the result does not compile (positions in the result's text).
    """
    written = sum(len(s.encode("utf-8", "surrogatepass")) for p in partials.values()
                  for s in (*p.write, *p.update))
    if written > MAX_SCHEMA_BYTES:
        # The new schema would be over the limit: refused before parsing any of it.
        message = (
            f"the statements written total {written:,} bytes, more than the "
            f"{MAX_SCHEMA_BYTES // 1024} KiB a schema may have"
        )
        raise PartialWriteError([PartialProblem(SCHEMA_PARSE, "partials", message)])
    canonical = format_schema(base)
    tree = parse(canonical)
    entities: dict[str, ast.Entity] = {}
    rules: set[str] = set()
    for definition in tree.definitions:
        if isinstance(definition, ast.Entity):
            entities.setdefault(definition.name, definition)
        else:
            rules.add(definition.name)

    problems: list[PartialProblem] = []
    plans: list[_Plan] = []
    suggest = len(entities) * len(partials) <= MAX_SUGGESTION_WORK
    for name, partial in partials.items():
        entity = entities.get(name)
        if entity is None:
            problems.append(_missing_entity(name, entities, rules, suggest=suggest))
        plan = _plan(name, entity, partial, problems)
        if plan is not None:
            plans.append(plan)
    if problems:
        raise PartialWriteError(problems)

    lines = canonical.split("\n")
    for plan in sorted(plans, key=lambda p: p.entity.pos.line, reverse=True):
        _edit(lines, plan, tree.comments)
    result = format_schema("\n".join(lines))
    load(result)
    return result


@dataclass(slots=True)
class _Slot:
    """A member of the entity being edited: one of the base (``member``), or one written in
    this call (``member`` None); ``statement`` is its new text, None for a base member kept."""

    name: str
    member: ast.Member | None
    statement: str | None


@dataclass(frozen=True, slots=True)
class _Plan:
    entity: ast.Entity
    slots: list[_Slot]


def _plan(
    name: str, entity: ast.Entity | None, partial: Partial, problems: list[PartialProblem]
) -> _Plan | None:
    """Play the edits on the entity's member list; None when the entity is missing (its
    statements are still parsed, so their problems are reported too)."""
    where = f"partials.{name}"
    slots = [_Slot(m.name, m, None) for m in entity.members] if entity else []

    def find(member_name: str) -> _Slot | None:
        return next((s for s in slots if s.name == member_name), None)

    for index, statement in enumerate(partial.write):
        location = f"{where}.write[{index}]"
        member = _parse(statement, location, problems)
        if member is None or entity is None:
            continue
        if find(member.name) is not None:
            message = f"entity `{name}` already has a member named `{member.name}`"
            problems.append(PartialProblem(ALREADY_EXIST, location, message))
        else:
            slots.append(_Slot(member.name, None, statement))
    for index, statement in enumerate(partial.update):
        location = f"{where}.update[{index}]"
        member = _parse(statement, location, problems)
        if member is None or entity is None:
            continue
        if (slot := find(member.name)) is None:
            message = f"entity `{name}` has no member named `{member.name}` to update"
            problems.append(PartialProblem(REFERENCE_NOT_FOUND, location, message))
        else:
            slot.statement = statement
    if entity is None:
        return None
    for index, member_name in enumerate(partial.delete):
        if (slot := find(member_name)) is None:
            location = f"{where}.delete[{index}]"
            message = f"entity `{name}` has no member named `{member_name}` to delete"
            problems.append(PartialProblem(REFERENCE_NOT_FOUND, location, message))
        else:
            slots.remove(slot)
    return _Plan(entity, slots)


def _parse(statement: str, location: str, problems: list[PartialProblem]) -> ast.Member | None:
    try:
        return parse_member(statement)
    except SchemaError as exc:
        problems.extend(PartialProblem(SCHEMA_PARSE, location, str(d)) for d in exc.diagnostics)
        return None


def _missing_entity(
    name: str, entities: Mapping[str, ast.Entity], rules: set[str], *, suggest: bool
) -> PartialProblem:
    """The problem of an entity the schema lacks; with ``suggest``, naming the closest one (the
    caller turns suggestions off when comparing every name with every entity would be slow)."""
    if name in rules:
        message = f"`{name}` is a rule, not an entity"
    else:
        message = f"the schema has no entity `{name}`"
        if suggest and (close := difflib.get_close_matches(name, list(entities), n=1)):
            message += f" (did you mean `{close[0]}`?)"
    return PartialProblem(ENTITY_NOT_FOUND, f"partials.{name}", message)


def _edit(lines: list[str], plan: _Plan, comments: tuple[ast.Comment, ...]) -> None:
    """Apply ``plan`` to ``lines``, the canonical text of the base, in place. Works from the
    bottom of the entity up, so the line numbers still to be used stay valid."""
    entity = plan.entity
    kept = {id(slot.member): slot for slot in plan.slots if slot.member is not None}
    new_lines = [
        line
        for slot in plan.slots
        if slot.member is None and slot.statement is not None
        for line in _lines(slot.statement)
    ]
    if new_lines and entity.pos.line == entity.end_line:  # `entity name {}`, perhaps commented
        header = lines[entity.pos.line - 1].replace("{}", "{", 1)
        lines[entity.pos.line - 1 : entity.pos.line] = [header, *new_lines, "}"]
    elif new_lines:
        # After the last member, so comments closing the body stay last; before `}` if none.
        after = entity.members[-1].end_line if entity.members else entity.end_line - 1
        lines[after:after] = new_lines

    member_lines = {line for m in entity.members for line in range(m.pos.line, m.end_line + 1)}
    for member in reversed(entity.members):
        slot = kept.get(id(member))
        if slot is None:
            top = _documented_from(member, entity, member_lines, comments)
            del lines[top - 1 : member.end_line]
        elif slot.statement is not None:
            lines[member.pos.line - 1 : member.end_line] = _lines(slot.statement)


def _documented_from(
    member: ast.Member,
    entity: ast.Entity,
    member_lines: set[int],
    comments: tuple[ast.Comment, ...],
) -> int:
    """The first line of ``member`` together with the comment lines right above it (no blank
    line between): in canonical text those comments document it and go when it goes."""
    top = member.pos.line
    for comment in reversed([c for c in comments if c.end_line < member.pos.line]):
        if (
            comment.end_line < top - 1  # a blank line between
            or comment.pos.line <= entity.pos.line  # on the entity's header line
            or comment.pos.line in member_lines  # follows another member on its line
        ):
            break
        top = comment.pos.line
    return top


def _lines(statement: str) -> list[str]:
    """A statement's lines, to stand on lines of their own (it may carry comments)."""
    return statement.strip().split("\n")
