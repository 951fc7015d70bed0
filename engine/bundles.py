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

Components. Each string is one of Permify's forms, split at its separators into components:

    tuple (relationships_write and _delete)
      entity_type ":" entity_id "#" relation "@" subject_type ":" subject_id ["#" subject_relation]
    attribute (attributes_write)
      entity_type ":" entity_id "$" attribute "|" value_type ":" value
    attribute key (attributes_delete; Permify's full attribute form too, its value ignored)
      entity_type ":" entity_id "$" attribute ["|" value_type ":" value]

Separators are looked for in the literal text only, and each component ends at the first separator
it cannot hold: names (entity and subject types, relations, attributes) hold none of ``: # @ $ |``;
ids may hold ``:`` and ``@`` (Permify's id pattern) but not ``# $ |``; the value is the rest of the
string (so, unlike in Permify's parser, a string value may hold ``:`` and ``|``). So
``doc:a@b#owner@user:c:d`` is the entity ``doc:a@b`` and the subject ``user:c:d``, as unambiguous
as ``doc:1#owner@user:1``. An ``{{.argument}}`` is part of exactly one component: it can never
supply a separator, and a string whose separators would have to come from an argument
(``doc:{{.ref}}@user:1``) is rejected when the bundle is written. Literal text is checked then too:
a component without arguments must be valid, and text beside an argument may hold only characters
that kind of component may hold.

When a bundle runs, each component is rendered on its own and checked on its own: names against
``NAME_PATTERN``, ids against Permify's ``ID_PATTERN`` (``*`` is an ordinary id in Stonetown:
there are no wildcard subjects), a subject relation is a name or ``...`` (none), the value type
one of Permify's keywords and the value parsed per that type as Go's strconv does (a string value
is taken verbatim: any characters, spaces included; only spaces around the whole template are
dropped). An argument value that makes its component invalid is ``ERROR_CODE_INVALID_ARGUMENT``,
naming the bundle, the operation, list and index, the component and the argument. So no argument
can change the shape of what is written: ``user:{{.uid}}`` with ``uid = "1#owner"`` is refused,
never a userset.

Arrays. An array value is comma-separated, as in Permify's attribute strings. The literal commas
of the template cut it into elements and an argument fills (part of) one element, so an argument
holding ``,`` is refused: ``string[]:admin,{{.tag}}`` always has two elements. The one exception
is a value that is exactly one argument (``string[]:{{.tags}}``): the bundle's author handed the
whole array to the caller, so the argument is the comma-separated list, giving exactly what the
same literal text would (``a,b`` two elements; ``""`` the one empty string, as Permify's parser).

Running. Every declared argument must be given, and nothing else. Every component must render
valid (above); written tuples and attributes must fit the schema (``engine.writes``: Permify's
error codes), and an attribute delete must name a declared attribute; tuple deletes are not
checked against the schema, so tuples an older schema admitted can still be removed. Operations
apply in order and, inside one, in Permify's order: relationship writes, attribute writes,
relationship deletes, attribute deletes. So a delete wins over a write of the same item in the
same operation, and a later operation's write wins over an earlier delete. The net effect is one
store write at one revision; on any error nothing is written.

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
from enum import Enum
from functools import partial
from typing import NoReturn, TypeVar, cast

from dsl.schema import AttributeType, Schema
from engine.errors import EngineError, InvalidWrite
from engine.relations.links import write_raw
from engine.strings import (
    ID_PATTERN,
    ID_RULE,
    NAME_PATTERN,
    NAME_RULE,
    parse_scalar,
    shown,
    value_type,
)
from engine.writes import check_attribute, check_attribute_key, check_tuple
from storage.base import (
    Attribute,
    AttributeKey,
    AttributeValue,
    Changes,
    Record,
    SnapshotReader,
    SnapToken,
    Store,
    Tuple,
)

#: The records keyspace that holds a tenant's bundles.
KEYSPACE = "bundles"
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
    """Literal text and argument names alternating in ``parts`` (``parts[0]``, ``parts[2]``, ...
    are text, ``parts[1]``, ``parts[3]``, ... names): one component of a bundle string, or a
    whole string."""

    parts: tuple[str, ...]

    @property
    def arguments(self) -> tuple[str, ...]:
        """The argument names referenced, in order (repeats included)."""
        return self.parts[1::2]

    @property
    def is_literal(self) -> bool:
        """True when no argument appears (the text is the value)."""
        return len(self.parts) == 1

    @property
    def is_one_argument(self) -> bool:
        """True when the template is exactly one ``{{.argument}}`` and nothing else."""
        return len(self.parts) == 3 and not self.parts[0] and not self.parts[2]

    def render(self, values: Mapping[str, str]) -> str:
        parts = list(self.parts)
        for i in range(1, len(parts), 2):
            parts[i] = values[parts[i]]
        return "".join(parts)

    def __str__(self) -> str:
        parts = list(self.parts)
        for i in range(1, len(parts), 2):
            parts[i] = f"{{{{.{parts[i]}}}}}"
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class _Segment:
    """Literal text (``argument`` is "") or one ``{{.argument}}``, at 0-based ``start``."""

    start: int
    text: str
    argument: str = ""


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


def _segments(text: str) -> list[_Segment]:
    """``text`` as literal and argument segments, without leading and trailing spaces; raise
    ValueError saying what is wrong and where (1-based column)."""
    if not text.strip():
        raise ValueError("the string is empty")
    segments: list[_Segment] = []
    pos = 0
    while True:
        opened = text.find("{{", pos)
        closed = text.find("}}", pos)
        if closed != -1 and (opened == -1 or closed < opened):
            raise ValueError(f"`}}}}` at column {closed + 1} closes no `{{{{`")
        if opened == -1:
            segments.append(_Segment(pos, text[pos:]))
            break
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
        segments.append(_Segment(pos, text[pos:opened]))
        segments.append(_Segment(opened, text[opened : end + 2], match[1]))
        pos = end + 2
    # As in Permify's string forms, spaces around the string are dropped (not inside it).
    first = segments[0]
    stripped = first.text.lstrip()
    segments[0] = _Segment(first.start + len(first.text) - len(stripped), stripped)
    segments[-1] = _Segment(segments[-1].start, segments[-1].text.rstrip())
    return [s for s in segments if s.text]


def _template(segments: Sequence[_Segment]) -> Template:
    parts = [""]
    for segment in segments:
        if segment.argument:
            parts.extend((segment.argument, ""))
        else:
            parts[-1] += segment.text
    return Template(tuple(parts))


# --- components --------------------------------------------------------------------------------


class Kind(Enum):
    """What a component holds; it decides the characters the component may contain."""

    NAME = "a name"
    ID = "an id"
    SUBJECT_RELATION = "a relation name"
    VALUE_TYPE = "a value type"
    VALUE = "a value"


#: The characters that separate components; a component holds none of those in ``_STOPS``.
SEPARATORS = ":#@$|"
_STOPS = {
    Kind.NAME: SEPARATORS,
    Kind.SUBJECT_RELATION: SEPARATORS,
    Kind.VALUE_TYPE: SEPARATORS,
    Kind.ID: "#$|",  # ids may hold `:` and `@` (Permify's id pattern)
    Kind.VALUE: "",  # the value is the rest of the string
}
#: What literal text beside an argument may hold (a literal-only component is checked whole).
_LITERAL_BESIDE_ARGUMENT = {
    Kind.NAME: re.compile(r"[A-Za-z0-9_]*"),
    Kind.SUBJECT_RELATION: re.compile(r"[A-Za-z0-9_]*"),
    Kind.ID: re.compile(r"[a-zA-Z0-9_\-@.:+]*"),
    Kind.VALUE_TYPE: re.compile(r"[a-z\[\]]*"),
}
_VALUE_TYPES = "boolean, string, integer or double, optionally with []"


@dataclass(frozen=True, slots=True)
class Step:
    """One component of a form: its name, its kind and what ends it."""

    component: str
    kind: Kind
    ends: str = ""  # the separator after the component ("" for the last one)
    may_end: bool = False  # the string may stop here (what follows is optional)


@dataclass(frozen=True, slots=True)
class Form:
    """A string form: its components in order and the separator after each."""

    text: str
    steps: tuple[Step, ...]


TUPLE = Form(
    "entity_type:entity_id#relation@subject_type:subject_id[#subject_relation]",
    (
        Step("entity_type", Kind.NAME, ":"),
        Step("entity_id", Kind.ID, "#"),
        Step("relation", Kind.NAME, "@"),
        Step("subject_type", Kind.NAME, ":"),
        Step("subject_id", Kind.ID, "#", may_end=True),
        Step("subject_relation", Kind.SUBJECT_RELATION),
    ),
)
ATTRIBUTE = Form(
    "entity_type:entity_id$attribute|value_type:value",
    (
        Step("entity_type", Kind.NAME, ":"),
        Step("entity_id", Kind.ID, "$"),
        Step("attribute", Kind.NAME, "|"),
        Step("value_type", Kind.VALUE_TYPE, ":"),
        Step("value", Kind.VALUE),
    ),
)
ATTRIBUTE_KEY = Form(
    "entity_type:entity_id$attribute[|value_type:value]",
    (
        Step("entity_type", Kind.NAME, ":"),
        Step("entity_id", Kind.ID, "$"),
        Step("attribute", Kind.NAME, "|", may_end=True),
        Step("value_type", Kind.VALUE_TYPE, ":"),
        Step("value", Kind.VALUE),
    ),
)
#: The form of each list's strings.
FORMS = {
    "relationships_write": TUPLE,
    "relationships_delete": TUPLE,
    "attributes_write": ATTRIBUTE,
    "attributes_delete": ATTRIBUTE_KEY,
}


@dataclass(frozen=True, slots=True)
class Component:
    """One component of a bundle string: literal text, or text with arguments confined to it."""

    name: str
    kind: Kind
    template: Template


@dataclass(frozen=True, slots=True)
class ItemTemplate:
    """A bundle string split into its components, in the order of ``form`` (an optional tail
    that is absent has no components)."""

    form: Form
    components: tuple[Component, ...]

    def get(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)


_HINT = "; an argument fills part of one component and cannot supply a separator"


def _split(segments: Sequence[_Segment], form: Form) -> ItemTemplate:
    """Cut the segments at the separators of ``form``, found in literal text only."""
    components: list[Component] = []
    steps = iter(form.steps)
    step = next(steps)
    current: list[_Segment] = []

    def close() -> None:
        components.append(Component(step.component, step.kind, _template(current)))
        current.clear()

    for segment in segments:
        if segment.argument:
            current.append(segment)
            continue
        stops = _STOPS[step.kind]
        pos = 0
        for i, char in enumerate(segment.text):
            if char not in stops:
                continue
            column = segment.start + i + 1
            if char != step.ends:
                had_argument = any(s.argument for s in current)
                if step.ends:
                    problem = f"expected `{step.ends}` after the {step.component}"
                else:
                    problem = f"nothing may follow the {step.component}"
                raise ValueError(
                    f"{problem}, found `{char}` at column {column} (the form is {form.text})"
                    + (_HINT if had_argument else "")
                )
            current.append(_Segment(segment.start + pos, segment.text[pos:i]))
            close()
            step = next(steps)
            stops = _STOPS[step.kind]
            pos = i + 1
        current.append(_Segment(segment.start + pos, segment.text[pos:]))
    if step.ends and not step.may_end:
        raise ValueError(
            f"missing `{step.ends}` after the {step.component} (the form is {form.text})"
            + (_HINT if any(s.argument for s in current) else "")
        )
    close()
    return ItemTemplate(form, tuple(components))


def _component_problem(kind: Kind, text: str) -> str | None:
    """Why ``text`` cannot be a component of this kind (values are checked by type instead)."""
    if kind is Kind.VALUE:
        return None
    if not text:
        return "it is empty"
    if kind is Kind.NAME or (kind is Kind.SUBJECT_RELATION and text != "..."):
        return None if NAME_PATTERN.fullmatch(text) else f"expected {NAME_RULE}"
    if kind is Kind.ID:
        return None if ID_PATTERN.fullmatch(text) else f"expected {ID_RULE}"
    if kind is Kind.VALUE_TYPE:
        return None if value_type(text) is not None else f"expected {_VALUE_TYPES}"
    return None  # `...`: Permify's "no subject relation"


def _elements(template: Template) -> tuple[Template, ...]:
    """An array value's elements: the template cut at its literal commas."""
    elements: list[Template] = []
    parts = [""]
    for i, part in enumerate(template.parts):
        if i % 2:
            parts.extend((part, ""))
            continue
        first, *rest = part.split(",")
        parts[-1] += first
        for piece in rest:
            elements.append(Template(tuple(parts)))
            parts = [piece]
    elements.append(Template(tuple(parts)))
    return tuple(elements)


def _literal_problems(item: ItemTemplate) -> Iterator[str]:
    """What is wrong in the literal text of ``item`` (arguments may make the rest right)."""
    for component in item.components:
        template = component.template
        if component.kind is Kind.VALUE:
            continue
        if template.is_literal:
            problem = _component_problem(component.kind, template.parts[0])
            if problem is not None:
                yield f"the {component.name} {shown(template.parts[0])} is invalid: {problem}"
            continue
        allowed = _LITERAL_BESIDE_ARGUMENT[component.kind]
        for text in template.parts[::2]:
            if not allowed.fullmatch(text):
                char = next(c for c in text if not allowed.fullmatch(c))
                kind = component.kind.value
                yield f"the {component.name} `{template}` holds {char!r}, which {kind} may not hold"
                break
    keyword, value = item.get("value_type"), item.get("value")
    if keyword is None or value is None or not keyword.template.is_literal:
        return
    kind = value_type(keyword.template.parts[0])
    if kind is None:
        return
    elements = _elements(value.template) if kind.is_array else (value.template,)
    if kind.is_array and value.template.is_one_argument:
        return  # the argument is the whole list
    for i, element in enumerate(elements):
        if element.is_literal:
            try:
                parse_scalar(kind.element, element.parts[0])
            except ValueError as exc:
                where = f"value[{i}]" if kind.is_array else "value"
                yield f"the {where} is invalid: {exc}"


def parse_item(text: str, form: Form) -> ItemTemplate:
    """Parse a bundle string of ``form`` into its components; raise ValueError saying what is
    wrong (and where, for a misplaced separator or a bad action: 1-based columns).

    Separators are found in literal text only; each ``{{.argument}}`` is part of one component.
    Literal text is checked as far as it can be before arguments are known: a component without
    arguments must be valid, and literal text beside an argument may hold only what that kind of
    component may hold.
    """
    item = _split(_segments(text), form)
    problems = list(_literal_problems(item))
    if problems:
        raise ValueError("; ".join(problems))
    return item


# --- rendering ---------------------------------------------------------------------------------


class ArgumentProblem(ValueError):
    """An argument makes a component invalid. ``component`` names it (``entity_id``,
    ``value[2]``), ``arguments`` are the (name, value) pairs in it: none when the component is
    literal text (a bundle stored before its check existed)."""

    def __init__(self, component: str, arguments: Sequence[tuple[str, str]], message: str) -> None:
        super().__init__(message)
        self.component = component
        self.arguments = tuple(arguments)


def _raise(
    component: str, template: Template, values: Mapping[str, str], text: str, problem: str
) -> NoReturn:
    names = tuple(dict.fromkeys(template.arguments))
    pairs = [(name, values[name]) for name in names]
    given = ", ".join(f"`{name}` = {shown(value)}" for name, value in pairs)
    if not pairs:
        message = f"the {component} {shown(text)} is invalid: {problem}"
    elif template.is_one_argument and text == pairs[0][1]:
        message = f"argument {given} is not a valid {component}: {problem}"
    else:
        verb = "makes" if len(pairs) == 1 else "make"
        plural = "s" if len(pairs) > 1 else ""
        message = (
            f"argument{plural} {given} {verb} the {component} {shown(text)} (`{template}`) "
            f"invalid: {problem}"
        )
    raise ArgumentProblem(component, pairs, message)


def _render(component: Component, values: Mapping[str, str]) -> str:
    """The component with the arguments filled in, checked for its kind."""
    text = component.template.render(values)
    problem = _component_problem(component.kind, text)
    if problem is not None:
        _raise(component.name, component.template, values, text, problem)
    return text


def _value(item: ItemTemplate, values: Mapping[str, str]) -> tuple[AttributeType, AttributeValue]:
    keyword = item.get("value_type")
    component = item.get("value")
    assert keyword is not None and component is not None
    kind = value_type(_render(keyword, values))
    assert kind is not None  # _render checked it
    template = component.template
    if not kind.is_array:
        text = template.render(values)
        try:
            return kind, parse_scalar(kind, text)
        except ValueError as exc:
            _raise("value", template, values, text, str(exc))
    if template.is_one_argument:
        # The argument is the whole array, in Permify's syntax: comma-separated elements.
        texts = template.render(values).split(",")
        elements: list[bool | int | float | str] = []
        for i, text in enumerate(texts):
            try:
                elements.append(parse_scalar(kind.element, text))
            except ValueError as exc:
                _raise(f"value[{i}]", template, values, text, str(exc))
        return kind, cast(AttributeValue, tuple(elements))
    elements = []
    for i, element in enumerate(_elements(template)):
        text = element.render(values)
        if "," in text:  # only an argument can put it there: the literal commas are cut
            _raise(
                f"value[{i}]",
                element,
                values,
                text,
                "an argument beside other text fills one element and may not hold `,` (only "
                "an argument that is the whole value is a comma-separated list)",
            )
        try:
            elements.append(parse_scalar(kind.element, text))
        except ValueError as exc:
            _raise(f"value[{i}]", element, values, text, str(exc))
    return kind, cast(AttributeValue, tuple(elements))


def render_tuple(item: ItemTemplate, values: Mapping[str, str]) -> Tuple:
    """The tuple ``item`` (of form TUPLE) stands for with ``values``; ArgumentProblem when an
    argument makes a component invalid."""
    rendered = {c.name: _render(c, values) for c in item.components}
    subject_relation = rendered.get("subject_relation", "")
    return Tuple(
        rendered["entity_type"],
        rendered["entity_id"],
        rendered["relation"],
        rendered["subject_type"],
        rendered["subject_id"],
        "" if subject_relation == "..." else subject_relation,
    )


def _key(item: ItemTemplate, values: Mapping[str, str]) -> AttributeKey:
    entity_type, entity_id, name = (_render(c, values) for c in item.components[:3])
    return AttributeKey(entity_type, entity_id, name)


def render_attribute_key(item: ItemTemplate, values: Mapping[str, str]) -> AttributeKey:
    """The attribute ``item`` names (of form ATTRIBUTE or ATTRIBUTE_KEY; a value, when given,
    must be valid and is then ignored, as in Permify)."""
    key = _key(item, values)
    if item.get("value") is not None:
        _value(item, values)
    return key


def render_attribute(item: ItemTemplate, values: Mapping[str, str]) -> Attribute:
    """The attribute ``item`` (of form ATTRIBUTE) stands for with ``values``."""
    key = _key(item, values)
    kind, value = _value(item, values)
    return Attribute(key.entity_type, key.entity_id, key.name, kind, value)


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
                    segments = _segments(text)
                except ValueError as exc:
                    yield f"{at}: {exc}"
                    continue
                try:
                    item = _split(segments, FORMS[list_name])
                except ValueError as exc:
                    yield f"{at}: {exc}"
                else:
                    for problem in _literal_problems(item):
                        yield f"{at}: {problem}"
                for name in dict.fromkeys(s.argument for s in segments if s.argument):
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


def _items(
    bundle: DataBundle,
    arguments: Mapping[str, str],
    o: int,
    list_name: str,
    render: Callable[[ItemTemplate, Mapping[str, str]], T],
) -> Iterator[tuple[str, T]]:
    """Render one list of operation ``o``: (where it came from, the item) pairs."""
    strings: tuple[str, ...] = getattr(bundle.operations[o], list_name)
    for j, text in enumerate(strings):
        at = f"bundle `{bundle.name}`: operations[{o}].{list_name}[{j}] `{text}`"
        try:
            rendered = render(parse_item(text, FORMS[list_name]), arguments)
        except ArgumentProblem as exc:
            if not exc.arguments:  # literal text: a record written before a check existed
                raise BundleError(
                    VALIDATION, f"{at}: the stored template is invalid: {exc}"
                ) from exc
            raise BundleError(INVALID_ARGUMENT, f"{at}: {exc}") from exc
        except (ValueError, KeyError) as exc:  # likewise
            raise BundleError(VALIDATION, f"{at}: the stored template is invalid: {exc}") from exc
        yield at, rendered


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
        for at, t in _items(bundle, arguments, o, "relationships_write", render_tuple):
            _checked(at, partial(check_tuple, schema, t))
            tuples[t] = True
        for at, a in _items(bundle, arguments, o, "attributes_write", render_attribute):
            _checked(at, partial(check_attribute, schema, a))
            attributes[a.key] = a
        for _, t in _items(bundle, arguments, o, "relationships_delete", render_tuple):
            tuples[t] = False
        for at, key in _items(bundle, arguments, o, "attributes_delete", render_attribute_key):
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
    return write_raw(store, tenant, _changes(bundle, schema, arguments))
