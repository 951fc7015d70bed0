"""Permify's request messages, one model per endpoint body, and their metadata.

A ``metadata`` object may be left out; each of its fields then takes its default (``depth`` 50,
the newest snapshot and schema). The expand request lives with the expand tree's renderer
(`api.models.expand`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import ConfigDict, Field

from api.models.common import (
    SUBJECT_RELATION_PATTERN,
    ArgumentIn,
    AttributeFilterIn,
    AttributeIn,
    AttributeKeyTemplate,
    AttributeTemplate,
    ContextIn,
    Depth,
    EntityIn,
    Name,
    PageSize,
    StringArrayIn,
    SubjectIn,
    TupleFilterIn,
    TupleIn,
    TupleTemplate,
    Wire,
)
from engine.types import DEFAULT_DEPTH, MAX_BULK_CHECK_ITEMS
from storage.identifiers import TENANT_ID

# -- metadata ---------------------------------------------------------------------------------


class SnapMetadata(Wire):
    snap_token: str = ""


class SchemaMetadata(Wire):
    schema_version: str = ""


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
            pattern=f"^{TENANT_ID}$",
            json_schema_extra={"not": {"enum": [".", ".."]}},
        ),
    ]
    name: Annotated[str, Field(max_length=256)] = ""


class WatchRequest(Wire):
    snap_token: str = ""


def scope_of(scope: Mapping[str, StringArrayIn]) -> dict[str, list[str]] | None:
    return {name: list(ids.data) for name, ids in scope.items()} or None
