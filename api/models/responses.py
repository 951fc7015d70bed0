"""Permify's response messages, and the functions handlers build response bodies with.

The response models exist for the OpenAPI document and for tests that check every response
against them; handlers build response dicts with the functions at the bottom, which are cheaper.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from api.models.common import CHECK_ALLOWED, CHECK_DENIED, Out, value_json
from storage.base import Attribute, Tuple

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
    #: Why the server is not serving (shutting down, the database unreachable); absent when it is.
    reason: str | None = None


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


_CHECK_PREFIX = {
    True: b'{"can":"CHECK_RESULT_ALLOWED","metadata":{"check_count":',
    False: b'{"can":"CHECK_RESULT_DENIED","metadata":{"check_count":',
}


def check_bytes(allowed: bool, check_count: int) -> bytes:
    """``check_json`` already encoded (the check endpoint's hot path)."""
    return b"%s%d}}" % (_CHECK_PREFIX[allowed], check_count)
