"""Permify's data bundles: named, parameterised sets of relationship and attribute changes.

A bundle (``DataBundle``) declares argument names and a list of operations; each operation lists
relationships and attributes to write and to delete as template strings, e.g.
``organization:{{.org}}#admin@user:{{.creator}}``. ``run_bundle`` fills in the arguments and
applies the result to a tenant's data.

Templates. Permify renders every string with Go's text/template and accepts whatever that parses
(a misspelt argument silently renders as an empty string). Stonetown supports exactly the action
``{{.argument}}``, with optional spaces inside the braces (``{{ .argument }}``), and rejects,
when the bundle is *written*, every other action (pipelines, functions, ``if``, trim markers,
comments), an unbalanced ``{{`` or ``}}``, an empty string, and a reference to an argument the
bundle does not declare. All problems of one write are reported together, each naming the bundle,
the operation, the list and the index.

Strings render to Permify's forms: relationships to ``entity:id#relation@subject:id[#relation]``,
``attributes_write`` to ``entity:id$name|type:value``, ``attributes_delete`` to ``entity:id$name``
(Permify's full attribute form is accepted there too; its value is ignored).

Running. Every declared argument must be given, and nothing else. Every rendered string must
parse; written tuples and attributes must fit the schema (``engine.writes``: Permify's error
codes), and an attribute delete must name a declared attribute; tuple deletes are not checked
against the schema, so tuples an older schema admitted can still be removed. Operations apply in
order and, inside one, in Permify's order: relationship writes, attribute writes, relationship
deletes, attribute deletes. So a delete wins over a write of the same item in the same operation,
and a later operation's write wins over an earlier delete. The net effect is one store write at
one revision; on any error nothing is written.

Storage. Each bundle is one record (keyspace ``bundles``, key ``(name,)``) holding compact JSON
with sorted keys; records are not versioned, so a bundle read always sees the latest definition.

Concurrency: synchronous, like the rest of the engine. Writing several bundles is one atomic
store write; a delete checks and removes in one ``Store.transact``. A run reads the bundle, then
writes once: a run racing an upsert of the same bundle uses whichever definition it read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from dsl.schema import Schema
from engine.errors import EngineError, InvalidRequest, InvalidWrite
from engine.validate import parse_attribute, parse_tuple
from engine.writes import check_attribute, check_attribute_key, check_tuple
from storage.base import (
    Attribute,
    AttributeKey,
    Changes,
    Record,
    SnapshotReader,
    SnapToken,
    Store,
    Tuple,
)

#: The records keyspace that holds a tenant's bundles.
KEYSPACE = "bundles"
#: Bundle and argument names: the schema language's names (letters, digits, `_`; not starting
#: with a digit; at most 64 characters).
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: One rejected write reports at most this many problems (a pathological request cannot make
#: the message unbounded).
MAX_PROBLEMS = 100

VALIDATION = "ERROR_CODE_VALIDATION"
ALREADY_EXIST = "ERROR_CODE_ALREADY_EXIST"
BUNDLE_NOT_FOUND = "ERROR_CODE_BUNDLE_NOT_FOUND"
MISSING_ARGUMENT = "ERROR_CODE_MISSING_ARGUMENT"
INVALID_ARGUMENT = "ERROR_CODE_INVALID_ARGUMENT"
MAX_DATA_PER_WRITE_EXCEEDED = "ERROR_CODE_MAX_DATA_PER_WRITE_EXCEEDED"

#: The four lists of an operation, in the order Permify applies them.
LISTS = ("relationships_write", "attributes_write", "relationships_delete", "attributes_delete")

T = TypeVar("T")


class BundleError(EngineError):
    """A bundle cannot be written, found or run; ``code`` is Permify's ErrorCode name.

    ``problems`` lists every problem found (one for most errors; a rejected bundle write reports
    them all, up to `MAX_PROBLEMS`); ``message`` is what ``str()`` gives.
    """

    def __init__(self, code: str, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.problems = tuple(problems) or (message,)


class BundleNotFound(BundleError):
    """The tenant has no bundle of that name (Permify's BUNDLE_NOT_FOUND, HTTP 404)."""

    def __init__(self, tenant: str, name: str) -> None:
        super().__init__(BUNDLE_NOT_FOUND, f"tenant {tenant!r} has no bundle `{name}`")
        self.tenant = tenant
        self.name = name


# --- the model ---------------------------------------------------------------------------------


def _strings(value: Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError(f"{what} must be a sequence of strings, not one string")
    items = tuple(value)
    if not all(isinstance(item, str) for item in items):
        raise TypeError(f"{what} must hold only strings, got {items!r}")
    return items


@dataclass(frozen=True, slots=True)
class Operation:
    """One step of a bundle: template strings of what to write and delete.

    Any iterable of strings is accepted and kept as a tuple, so operations compare by value.
    """

    relationships_write: tuple[str, ...] = ()
    relationships_delete: tuple[str, ...] = ()
    attributes_write: tuple[str, ...] = ()
    attributes_delete: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in LISTS:
            object.__setattr__(self, name, _strings(getattr(self, name), name))

    def lists(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(list name, strings) for the four lists, in the order Permify applies them."""
        return (
            ("relationships_write", self.relationships_write),
            ("attributes_write", self.attributes_write),
            ("relationships_delete", self.relationships_delete),
            ("attributes_delete", self.attributes_delete),
        )

    @property
    def size(self) -> int:
        """How many items this operation writes or deletes (one per string)."""
        return sum(len(strings) for _, strings in self.lists())


@dataclass(frozen=True, slots=True)
class DataBundle:
    """Permify's ``DataBundle``: a name, the argument names, and the operations in order."""

    name: str
    arguments: tuple[str, ...] = ()
    operations: tuple[Operation, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "arguments", _strings(self.arguments, "arguments"))
        operations = tuple(self.operations)
        if not all(isinstance(op, Operation) for op in operations):
            raise TypeError(f"operations must hold Operation values, got {operations!r}")
        object.__setattr__(self, "operations", operations)

    @property
    def size(self) -> int:
        """How many items a run writes or deletes, over all operations."""
        return sum(op.size for op in self.operations)


# --- templates ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template string: literal text and argument names alternate in ``parts``
    (``parts[0]``, ``parts[2]``, ... are text, ``parts[1]``, ``parts[3]``, ... names)."""

    parts: tuple[str, ...]

    @property
    def arguments(self) -> tuple[str, ...]:
        """The argument names referenced, in order (repeats included)."""
        return self.parts[1::2]

    def render(self, values: Mapping[str, str]) -> str:
        parts = list(self.parts)
        for i in range(1, len(parts), 2):
            parts[i] = values[parts[i]]
        return "".join(parts)


# Go's text/template allows these (and only these) as spaces inside an action.
_GO_SPACE = "[ \t\r\n]*"
_REFERENCE = re.compile(rf"{_GO_SPACE}\.([A-Za-z_][A-Za-z0-9_]*){_GO_SPACE}")
_KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
)


def _unsupported(inner: str) -> str:
    """Why the action ``{{inner}}`` is not ``{{.argument}}``."""
    body = inner.strip(" \t\r\n")
    word = body.split(maxsplit=1)[0] if body else ""
    if not body:
        return "the action is empty"
    if inner.startswith("-") or inner.endswith("-"):
        return "trim markers (`{{-`, `-}}`) are not supported"
    if body.startswith("/*"):
        return "comments are not supported"
    if body == ".":
        return "`{{.}}` (the whole argument map) is not supported"
    if "{" in body or "}" in body:
        return "a stray `{` or `}` inside the action"
    if body.startswith("$"):
        return "variables are not supported"
    if word in _KEYWORDS:
        return f"`{word}` actions are not supported"
    if "|" in body:
        return "pipelines are not supported"
    if re.fullmatch(r"\.[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)+", body):
        return "field chains (`.a.b`) are not supported"
    if body.startswith("."):
        return f"`{body[1:]}` is not an argument name (letters, digits and `_`)"
    return "functions and other expressions are not supported"


def parse_template(text: str) -> Template:
    """Parse a bundle string; raise ValueError saying what is wrong and where (1-based column).

    Supported: literal text and ``{{.name}}`` actions, with optional spaces inside the braces.
    """
    if not text.strip():
        raise ValueError("the string is empty")
    parts: list[str] = []
    pos = 0
    while True:
        opened = text.find("{{", pos)
        closed = text.find("}}", pos)
        if closed != -1 and (opened == -1 or closed < opened):
            raise ValueError(f"`}}}}` at column {closed + 1} closes no `{{{{`")
        if opened == -1:
            parts.append(text[pos:])
            return Template(tuple(parts))
        end = text.find("}}", opened + 2)
        if end == -1:
            raise ValueError(f"`{{{{` at column {opened + 1} is never closed by `}}}}`")
        inner = text[opened + 2 : end]
        nested = inner.find("{{")
        if nested != -1:
            raise ValueError(
                f"`{{{{` at column {opened + 1} is not closed before the next `{{{{` "
                f"at column {opened + 3 + nested}"
            )
        match = _REFERENCE.fullmatch(inner)
        if match is None:
            raise ValueError(
                f"`{text[opened : end + 2]}` at column {opened + 1}: {_unsupported(inner)}; "
                "only `{{.argument}}` is (spaces inside the braces are allowed)"
            )
        parts.extend((text[pos:opened], match[1]))
        pos = end + 2


# --- validating a bundle -----------------------------------------------------------------------


def _name_problem(name: str, what: str) -> str | None:
    if not name:
        return f"{what} is empty"
    if not NAME_PATTERN.fullmatch(name):
        return (
            f"{what} {name!r} is invalid: expected letters, digits and `_`, "
            "not starting with a digit, at most 64 characters"
        )
    return None


def _bundle_problems(index: int, bundle: DataBundle) -> Iterator[str]:
    """Every problem of one bundle of a write (``index``: its place in the request)."""
    where = f"bundle `{bundle.name}`" if bundle.name else f"bundles[{index}]"
    problem = _name_problem(bundle.name, "the bundle name")
    if problem is not None:
        yield f"{where}: {problem}"
    first: dict[str, int] = {}
    for i, argument in enumerate(bundle.arguments):
        problem = _name_problem(argument, f"arguments[{i}]")
        if problem is not None:
            yield f"{where}: {problem}"
        elif argument in first:
            yield (
                f"{where}: argument `{argument}` is declared twice "
                f"(arguments[{first[argument]}] and arguments[{i}])"
            )
        else:
            first[argument] = i
    declared = ", ".join(f"`{a}`" for a in first) or "(none)"
    for o, operation in enumerate(bundle.operations):
        for list_name, strings in operation.lists():
            for j, text in enumerate(strings):
                at = f"{where}: operations[{o}].{list_name}[{j}] `{text}`"
                try:
                    template = parse_template(text)
                except ValueError as exc:
                    yield f"{at}: {exc}"
                    continue
                for name in dict.fromkeys(template.arguments):
                    if name not in first:
                        yield f"{at}: `{name}` is not a declared argument; declared: {declared}"


def _problems_message(problems: Sequence[str], total: int) -> str:
    if total == 1:
        return problems[0]
    more = f"; and {total - len(problems)} more" if total > len(problems) else ""
    return f"{total} problems: " + "; ".join(problems) + more


def _check_name(name: str) -> None:
    problem = _name_problem(name, "the bundle name")
    if problem is not None:
        raise BundleError(VALIDATION, problem)


# --- storing -----------------------------------------------------------------------------------


def _encode(bundle: DataBundle) -> bytes:
    document = {
        "name": bundle.name,
        "arguments": list(bundle.arguments),
        "operations": [
            {name: list(strings) for name, strings in op.lists()} for op in bundle.operations
        ],
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def _decode(raw: bytes) -> DataBundle:
    document = json.loads(raw)
    return DataBundle(
        document["name"],
        tuple(document["arguments"]),
        tuple(
            Operation(**{name: tuple(op.get(name, ())) for name in LISTS})
            for op in document["operations"]
        ),
    )


def write_bundles(store: Store, tenant: str, bundles: Sequence[DataBundle]) -> list[str]:
    """Create or replace ``bundles`` (by name) in one atomic write; their names, in order.

    Raises BundleError: ``ERROR_CODE_ALREADY_EXIST`` when one name appears twice in ``bundles``,
    ``ERROR_CODE_VALIDATION`` (listing every problem) for an invalid name or template. Nothing is
    written on error.
    """
    if not bundles:
        raise BundleError(VALIDATION, "no bundles to write: give at least one")
    first: dict[str, int] = {}
    duplicates: list[str] = []
    for k, bundle in enumerate(bundles):
        if bundle.name in first:
            duplicates.append(
                f"bundle name {bundle.name!r} appears twice in one write "
                f"(bundles[{first[bundle.name]}] and bundles[{k}])"
            )
        else:
            first[bundle.name] = k
    if duplicates:
        raise BundleError(
            ALREADY_EXIST,
            _problems_message(duplicates[:MAX_PROBLEMS], len(duplicates)),
            duplicates[:MAX_PROBLEMS],
        )
    problems: list[str] = []
    total = 0
    for k, bundle in enumerate(bundles):
        for problem in _bundle_problems(k, bundle):
            total += 1
            if len(problems) < MAX_PROBLEMS:
                problems.append(problem)
    if problems:
        raise BundleError(VALIDATION, _problems_message(problems, total), problems)
    store.write(
        tenant,
        Changes(put_records=[Record(KEYSPACE, (b.name,), _encode(b)) for b in bundles]),
    )
    return [b.name for b in bundles]


def read_bundle(store: Store, tenant: str, name: str) -> DataBundle:
    """The bundle ``name`` of ``tenant``, as written; BundleNotFound when there is none."""
    _check_name(name)
    raw = store.reader(tenant).record(KEYSPACE, (name,))
    if raw is None:
        raise BundleNotFound(tenant, name)
    return _decode(raw)


def delete_bundle(store: Store, tenant: str, name: str) -> str:
    """Delete the bundle ``name``; return its name. BundleNotFound when there is none (as
    Permify)."""
    _check_name(name)

    def build(reader: SnapshotReader) -> Changes:
        if reader.record(KEYSPACE, (name,)) is None:
            raise BundleNotFound(tenant, name)
        return Changes(delete_records=[(KEYSPACE, (name,))])

    store.transact(tenant, build)
    return name


# --- running -----------------------------------------------------------------------------------


def _check_arguments(bundle: DataBundle, arguments: Mapping[str, str]) -> None:
    declared = ", ".join(f"`{a}`" for a in bundle.arguments) or "(none)"
    missing = [a for a in bundle.arguments if a not in arguments]
    if missing:
        raise BundleError(
            MISSING_ARGUMENT,
            f"bundle `{bundle.name}` needs every declared argument; missing: "
            f"{', '.join(f'`{a}`' for a in missing)} (declared: {declared})",
        )
    unknown = sorted(set(arguments) - set(bundle.arguments))
    if unknown:
        raise BundleError(
            INVALID_ARGUMENT,
            f"bundle `{bundle.name}` declares no argument "
            f"{', '.join(f'`{a}`' for a in unknown)} (declared: {declared})",
        )


def parse_attribute_key(text: str) -> AttributeKey:
    """Parse what an attribute delete names: ``type:id$name``, or Permify's full attribute form
    ``type:id$name|value_type:value`` (the value must parse; it is then ignored, as in Permify).
    Raises InvalidRequest naming the string and the expected form."""
    stripped = text.strip()
    if "|" in stripped:
        return parse_attribute(stripped).key
    match = _ATTRIBUTE_KEY.fullmatch(stripped)
    if match is None:
        raise InvalidRequest(
            f"invalid attribute {text!r}: expected entity_type:entity_id$attribute "
            "(optionally followed by |value_type:value)"
        )
    return AttributeKey(match["type"], match["id"], match["name"])


_ATTRIBUTE_KEY = re.compile(r"(?P<type>[^:$|]+):(?P<id>[^:$|]+)\$(?P<name>[^:$|]+)")


def _items(
    bundle: DataBundle,
    arguments: Mapping[str, str],
    o: int,
    list_name: str,
    parse: Callable[[str], T],
) -> Iterator[tuple[str, T]]:
    """Render and parse one list of operation ``o``: (where it came from, the item) pairs."""
    strings: tuple[str, ...] = getattr(bundle.operations[o], list_name)
    for j, text in enumerate(strings):
        at = f"bundle `{bundle.name}`: operations[{o}].{list_name}[{j}] `{text}`"
        try:
            rendered = parse_template(text).render(arguments)
        except (ValueError, KeyError) as exc:  # a record written before a check existed
            raise BundleError(VALIDATION, f"{at}: the stored template is invalid: {exc}") from exc
        try:
            item = parse(rendered)
        except InvalidRequest as exc:
            raise BundleError(INVALID_ARGUMENT, f"{at} renders `{rendered}`: {exc}") from exc
        yield at, item


def _checked(at: str, check: Callable[[], None]) -> None:
    """Run a schema check; its InvalidWrite keeps Permify's code and gains the location."""
    try:
        check()
    except InvalidWrite as exc:
        raise InvalidWrite(exc.code, f"{at}: {exc}") from exc


def _changes(bundle: DataBundle, schema: Schema, arguments: Mapping[str, str]) -> Changes:
    """The net effect of the operations in order, checked against ``schema``."""
    tuples: dict[Tuple, bool] = {}  # True: written, False: deleted (the last one wins)
    attributes: dict[AttributeKey, Attribute | None] = {}  # None: deleted
    for o in range(len(bundle.operations)):
        for at, t in _items(bundle, arguments, o, "relationships_write", parse_tuple):
            _checked(at, partial(check_tuple, schema, t))
            tuples[t] = True
        for at, a in _items(bundle, arguments, o, "attributes_write", parse_attribute):
            _checked(at, partial(check_attribute, schema, a))
            attributes[a.key] = a
        for _, t in _items(bundle, arguments, o, "relationships_delete", parse_tuple):
            tuples[t] = False
        for at, key in _items(bundle, arguments, o, "attributes_delete", parse_attribute_key):
            _checked(at, partial(check_attribute_key, schema, key))
            attributes[key] = None
    return Changes(
        write_tuples=[t for t, written in tuples.items() if written],
        delete_tuples=[t for t, written in tuples.items() if not written],
        write_attributes=[a for a in attributes.values() if a is not None],
        delete_attributes=[key for key, a in attributes.items() if a is None],
    )


def run_bundle(
    store: Store, schema: Schema, tenant: str, name: str, arguments: Mapping[str, str]
) -> SnapToken:
    """Run the bundle ``name`` of ``tenant`` with ``arguments``: one atomic write; its token.

    ``schema`` is the compiled schema written data is checked against (the API passes the
    tenant's head). Raises BundleNotFound; BundleError for a missing (``MISSING_ARGUMENT``) or
    undeclared (``INVALID_ARGUMENT``) argument, a rendered string that does not parse
    (``INVALID_ARGUMENT``) or more items than one write may hold
    (``MAX_DATA_PER_WRITE_EXCEEDED``); InvalidWrite (Permify's codes) for data the schema
    rejects. Nothing is written on any error.
    """
    bundle = read_bundle(store, tenant, name)
    _check_arguments(bundle, arguments)
    # Every string is one item whatever the arguments, so the count is the bundle's own.
    if bundle.size > store.max_write_items:
        raise BundleError(
            MAX_DATA_PER_WRITE_EXCEEDED,
            f"bundle `{name}` has {bundle.size} items (relationships and attributes to write "
            f"or delete, over all operations); one write may hold at most "
            f"{store.max_write_items}: split it into smaller bundles",
        )
    return store.write(tenant, _changes(bundle, schema, arguments))
