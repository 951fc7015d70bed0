"""Permify's gRPC methods, answered as the HTTP routes answer the same questions.

Each method turns its protobuf request into the JSON body the HTTP route would receive (proto
field names, as grpc-gateway's JSON), reads it with the route's own request model (so validation
and its messages are the same), calls the same engine, store and route functions through the
app's ``Services`` (worker threads, caches, write hooks), and turns the route's JSON answer back
into the response message. The tenant, which HTTP takes from the path, is the request's
``tenant_id``. Errors are raised as the routes raise them; ``api/grpc/server.py`` renders them.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from pydantic import BaseModel, ValidationError

from api import models as m
from api.errors import bad_request, from_validation_error
from api.grpc.generated.base.v1 import base_pb2 as base
from api.grpc.generated.base.v1 import service_pb2 as pb
from api.middleware import Metrics
from api.request_io import SMALL_BODY_BYTES, token_field
from api.request_io import _count_values as count_values
from api.routes import bundles, data, permissions, schemas, tenants, watch
from api.services import Services
from dsl.partial import Partial
from engine.bundles import delete_bundle, read_bundle
from engine.errors import EngineError
from storage.base import check_tenant_id
from storage.errors import InvalidTenantId

M = TypeVar("M", bound=BaseModel)
_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
R = TypeVar("R", bound=Message)

_CAN = {True: base.CHECK_RESULT_ALLOWED, False: base.CHECK_RESULT_DENIED}


def message_json(message: Message) -> dict[str, Any]:
    """``message`` as protojson with proto field names, fields at their defaults left out:
    ``json_format.MessageToDict(message, preserving_proto_field_name=True)``, in a fifth of its
    time (the check's hot path), handing the well-known types (Any, Struct, ...) to it."""
    if message.DESCRIPTOR.full_name.startswith("google.protobuf."):
        return json_format.MessageToDict(message, preserving_proto_field_name=True)
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        out[field.name] = _field_json(field, value)
    return out


def _field_json(field: FieldDescriptor, value: Any) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        return {key: _value_json(value_field, item) for key, item in value.items()}
    if field.is_repeated:
        return [_value_json(field, item) for item in value]
    return _value_json(field, value)


def _value_json(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_json(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        found = field.enum_type.values_by_number.get(value)
        return found.name if found is not None else value
    if field.type in _FLOATS and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value  # strings, bools, 32-bit integers (these protos have no 64-bit or bytes fields)


def body_of(message: Message, model: type[M], max_values: int) -> M:
    """``message`` read as the HTTP route reads its JSON body: a 400 (INVALID_ARGUMENT) naming
    the field for anything the model refuses, and a 413 (RESOURCE_EXHAUSTED) for more than
    ``max_values`` JSON values, counted as HTTP counts them (``max_body_values``)."""
    try:
        text = _dumps(message_json(message))
    except (TypeError, ValueError) as exc:  # an Any of a type no proto here declares
        raise bad_request("body", f"cannot be read: {exc}") from exc
    if len(text) > SMALL_BODY_BYTES:
        count_values(text.encode(), max_values)
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise from_validation_error(exc) from exc


def answer(data: dict[str, Any], response: R) -> R:
    """A route's JSON answer as ``response``; Stonetown's ``x_`` extensions have no field."""
    return json_format.ParseDict(data, response, ignore_unknown_fields=True)


def tenant_of(tenant: str, field: str = "tenant_id") -> str:
    try:
        check_tenant_id(tenant)
    except InvalidTenantId as exc:
        raise bad_request(field, str(exc)) from None
    return tenant


class Servicers:
    """One method per RPC (``server.py`` maps them to Permify's method names)."""

    def __init__(self, services: Services, metrics: Metrics) -> None:
        self.svc = services
        self.metrics = metrics

    async def _body(self, message: Message, model: type[M]) -> M:
        """``body_of``: small messages here, big ones on a worker thread (reading a request of
        thousands of tuples takes long enough to hold the event loop up)."""
        limit = self.svc.config.max_body_values
        if message.ByteSize() <= SMALL_BODY_BYTES // 4:
            return body_of(message, model, limit)
        return await self.svc.run(body_of, message, model, limit)

    # -- Permission ---------------------------------------------------------------------------

    async def check(self, request: pb.PermissionCheckRequest) -> pb.PermissionCheckResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.CheckRequest)
        with token_field("metadata.snap_token"):
            result = await permissions.run_check(self.svc, tenant, body)
        self.metrics.count_check("allowed" if result.allowed else "denied")
        return pb.PermissionCheckResponse(
            can=_CAN[result.allowed],
            metadata=pb.PermissionCheckResponseMetadata(check_count=result.check_count),
        )

    async def bulk_check(
        self, request: pb.PermissionBulkCheckRequest
    ) -> pb.PermissionBulkCheckResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.BulkCheckRequest)
        results = await permissions.run_bulk_check(self.svc, tenant, body)
        out = pb.PermissionBulkCheckResponse()
        for r in results:
            if isinstance(r, EngineError):
                self.metrics.count_check("error")
                out.results.add(can=_CAN[False], metadata={"check_count": 0})
            else:
                self.metrics.count_check("allowed" if r.allowed else "denied")
                out.results.add(can=_CAN[r.allowed], metadata={"check_count": r.check_count})
        return out

    async def expand(self, request: pb.PermissionExpandRequest) -> pb.PermissionExpandResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.ExpandRequest)
        svc = self.svc
        tree = await permissions.expand_tree(svc, tenant, body)
        # A big tree takes a while to convert: not on the event loop.
        return await svc.run(
            lambda: answer({"tree": m.expand_json(tree)}, pb.PermissionExpandResponse())
        )

    async def _lookup_entity_body(
        self, request: pb.PermissionLookupEntityRequest
    ) -> tuple[str, m.LookupEntityRequest]:
        return tenant_of(request.tenant_id), await self._body(request, m.LookupEntityRequest)

    async def lookup_entity(
        self, request: pb.PermissionLookupEntityRequest
    ) -> pb.PermissionLookupEntityResponse:
        tenant, body = await self._lookup_entity_body(request)
        page = await permissions.lookup_entity_page(self.svc, tenant, body)
        return pb.PermissionLookupEntityResponse(entity_ids=page.ids, continuous_token=page.cursor)

    async def lookup_entity_stream(
        self, request: pb.PermissionLookupEntityRequest
    ) -> AsyncIterator[pb.PermissionLookupEntityStreamResponse]:
        tenant, body = await self._lookup_entity_body(request)
        ids = await permissions.lookup_entity_ids(self.svc, tenant, body)
        # Ids come from the engine a chunk at a time, on a worker thread.
        while chunk := await self.svc.run(permissions.take, ids):
            for entity_id, token in chunk:
                yield pb.PermissionLookupEntityStreamResponse(
                    entity_id=entity_id, continuous_token=token
                )

    async def lookup_subject(
        self, request: pb.PermissionLookupSubjectRequest
    ) -> pb.PermissionLookupSubjectResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.LookupSubjectRequest)
        page = await permissions.lookup_subject_page(self.svc, tenant, body)
        return pb.PermissionLookupSubjectResponse(
            subject_ids=page.ids, continuous_token=page.cursor
        )

    async def subject_permission(
        self, request: pb.PermissionSubjectPermissionRequest
    ) -> pb.PermissionSubjectPermissionResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.SubjectPermissionRequest)
        results = await permissions.subject_permissions(self.svc, tenant, body)
        return pb.PermissionSubjectPermissionResponse(
            results={name: _CAN[ok] for name, ok in results.items()}
        )

    # -- Schema -------------------------------------------------------------------------------

    async def schema_write(self, request: pb.SchemaWriteRequest) -> pb.SchemaWriteResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.SchemaWriteRequest)
        version = await self.svc.run(schemas._write, self.svc.store, tenant, body.schema_)
        return pb.SchemaWriteResponse(schema_version=version.version)

    async def schema_partial_write(
        self, request: pb.SchemaPartialWriteRequest
    ) -> pb.SchemaPartialWriteResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.PartialWriteRequest)
        partials = {
            name: Partial(tuple(p.write), tuple(p.update), tuple(p.delete))
            for name, p in body.partials.items()
        }
        version = await self.svc.run(
            schemas._partial_write, self.svc, tenant, body.metadata.schema_version, partials
        )
        return pb.SchemaPartialWriteResponse(schema_version=version)

    async def schema_read(self, request: pb.SchemaReadRequest) -> pb.SchemaReadResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.SchemaReadRequest)
        svc = self.svc
        _, schema = await svc.run(svc.engine.schema, tenant, body.metadata.schema_version)
        return await svc.run(
            lambda: answer({"schema": m.schema_json(schema)}, pb.SchemaReadResponse())
        )

    async def schema_list(self, request: pb.SchemaListRequest) -> pb.SchemaListResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.PageRequest)
        store = self.svc.store
        return await self.svc.run(
            lambda: answer(schemas.schemas_page(store, tenant, body), pb.SchemaListResponse())
        )

    # -- Data ---------------------------------------------------------------------------------

    async def data_write(self, request: pb.DataWriteRequest) -> pb.DataWriteResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.DataWriteRequest)
        tuples = [t.to_tuple() for t in body.tuples]
        token = await data.write_data(
            self.svc,
            tenant,
            body.metadata.schema_version,
            tuples,
            data._attributes(body.attributes),
        )
        return pb.DataWriteResponse(snap_token=token)

    async def write_relationships(
        self, request: pb.RelationshipWriteRequest
    ) -> pb.RelationshipWriteResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.RelationshipsWriteRequest)
        tuples = [t.to_tuple() for t in body.tuples]
        token = await data.write_data(self.svc, tenant, body.metadata.schema_version, tuples, [])
        return pb.RelationshipWriteResponse(snap_token=token)

    async def read_relationships(
        self, request: pb.RelationshipReadRequest
    ) -> pb.RelationshipReadResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.RelationshipsReadRequest)
        store = self.svc.store
        return await self.svc.run(
            lambda: answer(
                data.relationships_page(store, tenant, body), pb.RelationshipReadResponse()
            )
        )

    async def read_attributes(self, request: pb.AttributeReadRequest) -> pb.AttributeReadResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.AttributesReadRequest)
        store = self.svc.store
        return await self.svc.run(
            lambda: answer(data.attributes_page(store, tenant, body), pb.AttributeReadResponse())
        )

    async def data_delete(self, request: pb.DataDeleteRequest) -> pb.DataDeleteResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.DataDeleteRequest)
        token = await data.delete_data(self.svc, tenant, data.data_deletes(body))
        return pb.DataDeleteResponse(snap_token=token)

    async def delete_relationships(
        self, request: pb.RelationshipDeleteRequest
    ) -> pb.RelationshipDeleteResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.RelationshipsDeleteRequest)
        token = await data.delete_data(self.svc, tenant, data.relationship_deletes(body))
        return pb.RelationshipDeleteResponse(snap_token=token)

    async def run_bundle(self, request: pb.BundleRunRequest) -> pb.BundleRunResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.RunBundleRequest)
        svc = self.svc
        token = await svc.run(bundles._run, svc, tenant, body.name, body.arguments)
        svc.writes.notify()
        return pb.BundleRunResponse(snap_token=token)

    # -- Bundle -------------------------------------------------------------------------------

    async def bundle_write(self, request: pb.BundleWriteRequest) -> pb.BundleWriteResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.BundleWriteRequest)
        svc = self.svc
        names = await svc.run(
            bundles._write, svc, tenant, [bundles._bundle(b) for b in body.bundles]
        )
        return pb.BundleWriteResponse(names=names)

    async def bundle_read(self, request: pb.BundleReadRequest) -> pb.BundleReadResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.BundleNameRequest)
        svc = self.svc
        bundle = await svc.run(read_bundle, svc.store, tenant, body.name)
        return answer({"bundle": bundles._bundle_json(bundle)}, pb.BundleReadResponse())

    async def bundle_delete(self, request: pb.BundleDeleteRequest) -> pb.BundleDeleteResponse:
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.BundleNameRequest)
        svc = self.svc
        name = await svc.run(delete_bundle, svc.store, tenant, body.name)
        return pb.BundleDeleteResponse(name=name)

    # -- Tenancy ------------------------------------------------------------------------------

    async def tenant_create(self, request: pb.TenantCreateRequest) -> pb.TenantCreateResponse:
        body = await self._body(request, m.TenantCreateRequest)
        created = await tenants.create_tenant(self.svc, body)
        return answer(created, pb.TenantCreateResponse())

    async def tenant_delete(self, request: pb.TenantDeleteRequest) -> pb.TenantDeleteResponse:
        tenant = tenant_of(request.id, "id")
        await tenants.delete_tenant(self.svc, tenant)
        return pb.TenantDeleteResponse(tenant_id=tenant)

    async def tenant_list(self, request: pb.TenantListRequest) -> pb.TenantListResponse:
        body = await self._body(request, m.PageRequest)
        return answer(await tenants.tenants_page(self.svc, body), pb.TenantListResponse())

    # -- Watch --------------------------------------------------------------------------------

    async def watch(self, request: pb.WatchRequest) -> AsyncIterator[pb.WatchResponse]:
        """As the HTTP watch: every change set after the token, then each new one as it lands,
        until the client leaves or the server stops."""
        tenant = tenant_of(request.tenant_id)
        body = await self._body(request, m.WatchRequest)
        feed = await watch.change_sets(self.svc, tenant, body.snap_token)
        async for change_set in feed:
            if change_set is not None:
                yield answer({"changes": watch.changes_json(change_set)}, pb.WatchResponse())
