"""Run a Permify validation file (a "shape"): schema, relationships, attributes and scenarios.

``load_shape`` reads the YAML into frozen dataclasses and reports every malformed item at once,
each at its ``file:line:col``; an unknown (say, misspelt) key is one, with the closest known key
suggested, and a scenario or query that asks nothing is a warning. ``run`` then does what
``permify validate`` does: compile the schema (errors point into the YAML file, or into the
schema file it names), validate every relationship and attribute against it (any invalid one
aborts the run), write them into a fresh temporary LevelDB store (tenant ``t1``) and ask the
Engine every scenario's questions. The ``Report`` lists each mismatch with its scenario, query,
expected and actual answer; an engine error is the answer of that assertion, never an abort.

Stonetown's extensions (``shared/conformance/permify/README.md``) are honoured:
``x_unvalidated_relationships`` are written without validation, ``x_page_size`` pages a lookup
and concatenates, ``x_scope`` is lookup-entity's scope, ``x_expand`` and ``x_subject_permission``
are compared with the expand and subject-permission answers.

This module builds a whole temporary installation (compiler, LevelDB store, engine), which is why
it imports more than the evaluation modules of this package do. Single-threaded: one store per
run, removed when the run ends.
"""

from __future__ import annotations

import bisect
import json
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final, NamedTuple, ParamSpec, TypeVar
from urllib.parse import urlsplit

import yaml

from dsl.compiler import load
from dsl.errors import Diagnostic, SchemaError
from dsl.schema import Schema
from engine.engine import Engine, EngineConfig
from engine.errors import EngineError, InvalidRequest, InvalidWrite
from engine.strings import parse_attribute, parse_tuple
from engine.suggest import suggest
from engine.types import (
    DEFAULT_LOOKUP_PAGE_SIZE,
    EMPTY_CONTEXT,
    Context,
    Entity,
    LookupPage,
    SubjectReference,
    parse_subject,
    subject_text,
)
from engine.writes import check_attribute, check_tuple
from storage.base import (
    DEFAULT_TENANT,
    Attribute,
    Changes,
    Store,
    Subject,
    Tuple,
)
from storage.errors import StorageError
from storage.leveldb import LevelDBStore

#: ``permify validate`` asks with this depth when an item gives none (or 0).
VALIDATE_DEPTH = 100
#: The API refuses smaller depths; so does the runner, as an error of the assertion.
MIN_DEPTH = 3
TENANT = DEFAULT_TENANT
CHECK_RESULT = {True: "CHECK_RESULT_ALLOWED", False: "CHECK_RESULT_DENIED"}

T = TypeVar("T")
P = ParamSpec("P")


# --- errors that stop a file from running ------------------------------------------------------


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


# --- the file, parsed --------------------------------------------------------------------------


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


# --- reading the YAML --------------------------------------------------------------------------

_BOOL_TAG = "tag:yaml.org,2002:bool"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class _Loader(yaml.SafeLoader):
    """Scalars resolved as Permify's yaml.v3 does: only true/false are booleans (not yes/no/on/off)
    and dates stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
#: yaml.v3 still reads these YAML 1.1 words into a typed bool field (a check's assertions).
_YAML11_BOOLS = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "off", "Off", "OFF"), False),
}
_NULL_TAG = "tag:yaml.org,2002:null"

# The keys each mapping of the file may hold: Permify's (`pkg/development/file/shape.go`; its
# `tenant_id` is read and unused) and Stonetown's documented `x_` extensions. Permify ignores any
# other key, so a misspelt `scenarioz:` or `assertion:` passes there having asked nothing; here
# it is an error. Mappings of names (assertions, results, x_scope, context data, x_source) are
# the user's own and are not checked.
_FILE_KEYS: Final = (
    "schema", "relationships", "attributes", "scenarios", "tenant_id",
    "x_unvalidated_relationships", "x_source", "x_notes",
)  # fmt: skip
_SCENARIO_KEYS: Final = (
    "name", "description", "checks", "entity_filters", "subject_filters",
    "x_expand", "x_subject_permission",
)  # fmt: skip
_ITEM_KEYS: Final = ("depth", "context", "assertions")
_CHECK_KEYS: Final = ("entity", "subject", *_ITEM_KEYS)
_ENTITY_FILTER_KEYS: Final = ("entity_type", "subject", *_ITEM_KEYS, "x_page_size", "x_scope")
_SUBJECT_FILTER_KEYS: Final = ("subject_reference", "entity", *_ITEM_KEYS, "x_page_size")
_EXPAND_KEYS: Final = ("entity", *_ITEM_KEYS)
_SUBJECT_PERMISSION_KEYS: Final = (
    "entity", "subject", "only_permission", "depth", "context", "results",
)  # fmt: skip
_CONTEXT_KEYS: Final = ("tuples", "attributes", "data")
_UNVALIDATED_KEYS: Final = ("tuple", "error")


class _Reader:
    """Turns YAML nodes into typed values, collecting a problem (with its position) for every
    item that does not fit instead of stopping at the first."""

    def __init__(self, file: str, loader: _Loader) -> None:
        self.file = file
        self.loader = loader
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def warn(self, node: yaml.Node, where: str, message: str) -> None:
        pos = self.pos(node)
        self.warnings.append(f"{self.file}:{pos.line}:{pos.column}: warning: {where}: {message}")

    def problem(self, node: yaml.Node, where: str, message: str) -> None:
        pos = self.pos(node)
        self.problems.append(f"{self.file}:{pos.line}:{pos.column}: {where}: {message}")

    @staticmethod
    def pos(node: yaml.Node) -> Pos:
        return Pos(node.start_mark.line + 1, node.start_mark.column + 1)

    @staticmethod
    def is_null(node: yaml.Node | None) -> bool:
        return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG)

    def plain(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def mapping(
        self, node: yaml.Node | None, where: str, keys: Sequence[str] | None = None
    ) -> dict[str, yaml.Node] | None:
        """The entries of a mapping (null reads as empty); None after reporting anything else.

        With ``keys``, any other key is a problem at that key, with the closest known key
        suggested: a misspelt key would otherwise be skipped and its part of the file never run.
        """
        if node is None or self.is_null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, where, f"expected a mapping, got {_shown(self.plain(node))}")
            return None
        entries: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.plain(key_node)
            if not isinstance(key, str):
                self.problem(key_node, where, f"expected string keys, got {key!r}")
            elif key in entries:
                self.problem(key_node, where, f"key `{key}` appears twice")
            else:
                if keys is not None and key not in keys:
                    self.problem(key_node, where, _unknown_key(key, keys))
                entries[key] = value_node
        return entries

    def sequence(self, node: yaml.Node | None, where: str) -> list[yaml.Node]:
        """The items of a list (null reads as empty)."""
        if node is None or self.is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, where, f"expected a list, got {_shown(self.plain(node))}")
            return []
        return list(node.value)

    def string(self, node: yaml.Node, where: str) -> str | None:
        """A scalar's text. Like yaml.v3 reading into a string field, a number or boolean keeps
        its source text: an id written ``01`` is ``"01"``."""
        if isinstance(node, yaml.ScalarNode) and not self.is_null(node):
            return str(node.value)
        self.problem(node, where, f"expected a string, got {_shown(self.plain(node))}")
        return None

    def required(
        self,
        entries: Mapping[str, yaml.Node],
        key: str,
        where: str,
        parent: yaml.Node,
        parse: Callable[[str], T],
    ) -> T | None:
        """``entries[key]`` as a string, parsed; reports a missing key or a parse error."""
        node = entries.get(key)
        if node is None or self.is_null(node):
            self.problem(parent, where, f"`{key}` is required")
            return None
        return self.parsed(node, f"{where}.{key}", parse)

    def optional(self, entries: Mapping[str, yaml.Node], key: str, where: str) -> str:
        """``entries[key]`` as a string; "" when absent or null."""
        node = entries.get(key)
        if node is None or self.is_null(node):
            return ""
        return self.string(node, f"{where}.{key}") or ""

    def parsed(self, node: yaml.Node, where: str, parse: Callable[[str], T]) -> T | None:
        text = self.string(node, where)
        if text is None:
            return None
        try:
            return parse(text)
        except EngineError as exc:
            self.problem(node, where, str(exc))
            return None

    def integer(self, node: yaml.Node | None, where: str) -> int | None:
        if node is None or self.is_null(node):
            return None
        value = self.plain(node)
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(node, where, f"expected an integer, got {_shown(value)}")
            return None
        return value

    def boolean(self, node: yaml.Node, where: str) -> bool | None:
        value = self.plain(node)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in _YAML11_BOOLS:
            return _YAML11_BOOLS[value]
        self.problem(node, where, f"expected true or false, got {_shown(value)}")
        return None

    def strings(self, node: yaml.Node | None, where: str) -> tuple[str, ...]:
        items = self.sequence(node, where)
        found = (self.string(item, f"{where}[{i}]") for i, item in enumerate(items))
        return tuple(item for item in found if item is not None)

    def parsed_list(
        self, node: yaml.Node | None, where: str, parse: Callable[[str], T]
    ) -> list[tuple[T, Pos]]:
        items = self.sequence(node, where)
        found = (
            (self.parsed(item, f"{where}[{i}]", parse), self.pos(item))
            for i, item in enumerate(items)
        )
        return [(value, pos) for value, pos in found if value is not None]


def _unknown_key(key: str, keys: Sequence[str]) -> str:
    close = suggest(key, keys, n=1)
    if close:
        return f"unknown key `{key}` (did you mean `{close[0]}`?)"
    return f"unknown key `{key}`; expected {_one_of(keys)}"


def _one_of(keys: Sequence[str]) -> str:
    quoted = [f"`{k}`" for k in keys]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _shown(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _type_name(text: str) -> str:
    if not text or any(ch in text for ch in ":#@ "):
        raise InvalidRequest(f"entity type {text!r} is not a type name (no `:`, `#`, `@`)")
    return text


def _anchors(text: str, source: str, node: yaml.ScalarNode) -> tuple[Pos, ...] | None:
    """File positions of the non-whitespace characters of ``text`` (the value of ``node``).

    Folding, indentation and quoting change only whitespace and the quotes, so the value's
    non-whitespace characters appear in the same order in the file; None when they do not (escape
    sequences in a double-quoted scalar)."""
    start, end = node.start_mark.index, node.end_mark.index
    line, column = node.start_mark.line + 1, node.start_mark.column + 1
    if node.style in ("|", ">"):
        header_end = source.find("\n", start, end)
        if header_end < 0:
            return None
        start, line, column = header_end + 1, line + 1, 1
    found: list[tuple[str, Pos]] = []
    for ch in source[start:end]:
        if ch == "\n":
            line, column = line + 1, 1
            continue
        if not ch.isspace():
            found.append((ch, Pos(line, column)))
        column += 1
    if node.style in ('"', "'"):
        found = found[1:]
    wanted = [ch for ch in text if not ch.isspace()]
    if len(found) < len(wanted) or any(f[0] != w for f, w in zip(found, wanted, strict=False)):
        return None
    return tuple(pos for _, pos in found[: len(wanted)])


def _schema_source(
    reader: _Reader, entries: Mapping[str, yaml.Node], root: yaml.Node, source: str, base_dir: Path
) -> SchemaSource | None:
    """Inline DSL text, or a path relative to the YAML file; URLs are refused (we run offline)."""
    node = entries.get("schema")
    if node is None or reader.is_null(node):
        reader.problem(root, "schema", "is required (DSL text or a relative file path)")
        return None
    text = reader.string(node, "schema")
    if text is None:
        return None
    one_line = text.strip()
    single = "\n" not in one_line
    url = urlsplit(one_line)
    if single and url.scheme and url.netloc:
        reader.problem(
            node,
            "schema",
            f"{one_line} is a URL: validation runs offline and fetches nothing; save the schema "
            "beside this file and give its relative path",
        )
        return None
    if single and one_line and "{" not in one_line:
        path = base_dir / one_line
        if path.is_file():
            try:
                return SchemaSource(path.read_text(encoding="utf-8"), str(path))
            except (OSError, UnicodeDecodeError) as exc:
                reader.problem(node, "schema", f"cannot read schema file {path}: {exc}")
                return None
        if one_line.endswith(".perm") or "/" in one_line:
            reader.problem(node, "schema", f"schema file {path} does not exist")
            return None
    anchors = _anchors(text, source, node) if isinstance(node, yaml.ScalarNode) else None
    return SchemaSource(text, reader.file, inline=True, anchors=anchors, start=reader.pos(node))


def _context(reader: _Reader, node: yaml.Node | None, where: str) -> Context:
    if node is None or reader.is_null(node):
        return EMPTY_CONTEXT
    if isinstance(node, yaml.SequenceNode):
        reader.problem(
            node,
            where,
            "expected a mapping {tuples, attributes, data}; a list of tuple strings is Permify's "
            "old context format, which it no longer accepts",
        )
        return EMPTY_CONTEXT
    entries = reader.mapping(node, where, _CONTEXT_KEYS)
    if entries is None:
        return EMPTY_CONTEXT
    tuples = reader.parsed_list(entries.get("tuples"), f"{where}.tuples", parse_tuple)
    attributes = reader.parsed_list(
        entries.get("attributes"), f"{where}.attributes", parse_attribute
    )
    data: dict[str, Any] = {}
    data_node = entries.get("data")
    if data_node is not None and reader.mapping(data_node, f"{where}.data"):
        data = reader.plain(data_node)
        try:
            json.dumps(data, allow_nan=False)
        except (TypeError, ValueError) as exc:
            reader.problem(data_node, f"{where}.data", f"must be plain JSON data: {exc}")
            data = {}
    return Context(tuple(t for t, _ in tuples), tuple(a for a, _ in attributes), data)


def _depth(reader: _Reader, entries: Mapping[str, yaml.Node], where: str) -> int:
    """The item's depth; absent or 0 means permify validate's default. Too small a depth is kept
    and becomes an error of each assertion, as in Permify."""
    return reader.integer(entries.get("depth"), f"{where}.depth") or VALIDATE_DEPTH


def _page_size(reader: _Reader, entries: Mapping[str, yaml.Node], where: str) -> int | None:
    node = entries.get("x_page_size")
    size = reader.integer(node, f"{where}.x_page_size")
    if size is not None and size < 1 and node is not None:
        reader.problem(node, f"{where}.x_page_size", f"must be at least 1, got {size}")
        return None
    return size


def _id_lists(
    reader: _Reader, entries: Mapping[str, yaml.Node], key: str, where: str
) -> dict[str, tuple[str, ...]]:
    found = reader.mapping(entries.get(key), f"{where}.{key}") or {}
    return {name: reader.strings(node, f"{where}.{key}.{name}") for name, node in found.items()}


def _check(reader: _Reader, node: yaml.Node, where: str) -> CheckCase | None:
    entries = reader.mapping(node, where, _CHECK_KEYS)
    if entries is None:
        return None
    entity = reader.required(entries, "entity", where, node, Entity.parse)
    subject = reader.required(entries, "subject", where, node, parse_subject)
    assertions: dict[str, bool] = {}
    found = reader.mapping(entries.get("assertions"), f"{where}.assertions") or {}
    for name, value in found.items():
        if reader.is_null(value):
            # A stray key such as `checks:` under assertions (facebook-groups.yaml has one):
            # yaml.v3 would read it as false and ask for a permission that does not exist.
            reader.warn(value, f"{where}.assertions.{name}", "no expected value (null); skipped")
            continue
        expected = reader.boolean(value, f"{where}.assertions.{name}")
        if expected is not None:
            assertions[name] = expected
    _note_if_empty(reader, node, where, assertions)
    depth = _depth(reader, entries, where)
    context = _context(reader, entries.get("context"), f"{where}.context")
    if entity is None or subject is None:
        return None
    return CheckCase(entity, subject, depth, context, assertions)


def _entity_filter(reader: _Reader, node: yaml.Node, where: str) -> EntityFilterCase | None:
    entries = reader.mapping(node, where, _ENTITY_FILTER_KEYS)
    if entries is None:
        return None
    entity_type = reader.required(entries, "entity_type", where, node, _type_name)
    subject = reader.required(entries, "subject", where, node, parse_subject)
    assertions = _id_lists(reader, entries, "assertions", where)
    _note_if_empty(reader, node, where, assertions)
    scope = _id_lists(reader, entries, "x_scope", where) if "x_scope" in entries else None
    depth = _depth(reader, entries, where)
    context = _context(reader, entries.get("context"), f"{where}.context")
    page_size = _page_size(reader, entries, where)
    if entity_type is None or subject is None:
        return None
    return EntityFilterCase(entity_type, subject, depth, context, assertions, page_size, scope)


def _subject_filter(reader: _Reader, node: yaml.Node, where: str) -> SubjectFilterCase | None:
    entries = reader.mapping(node, where, _SUBJECT_FILTER_KEYS)
    if entries is None:
        return None
    reference = reader.required(entries, "subject_reference", where, node, SubjectReference.parse)
    entity = reader.required(entries, "entity", where, node, Entity.parse)
    assertions = _id_lists(reader, entries, "assertions", where)
    _note_if_empty(reader, node, where, assertions)
    depth = _depth(reader, entries, where)
    context = _context(reader, entries.get("context"), f"{where}.context")
    page_size = _page_size(reader, entries, where)
    if reference is None or entity is None:
        return None
    return SubjectFilterCase(reference, entity, depth, context, assertions, page_size)


def _expand(reader: _Reader, node: yaml.Node, where: str) -> ExpandCase | None:
    entries = reader.mapping(node, where, _EXPAND_KEYS)
    if entries is None:
        return None
    entity = reader.required(entries, "entity", where, node, Entity.parse)
    trees = reader.mapping(entries.get("assertions"), f"{where}.assertions") or {}
    assertions = {name: reader.plain(tree) for name, tree in trees.items()}
    _note_if_empty(reader, node, where, assertions)
    depth = _depth(reader, entries, where)
    context = _context(reader, entries.get("context"), f"{where}.context")
    if entity is None:
        return None
    return ExpandCase(entity, depth, context, assertions)


def _subject_permission(
    reader: _Reader, node: yaml.Node, where: str
) -> SubjectPermissionCase | None:
    entries = reader.mapping(node, where, _SUBJECT_PERMISSION_KEYS)
    if entries is None:
        return None
    entity = reader.required(entries, "entity", where, node, Entity.parse)
    subject = reader.required(entries, "subject", where, node, parse_subject)
    only = entries.get("only_permission")
    only_permission = False
    if only is not None and not reader.is_null(only):
        only_permission = bool(reader.boolean(only, f"{where}.only_permission"))
    results: dict[str, bool] = {}
    found = reader.mapping(entries.get("results"), f"{where}.results") or {}
    verdicts = {text: allowed for allowed, text in CHECK_RESULT.items()}
    for name, value in found.items():
        text = reader.string(value, f"{where}.results.{name}")
        if text in verdicts:
            results[name] = verdicts[text]
        elif text is not None:
            reader.problem(
                value, f"{where}.results.{name}", f"expected {' or '.join(verdicts)}, got {text!r}"
            )
    depth = _depth(reader, entries, where)
    context = _context(reader, entries.get("context"), f"{where}.context")
    if entity is None or subject is None:
        return None
    return SubjectPermissionCase(entity, subject, only_permission, depth, context, results)


def _items(
    reader: _Reader,
    entries: Mapping[str, yaml.Node],
    key: str,
    where: str,
    parse: Callable[[_Reader, yaml.Node, str], T | None],
) -> tuple[T, ...]:
    where = f"{where}.{key}" if where else key
    nodes = reader.sequence(entries.get(key), where)
    found = (parse(reader, node, f"{where}[{i}]") for i, node in enumerate(nodes))
    return tuple(item for item in found if item is not None)


def _note_if_empty(
    reader: _Reader, node: yaml.Node, where: str, assertions: Mapping[str, object]
) -> None:
    """Warn about an item without assertions: it runs no query, so nothing would fail."""
    if not assertions:
        reader.warn(node, where, "no assertions: nothing is asked")


def _scenario(reader: _Reader, node: yaml.Node, where: str) -> Scenario | None:
    entries = reader.mapping(node, where, _SCENARIO_KEYS)
    if entries is None:
        return None
    scenario = Scenario(
        name=reader.optional(entries, "name", where),
        description=reader.optional(entries, "description", where),
        checks=_items(reader, entries, "checks", where, _check),
        entity_filters=_items(reader, entries, "entity_filters", where, _entity_filter),
        subject_filters=_items(reader, entries, "subject_filters", where, _subject_filter),
        expands=_items(reader, entries, "x_expand", where, _expand),
        subject_permissions=_items(
            reader, entries, "x_subject_permission", where, _subject_permission
        ),
    )
    queries = (scenario.checks, scenario.entity_filters, scenario.subject_filters,
               scenario.expands, scenario.subject_permissions)  # fmt: skip
    if not any(queries):
        # A warning, not an error: Permify runs such a scenario and passes it. (An item that
        # failed to read is a problem of its own, which stops the file before any warning.)
        reader.warn(
            node, where, "scenario asks nothing: no checks, entity_filters or subject_filters"
        )
    return scenario


def _unvalidated(reader: _Reader, node: yaml.Node, where: str) -> UnvalidatedTuple | None:
    entries = reader.mapping(node, where, _UNVALIDATED_KEYS)
    if entries is None:
        return None
    t = reader.required(entries, "tuple", where, node, parse_tuple)
    return None if t is None else UnvalidatedTuple(t, reader.optional(entries, "error", where))


def parse_shape(source: str, *, file: str = "<string>", base_dir: Path | None = None) -> Shape:
    """Parse a validation file's text. ``file`` names it in messages; a schema given as a path
    is read relative to ``base_dir`` (default: the current directory).

    Raises ValidationFileError listing every problem found (``file:line:col: where: what``),
    an unknown key among them (Permify ignores those). Scenarios and items that ask nothing are
    ``warnings``.
    """
    loader = _Loader(source)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else file
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationFileError([f"{where}: not valid YAML: {problem}"]) from exc
    try:
        if root is None:
            raise ValidationFileError(
                [f"{file}: empty file: expected schema, relationships, attributes and scenarios"]
            )
        reader = _Reader(file, loader)
        entries = reader.mapping(root, "file", _FILE_KEYS)
        if entries is None:
            raise ValidationFileError(reader.problems)
        schema = _schema_source(reader, entries, root, source, base_dir or Path.cwd())
        relationships = reader.parsed_list(
            entries.get("relationships"), "relationships", parse_tuple
        )
        attributes = reader.parsed_list(entries.get("attributes"), "attributes", parse_attribute)
        unvalidated = _items(reader, entries, "x_unvalidated_relationships", "", _unvalidated)
        scenarios = _items(reader, entries, "scenarios", "", _scenario)
    finally:
        loader.dispose()
    if reader.problems or schema is None:
        raise ValidationFileError(reader.problems)
    return Shape(
        file=file,
        schema=schema,
        relationships=tuple(t for t, _ in relationships),
        attributes=tuple(a for a, _ in attributes),
        unvalidated=unvalidated,
        scenarios=scenarios,
        relationships_at=tuple(pos for _, pos in relationships),
        attributes_at=tuple(pos for _, pos in attributes),
        warnings=tuple(reader.warnings),
    )


def load_shape(path: str | Path) -> Shape:
    """Read and parse the validation file at ``path`` (see parse_shape)."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationFileError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ValidationFileError([f"{path}: cannot read: not UTF-8 text ({exc.reason})"]) from exc
    return parse_shape(source, file=str(path), base_dir=path.parent)


def compile_shape_schema(shape: Shape) -> Schema:
    """Compile the shape's schema; SchemaFileError places every diagnostic in the file."""
    try:
        return load(shape.schema.text)
    except SchemaError as exc:
        raise SchemaFileError([shape.schema.problem(d) for d in exc.diagnostics]) from exc


def check_writes(shape: Shape, schema: Schema) -> None:
    """Validate every relationship and attribute against ``schema`` (not the unvalidated ones);
    raise ValidationFileError listing each rejected item with Permify's error code."""
    problems: list[str] = []

    def rejected(pos: Pos, where: str, exc: InvalidWrite) -> None:
        problems.append(f"{shape.file}:{pos.line}:{pos.column}: {where}: {exc.code}: {exc}")

    for i, (t, pos) in enumerate(zip(shape.relationships, shape.relationships_at, strict=True)):
        try:
            check_tuple(schema, t)
        except InvalidWrite as exc:
            rejected(pos, f"relationships[{i}]", exc)
    for i, (a, pos) in enumerate(zip(shape.attributes, shape.attributes_at, strict=True)):
        try:
            check_attribute(schema, a)
        except InvalidWrite as exc:
            rejected(pos, f"attributes[{i}]", exc)
    if problems:
        raise ValidationFileError(problems)


# --- running -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """One assertion whose answer differed from the file's expectation (or raised)."""

    scenario: str
    query: str
    expected: str
    got: str

    def __str__(self) -> str:
        return (
            f'scenario "{self.scenario}": {self.query} -> '
            f"expected: {self.expected}, got: {self.got}"
        )


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of running one file: counts and every failure, in file order."""

    file: str
    scenarios: int
    assertions: int
    failures: tuple[Failure, ...]
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failed(self) -> int:
        return len(self.failures)

    def summary(self) -> str:
        counts = f"{self.scenarios} scenarios, {self.assertions} assertions"
        if self.ok:
            return f"SUCCESS ({counts})"
        return f"FAILED ({self.failed} of {self.assertions} assertions failed; {counts})"


class _PagingError(Exception):
    """A lookup's pages broke the paging contract (oversized page, cursor that came back)."""


def _lookup_all(fetch: Callable[[int, str], LookupPage], page_size: int | None) -> list[str]:
    """Follow cursors to the end, concatenating; ``page_size`` is the x_page_size asked for."""
    size = page_size or DEFAULT_LOOKUP_PAGE_SIZE
    ids: list[str] = []
    cursor = ""
    seen: set[str] = set()
    while True:
        page = fetch(size, cursor)
        if len(page.ids) > size:
            raise _PagingError(f"a page held {len(page.ids)} ids, more than page_size {size}")
        ids.extend(page.ids)
        if not page.cursor:
            return ids
        if page.cursor in seen:
            raise _PagingError(f"cursor {page.cursor!r} came back twice")
        seen.add(page.cursor)
        cursor = page.cursor


def _ids(ids: Iterable[str]) -> str:
    return "[" + ", ".join(sorted(ids)) + "]"


def _verdict(allowed: bool) -> str:
    return "ALLOWED" if allowed else "DENIED"


def _verdicts(results: Mapping[str, bool]) -> str:
    return "{" + ", ".join(f"{k}: {_verdict(v)}" for k, v in sorted(results.items())) + "}"


def _plain(value: Any) -> Any:
    """Plain data for comparing expand trees: mappings, lists and scalars; fields holding a proto3
    default (null, "", 0, false, empty list or mapping) are dropped, since protobuf does not
    tell them from absent ones."""
    if is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, Mapping):
        entries = {str(k): _plain(v) for k, v in value.items()}
        return {k: v for k, v in entries.items() if v not in (None, "", 0, False, [], {})}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.name
    return value


def _tree(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))


class _Scenarios:
    """Asks the engine every question of the shape's scenarios and records the mismatches."""

    def __init__(self, engine: Engine, schema_version: str) -> None:
        self.engine = engine
        self.version = schema_version
        self.failures: list[Failure] = []
        self.assertions = 0

    def run(self, shape: Shape) -> Report:
        for scenario in shape.scenarios:
            self.scenario(scenario)
        return Report(
            shape.file,
            len(shape.scenarios),
            self.assertions,
            tuple(self.failures),
            shape.warnings,
        )

    def expect(self, scenario: Scenario, query: str, expected: str, got: str) -> None:
        self.assertions += 1
        if got != expected:
            self.failures.append(Failure(scenario.name, query, expected, got))

    @staticmethod
    def answer(depth: int, ask: Callable[P, str], *args: P.args, **kwargs: P.kwargs) -> str:
        """``ask(...)``, or the error that is the answer instead: a depth below the minimum, an
        engine or storage error, a lookup that broke the paging contract."""
        if depth < MIN_DEPTH:
            return f"error: depth must be greater than or equal to {MIN_DEPTH}"
        try:
            return ask(*args, **kwargs)
        except (EngineError, StorageError, _PagingError) as exc:
            return f"error: {type(exc).__name__}: {exc}"

    def scenario(self, scenario: Scenario) -> None:
        for check in scenario.checks:
            subject = subject_text(check.subject)
            for name, allowed in check.assertions.items():
                query = f"check {check.entity}#{name}@{subject}{_with(check.context)}"
                got = self.answer(check.depth, self.check, check, name)
                self.expect(scenario, query, _verdict(allowed), got)
        for ef in scenario.entity_filters:
            options = _with(ef.context)
            if ef.scope is not None:
                options += f" scope {json.dumps(dict(ef.scope), sort_keys=True)}"
            if ef.page_size is not None:
                options += f" page_size {ef.page_size}"
            for name, ids in ef.assertions.items():
                query = f"lookup-entity {ef.entity_type}#{name}@{subject_text(ef.subject)}{options}"
                got = self.answer(ef.depth, self.lookup_entity, ef, name)
                self.expect(scenario, query, _ids(ids), got)
        for sf in scenario.subject_filters:
            options = _with(sf.context)
            if sf.page_size is not None:
                options += f" page_size {sf.page_size}"
            for name, ids in sf.assertions.items():
                query = f"lookup-subject {sf.entity}#{name}@{sf.reference}{options}"
                got = self.answer(sf.depth, self.lookup_subject, sf, name)
                self.expect(scenario, query, _ids(ids), got)
        for ex in scenario.expands:
            for name, tree in ex.assertions.items():
                query = f"expand {ex.entity}#{name}{_with(ex.context)}"
                got = self.answer(ex.depth, self.expand, ex, name)
                self.expect(scenario, query, _tree(tree), got)
        for sp in scenario.subject_permissions:
            only = " only_permission" if sp.only_permission else ""
            query = f"subject-permission {sp.entity}@{subject_text(sp.subject)}{only}"
            got = self.answer(sp.depth, self.subject_permission, sp)
            self.expect(scenario, query + _with(sp.context), _verdicts(sp.results), got)

    def check(self, case: CheckCase, name: str) -> str:
        result = self.engine.check(
            TENANT,
            case.entity,
            name,
            case.subject,
            schema_version=self.version,
            depth=case.depth,
            context=case.context,
        )
        return _verdict(result.allowed)

    def lookup_entity(self, case: EntityFilterCase, name: str) -> str:
        def page(size: int, cursor: str) -> LookupPage:
            return self.engine.lookup_entity(
                TENANT,
                case.entity_type,
                name,
                case.subject,
                schema_version=self.version,
                depth=case.depth,
                context=case.context,
                scope=case.scope,
                page_size=size,
                cursor=cursor,
            )

        return _ids(_lookup_all(page, case.page_size))

    def lookup_subject(self, case: SubjectFilterCase, name: str) -> str:
        def page(size: int, cursor: str) -> LookupPage:
            return self.engine.lookup_subject(
                TENANT,
                case.entity,
                name,
                case.reference,
                schema_version=self.version,
                depth=case.depth,
                context=case.context,
                page_size=size,
                cursor=cursor,
            )

        return _ids(_lookup_all(page, case.page_size))

    def expand(self, case: ExpandCase, name: str) -> str:
        tree = self.engine.expand(
            TENANT,
            case.entity,
            name,
            schema_version=self.version,
            depth=case.depth,
            context=case.context,
        )
        return _tree(tree)

    def subject_permission(self, case: SubjectPermissionCase) -> str:
        results = self.engine.subject_permission(
            TENANT,
            case.entity,
            case.subject,
            only_permission=case.only_permission,
            schema_version=self.version,
            depth=case.depth,
            context=case.context,
        )
        return _verdicts(results)


def _with(context: Context) -> str:
    return "" if context.is_empty else " with context"


def _write_data(store: Store, shape: Shape) -> None:
    """Relationships, unvalidated tuples and attributes, in batches the store accepts.

    Duplicates are dropped (Permify drops them inside one request); for an attribute written
    twice the last value wins, as an upsert would."""
    tuples = dict.fromkeys([*shape.relationships, *(u.tuple for u in shape.unvalidated)])
    attributes = {a.key: a for a in shape.attributes}
    items: list[Tuple | Attribute] = [*tuples, *attributes.values()]
    step = store.max_write_items
    for start in range(0, len(items), step):
        chunk = items[start : start + step]
        store.write(
            TENANT,
            Changes(
                write_tuples=[i for i in chunk if isinstance(i, Tuple)],
                write_attributes=[i for i in chunk if isinstance(i, Attribute)],
            ),
        )


def run(shape: Shape, *, config: EngineConfig | None = None) -> Report:
    """Compile, validate and load ``shape`` into a temporary store, then run its scenarios.

    Raises SchemaFileError or ValidationFileError when the file cannot run (nothing is asked).
    """
    schema = compile_shape_schema(shape)
    check_writes(shape, schema)
    with tempfile.TemporaryDirectory(prefix="stonetown-validate-") as directory:
        store = LevelDBStore(directory, gc_interval=None)
        try:
            version = store.write_schema(TENANT, shape.schema.text).version
            _write_data(store, shape)
            return _Scenarios(Engine(store, config), version).run(shape)
        finally:
            store.close()


def validate_file(path: str | Path, *, config: EngineConfig | None = None) -> Report:
    """``stonetown validate FILE``: load_shape, then run."""
    return run(load_shape(path), config=config)
