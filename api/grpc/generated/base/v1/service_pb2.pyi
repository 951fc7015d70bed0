from api.grpc.generated.base.v1 import base_pb2 as _base_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PermissionCheckRequest(_message.Message):
    __slots__ = ("tenant_id", "metadata", "entity", "permission", "subject", "context", "arguments")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    metadata: PermissionCheckRequestMetadata
    entity: _base_pb2.Entity
    permission: str
    subject: _base_pb2.Subject
    context: _base_pb2.Context
    arguments: _containers.RepeatedCompositeFieldContainer[_base_pb2.Argument]
    def __init__(self, tenant_id: _Optional[str] = ..., metadata: _Optional[_Union[PermissionCheckRequestMetadata, _Mapping]] = ..., entity: _Optional[_Union[_base_pb2.Entity, _Mapping]] = ..., permission: _Optional[str] = ..., subject: _Optional[_Union[_base_pb2.Subject, _Mapping]] = ..., context: _Optional[_Union[_base_pb2.Context, _Mapping]] = ..., arguments: _Optional[_Iterable[_Union[_base_pb2.Argument, _Mapping]]] = ...) -> None: ...

class PermissionCheckRequestMetadata(_message.Message):
    __slots__ = ("schema_version", "snap_token", "depth")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SNAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    schema_version: str
    snap_token: str
    depth: int
    def __init__(self, schema_version: _Optional[str] = ..., snap_token: _Optional[str] = ..., depth: _Optional[int] = ...) -> None: ...

class PermissionCheckResponse(_message.Message):
    __slots__ = ("can", "metadata")
    CAN_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    can: _base_pb2.CheckResult
    metadata: PermissionCheckResponseMetadata
    def __init__(self, can: _Optional[_Union[_base_pb2.CheckResult, str]] = ..., metadata: _Optional[_Union[PermissionCheckResponseMetadata, _Mapping]] = ...) -> None: ...

class PermissionCheckResponseMetadata(_message.Message):
    __slots__ = ("check_count",)
    CHECK_COUNT_FIELD_NUMBER: _ClassVar[int]
    check_count: int
    def __init__(self, check_count: _Optional[int] = ...) -> None: ...

class PermissionBulkCheckRequestItem(_message.Message):
    __slots__ = ("entity", "permission", "subject")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    entity: _base_pb2.Entity
    permission: str
    subject: _base_pb2.Subject
    def __init__(self, entity: _Optional[_Union[_base_pb2.Entity, _Mapping]] = ..., permission: _Optional[str] = ..., subject: _Optional[_Union[_base_pb2.Subject, _Mapping]] = ...) -> None: ...

class PermissionBulkCheckRequest(_message.Message):
    __slots__ = ("tenant_id", "metadata", "items", "context", "arguments")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    metadata: PermissionCheckRequestMetadata
    items: _containers.RepeatedCompositeFieldContainer[PermissionBulkCheckRequestItem]
    context: _base_pb2.Context
    arguments: _containers.RepeatedCompositeFieldContainer[_base_pb2.Argument]
    def __init__(self, tenant_id: _Optional[str] = ..., metadata: _Optional[_Union[PermissionCheckRequestMetadata, _Mapping]] = ..., items: _Optional[_Iterable[_Union[PermissionBulkCheckRequestItem, _Mapping]]] = ..., context: _Optional[_Union[_base_pb2.Context, _Mapping]] = ..., arguments: _Optional[_Iterable[_Union[_base_pb2.Argument, _Mapping]]] = ...) -> None: ...

class PermissionBulkCheckResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PermissionCheckResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[PermissionCheckResponse, _Mapping]]] = ...) -> None: ...

class PermissionExpandRequest(_message.Message):
    __slots__ = ("tenant_id", "metadata", "entity", "permission", "context", "arguments")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    metadata: PermissionExpandRequestMetadata
    entity: _base_pb2.Entity
    permission: str
    context: _base_pb2.Context
    arguments: _containers.RepeatedCompositeFieldContainer[_base_pb2.Argument]
    def __init__(self, tenant_id: _Optional[str] = ..., metadata: _Optional[_Union[PermissionExpandRequestMetadata, _Mapping]] = ..., entity: _Optional[_Union[_base_pb2.Entity, _Mapping]] = ..., permission: _Optional[str] = ..., context: _Optional[_Union[_base_pb2.Context, _Mapping]] = ..., arguments: _Optional[_Iterable[_Union[_base_pb2.Argument, _Mapping]]] = ...) -> None: ...

class PermissionExpandRequestMetadata(_message.Message):
    __slots__ = ("schema_version", "snap_token")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SNAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    schema_version: str
    snap_token: str
    def __init__(self, schema_version: _Optional[str] = ..., snap_token: _Optional[str] = ...) -> None: ...

class PermissionExpandResponse(_message.Message):
    __slots__ = ("tree",)
    TREE_FIELD_NUMBER: _ClassVar[int]
    tree: _base_pb2.Expand
    def __init__(self, tree: _Optional[_Union[_base_pb2.Expand, _Mapping]] = ...) -> None: ...

class PermissionLookupEntityRequest(_message.Message):
    __slots__ = ("tenant_id", "metadata", "entity_type", "permission", "subject", "context", "scope", "page_size", "continuous_token")
    class ScopeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _base_pb2.StringArrayValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_base_pb2.StringArrayValue, _Mapping]] = ...) -> None: ...
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    metadata: PermissionLookupEntityRequestMetadata
    entity_type: str
    permission: str
    subject: _base_pb2.Subject
    context: _base_pb2.Context
    scope: _containers.MessageMap[str, _base_pb2.StringArrayValue]
    page_size: int
    continuous_token: str
    def __init__(self, tenant_id: _Optional[str] = ..., metadata: _Optional[_Union[PermissionLookupEntityRequestMetadata, _Mapping]] = ..., entity_type: _Optional[str] = ..., permission: _Optional[str] = ..., subject: _Optional[_Union[_base_pb2.Subject, _Mapping]] = ..., context: _Optional[_Union[_base_pb2.Context, _Mapping]] = ..., scope: _Optional[_Mapping[str, _base_pb2.StringArrayValue]] = ..., page_size: _Optional[int] = ..., continuous_token: _Optional[str] = ...) -> None: ...

class PermissionLookupEntityRequestMetadata(_message.Message):
    __slots__ = ("schema_version", "snap_token", "depth")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SNAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    schema_version: str
    snap_token: str
    depth: int
    def __init__(self, schema_version: _Optional[str] = ..., snap_token: _Optional[str] = ..., depth: _Optional[int] = ...) -> None: ...

class PermissionLookupEntityResponse(_message.Message):
    __slots__ = ("entity_ids", "continuous_token")
    ENTITY_IDS_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entity_ids: _containers.RepeatedScalarFieldContainer[str]
    continuous_token: str
    def __init__(self, entity_ids: _Optional[_Iterable[str]] = ..., continuous_token: _Optional[str] = ...) -> None: ...

class PermissionLookupEntityStreamResponse(_message.Message):
    __slots__ = ("entity_id", "continuous_token")
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entity_id: str
    continuous_token: str
    def __init__(self, entity_id: _Optional[str] = ..., continuous_token: _Optional[str] = ...) -> None: ...

class PermissionEntityFilterRequest(_message.Message):
    __slots__ = ("tenant_id", "metadata", "entrance", "subject", "context", "scope", "cursor")
    class ScopeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _base_pb2.StringArrayValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_base_pb2.StringArrayValue, _Mapping]] = ...) -> None: ...
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ENTRANCE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    metadata: PermissionEntityFilterRequestMetadata
    entrance: _base_pb2.Entrance
    subject: _base_pb2.Subject
    context: _base_pb2.Context
    scope: _containers.MessageMap[str, _base_pb2.StringArrayValue]
    cursor: str
    def __init__(self, tenant_id: _Optional[str] = ..., metadata: _Optional[_Union[PermissionEntityFilterRequestMetadata, _Mapping]] = ..., entrance: _Optional[_Union[_base_pb2.Entrance, _Mapping]] = ..., subject: _Optional[_Union[_base_pb2.Subject, _Mapping]] = ..., context: _Optional[_Union[_base_pb2.Context, _Mapping]] = ..., scope: _Optional[_Mapping[str, _base_pb2.StringArrayValue]] = ..., cursor: _Optional[str] = ...) -> None: ...

class PermissionEntityFilterRequestMetadata(_message.Message):
    __slots__ = ("schema_version", "snap_token", "depth")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SNAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    schema_version: str
    snap_token: str
    depth: int
    def __init__(self, schema_version: _Optional[str] = ..., snap_token: _Optional[str] = ..., depth: _Optional[int] = ...) -> None: ...

class PermissionLookupSubjectRequest(_message.Message):
    __slots__ = ("tenant_id", "metadata", "entity", "permission", "subject_reference", "context", "arguments", "page_size", "continuous_token")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    metadata: PermissionLookupSubjectRequestMetadata
    entity: _base_pb2.Entity
    permission: str
    subject_reference: _base_pb2.RelationReference
    context: _base_pb2.Context
    arguments: _containers.RepeatedCompositeFieldContainer[_base_pb2.Argument]
    page_size: int
    continuous_token: str
    def __init__(self, tenant_id: _Optional[str] = ..., metadata: _Optional[_Union[PermissionLookupSubjectRequestMetadata, _Mapping]] = ..., entity: _Optional[_Union[_base_pb2.Entity, _Mapping]] = ..., permission: _Optional[str] = ..., subject_reference: _Optional[_Union[_base_pb2.RelationReference, _Mapping]] = ..., context: _Optional[_Union[_base_pb2.Context, _Mapping]] = ..., arguments: _Optional[_Iterable[_Union[_base_pb2.Argument, _Mapping]]] = ..., page_size: _Optional[int] = ..., continuous_token: _Optional[str] = ...) -> None: ...

class PermissionLookupSubjectRequestMetadata(_message.Message):
    __slots__ = ("schema_version", "snap_token", "depth")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SNAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    schema_version: str
    snap_token: str
    depth: int
    def __init__(self, schema_version: _Optional[str] = ..., snap_token: _Optional[str] = ..., depth: _Optional[int] = ...) -> None: ...

class PermissionLookupSubjectResponse(_message.Message):
    __slots__ = ("subject_ids", "continuous_token")
    SUBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subject_ids: _containers.RepeatedScalarFieldContainer[str]
    continuous_token: str
    def __init__(self, subject_ids: _Optional[_Iterable[str]] = ..., continuous_token: _Optional[str] = ...) -> None: ...

class PermissionSubjectPermissionRequest(_message.Message):
    __slots__ = ("tenant_id", "metadata", "entity", "subject", "context")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    metadata: PermissionSubjectPermissionRequestMetadata
    entity: _base_pb2.Entity
    subject: _base_pb2.Subject
    context: _base_pb2.Context
    def __init__(self, tenant_id: _Optional[str] = ..., metadata: _Optional[_Union[PermissionSubjectPermissionRequestMetadata, _Mapping]] = ..., entity: _Optional[_Union[_base_pb2.Entity, _Mapping]] = ..., subject: _Optional[_Union[_base_pb2.Subject, _Mapping]] = ..., context: _Optional[_Union[_base_pb2.Context, _Mapping]] = ...) -> None: ...

class PermissionSubjectPermissionRequestMetadata(_message.Message):
    __slots__ = ("schema_version", "snap_token", "only_permission", "depth")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SNAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ONLY_PERMISSION_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    schema_version: str
    snap_token: str
    only_permission: bool
    depth: int
    def __init__(self, schema_version: _Optional[str] = ..., snap_token: _Optional[str] = ..., only_permission: _Optional[bool] = ..., depth: _Optional[int] = ...) -> None: ...

class PermissionSubjectPermissionResponse(_message.Message):
    __slots__ = ("results",)
    class ResultsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _base_pb2.CheckResult
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_base_pb2.CheckResult, str]] = ...) -> None: ...
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.ScalarMap[str, _base_pb2.CheckResult]
    def __init__(self, results: _Optional[_Mapping[str, _base_pb2.CheckResult]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("tenant_id", "snap_token")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SNAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    snap_token: str
    def __init__(self, tenant_id: _Optional[str] = ..., snap_token: _Optional[str] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _base_pb2.DataChanges
    def __init__(self, changes: _Optional[_Union[_base_pb2.DataChanges, _Mapping]] = ...) -> None: ...

class SchemaWriteRequest(_message.Message):
    __slots__ = ("tenant_id", "schema")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    schema: str
    def __init__(self, tenant_id: _Optional[str] = ..., schema: _Optional[str] = ...) -> None: ...

class SchemaWriteResponse(_message.Message):
    __slots__ = ("schema_version",)
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    schema_version: str
    def __init__(self, schema_version: _Optional[str] = ...) -> None: ...

class SchemaPartialWriteRequest(_message.Message):
    __slots__ = ("tenant_id", "metadata", "partials")
    class PartialsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _base_pb2.Partials
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_base_pb2.Partials, _Mapping]] = ...) -> None: ...
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PARTIALS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    metadata: SchemaPartialWriteRequestMetadata
    partials: _containers.MessageMap[str, _base_pb2.Partials]
    def __init__(self, tenant_id: _Optional[str] = ..., metadata: _Optional[_Union[SchemaPartialWriteRequestMetadata, _Mapping]] = ..., partials: _Optional[_Mapping[str, _base_pb2.Partials]] = ...) -> None: ...

class SchemaPartialWriteRequestMetadata(_message.Message):
    __slots__ = ("schema_version",)
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    schema_version: str
    def __init__(self, schema_version: _Optional[str] = ...) -> None: ...

class SchemaPartialWriteResponse(_message.Message):
    __slots__ = ("schema_version",)
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    schema_version: str
    def __init__(self, schema_version: _Optional[str] = ...) -> None: ...

class SchemaReadRequest(_message.Message):
    __slots__ = ("tenant_id", "metadata")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    metadata: SchemaReadRequestMetadata
    def __init__(self, tenant_id: _Optional[str] = ..., metadata: _Optional[_Union[SchemaReadRequestMetadata, _Mapping]] = ...) -> None: ...

class SchemaReadRequestMetadata(_message.Message):
    __slots__ = ("schema_version",)
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    schema_version: str
    def __init__(self, schema_version: _Optional[str] = ...) -> None: ...

class SchemaReadResponse(_message.Message):
    __slots__ = ("schema",)
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    schema: _base_pb2.SchemaDefinition
    def __init__(self, schema: _Optional[_Union[_base_pb2.SchemaDefinition, _Mapping]] = ...) -> None: ...

class SchemaListRequest(_message.Message):
    __slots__ = ("tenant_id", "page_size", "continuous_token")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    page_size: int
    continuous_token: str
    def __init__(self, tenant_id: _Optional[str] = ..., page_size: _Optional[int] = ..., continuous_token: _Optional[str] = ...) -> None: ...

class SchemaListResponse(_message.Message):
    __slots__ = ("head", "schemas", "continuous_token")
    HEAD_FIELD_NUMBER: _ClassVar[int]
    SCHEMAS_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    head: str
    schemas: _containers.RepeatedCompositeFieldContainer[SchemaList]
    continuous_token: str
    def __init__(self, head: _Optional[str] = ..., schemas: _Optional[_Iterable[_Union[SchemaList, _Mapping]]] = ..., continuous_token: _Optional[str] = ...) -> None: ...

class SchemaList(_message.Message):
    __slots__ = ("version", "created_at")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    version: str
    created_at: str
    def __init__(self, version: _Optional[str] = ..., created_at: _Optional[str] = ...) -> None: ...

class DataWriteRequest(_message.Message):
    __slots__ = ("tenant_id", "metadata", "tuples", "attributes")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TUPLES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    metadata: DataWriteRequestMetadata
    tuples: _containers.RepeatedCompositeFieldContainer[_base_pb2.Tuple]
    attributes: _containers.RepeatedCompositeFieldContainer[_base_pb2.Attribute]
    def __init__(self, tenant_id: _Optional[str] = ..., metadata: _Optional[_Union[DataWriteRequestMetadata, _Mapping]] = ..., tuples: _Optional[_Iterable[_Union[_base_pb2.Tuple, _Mapping]]] = ..., attributes: _Optional[_Iterable[_Union[_base_pb2.Attribute, _Mapping]]] = ...) -> None: ...

class DataWriteRequestMetadata(_message.Message):
    __slots__ = ("schema_version",)
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    schema_version: str
    def __init__(self, schema_version: _Optional[str] = ...) -> None: ...

class DataWriteResponse(_message.Message):
    __slots__ = ("snap_token",)
    SNAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    snap_token: str
    def __init__(self, snap_token: _Optional[str] = ...) -> None: ...

class RelationshipWriteRequest(_message.Message):
    __slots__ = ("tenant_id", "metadata", "tuples")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TUPLES_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    metadata: RelationshipWriteRequestMetadata
    tuples: _containers.RepeatedCompositeFieldContainer[_base_pb2.Tuple]
    def __init__(self, tenant_id: _Optional[str] = ..., metadata: _Optional[_Union[RelationshipWriteRequestMetadata, _Mapping]] = ..., tuples: _Optional[_Iterable[_Union[_base_pb2.Tuple, _Mapping]]] = ...) -> None: ...

class RelationshipWriteRequestMetadata(_message.Message):
    __slots__ = ("schema_version",)
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    schema_version: str
    def __init__(self, schema_version: _Optional[str] = ...) -> None: ...

class RelationshipWriteResponse(_message.Message):
    __slots__ = ("snap_token",)
    SNAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    snap_token: str
    def __init__(self, snap_token: _Optional[str] = ...) -> None: ...

class RelationshipReadRequest(_message.Message):
    __slots__ = ("tenant_id", "metadata", "filter", "page_size", "continuous_token")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    metadata: RelationshipReadRequestMetadata
    filter: _base_pb2.TupleFilter
    page_size: int
    continuous_token: str
    def __init__(self, tenant_id: _Optional[str] = ..., metadata: _Optional[_Union[RelationshipReadRequestMetadata, _Mapping]] = ..., filter: _Optional[_Union[_base_pb2.TupleFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., continuous_token: _Optional[str] = ...) -> None: ...

class RelationshipReadRequestMetadata(_message.Message):
    __slots__ = ("snap_token",)
    SNAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    snap_token: str
    def __init__(self, snap_token: _Optional[str] = ...) -> None: ...

class RelationshipReadResponse(_message.Message):
    __slots__ = ("tuples", "continuous_token")
    TUPLES_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tuples: _containers.RepeatedCompositeFieldContainer[_base_pb2.Tuple]
    continuous_token: str
    def __init__(self, tuples: _Optional[_Iterable[_Union[_base_pb2.Tuple, _Mapping]]] = ..., continuous_token: _Optional[str] = ...) -> None: ...

class AttributeReadRequest(_message.Message):
    __slots__ = ("tenant_id", "metadata", "filter", "page_size", "continuous_token")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    metadata: AttributeReadRequestMetadata
    filter: _base_pb2.AttributeFilter
    page_size: int
    continuous_token: str
    def __init__(self, tenant_id: _Optional[str] = ..., metadata: _Optional[_Union[AttributeReadRequestMetadata, _Mapping]] = ..., filter: _Optional[_Union[_base_pb2.AttributeFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., continuous_token: _Optional[str] = ...) -> None: ...

class AttributeReadRequestMetadata(_message.Message):
    __slots__ = ("snap_token",)
    SNAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    snap_token: str
    def __init__(self, snap_token: _Optional[str] = ...) -> None: ...

class AttributeReadResponse(_message.Message):
    __slots__ = ("attributes", "continuous_token")
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    attributes: _containers.RepeatedCompositeFieldContainer[_base_pb2.Attribute]
    continuous_token: str
    def __init__(self, attributes: _Optional[_Iterable[_Union[_base_pb2.Attribute, _Mapping]]] = ..., continuous_token: _Optional[str] = ...) -> None: ...

class DataDeleteRequest(_message.Message):
    __slots__ = ("tenant_id", "tuple_filter", "attribute_filter")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TUPLE_FILTER_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_FILTER_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    tuple_filter: _base_pb2.TupleFilter
    attribute_filter: _base_pb2.AttributeFilter
    def __init__(self, tenant_id: _Optional[str] = ..., tuple_filter: _Optional[_Union[_base_pb2.TupleFilter, _Mapping]] = ..., attribute_filter: _Optional[_Union[_base_pb2.AttributeFilter, _Mapping]] = ...) -> None: ...

class DataDeleteResponse(_message.Message):
    __slots__ = ("snap_token",)
    SNAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    snap_token: str
    def __init__(self, snap_token: _Optional[str] = ...) -> None: ...

class RelationshipDeleteRequest(_message.Message):
    __slots__ = ("tenant_id", "filter")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    filter: _base_pb2.TupleFilter
    def __init__(self, tenant_id: _Optional[str] = ..., filter: _Optional[_Union[_base_pb2.TupleFilter, _Mapping]] = ...) -> None: ...

class RelationshipDeleteResponse(_message.Message):
    __slots__ = ("snap_token",)
    SNAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    snap_token: str
    def __init__(self, snap_token: _Optional[str] = ...) -> None: ...

class BundleRunRequest(_message.Message):
    __slots__ = ("tenant_id", "name", "arguments")
    class ArgumentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    name: str
    arguments: _containers.ScalarMap[str, str]
    def __init__(self, tenant_id: _Optional[str] = ..., name: _Optional[str] = ..., arguments: _Optional[_Mapping[str, str]] = ...) -> None: ...

class BundleRunResponse(_message.Message):
    __slots__ = ("snap_token",)
    SNAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    snap_token: str
    def __init__(self, snap_token: _Optional[str] = ...) -> None: ...

class BundleWriteRequest(_message.Message):
    __slots__ = ("tenant_id", "bundles")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    bundles: _containers.RepeatedCompositeFieldContainer[_base_pb2.DataBundle]
    def __init__(self, tenant_id: _Optional[str] = ..., bundles: _Optional[_Iterable[_Union[_base_pb2.DataBundle, _Mapping]]] = ...) -> None: ...

class BundleWriteResponse(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class BundleReadRequest(_message.Message):
    __slots__ = ("tenant_id", "name")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    name: str
    def __init__(self, tenant_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class BundleReadResponse(_message.Message):
    __slots__ = ("bundle",)
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    bundle: _base_pb2.DataBundle
    def __init__(self, bundle: _Optional[_Union[_base_pb2.DataBundle, _Mapping]] = ...) -> None: ...

class BundleDeleteRequest(_message.Message):
    __slots__ = ("tenant_id", "name")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    name: str
    def __init__(self, tenant_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class BundleDeleteResponse(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class TenantCreateRequest(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class TenantCreateResponse(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: _base_pb2.Tenant
    def __init__(self, tenant: _Optional[_Union[_base_pb2.Tenant, _Mapping]] = ...) -> None: ...

class TenantDeleteRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class TenantDeleteResponse(_message.Message):
    __slots__ = ("tenant_id",)
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    def __init__(self, tenant_id: _Optional[str] = ...) -> None: ...

class TenantListRequest(_message.Message):
    __slots__ = ("page_size", "continuous_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    continuous_token: str
    def __init__(self, page_size: _Optional[int] = ..., continuous_token: _Optional[str] = ...) -> None: ...

class TenantListResponse(_message.Message):
    __slots__ = ("tenants", "continuous_token")
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.RepeatedCompositeFieldContainer[_base_pb2.Tenant]
    continuous_token: str
    def __init__(self, tenants: _Optional[_Iterable[_Union[_base_pb2.Tenant, _Mapping]]] = ..., continuous_token: _Optional[str] = ...) -> None: ...
