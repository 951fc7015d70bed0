"""Bundle strings as components: the forms of tuples and attributes, the checks on literal
text made when a bundle is written, and rendering a component with argument values.

Each string is one of Permify's forms, split at its separators into components:

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
dropped). An argument value that makes its component invalid is an `ArgumentProblem` naming the
component and the argument. So no argument can change the shape of what is written:
``user:{{.uid}}`` with ``uid = "1#owner"`` is refused, never a userset.

Arrays. An array value is comma-separated, as in Permify's attribute strings. The literal commas
of the template cut it into elements and an argument fills (part of) one element, so an argument
holding ``,`` is refused: ``string[]:admin,{{.tag}}`` always has two elements. The one exception
is a value that is exactly one argument (``string[]:{{.tags}}``): the bundle's author handed the
whole array to the caller, so the argument is the comma-separated list, giving exactly what the
same literal text would (``a,b`` two elements; ``""`` the one empty string, as Permify's parser).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import NoReturn, cast

from dsl.schema import AttributeType
from engine.bundles.template import Segment, Template, joined, segments
from engine.notation import (
    ID_PATTERN,
    NAME_PATTERN,
    parse_scalar,
    shown,
    value_type,
)
from storage.base import Attribute, AttributeKey, AttributeValue, Tuple
from storage.identifiers import ID_CHARACTER, ID_RULE, NAME_RULE


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
    Kind.ID: re.compile(ID_CHARACTER + "*"),
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


def split(segments: Sequence[Segment], form: Form) -> ItemTemplate:
    """Cut the segments at the separators of ``form``, found in literal text only."""
    components: list[Component] = []
    steps = iter(form.steps)
    step = next(steps)
    current: list[Segment] = []

    def close() -> None:
        components.append(Component(step.component, step.kind, joined(current)))
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
            current.append(Segment(segment.start + pos, segment.text[pos:i]))
            close()
            step = next(steps)
            stops = _STOPS[step.kind]
            pos = i + 1
        current.append(Segment(segment.start + pos, segment.text[pos:]))
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


def literal_problems(item: ItemTemplate) -> Iterator[str]:
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
    item = split(segments(text), form)
    problems = list(literal_problems(item))
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
