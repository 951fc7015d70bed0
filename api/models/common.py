"""Permify's wire format, the parts every message shares: the request and response base
classes, name and id patterns, Permify's value messages (``google.protobuf.Any``) in both
directions, and the sub-messages (entities, subjects, tuples, attributes, context, filters).

Requests follow Permify's gateway (``UseProtoNames``, ``EmitUnpopulated``, ``DiscardUnknown``):
they take the proto (snake_case) field names or their lowerCamelCase JSON names and ignore
unknown fields; responses use the snake_case names and contain every field. Request models
validate what Permify's validation rules check (name and id patterns, ``depth >= 3``, list
sizes); names may also hold digits, as Stonetown's schema language allows.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    AliasGenerator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)
from pydantic.alias_generators import to_camel

from dsl.schema import AttributeType, Operation
from storage.base import Attribute, Subject, Tuple
from storage.identifiers import ID_CHARACTER, NAME, SUBJECT_ID

NAME_PATTERN = f"^{NAME}$"
ID_PATTERN = f"^({SUBJECT_ID})$"
SUBJECT_RELATION_PATTERN = rf"^(\.\.\.|{NAME})?$"
MAX_PAGE_SIZE = 10_000

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
OptionalName = Annotated[str, Field(pattern=f"^({NAME})?$")]
Id = Annotated[str, Field(pattern=ID_PATTERN)]


def _whole(value: object) -> object:
    # JSON Schema counts 3.0 as an integer, as the document's readers will; strict mode would not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


PageSize = Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE), BeforeValidator(_whole)]
Depth = Annotated[int, Field(ge=3, le=2**31 - 1), BeforeValidator(_whole)]


def _bundle_forms() -> dict[str, str]:
    """The patterns of a bundle's strings, per list, for the document (``engine/bundles.py``
    checks them when a bundle is written, with messages naming the component): Permify's tuple
    and attribute forms, where ``{{.argument}}`` may stand in any part of a component and the
    literal text beside it holds only what that component may. Not said here: that each
    argument is declared, that a double is within range (``1e999`` is not), and the value of
    an array element written beside an argument."""
    space = r"[ \t\n\r\f\v]*"
    argument = rf"\{{\{{[ \t\r\n]*\.{NAME}[ \t\r\n]*\}}\}}"

    def with_argument(beside: str) -> str:
        return f"{beside}*(?:{argument}{beside}*)+"

    def component(literal: str, beside: str) -> str:
        return f"(?:{literal}|{with_argument(beside)})"

    name = component(NAME, "[A-Za-z0-9_]")
    entity_id = component(SUBJECT_ID, ID_CHARACTER)
    relation = f"(?:\\.\\.\\.|{name})"
    boolean = "(?:1|t|T|true|True|TRUE|0|f|F|false|False|FALSE)"
    # Go's strconv.ParseInt(s, 10, 32): a sign, leading zeros, at most 2^31-1 (-2^31).
    integer = (
        r"(?:[+-]?0*(?:[0-9]{1,9}|1[0-9]{9}|20[0-9]{8}|21[0-3][0-9]{7}|214[0-6][0-9]{6}"
        r"|2147[0-3][0-9]{5}|21474[0-7][0-9]{4}|214748[0-2][0-9]{3}|2147483[0-5][0-9]{2}"
        r"|21474836[0-3][0-9]|214748364[0-7])|-0*2147483648)"
    )
    # strconv.ParseFloat's decimal forms, inf and nan in any case (not a value past the range).
    double = (
        r"(?:[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
        r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN]))"
    )
    anything = r"[\s\S]*"
    typed = {"boolean": boolean, "string": anything, "integer": integer, "double": double}
    values = [f"{kind}:{value}" for kind, value in typed.items()]
    values += [f"{kind}\\[\\]:{value}(?:,{value})*" for kind, value in typed.items()]
    # With an argument in the value type or the value, the value is checked when the bundle runs.
    type_chars = r"[a-z\[\]]"
    some_type = component(r"(?:boolean|string|integer|double)(?:\[\])?", type_chars)
    values.append(f"{some_type}:{anything}{argument}{anything}")
    values.append(f"{with_argument(type_chars)}:{anything}")
    value = f"(?:{'|'.join(values)})"
    entity = f"{name}:{entity_id}"
    tuple_form = f"^{space}{entity}#{name}@{name}:{entity_id}(?:#{relation})?{space}$"
    attribute = f"^{space}{entity}\\${name}\\|{value}{space}$"
    attribute_key = f"^{space}{entity}\\${name}(?:\\|{value})?{space}$"
    return {
        "relationships_write": tuple_form,
        "relationships_delete": tuple_form,
        "attributes_write": attribute,
        "attributes_delete": attribute_key,
    }


BUNDLE_FORMS = _bundle_forms()
# A bundle's strings: only the document states their pattern, as the engine checks each string
# itself, naming the component that is wrong.
TupleTemplate = Annotated[
    str, Field(min_length=1, json_schema_extra={"pattern": BUNDLE_FORMS["relationships_write"]})
]
AttributeTemplate = Annotated[
    str, Field(min_length=1, json_schema_extra={"pattern": BUNDLE_FORMS["attributes_write"]})
]
AttributeKeyTemplate = Annotated[
    str, Field(min_length=1, json_schema_extra={"pattern": BUNDLE_FORMS["attributes_delete"]})
]

ANY_PREFIX = "type.googleapis.com/base.v1."
#: Permify's value messages, by attribute type.
VALUE_TYPES: dict[AttributeType, str] = {
    AttributeType.BOOLEAN: "BooleanValue",
    AttributeType.BOOLEAN_ARRAY: "BooleanArrayValue",
    AttributeType.STRING: "StringValue",
    AttributeType.STRING_ARRAY: "StringArrayValue",
    AttributeType.INTEGER: "IntegerValue",
    AttributeType.INTEGER_ARRAY: "IntegerArrayValue",
    AttributeType.DOUBLE: "DoubleValue",
    AttributeType.DOUBLE_ARRAY: "DoubleArrayValue",
}
TYPES_BY_URL = {ANY_PREFIX + name: kind for kind, name in VALUE_TYPES.items()}

CHECK_ALLOWED = "CHECK_RESULT_ALLOWED"
CHECK_DENIED = "CHECK_RESULT_DENIED"


def _either_spelling(name: str) -> AliasChoices:
    # The proto name first: it is the one the OpenAPI document shows, and wins over the other.
    return AliasChoices(name, to_camel(name))


class Wire(BaseModel):
    """Requests: snake_case or lowerCamelCase names in, unknown fields ignored. Strict: a value
    of another JSON type (``"5"`` or ``true`` for an integer, ``1`` for a boolean) is a 400, as
    the OpenAPI document says, rather than being converted."""

    model_config = ConfigDict(
        extra="ignore",
        alias_generator=AliasGenerator(validation_alias=_either_spelling),
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
        strict=True,
    )


class Out(BaseModel):
    """Responses: exactly these fields (tests validate every response against its model)."""

    model_config = ConfigDict(extra="forbid")


# -- common sub-messages ----------------------------------------------------------------------


class EntityIn(Wire):
    type: Name
    id: Id


class SubjectIn(Wire):
    type: Name
    id: Id
    relation: Annotated[str, Field(pattern=SUBJECT_RELATION_PATTERN)] = ""

    def to_subject(self) -> Subject:
        return Subject(self.type, self.id, "" if self.relation == "..." else self.relation)


class TupleIn(Wire):
    entity: EntityIn
    relation: Name
    subject: SubjectIn

    def to_tuple(self) -> Tuple:
        s = self.subject
        return Tuple(
            self.entity.type,
            self.entity.id,
            self.relation,
            s.type,
            s.id,
            "" if s.relation == "..." else s.relation,
        )


def _value_schema(schema: dict[str, Any]) -> None:
    """The document's AnyValue: ``data`` as each ``@type`` takes it (what ``to_attribute``
    accepts), null or left out meaning the type's zero value."""
    scalars: dict[AttributeType, dict[str, Any]] = {
        AttributeType.BOOLEAN: {"type": "boolean"},
        AttributeType.STRING: {"type": "string"},
        AttributeType.INTEGER: {
            "anyOf": [
                {"type": "integer", "minimum": INT32[0], "maximum": INT32[1]},
                {"type": "string", "pattern": INT32_TEXT.pattern},
            ]
        },
        AttributeType.DOUBLE: {
            "anyOf": [{"type": "number"}, {"enum": sorted(_DOUBLE_WORDS)}],
        },
    }
    variants = []
    for kind, name in VALUE_TYPES.items():
        data = scalars[kind.element]
        if kind.is_array:
            data = {"type": "array", "items": data}
        variants.append(
            {
                "properties": {
                    "@type": {"const": ANY_PREFIX + name},
                    "data": {"anyOf": [data, {"type": "null"}]},
                }
            }
        )
    schema["properties"]["@type"]["enum"] = list(TYPES_BY_URL)
    schema["oneOf"] = variants


class AnyValue(Wire):
    """``google.protobuf.Any`` holding one of Permify's value messages."""

    model_config = ConfigDict(json_schema_extra=_value_schema)

    type_url: str = Field(alias="@type")
    data: Any = None

    @field_validator("type_url")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in TYPES_BY_URL:
            known = ", ".join(VALUE_TYPES.values())
            raise ValueError(f"unknown value type {value!r}: expected {ANY_PREFIX}<one of {known}>")
        return value

    @property
    def kind(self) -> AttributeType:
        return TYPES_BY_URL[self.type_url]


class AttributeIn(Wire):
    entity: EntityIn
    attribute: Name
    value: AnyValue

    def to_attribute(self) -> Attribute:
        """Raises ValueError (a field error) when ``value.data`` does not fit the type."""
        kind = self.value.kind
        data = self.value.data
        if data is None:  # EmitUnpopulated senders leave out nothing, but protojson may
            data = [] if kind.is_array else _ZERO[kind.element]
        if kind.element is AttributeType.INTEGER:
            data = _integers(data, kind)
        elif kind.element is AttributeType.DOUBLE:
            data = _doubles(data, kind)
        return Attribute(self.entity.type, self.entity.id, self.attribute, kind, data)


_ZERO: dict[AttributeType, object] = {
    AttributeType.BOOLEAN: False,
    AttributeType.STRING: "",
    AttributeType.INTEGER: 0,
    AttributeType.DOUBLE: 0.0,
}
INT32 = (-(2**31), 2**31 - 1)
#: An int32 as protojson also takes it, a string of decimal digits (no sign but `-`, no
#: leading zeros, no spaces or `_`): exactly the range, so the document can say it too.
INT32_TEXT = re.compile(
    r"^(0|-?([1-9][0-9]{0,8}|1[0-9]{9}|20[0-9]{8}|21[0-3][0-9]{7}|214[0-6][0-9]{6}"
    r"|2147[0-3][0-9]{5}|21474[0-7][0-9]{4}|214748[0-2][0-9]{3}|2147483[0-5][0-9]{2}"
    r"|21474836[0-3][0-9]|214748364[0-7])|-2147483648)$"
)
_DOUBLE_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _integer(value: object) -> int:
    # protojson writes 64-bit integers as strings and accepts them either way.
    if isinstance(value, str):
        if not INT32_TEXT.fullmatch(value):
            raise ValueError(f"expected a 32-bit integer, got {value!r}")
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"expected an integer, got {type(value).__name__}")
    if not INT32[0] <= value <= INT32[1]:
        raise ValueError(f"integer {value} is outside the 32-bit range")
    return value


def _integers(data: object, kind: AttributeType) -> object:
    if kind.is_array:
        if not isinstance(data, list):
            raise ValueError("expected a list of integers")
        return [_integer(v) for v in data]
    return _integer(data)


def _double(value: object) -> float:
    if isinstance(value, str) and value in _DOUBLE_WORDS:
        return _DOUBLE_WORDS[value]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:  # an integer past the double range: an infinity, as 1e400 parses
        return math.inf if value > 0 else -math.inf


def _doubles(data: object, kind: AttributeType) -> object:
    if kind.is_array:
        if not isinstance(data, list):
            raise ValueError("expected a list of numbers")
        return [_double(v) for v in data]
    return _double(data)


class ContextIn(Wire):
    tuples: list[TupleIn] = Field(default_factory=list)
    attributes: list[AttributeIn] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)


class ArgumentIn(Wire):
    """Permify's ``Argument``; accepted and ignored, as Permify's HTTP API does."""

    computed_attribute: dict[str, Any] | None = None


class StringArrayIn(Wire):
    data: list[Id] = Field(default_factory=list)


class EntityFilterIn(Wire):
    type: OptionalName = ""
    ids: list[Id] = Field(default_factory=list)


class SubjectFilterIn(Wire):
    type: OptionalName = ""
    ids: list[Id] = Field(default_factory=list)
    relation: Annotated[str, Field(pattern=SUBJECT_RELATION_PATTERN)] = ""


class TupleFilterIn(Wire):
    entity: EntityFilterIn = Field(default_factory=EntityFilterIn)
    relation: OptionalName = ""
    subject: SubjectFilterIn = Field(default_factory=SubjectFilterIn)

    @property
    def is_empty(self) -> bool:
        e, s = self.entity, self.subject
        return not (e.type or e.ids or self.relation or s.type or s.ids or s.relation)


class AttributeFilterIn(Wire):
    entity: EntityFilterIn = Field(default_factory=EntityFilterIn)
    attributes: list[Name] = Field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.entity.type or self.entity.ids or self.attributes)


#: Permify's names of the set operations (``SchemaDefinition`` rewrites, expand nodes).
OPERATION_NAMES = {
    Operation.UNION: "OPERATION_UNION",
    Operation.INTERSECTION: "OPERATION_INTERSECTION",
    Operation.EXCLUSION: "OPERATION_EXCLUSION",
}


def value_json(kind: AttributeType, value: object) -> dict[str, Any]:
    data: object = list(value) if isinstance(value, tuple) else value
    if kind.element is AttributeType.DOUBLE:
        data = _double_json(data)
    return {"@type": ANY_PREFIX + VALUE_TYPES[kind], "data": data}


def _double_json(data: object) -> object:
    # JSON has no NaN or infinities; protojson writes them as strings.
    if isinstance(data, list):
        return [_double_json(v) for v in data]
    if isinstance(data, float) and not math.isfinite(data):
        return "NaN" if math.isnan(data) else ("Infinity" if data > 0 else "-Infinity")
    return data
