import datetime

from google.protobuf import any_pb2 as _any_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHECK_RESULT_UNSPECIFIED: _ClassVar[CheckResult]
    CHECK_RESULT_ALLOWED: _ClassVar[CheckResult]
    CHECK_RESULT_DENIED: _ClassVar[CheckResult]

class AttributeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTRIBUTE_TYPE_UNSPECIFIED: _ClassVar[AttributeType]
    ATTRIBUTE_TYPE_BOOLEAN: _ClassVar[AttributeType]
    ATTRIBUTE_TYPE_BOOLEAN_ARRAY: _ClassVar[AttributeType]
    ATTRIBUTE_TYPE_STRING: _ClassVar[AttributeType]
    ATTRIBUTE_TYPE_STRING_ARRAY: _ClassVar[AttributeType]
    ATTRIBUTE_TYPE_INTEGER: _ClassVar[AttributeType]
    ATTRIBUTE_TYPE_INTEGER_ARRAY: _ClassVar[AttributeType]
    ATTRIBUTE_TYPE_DOUBLE: _ClassVar[AttributeType]
    ATTRIBUTE_TYPE_DOUBLE_ARRAY: _ClassVar[AttributeType]
CHECK_RESULT_UNSPECIFIED: CheckResult
CHECK_RESULT_ALLOWED: CheckResult
CHECK_RESULT_DENIED: CheckResult
ATTRIBUTE_TYPE_UNSPECIFIED: AttributeType
ATTRIBUTE_TYPE_BOOLEAN: AttributeType
ATTRIBUTE_TYPE_BOOLEAN_ARRAY: AttributeType
ATTRIBUTE_TYPE_STRING: AttributeType
ATTRIBUTE_TYPE_STRING_ARRAY: AttributeType
ATTRIBUTE_TYPE_INTEGER: AttributeType
ATTRIBUTE_TYPE_INTEGER_ARRAY: AttributeType
ATTRIBUTE_TYPE_DOUBLE: AttributeType
ATTRIBUTE_TYPE_DOUBLE_ARRAY: AttributeType

class Context(_message.Message):
    __slots__ = ("tuples", "attributes", "data")
    TUPLES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    tuples: _containers.RepeatedCompositeFieldContainer[Tuple]
    attributes: _containers.RepeatedCompositeFieldContainer[Attribute]
    data: _struct_pb2.Struct
    def __init__(self, tuples: _Optional[_Iterable[_Union[Tuple, _Mapping]]] = ..., attributes: _Optional[_Iterable[_Union[Attribute, _Mapping]]] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Child(_message.Message):
    __slots__ = ("leaf", "rewrite")
    LEAF_FIELD_NUMBER: _ClassVar[int]
    REWRITE_FIELD_NUMBER: _ClassVar[int]
    leaf: Leaf
    rewrite: Rewrite
    def __init__(self, leaf: _Optional[_Union[Leaf, _Mapping]] = ..., rewrite: _Optional[_Union[Rewrite, _Mapping]] = ...) -> None: ...

class Leaf(_message.Message):
    __slots__ = ("computed_user_set", "tuple_to_user_set", "computed_attribute", "call")
    COMPUTED_USER_SET_FIELD_NUMBER: _ClassVar[int]
    TUPLE_TO_USER_SET_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    computed_user_set: ComputedUserSet
    tuple_to_user_set: TupleToUserSet
    computed_attribute: ComputedAttribute
    call: Call
    def __init__(self, computed_user_set: _Optional[_Union[ComputedUserSet, _Mapping]] = ..., tuple_to_user_set: _Optional[_Union[TupleToUserSet, _Mapping]] = ..., computed_attribute: _Optional[_Union[ComputedAttribute, _Mapping]] = ..., call: _Optional[_Union[Call, _Mapping]] = ...) -> None: ...

class Rewrite(_message.Message):
    __slots__ = ("rewrite_operation", "children")
    class Operation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OPERATION_UNSPECIFIED: _ClassVar[Rewrite.Operation]
        OPERATION_UNION: _ClassVar[Rewrite.Operation]
        OPERATION_INTERSECTION: _ClassVar[Rewrite.Operation]
        OPERATION_EXCLUSION: _ClassVar[Rewrite.Operation]
    OPERATION_UNSPECIFIED: Rewrite.Operation
    OPERATION_UNION: Rewrite.Operation
    OPERATION_INTERSECTION: Rewrite.Operation
    OPERATION_EXCLUSION: Rewrite.Operation
    REWRITE_OPERATION_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    rewrite_operation: Rewrite.Operation
    children: _containers.RepeatedCompositeFieldContainer[Child]
    def __init__(self, rewrite_operation: _Optional[_Union[Rewrite.Operation, str]] = ..., children: _Optional[_Iterable[_Union[Child, _Mapping]]] = ...) -> None: ...

class SchemaDefinition(_message.Message):
    __slots__ = ("entity_definitions", "rule_definitions", "references")
    class Reference(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REFERENCE_UNSPECIFIED: _ClassVar[SchemaDefinition.Reference]
        REFERENCE_ENTITY: _ClassVar[SchemaDefinition.Reference]
        REFERENCE_RULE: _ClassVar[SchemaDefinition.Reference]
    REFERENCE_UNSPECIFIED: SchemaDefinition.Reference
    REFERENCE_ENTITY: SchemaDefinition.Reference
    REFERENCE_RULE: SchemaDefinition.Reference
    class EntityDefinitionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: EntityDefinition
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[EntityDefinition, _Mapping]] = ...) -> None: ...
    class RuleDefinitionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: RuleDefinition
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[RuleDefinition, _Mapping]] = ...) -> None: ...
    class ReferencesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SchemaDefinition.Reference
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SchemaDefinition.Reference, str]] = ...) -> None: ...
    ENTITY_DEFINITIONS_FIELD_NUMBER: _ClassVar[int]
    RULE_DEFINITIONS_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    entity_definitions: _containers.MessageMap[str, EntityDefinition]
    rule_definitions: _containers.MessageMap[str, RuleDefinition]
    references: _containers.ScalarMap[str, SchemaDefinition.Reference]
    def __init__(self, entity_definitions: _Optional[_Mapping[str, EntityDefinition]] = ..., rule_definitions: _Optional[_Mapping[str, RuleDefinition]] = ..., references: _Optional[_Mapping[str, SchemaDefinition.Reference]] = ...) -> None: ...

class EntityDefinition(_message.Message):
    __slots__ = ("name", "relations", "permissions", "attributes", "references")
    class Reference(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REFERENCE_UNSPECIFIED: _ClassVar[EntityDefinition.Reference]
        REFERENCE_RELATION: _ClassVar[EntityDefinition.Reference]
        REFERENCE_PERMISSION: _ClassVar[EntityDefinition.Reference]
        REFERENCE_ATTRIBUTE: _ClassVar[EntityDefinition.Reference]
    REFERENCE_UNSPECIFIED: EntityDefinition.Reference
    REFERENCE_RELATION: EntityDefinition.Reference
    REFERENCE_PERMISSION: EntityDefinition.Reference
    REFERENCE_ATTRIBUTE: EntityDefinition.Reference
    class RelationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: RelationDefinition
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[RelationDefinition, _Mapping]] = ...) -> None: ...
    class PermissionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: PermissionDefinition
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[PermissionDefinition, _Mapping]] = ...) -> None: ...
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AttributeDefinition
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AttributeDefinition, _Mapping]] = ...) -> None: ...
    class ReferencesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: EntityDefinition.Reference
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[EntityDefinition.Reference, str]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    RELATIONS_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    relations: _containers.MessageMap[str, RelationDefinition]
    permissions: _containers.MessageMap[str, PermissionDefinition]
    attributes: _containers.MessageMap[str, AttributeDefinition]
    references: _containers.ScalarMap[str, EntityDefinition.Reference]
    def __init__(self, name: _Optional[str] = ..., relations: _Optional[_Mapping[str, RelationDefinition]] = ..., permissions: _Optional[_Mapping[str, PermissionDefinition]] = ..., attributes: _Optional[_Mapping[str, AttributeDefinition]] = ..., references: _Optional[_Mapping[str, EntityDefinition.Reference]] = ...) -> None: ...

class RuleDefinition(_message.Message):
    __slots__ = ("name", "arguments")
    class ArgumentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AttributeType
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AttributeType, str]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    arguments: _containers.ScalarMap[str, AttributeType]
    def __init__(self, name: _Optional[str] = ..., arguments: _Optional[_Mapping[str, AttributeType]] = ...) -> None: ...

class AttributeDefinition(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: AttributeType
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[AttributeType, str]] = ...) -> None: ...

class RelationDefinition(_message.Message):
    __slots__ = ("name", "relation_references")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RELATION_REFERENCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    relation_references: _containers.RepeatedCompositeFieldContainer[RelationReference]
    def __init__(self, name: _Optional[str] = ..., relation_references: _Optional[_Iterable[_Union[RelationReference, _Mapping]]] = ...) -> None: ...

class PermissionDefinition(_message.Message):
    __slots__ = ("name", "child")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHILD_FIELD_NUMBER: _ClassVar[int]
    name: str
    child: Child
    def __init__(self, name: _Optional[str] = ..., child: _Optional[_Union[Child, _Mapping]] = ...) -> None: ...

class RelationReference(_message.Message):
    __slots__ = ("type", "relation")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    type: str
    relation: str
    def __init__(self, type: _Optional[str] = ..., relation: _Optional[str] = ...) -> None: ...

class Entrance(_message.Message):
    __slots__ = ("type", "value")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    type: str
    value: str
    def __init__(self, type: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Argument(_message.Message):
    __slots__ = ("computed_attribute",)
    COMPUTED_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    computed_attribute: ComputedAttribute
    def __init__(self, computed_attribute: _Optional[_Union[ComputedAttribute, _Mapping]] = ...) -> None: ...

class Call(_message.Message):
    __slots__ = ("rule_name", "arguments")
    RULE_NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    rule_name: str
    arguments: _containers.RepeatedCompositeFieldContainer[Argument]
    def __init__(self, rule_name: _Optional[str] = ..., arguments: _Optional[_Iterable[_Union[Argument, _Mapping]]] = ...) -> None: ...

class ComputedAttribute(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ComputedUserSet(_message.Message):
    __slots__ = ("relation",)
    RELATION_FIELD_NUMBER: _ClassVar[int]
    relation: str
    def __init__(self, relation: _Optional[str] = ...) -> None: ...

class TupleToUserSet(_message.Message):
    __slots__ = ("tupleSet", "computed")
    TUPLESET_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_FIELD_NUMBER: _ClassVar[int]
    tupleSet: TupleSet
    computed: ComputedUserSet
    def __init__(self, tupleSet: _Optional[_Union[TupleSet, _Mapping]] = ..., computed: _Optional[_Union[ComputedUserSet, _Mapping]] = ...) -> None: ...

class TupleSet(_message.Message):
    __slots__ = ("relation",)
    RELATION_FIELD_NUMBER: _ClassVar[int]
    relation: str
    def __init__(self, relation: _Optional[str] = ...) -> None: ...

class Tuple(_message.Message):
    __slots__ = ("entity", "relation", "subject")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    entity: Entity
    relation: str
    subject: Subject
    def __init__(self, entity: _Optional[_Union[Entity, _Mapping]] = ..., relation: _Optional[str] = ..., subject: _Optional[_Union[Subject, _Mapping]] = ...) -> None: ...

class Attribute(_message.Message):
    __slots__ = ("entity", "attribute", "value")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    entity: Entity
    attribute: str
    value: _any_pb2.Any
    def __init__(self, entity: _Optional[_Union[Entity, _Mapping]] = ..., attribute: _Optional[str] = ..., value: _Optional[_Union[_any_pb2.Any, _Mapping]] = ...) -> None: ...

class Tuples(_message.Message):
    __slots__ = ("tuples",)
    TUPLES_FIELD_NUMBER: _ClassVar[int]
    tuples: _containers.RepeatedCompositeFieldContainer[Tuple]
    def __init__(self, tuples: _Optional[_Iterable[_Union[Tuple, _Mapping]]] = ...) -> None: ...

class Attributes(_message.Message):
    __slots__ = ("attributes",)
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    attributes: _containers.RepeatedCompositeFieldContainer[Attribute]
    def __init__(self, attributes: _Optional[_Iterable[_Union[Attribute, _Mapping]]] = ...) -> None: ...

class Entity(_message.Message):
    __slots__ = ("type", "id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    type: str
    id: str
    def __init__(self, type: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class EntityAndRelation(_message.Message):
    __slots__ = ("entity", "relation")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    entity: Entity
    relation: str
    def __init__(self, entity: _Optional[_Union[Entity, _Mapping]] = ..., relation: _Optional[str] = ...) -> None: ...

class Subject(_message.Message):
    __slots__ = ("type", "id", "relation")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    type: str
    id: str
    relation: str
    def __init__(self, type: _Optional[str] = ..., id: _Optional[str] = ..., relation: _Optional[str] = ...) -> None: ...

class AttributeFilter(_message.Message):
    __slots__ = ("entity", "attributes")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    entity: EntityFilter
    attributes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, entity: _Optional[_Union[EntityFilter, _Mapping]] = ..., attributes: _Optional[_Iterable[str]] = ...) -> None: ...

class TupleFilter(_message.Message):
    __slots__ = ("entity", "relation", "subject")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    entity: EntityFilter
    relation: str
    subject: SubjectFilter
    def __init__(self, entity: _Optional[_Union[EntityFilter, _Mapping]] = ..., relation: _Optional[str] = ..., subject: _Optional[_Union[SubjectFilter, _Mapping]] = ...) -> None: ...

class EntityFilter(_message.Message):
    __slots__ = ("type", "ids")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    type: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, type: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SubjectFilter(_message.Message):
    __slots__ = ("type", "ids", "relation")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    type: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    relation: str
    def __init__(self, type: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., relation: _Optional[str] = ...) -> None: ...

class ExpandTreeNode(_message.Message):
    __slots__ = ("operation", "children")
    class Operation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OPERATION_UNSPECIFIED: _ClassVar[ExpandTreeNode.Operation]
        OPERATION_UNION: _ClassVar[ExpandTreeNode.Operation]
        OPERATION_INTERSECTION: _ClassVar[ExpandTreeNode.Operation]
        OPERATION_EXCLUSION: _ClassVar[ExpandTreeNode.Operation]
    OPERATION_UNSPECIFIED: ExpandTreeNode.Operation
    OPERATION_UNION: ExpandTreeNode.Operation
    OPERATION_INTERSECTION: ExpandTreeNode.Operation
    OPERATION_EXCLUSION: ExpandTreeNode.Operation
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    operation: ExpandTreeNode.Operation
    children: _containers.RepeatedCompositeFieldContainer[Expand]
    def __init__(self, operation: _Optional[_Union[ExpandTreeNode.Operation, str]] = ..., children: _Optional[_Iterable[_Union[Expand, _Mapping]]] = ...) -> None: ...

class Expand(_message.Message):
    __slots__ = ("entity", "permission", "arguments", "expand", "leaf")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    EXPAND_FIELD_NUMBER: _ClassVar[int]
    LEAF_FIELD_NUMBER: _ClassVar[int]
    entity: Entity
    permission: str
    arguments: _containers.RepeatedCompositeFieldContainer[Argument]
    expand: ExpandTreeNode
    leaf: ExpandLeaf
    def __init__(self, entity: _Optional[_Union[Entity, _Mapping]] = ..., permission: _Optional[str] = ..., arguments: _Optional[_Iterable[_Union[Argument, _Mapping]]] = ..., expand: _Optional[_Union[ExpandTreeNode, _Mapping]] = ..., leaf: _Optional[_Union[ExpandLeaf, _Mapping]] = ...) -> None: ...

class ExpandLeaf(_message.Message):
    __slots__ = ("subjects", "values", "value")
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    subjects: Subjects
    values: Values
    value: _any_pb2.Any
    def __init__(self, subjects: _Optional[_Union[Subjects, _Mapping]] = ..., values: _Optional[_Union[Values, _Mapping]] = ..., value: _Optional[_Union[_any_pb2.Any, _Mapping]] = ...) -> None: ...

class Values(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _any_pb2.Any
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_any_pb2.Any, _Mapping]] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.MessageMap[str, _any_pb2.Any]
    def __init__(self, values: _Optional[_Mapping[str, _any_pb2.Any]] = ...) -> None: ...

class Subjects(_message.Message):
    __slots__ = ("subjects",)
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    subjects: _containers.RepeatedCompositeFieldContainer[Subject]
    def __init__(self, subjects: _Optional[_Iterable[_Union[Subject, _Mapping]]] = ...) -> None: ...

class Tenant(_message.Message):
    __slots__ = ("id", "name", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DataChanges(_message.Message):
    __slots__ = ("snap_token", "data_changes")
    SNAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DATA_CHANGES_FIELD_NUMBER: _ClassVar[int]
    snap_token: str
    data_changes: _containers.RepeatedCompositeFieldContainer[DataChange]
    def __init__(self, snap_token: _Optional[str] = ..., data_changes: _Optional[_Iterable[_Union[DataChange, _Mapping]]] = ...) -> None: ...

class DataChange(_message.Message):
    __slots__ = ("operation", "tuple", "attribute")
    class Operation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OPERATION_UNSPECIFIED: _ClassVar[DataChange.Operation]
        OPERATION_CREATE: _ClassVar[DataChange.Operation]
        OPERATION_DELETE: _ClassVar[DataChange.Operation]
    OPERATION_UNSPECIFIED: DataChange.Operation
    OPERATION_CREATE: DataChange.Operation
    OPERATION_DELETE: DataChange.Operation
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    operation: DataChange.Operation
    tuple: Tuple
    attribute: Attribute
    def __init__(self, operation: _Optional[_Union[DataChange.Operation, str]] = ..., tuple: _Optional[_Union[Tuple, _Mapping]] = ..., attribute: _Optional[_Union[Attribute, _Mapping]] = ...) -> None: ...

class StringValue(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: str
    def __init__(self, data: _Optional[str] = ...) -> None: ...

class IntegerValue(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: int
    def __init__(self, data: _Optional[int] = ...) -> None: ...

class DoubleValue(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: float
    def __init__(self, data: _Optional[float] = ...) -> None: ...

class BooleanValue(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bool
    def __init__(self, data: _Optional[bool] = ...) -> None: ...

class StringArrayValue(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, data: _Optional[_Iterable[str]] = ...) -> None: ...

class IntegerArrayValue(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, data: _Optional[_Iterable[int]] = ...) -> None: ...

class DoubleArrayValue(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, data: _Optional[_Iterable[float]] = ...) -> None: ...

class BooleanArrayValue(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, data: _Optional[_Iterable[bool]] = ...) -> None: ...

class DataBundle(_message.Message):
    __slots__ = ("name", "arguments", "operations")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    arguments: _containers.RepeatedScalarFieldContainer[str]
    operations: _containers.RepeatedCompositeFieldContainer[Operation]
    def __init__(self, name: _Optional[str] = ..., arguments: _Optional[_Iterable[str]] = ..., operations: _Optional[_Iterable[_Union[Operation, _Mapping]]] = ...) -> None: ...

class Operation(_message.Message):
    __slots__ = ("relationships_write", "relationships_delete", "attributes_write", "attributes_delete")
    RELATIONSHIPS_WRITE_FIELD_NUMBER: _ClassVar[int]
    RELATIONSHIPS_DELETE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_WRITE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_DELETE_FIELD_NUMBER: _ClassVar[int]
    relationships_write: _containers.RepeatedScalarFieldContainer[str]
    relationships_delete: _containers.RepeatedScalarFieldContainer[str]
    attributes_write: _containers.RepeatedScalarFieldContainer[str]
    attributes_delete: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, relationships_write: _Optional[_Iterable[str]] = ..., relationships_delete: _Optional[_Iterable[str]] = ..., attributes_write: _Optional[_Iterable[str]] = ..., attributes_delete: _Optional[_Iterable[str]] = ...) -> None: ...

class Partials(_message.Message):
    __slots__ = ("write", "delete", "update")
    WRITE_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    write: _containers.RepeatedScalarFieldContainer[str]
    delete: _containers.RepeatedScalarFieldContainer[str]
    update: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, write: _Optional[_Iterable[str]] = ..., delete: _Optional[_Iterable[str]] = ..., update: _Optional[_Iterable[str]] = ...) -> None: ...
