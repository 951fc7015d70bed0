"""Permify's wire shapes: pydantic request models, response models, and the conversions.

This is the only module that knows the JSON format. It follows Permify's gateway
(``UseProtoNames``, ``EmitUnpopulated``, ``DiscardUnknown``): requests take the proto
(snake_case) field names or their lowerCamelCase JSON names and ignore unknown fields; responses
use the snake_case names and contain every field. Request models validate what Permify's
validation rules check (name and id patterns, ``depth >= 3``, list sizes); names may also hold
digits, as Stonetown's schema language allows. A ``metadata`` object may be left out; each of its
fields then takes its default (``depth`` 50, the newest snapshot and schema).

Response models exist for the OpenAPI document and for tests that check every response against
them; handlers build response dicts with the functions at the bottom, which are cheaper.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, assert_never

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

from dsl.schema import (
    AttributeType,
    ComputedAttribute,
    ComputedUserSet,
    EntityDef,
    Node,
    Operation,
    ReferenceKind,
    Rewrite,
    RuleCall,
    Schema,
    TupleToUserSet,
)
from engine.types import DEFAULT_DEPTH, MAX_BULK_CHECK_ITEMS
from storage.base import Attribute, Subject, Tuple

NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$"
ID_PATTERN = r"^([a-zA-Z0-9_\-@.:+]{1,128}|\*)$"
SUBJECT_RELATION_PATTERN = r"^(\.\.\.|[a-zA-Z_][a-zA-Z0-9_]{0,63})?$"
MAX_PAGE_SIZE = 10_000

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
OptionalName = Annotated[str, Field(pattern=r"^([a-zA-Z_][a-zA-Z0-9_]{0,63})?$")]
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
    argument = r"\{\{[ \t\r\n]*\.[A-Za-z_][A-Za-z0-9_]{0,63}[ \t\r\n]*\}\}"

    def with_argument(beside: str) -> str:
        return f"{beside}*(?:{argument}{beside}*)+"

    def component(literal: str, beside: str) -> str:
        return f"(?:{literal}|{with_argument(beside)})"

    name = component(r"[A-Za-z_][A-Za-z0-9_]{0,63}", "[A-Za-z0-9_]")
    entity_id = component(r"[A-Za-z0-9_\-@.:+]{1,128}|\*", r"[A-Za-z0-9_\-@.:+]")
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


# -- metadata ---------------------------------------------------------------------------------


class SnapMetadata(Wire):
    snap_token: str = ""


class SchemaMetadata(Wire):
    schema_version: str = ""


class ExpandMetadata(Wire):
    schema_version: str = ""
    snap_token: str = ""


class CheckMetadata(Wire):
    schema_version: str = ""
    snap_token: str = ""
    depth: Depth = DEFAULT_DEPTH


class SubjectPermissionMetadata(CheckMetadata):
    only_permission: bool = False


# -- permissions ------------------------------------------------------------------------------


class CheckRequest(Wire):
    metadata: CheckMetadata = Field(default_factory=CheckMetadata)
    entity: EntityIn
    permission: Name
    subject: SubjectIn
    context: ContextIn | None = None
    arguments: list[ArgumentIn] = Field(default_factory=list)


class BulkCheckItemIn(Wire):
    entity: EntityIn
    permission: Name
    subject: SubjectIn


class BulkCheckRequest(Wire):
    metadata: CheckMetadata = Field(default_factory=CheckMetadata)
    items: Annotated[list[BulkCheckItemIn], Field(min_length=1, max_length=MAX_BULK_CHECK_ITEMS)]
    context: ContextIn | None = None
    arguments: list[ArgumentIn] = Field(default_factory=list)


class ExpandRequest(Wire):
    metadata: ExpandMetadata = Field(default_factory=ExpandMetadata)
    entity: EntityIn
    permission: Name
    context: ContextIn | None = None
    arguments: list[ArgumentIn] = Field(default_factory=list)


class LookupEntityRequest(Wire):
    metadata: CheckMetadata = Field(default_factory=CheckMetadata)
    entity_type: Name
    permission: Name
    subject: SubjectIn
    context: ContextIn | None = None
    scope: dict[str, StringArrayIn] = Field(default_factory=dict)
    page_size: PageSize | None = None
    continuous_token: str = ""


class SubjectReferenceIn(Wire):
    type: Name
    relation: Annotated[str, Field(pattern=SUBJECT_RELATION_PATTERN)] = ""


class LookupSubjectRequest(Wire):
    metadata: CheckMetadata = Field(default_factory=CheckMetadata)
    entity: EntityIn
    permission: Name
    subject_reference: SubjectReferenceIn
    context: ContextIn | None = None
    arguments: list[ArgumentIn] = Field(default_factory=list)
    page_size: PageSize | None = None
    continuous_token: str = ""


class SubjectPermissionRequest(Wire):
    metadata: SubjectPermissionMetadata = Field(default_factory=SubjectPermissionMetadata)
    entity: EntityIn
    subject: SubjectIn
    context: ContextIn | None = None


# -- schemas ----------------------------------------------------------------------------------


class SchemaWriteRequest(Wire):
    schema_: str = Field(alias="schema", min_length=1)


class SchemaReadRequest(Wire):
    metadata: SchemaMetadata = Field(default_factory=SchemaMetadata)


class PageRequest(Wire):
    page_size: PageSize | None = None
    continuous_token: str = ""


class PartialIn(Wire):
    write: list[str] = Field(default_factory=list)
    update: list[str] = Field(default_factory=list)
    delete: list[str] = Field(default_factory=list)


class PartialWriteRequest(Wire):
    metadata: SchemaMetadata = Field(default_factory=SchemaMetadata)
    partials: dict[str, PartialIn] = Field(default_factory=dict)


# -- data -------------------------------------------------------------------------------------


class DataWriteRequest(Wire):
    metadata: SchemaMetadata = Field(default_factory=SchemaMetadata)
    tuples: list[TupleIn] = Field(default_factory=list)
    attributes: list[AttributeIn] = Field(default_factory=list)


class RelationshipsWriteRequest(Wire):
    metadata: SchemaMetadata = Field(default_factory=SchemaMetadata)
    tuples: Annotated[list[TupleIn], Field(min_length=1)]


class RelationshipsReadRequest(Wire):
    metadata: SnapMetadata = Field(default_factory=SnapMetadata)
    filter: TupleFilterIn
    page_size: PageSize | None = None
    continuous_token: str = ""


class AttributesReadRequest(Wire):
    metadata: SnapMetadata = Field(default_factory=SnapMetadata)
    filter: AttributeFilterIn
    page_size: PageSize | None = None
    continuous_token: str = ""


def _set(name: str, non_empty: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema: property ``name`` is there and is ``non_empty``."""
    return {"required": [name], "properties": {name: non_empty}}


_TEXT, _LIST = {"minLength": 1}, {"minItems": 1}
#: What ``TupleFilterIn.is_empty`` and ``AttributeFilterIn.is_empty`` say, for the document:
#: the delete endpoints refuse a filter that would match everything.
NON_EMPTY_TUPLE_FILTER = {
    "anyOf": [
        _set("entity", {"anyOf": [_set("type", _TEXT), _set("ids", _LIST)]}),
        _set("relation", _TEXT),
        _set(
            "subject",
            {"anyOf": [_set(f, _TEXT) for f in ("type", "relation")] + [_set("ids", _LIST)]},
        ),
    ]
}
NON_EMPTY_ATTRIBUTE_FILTER = {
    "anyOf": [
        _set("entity", {"anyOf": [_set("type", _TEXT), _set("ids", _LIST)]}),
        _set("attributes", _LIST),
    ]
}


class DataDeleteRequest(Wire):
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                _set("tuple_filter", NON_EMPTY_TUPLE_FILTER),
                _set("attribute_filter", NON_EMPTY_ATTRIBUTE_FILTER),
            ]
        }
    )

    tuple_filter: TupleFilterIn = Field(default_factory=TupleFilterIn)
    attribute_filter: AttributeFilterIn = Field(default_factory=AttributeFilterIn)


class RelationshipsDeleteRequest(Wire):
    model_config = ConfigDict(json_schema_extra={"allOf": [_set("filter", NON_EMPTY_TUPLE_FILTER)]})

    filter: TupleFilterIn


# -- bundles ----------------------------------------------------------------------------------


class BundleOperationIn(Wire):
    relationships_write: list[TupleTemplate] = Field(default_factory=list)
    relationships_delete: list[TupleTemplate] = Field(default_factory=list)
    attributes_write: list[AttributeTemplate] = Field(default_factory=list)
    attributes_delete: list[AttributeKeyTemplate] = Field(default_factory=list)


class BundleIn(Wire):
    name: Name
    # The engine refuses an argument declared twice (naming both places).
    arguments: list[Name] = Field(default_factory=list, json_schema_extra={"uniqueItems": True})
    operations: list[BundleOperationIn] = Field(default_factory=list)


class BundleWriteRequest(Wire):
    bundles: Annotated[list[BundleIn], Field(min_length=1)]


class BundleNameRequest(Wire):
    name: Name


class RunBundleRequest(Wire):
    name: Name
    arguments: dict[str, str] = Field(default_factory=dict)


# -- tenants and watch --------------------------------------------------------------------------


class TenantCreateRequest(Wire):
    #: `.` and `..` fit the pattern, but no URL can name them: the route rejects them too.
    id: Annotated[
        str,
        Field(
            pattern=r"^[a-zA-Z0-9_\-@.:+]{1,128}$",
            json_schema_extra={"not": {"enum": [".", ".."]}},
        ),
    ]
    name: Annotated[str, Field(max_length=256)] = ""


class WatchRequest(Wire):
    snap_token: str = ""


# -- responses (for the OpenAPI document and response tests) ------------------------------------


class EntityOut(Out):
    type: str
    id: str


class SubjectOut(Out):
    type: str
    id: str
    relation: str


class TupleOut(Out):
    entity: EntityOut
    relation: str
    subject: SubjectOut


class AnyOut(Out):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    type_url: str = Field(alias="@type")
    data: Any


class AttributeOut(Out):
    entity: EntityOut
    attribute: str
    value: AnyOut


class CheckMetadataOut(Out):
    check_count: int


class CheckResponse(Out):
    can: Literal["CHECK_RESULT_ALLOWED", "CHECK_RESULT_DENIED"]
    metadata: CheckMetadataOut


class BulkCheckResponse(Out):
    results: list[CheckResponse]


class ExpandResponse(Out):
    tree: dict[str, Any]


class LookupEntityResponse(Out):
    entity_ids: list[str]
    continuous_token: str


class LookupEntityStreamResult(Out):
    entity_id: str
    continuous_token: str


class LookupEntityStreamLine(Out):
    result: LookupEntityStreamResult


class LookupSubjectResponse(Out):
    subject_ids: list[str]
    continuous_token: str


class SubjectPermissionResponse(Out):
    results: dict[str, Literal["CHECK_RESULT_ALLOWED", "CHECK_RESULT_DENIED"]]


class SchemaVersionResponse(Out):
    schema_version: str


class SchemaReadResponse(Out):
    schema_: dict[str, Any] = Field(alias="schema")
    #: Stonetown's extension: the schema's text as written (Permify clients ignore it).
    x_schema_text: str


class SchemaListItem(Out):
    version: str
    created_at: str


class SchemaListResponse(Out):
    head: str
    schemas: list[SchemaListItem]
    continuous_token: str


class SnapTokenResponse(Out):
    snap_token: str


class RelationshipsReadResponse(Out):
    tuples: list[TupleOut]
    continuous_token: str
    #: Stonetown's extension: the snapshot this page was read at (pass it as
    #: ``metadata.snap_token`` to read further pages, or other data, at the same one).
    x_snap_token: str


class AttributesReadResponse(Out):
    attributes: list[AttributeOut]
    continuous_token: str
    #: Stonetown's extension, as in RelationshipsReadResponse.
    x_snap_token: str


class BundleOperationOut(Out):
    relationships_write: list[str]
    relationships_delete: list[str]
    attributes_write: list[str]
    attributes_delete: list[str]


class BundleOut(Out):
    name: str
    arguments: list[str]
    operations: list[BundleOperationOut]


class BundleWriteResponse(Out):
    names: list[str]


class BundleReadResponse(Out):
    bundle: BundleOut


class BundleDeleteResponse(Out):
    name: str


class TenantOut(Out):
    id: str
    name: str
    created_at: str


class TenantResponse(Out):
    tenant: TenantOut


class TenantListResponse(Out):
    tenants: list[TenantOut]
    continuous_token: str


class TenantDeleteResponse(Out):
    tenant_id: str


class DataChangeOut(Out):
    operation: Literal["OPERATION_CREATE", "OPERATION_DELETE"]
    tuple: TupleOut | None = None
    attribute: AttributeOut | None = None


class WatchChanges(Out):
    snap_token: str
    data_changes: list[DataChangeOut]


class WatchResult(Out):
    changes: WatchChanges


class WatchLine(Out):
    result: WatchResult


class HealthResponse(Out):
    status: str


class ErrorResponse(Out):
    code: int
    message: str
    details: list[dict[str, Any]]


class StrapiError(Out):
    status: int
    name: str
    message: str
    details: dict[str, Any]


class StrapiErrorResponse(Out):
    """The relations layer's error body (Strapi's envelope)."""

    data: None
    error: StrapiError


class StreamErrorOut(ErrorResponse):
    http_code: int


class StreamErrorLine(Out):
    """The last line of a stream that failed after it started (grpc-gateway's form)."""

    error: StreamErrorOut


# -- conversions out ----------------------------------------------------------------------------


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as protojson writes Timestamps."""
    text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def tuple_json(t: Tuple) -> dict[str, Any]:
    return {
        "entity": {"type": t.entity_type, "id": t.entity_id},
        "relation": t.relation,
        "subject": {"type": t.subject_type, "id": t.subject_id, "relation": t.subject_relation},
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


def attribute_json(a: Attribute) -> dict[str, Any]:
    return {
        "entity": {"type": a.entity_type, "id": a.entity_id},
        "attribute": a.name,
        "value": value_json(a.type, a.value),
    }


def check_json(allowed: bool, check_count: int) -> dict[str, Any]:
    return {
        "can": CHECK_ALLOWED if allowed else CHECK_DENIED,
        "metadata": {"check_count": check_count},
    }


def expand_json(node: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's expand tree with every field Permify's gateway emits (``EmitUnpopulated``):
    each node's ``arguments`` (``[]`` when it has none) and each subject's ``relation``."""
    out: dict[str, Any] = {
        "entity": node["entity"],
        "permission": node["permission"],
        "arguments": node.get("arguments", []),
    }
    if "expand" in node:
        inner = node["expand"]
        children = [expand_json(child) for child in inner["children"]]
        out["expand"] = {"operation": inner["operation"], "children": children}
        return out
    leaf = node["leaf"]
    if "subjects" in leaf:
        subjects = [
            {"type": s["type"], "id": s["id"], "relation": s.get("relation", "")}
            for s in leaf["subjects"]["subjects"]
        ]
        leaf = {"subjects": {"subjects": subjects}}
    out["leaf"] = leaf
    return out


_CHECK_PREFIX = {
    True: b'{"can":"CHECK_RESULT_ALLOWED","metadata":{"check_count":',
    False: b'{"can":"CHECK_RESULT_DENIED","metadata":{"check_count":',
}


def check_bytes(allowed: bool, check_count: int) -> bytes:
    """``check_json`` already encoded (the check endpoint's hot path)."""
    return b"%s%d}}" % (_CHECK_PREFIX[allowed], check_count)


def scope_of(scope: Mapping[str, StringArrayIn]) -> dict[str, list[str]] | None:
    return {name: list(ids.data) for name, ids in scope.items()} or None


_OPERATIONS = {
    Operation.UNION: "OPERATION_UNION",
    Operation.INTERSECTION: "OPERATION_INTERSECTION",
    Operation.EXCLUSION: "OPERATION_EXCLUSION",
}
_REFERENCES = {
    ReferenceKind.RELATION: "REFERENCE_RELATION",
    ReferenceKind.PERMISSION: "REFERENCE_PERMISSION",
    ReferenceKind.ATTRIBUTE: "REFERENCE_ATTRIBUTE",
}


def _child_json(node: Node) -> dict[str, Any]:
    match node:
        case Rewrite(operation=op, children=children):
            return {
                "rewrite": {
                    "rewrite_operation": _OPERATIONS[op],
                    "children": [_child_json(c) for c in children],
                }
            }
        case ComputedUserSet(relation=relation):
            return {"leaf": {"computed_user_set": {"relation": relation}}}
        case TupleToUserSet(tupleset=tupleset, computed=computed):
            return {
                "leaf": {
                    "tuple_to_user_set": {
                        "tupleSet": {"relation": tupleset},
                        "computed": {"relation": computed},
                    }
                }
            }
        case ComputedAttribute(name=name):
            return {"leaf": {"computed_attribute": {"name": name}}}
        case RuleCall(rule=rule, arguments=arguments):
            return {
                "leaf": {
                    "call": {
                        "rule_name": rule,
                        "arguments": [{"computed_attribute": {"name": a}} for a in arguments],
                    }
                }
            }
    assert_never(node)


def _entity_json(entity: EntityDef) -> dict[str, Any]:
    return {
        "name": entity.name,
        "relations": {
            name: {
                "name": name,
                "relation_references": [
                    {"type": ref.type, "relation": ref.relation} for ref in rel.subject_types
                ],
            }
            for name, rel in entity.relations.items()
        },
        "permissions": {
            name: {"name": name, "child": _child_json(p.child)}
            for name, p in entity.permissions.items()
        },
        "attributes": {
            name: {"name": name, "type": f"ATTRIBUTE_TYPE_{a.type.name}"}
            for name, a in entity.attributes.items()
        },
        "references": {name: _REFERENCES[kind] for name, kind in entity.references.items()},
    }


def schema_json(schema: Schema) -> dict[str, Any]:
    """Permify's ``SchemaDefinition`` (the compiled schema). A rule's ``expression`` is a CEL
    CheckedExpr in Permify, which Stonetown does not build; here it is ``{"cel": body}``."""
    return {
        "entity_definitions": {name: _entity_json(e) for name, e in schema.entities.items()},
        "rule_definitions": {
            name: {
                "name": name,
                "arguments": {p: f"ATTRIBUTE_TYPE_{t.name}" for p, t in rule.parameters.items()},
                "expression": {"cel": rule.expression},
            }
            for name, rule in schema.rules.items()
        },
        "references": {
            **{name: "REFERENCE_ENTITY" for name in schema.entities},
            **{name: "REFERENCE_RULE" for name in schema.rules},
        },
    }
