"""Read a Permify validation file (a "shape") into ``shape.Shape``.

``load_shape`` reads the YAML and reports every malformed item at once, each at its
``file:line:col``; an unknown (say, misspelt) key is one, with the closest known key suggested,
and a scenario or query that asks nothing is a warning. The schema is inline DSL text or a file
path relative to the YAML file; Stonetown's ``x_`` extension keys are read here too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import yaml

from api.validate.shape import (
    CheckCase,
    EntityFilterCase,
    ExpandCase,
    Pos,
    Scenario,
    SchemaSource,
    Shape,
    SubjectFilterCase,
    SubjectPermissionCase,
    UnvalidatedTuple,
    ValidationFileError,
)
from api.validate.yaml_nodes import Loader, Reader
from engine.errors import InvalidRequest
from engine.notation import parse_attribute, parse_tuple
from engine.types import EMPTY_CONTEXT, Context, Entity, SubjectReference, parse_subject

#: ``permify validate`` asks with this depth when an item gives none (or 0).
VALIDATE_DEPTH = 100
CHECK_RESULT = {True: "CHECK_RESULT_ALLOWED", False: "CHECK_RESULT_DENIED"}

T = TypeVar("T")

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
    reader: Reader, entries: Mapping[str, yaml.Node], root: yaml.Node, source: str, base_dir: Path
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


def _context(reader: Reader, node: yaml.Node | None, where: str) -> Context:
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


def _depth(reader: Reader, entries: Mapping[str, yaml.Node], where: str) -> int:
    """The item's depth; absent or 0 means permify validate's default. Too small a depth is kept
    and becomes an error of each assertion, as in Permify."""
    return reader.integer(entries.get("depth"), f"{where}.depth") or VALIDATE_DEPTH


def _page_size(reader: Reader, entries: Mapping[str, yaml.Node], where: str) -> int | None:
    node = entries.get("x_page_size")
    size = reader.integer(node, f"{where}.x_page_size")
    if size is not None and size < 1 and node is not None:
        reader.problem(node, f"{where}.x_page_size", f"must be at least 1, got {size}")
        return None
    return size


def _id_lists(
    reader: Reader, entries: Mapping[str, yaml.Node], key: str, where: str
) -> dict[str, tuple[str, ...]]:
    found = reader.mapping(entries.get(key), f"{where}.{key}") or {}
    return {name: reader.strings(node, f"{where}.{key}.{name}") for name, node in found.items()}


def _check(reader: Reader, node: yaml.Node, where: str) -> CheckCase | None:
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


def _entity_filter(reader: Reader, node: yaml.Node, where: str) -> EntityFilterCase | None:
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


def _subject_filter(reader: Reader, node: yaml.Node, where: str) -> SubjectFilterCase | None:
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


def _expand(reader: Reader, node: yaml.Node, where: str) -> ExpandCase | None:
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
    reader: Reader, node: yaml.Node, where: str
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
    reader: Reader,
    entries: Mapping[str, yaml.Node],
    key: str,
    where: str,
    parse: Callable[[Reader, yaml.Node, str], T | None],
) -> tuple[T, ...]:
    where = f"{where}.{key}" if where else key
    nodes = reader.sequence(entries.get(key), where)
    found = (parse(reader, node, f"{where}[{i}]") for i, node in enumerate(nodes))
    return tuple(item for item in found if item is not None)


def _note_if_empty(
    reader: Reader, node: yaml.Node, where: str, assertions: Mapping[str, object]
) -> None:
    """Warn about an item without assertions: it runs no query, so nothing would fail."""
    if not assertions:
        reader.warn(node, where, "no assertions: nothing is asked")


def _scenario(reader: Reader, node: yaml.Node, where: str) -> Scenario | None:
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


def _unvalidated(reader: Reader, node: yaml.Node, where: str) -> UnvalidatedTuple | None:
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
    loader = Loader(source)
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
        reader = Reader(file, loader)
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
