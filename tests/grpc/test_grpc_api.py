"""Permify's gRPC API through grpcio stubs against a real `stonetown serve`: the scenario, the
answers HTTP gives to the same questions, errors, keys, the shared stream pool, health and
reflection."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from api.grpc.generated.base.v1 import base_pb2 as base
from api.grpc.generated.base.v1 import service_pb2 as pb
from api.grpc.server import methods
from api.grpc.servicers import Servicers, message_json
from tests.api.support import entity_json, subject_json, tuple_json
from tests.grpc import scenario
from tests.grpc.conftest import Client, _serialize, wait_for_no_streams

DEPTH = pb.PermissionCheckRequestMetadata(depth=20)


def _entity(text: str) -> base.Entity:
    return base.Entity(**entity_json(text))


def _subject(text: str) -> base.Subject:
    return base.Subject(**subject_json(text))


def _tuples(texts: list[str]) -> list[base.Tuple]:
    return [json_format.ParseDict(tuple_json(t), base.Tuple()) for t in texts]


def _as_json(message: Message) -> dict[str, Any]:
    """As grpc-gateway (and Stonetown's HTTP API) writes it: proto names, every field."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _setup(client: Client) -> tuple[str, str]:
    """A tenant with the scenario's schema and tuples; its id and the write's snap token."""
    tenant = client.tenant()
    client.call(
        "Schema/Write",
        pb.SchemaWriteRequest(tenant_id=tenant, schema=scenario.SCHEMA),
        pb.SchemaWriteResponse,
    )
    public = base.Attribute(entity=_entity("doc:1"), attribute="public")
    public.value.Pack(base.BooleanValue(data=True))
    written = client.call(
        "Data/Write",
        pb.DataWriteRequest(
            tenant_id=tenant,
            metadata=pb.DataWriteRequestMetadata(),
            tuples=_tuples(scenario.TUPLES),
            attributes=[public],
        ),
        pb.DataWriteResponse,
    )
    assert written.snap_token
    return tenant, written.snap_token


def test_the_scenario_through_grpcio_stubs(client: Client) -> None:
    tenant, token = _setup(client)
    for entity, permission, subject, allowed in scenario.CHECKS:
        answer = client.call(
            "Permission/Check",
            pb.PermissionCheckRequest(
                tenant_id=tenant,
                metadata=pb.PermissionCheckRequestMetadata(snap_token=token, depth=20),
                entity=_entity(entity),
                permission=permission,
                subject=_subject(subject),
            ),
            pb.PermissionCheckResponse,
        )
        want = base.CHECK_RESULT_ALLOWED if allowed else base.CHECK_RESULT_DENIED
        assert answer.can == want, (entity, permission, subject)

    entity_type, permission, subject, ids = scenario.LOOKUP_ENTITY
    lookup = pb.PermissionLookupEntityRequest(
        tenant_id=tenant,
        metadata=pb.PermissionLookupEntityRequestMetadata(depth=20),
        entity_type=entity_type,
        permission=permission,
        subject=_subject(subject),
    )
    found = client.call("Permission/LookupEntity", lookup, pb.PermissionLookupEntityResponse)
    assert list(found.entity_ids) == ids
    streamed = client.stream(
        "Permission/LookupEntityStream", lookup, pb.PermissionLookupEntityStreamResponse
    )
    assert [item.entity_id for item in streamed] == ids

    entity, permission, kind, subject_ids = scenario.LOOKUP_SUBJECT
    subjects = client.call(
        "Permission/LookupSubject",
        pb.PermissionLookupSubjectRequest(
            tenant_id=tenant,
            metadata=pb.PermissionLookupSubjectRequestMetadata(depth=20),
            entity=_entity(entity),
            permission=permission,
            subject_reference=base.RelationReference(type=kind),
        ),
        pb.PermissionLookupSubjectResponse,
    )
    assert list(subjects.subject_ids) == subject_ids

    entity, subject, results = scenario.SUBJECT_PERMISSION
    permissions = client.call(
        "Permission/SubjectPermission",
        pb.PermissionSubjectPermissionRequest(
            tenant_id=tenant,
            metadata=pb.PermissionSubjectPermissionRequestMetadata(depth=20),
            entity=_entity(entity),
            subject=_subject(subject),
        ),
        pb.PermissionSubjectPermissionResponse,
    )
    assert _as_json(permissions)["results"] == results

    pages, cursor = [], ""
    while True:
        page = client.call(
            "Data/ReadRelationships",
            pb.RelationshipReadRequest(
                tenant_id=tenant,
                metadata=pb.RelationshipReadRequestMetadata(snap_token=token),
                filter=base.TupleFilter(entity=base.EntityFilter(type="doc")),
                page_size=2,
                continuous_token=cursor,
            ),
            pb.RelationshipReadResponse,
        )
        pages.append(list(page.tuples))
        cursor = page.continuous_token
        if not cursor:
            break
    assert [len(p) for p in pages] == scenario.READ_PAGES
    read = {f"{t.entity.type}:{t.entity.id}#{t.relation}" for p in pages for t in p}
    assert read == {t.partition("@")[0] for t in scenario.TUPLES if t.startswith("doc:")}


def test_watch_streams_each_later_write(client: Client, http: httpx.Client) -> None:
    wait_for_no_streams(http)  # the server has one stream slot
    tenant, token = _setup(client)
    changes = client.stream(
        "Watch/Watch", pb.WatchRequest(tenant_id=tenant, snap_token=token), pb.WatchResponse
    )
    try:
        later = client.call(
            "Data/WriteRelationships",
            pb.RelationshipWriteRequest(
                tenant_id=tenant,
                metadata=pb.RelationshipWriteRequestMetadata(),
                tuples=_tuples([scenario.LATER_TUPLE]),
            ),
            pb.RelationshipWriteResponse,
        )
        first = next(changes)
    finally:
        changes.cancel()
    assert first.changes.snap_token == later.snap_token
    assert _as_json(first)["changes"]["data_changes"] == [
        {"operation": "OPERATION_CREATE", "tuple": tuple_json(scenario.LATER_TUPLE)}
    ]


def _status(error: grpc.RpcError) -> tuple[grpc.StatusCode, str, dict[str, Any]]:
    """The code, the message and the google.rpc.Status details of a failed call, as JSON."""
    assert isinstance(error, grpc.Call)
    details = dict(error.trailing_metadata() or ())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    assert status.code == error.code().value[0]
    assert status.message == error.details()
    return error.code(), error.details(), _as_json(status)


def test_a_bad_request_is_invalid_argument_naming_the_code_and_field(client: Client) -> None:
    tenant, _ = _setup(client)
    with pytest.raises(grpc.RpcError) as raised:
        client.call(
            "Permission/Check",
            pb.PermissionCheckRequest(
                tenant_id=tenant,
                metadata=pb.PermissionCheckRequestMetadata(depth=2),
                entity=_entity("doc:1"),
                permission="view",
                subject=_subject("user:ann"),
            ),
            pb.PermissionCheckResponse,
        )
    code, message, status = _status(raised.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith("ERROR_CODE_VALIDATION: metadata.depth: ")
    info, bad = status["details"]
    assert info["reason"] == "ERROR_CODE_VALIDATION"
    assert bad["field_violations"][0]["field"] == "metadata.depth"
    error_details_pb2.BadRequest()  # the details' type is the standard one


@pytest.mark.parametrize(
    ("method", "request_message", "response", "code", "reason"),
    [
        (
            "Permission/Check",
            pb.PermissionCheckRequest(
                tenant_id="no-such-tenant",
                metadata=DEPTH,
                entity=base.Entity(type="doc", id="1"),
                permission="view",
                subject=base.Subject(type="user", id="ann"),
            ),
            pb.PermissionCheckResponse,
            grpc.StatusCode.NOT_FOUND,
            "ERROR_CODE_TENANT_NOT_FOUND",
        ),
        (
            "Schema/Write",
            pb.SchemaWriteRequest(tenant_id="t1", schema="entity doc { relation r @nobody }"),
            pb.SchemaWriteResponse,
            grpc.StatusCode.INVALID_ARGUMENT,
            "ERROR_CODE_SCHEMA_COMPILE",
        ),
        (
            "Bundle/Read",
            pb.BundleReadRequest(tenant_id="t1", name="missing"),
            pb.BundleReadResponse,
            grpc.StatusCode.NOT_FOUND,
            "ERROR_CODE_BUNDLE_NOT_FOUND",
        ),
        (
            "Tenancy/Create",
            pb.TenantCreateRequest(id="t1"),
            pb.TenantCreateResponse,
            grpc.StatusCode.ALREADY_EXISTS,
            "ERROR_CODE_UNIQUE_CONSTRAINT",
        ),
        (
            "Data/ReadRelationships",
            pb.RelationshipReadRequest(
                tenant_id="t1",
                filter=base.TupleFilter(entity=base.EntityFilter(type="doc")),
                continuous_token="not-a-token",
            ),
            pb.RelationshipReadResponse,
            grpc.StatusCode.INVALID_ARGUMENT,
            "ERROR_CODE_INVALID_CONTINUOUS_TOKEN",
        ),
        (
            "Tenancy/Delete",
            pb.TenantDeleteRequest(id="bad tenant"),
            pb.TenantDeleteResponse,
            grpc.StatusCode.INVALID_ARGUMENT,
            "ERROR_CODE_VALIDATION",
        ),
    ],
    ids=["unknown-tenant", "bad-schema", "missing-bundle", "tenant-exists", "bad-token", "bad-id"],
)
def test_errors_map_to_grpc_codes_with_permify_error_codes(
    client: Client,
    method: str,
    request_message: Message,
    response: type[Message],
    code: grpc.StatusCode,
    reason: str,
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        client.call(method, request_message, response)
    got_code, message, status = _status(raised.value)
    assert (got_code, message.partition(":")[0]) == (code, reason)
    assert status["details"][0]["reason"] == reason


def test_an_attribute_of_an_unknown_type_is_invalid_argument(client: Client) -> None:
    tenant, _ = _setup(client)
    odd = base.Attribute(entity=_entity("doc:1"), attribute="public")
    odd.value.type_url = "type.googleapis.com/base.v1.NoSuchValue"
    with pytest.raises(grpc.RpcError) as raised:
        client.call(
            "Data/Write",
            pb.DataWriteRequest(tenant_id=tenant, attributes=[odd]),
            pb.DataWriteResponse,
        )
    code, message, _ = _status(raised.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith("ERROR_CODE_VALIDATION: body: ")


@pytest.mark.parametrize(
    ("key", "reason"),
    [(None, "ERROR_CODE_MISSING_BEARER_TOKEN"), ("wrong", "ERROR_CODE_INVALID_BEARER_TOKEN")],
    ids=["no-key", "wrong-key"],
)
def test_calls_need_the_preshared_key(channel: grpc.Channel, key: str | None, reason: str) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        Client(channel, key).call("Tenancy/List", pb.TenantListRequest(), pb.TenantListResponse)
    code, message, _ = _status(raised.value)
    assert (code, message.partition(":")[0]) == (grpc.StatusCode.UNAUTHENTICATED, reason)


def test_grpc_and_http_share_the_stream_pool(client: Client, http: httpx.Client) -> None:
    """The server has one stream slot (max_streams=1): a gRPC watch holding it turns away a
    second watch over either protocol, and frees it when it ends."""
    wait_for_no_streams(http)
    tenant, token = _setup(client)
    request = pb.WatchRequest(tenant_id=tenant, snap_token=token)
    holder = client.stream("Watch/Watch", request, pb.WatchResponse)
    try:
        client.call(  # once its change arrives, the watch certainly holds the slot
            "Data/WriteRelationships",
            pb.RelationshipWriteRequest(tenant_id=tenant, tuples=_tuples([scenario.LATER_TUPLE])),
            pb.RelationshipWriteResponse,
        )
        next(holder)
        with pytest.raises(grpc.RpcError) as raised:
            next(client.stream("Watch/Watch", request, pb.WatchResponse))
        code, message, _ = _status(raised.value)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert message.startswith("ERROR_CODE_RATE_LIMIT_EXCEEDED: too many open streams")
        over_http = http.post(f"/v1/tenants/{tenant}/watch", json={"snap_token": token})
        assert over_http.status_code == 429
    finally:
        holder.cancel()
    # The slot comes back once the server has seen the cancellation.
    freed = threading.Event()
    for _ in range(100):
        again = client.stream("Watch/Watch", request, pb.WatchResponse)
        try:
            next(again)
            freed.set()
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
            freed.wait(0.02)
        finally:
            again.cancel()
        if freed.is_set():
            break
    assert freed.is_set()


def test_every_method_of_the_protos_is_served(channel: grpc.Channel) -> None:
    declared = {
        f"/{service.full_name}/{method.name}"
        for service in pb.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert {m.path for m in methods(Servicers(None, None))} == declared  # type: ignore[arg-type]
    assert len(declared) == 25


def test_health_and_reflection_answer_without_a_key(channel: grpc.Channel) -> None:
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=_serialize,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    for service in ("", "base.v1.Permission"):
        answer = check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflect = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=_serialize,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    (listed,) = reflect(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    names = {s.name for s in listed.list_services_response.service}
    assert {"base.v1.Permission", "base.v1.Data", "base.v1.Watch", "grpc.health.v1.Health"} <= names


def _http(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = http.post(path, json=body)
    data: dict[str, Any] = answer.json()
    return {k: v for k, v in data.items() if not k.startswith("x_")}  # Stonetown's extensions


def test_http_and_grpc_answer_the_same_questions_alike(client: Client, http: httpx.Client) -> None:
    """Each question asked as the same JSON over HTTP and as its message over gRPC: the
    answers, written as proto-JSON, are equal (Stonetown's `x_` extensions aside). Each is
    asked over HTTP once before, so that both answers come from the same warm caches (a check's
    check_count is 0 on a cached answer)."""
    tenant, token = _setup(client)
    questions: list[tuple[str, str, Message, type[Message]]] = [
        (
            "permissions/check",
            "Permission/Check",
            pb.PermissionCheckRequest(
                metadata=pb.PermissionCheckRequestMetadata(snap_token=token, depth=20),
                entity=_entity("doc:1"),
                permission="view",
                subject=_subject("user:ann"),
            ),
            pb.PermissionCheckResponse,
        ),
        (  # contextual tuples and data travel as over HTTP
            "permissions/check",
            "Permission/Check",
            pb.PermissionCheckRequest(
                metadata=DEPTH,
                entity=_entity("doc:7"),
                permission="view",
                subject=_subject("user:zed"),
                context=base.Context(
                    tuples=_tuples(["doc:7#viewer@user:zed"]),
                    data=json_format.ParseDict({"reason": "audit", "n": 2}, Struct()),
                ),
            ),
            pb.PermissionCheckResponse,
        ),
        (
            "permissions/bulk-check",
            "Permission/BulkCheck",
            pb.PermissionBulkCheckRequest(
                metadata=DEPTH,
                items=[
                    pb.PermissionBulkCheckRequestItem(
                        entity=_entity(e), permission=p, subject=_subject(s)
                    )
                    for e, p, s, _ in scenario.CHECKS
                ],
            ),
            pb.PermissionBulkCheckResponse,
        ),
        (
            "permissions/expand",
            "Permission/Expand",
            pb.PermissionExpandRequest(entity=_entity("doc:1"), permission="view"),
            pb.PermissionExpandResponse,
        ),
        (
            "permissions/lookup-entity",
            "Permission/LookupEntity",
            pb.PermissionLookupEntityRequest(
                metadata=pb.PermissionLookupEntityRequestMetadata(depth=20),
                entity_type="doc",
                permission="view",
                subject=_subject("user:ann"),
                page_size=2,
            ),
            pb.PermissionLookupEntityResponse,
        ),
        (
            "permissions/lookup-subject",
            "Permission/LookupSubject",
            pb.PermissionLookupSubjectRequest(
                metadata=pb.PermissionLookupSubjectRequestMetadata(depth=20),
                entity=_entity("doc:1"),
                permission="view",
                subject_reference=base.RelationReference(type="user"),
            ),
            pb.PermissionLookupSubjectResponse,
        ),
        (
            "permissions/subject-permission",
            "Permission/SubjectPermission",
            pb.PermissionSubjectPermissionRequest(
                metadata=pb.PermissionSubjectPermissionRequestMetadata(depth=20),
                entity=_entity("doc:1"),
                subject=_subject("user:ann"),
            ),
            pb.PermissionSubjectPermissionResponse,
        ),
        ("schemas/read", "Schema/Read", pb.SchemaReadRequest(), pb.SchemaReadResponse),
        ("schemas/list", "Schema/List", pb.SchemaListRequest(), pb.SchemaListResponse),
        (
            "data/relationships/read",
            "Data/ReadRelationships",
            pb.RelationshipReadRequest(
                metadata=pb.RelationshipReadRequestMetadata(snap_token=token),
                filter=base.TupleFilter(entity=base.EntityFilter(type="doc")),
                page_size=3,
            ),
            pb.RelationshipReadResponse,
        ),
        (
            "data/attributes/read",
            "Data/ReadAttributes",
            pb.AttributeReadRequest(
                metadata=pb.AttributeReadRequestMetadata(snap_token=token),
                filter=base.AttributeFilter(entity=base.EntityFilter(type="doc")),
            ),
            pb.AttributeReadResponse,
        ),
        (  # an error: both answer the same google.rpc.Status
            "permissions/check",
            "Permission/Check",
            pb.PermissionCheckRequest(
                metadata=pb.PermissionCheckRequestMetadata(depth=20),
                entity=_entity("doc:1"),
                permission="nope",
                subject=_subject("user:ann"),
            ),
            pb.PermissionCheckResponse,
        ),
    ]
    for route, method, message, response in questions:
        body = json_format.MessageToDict(message, preserving_proto_field_name=True)
        _http(http, f"/v1/tenants/{tenant}/{route}", body)
        over_http = _http(http, f"/v1/tenants/{tenant}/{route}", body)
        message.tenant_id = tenant  # type: ignore[attr-defined]
        try:
            over_grpc = _as_json(client.call(method, message, response))
        except grpc.RpcError as exc:
            _, text, over_grpc = _status(exc)
            over_grpc["message"] = text.partition(": ")[2]  # HTTP's message has no code prefix
        assert over_grpc == over_http, (route, json.dumps(over_http))

    stream_request = questions[4][2]
    lines = http.post(
        f"/v1/tenants/{tenant}/permissions/lookup-entity-stream",
        json=json_format.MessageToDict(stream_request, preserving_proto_field_name=True),
    ).text.splitlines()
    streamed = client.stream(
        "Permission/LookupEntityStream", stream_request, pb.PermissionLookupEntityStreamResponse
    )
    assert [{"result": _as_json(item)} for item in streamed] == [json.loads(x) for x in lines]


def _messages() -> list[Message]:
    attribute = base.Attribute(entity=_entity("doc:1"), attribute="scores")
    attribute.value.Pack(base.DoubleArrayValue(data=[1.5, float("inf")]))
    lookup = pb.PermissionLookupEntityRequest(
        tenant_id="t1",
        metadata=pb.PermissionLookupEntityRequestMetadata(depth=5),
        scope={"doc": base.StringArrayValue(data=["1", "2"])},
        context=base.Context(attributes=[attribute], tuples=_tuples(["doc:1#viewer@user:ann"])),
        page_size=3,
    )
    lookup.context.data.update({"amount": 3, "tags": ["a", 1.5], "nested": {"x": None}})
    return [
        lookup,
        pb.SchemaPartialWriteRequest(partials={"doc": base.Partials(write=["relation x @user"])}),
        pb.BundleRunRequest(arguments={"org": "1"}),
        pb.PermissionSubjectPermissionResponse(results={"view": base.CHECK_RESULT_ALLOWED}),
        pb.WatchResponse(
            changes=base.DataChanges(
                data_changes=[base.DataChange(operation=base.DataChange.OPERATION_DELETE)]
            )
        ),
        pb.PermissionCheckRequest(),
    ]


@pytest.mark.parametrize("message", _messages(), ids=lambda m: type(m).__name__)
def test_requests_read_as_json_as_protobuf_writes_them(message: Message) -> None:
    """The fast reader the servicers use says what json_format says, field for field."""
    assert message_json(message) == json_format.MessageToDict(
        message, preserving_proto_field_name=True
    )


def test_the_write_side_methods(client: Client) -> None:
    """Partial schema writes, bundles, deletes and tenancy, each checked by reading back."""
    tenant, _ = _setup(client)
    partial = client.call(
        "Schema/PartialWrite",
        pb.SchemaPartialWriteRequest(
            tenant_id=tenant, partials={"doc": base.Partials(write=["relation editor @user"])}
        ),
        pb.SchemaPartialWriteResponse,
    )
    read = client.call("Schema/Read", pb.SchemaReadRequest(tenant_id=tenant), pb.SchemaReadResponse)
    assert "editor" in read.schema.entity_definitions["doc"].relations
    listed = client.call(
        "Schema/List", pb.SchemaListRequest(tenant_id=tenant), pb.SchemaListResponse
    )
    assert listed.head == partial.schema_version == listed.schemas[0].version

    bundle = base.DataBundle(
        name="share",
        arguments=["doc", "user"],
        operations=[base.Operation(relationships_write=["doc:{{.doc}}#editor@user:{{.user}}"])],
    )
    names = client.call(
        "Bundle/Write",
        pb.BundleWriteRequest(tenant_id=tenant, bundles=[bundle]),
        pb.BundleWriteResponse,
    )
    assert list(names.names) == ["share"]
    got = client.call(
        "Bundle/Read", pb.BundleReadRequest(tenant_id=tenant, name="share"), pb.BundleReadResponse
    )
    assert got.bundle == bundle
    ran = client.call(
        "Data/RunBundle",
        pb.BundleRunRequest(tenant_id=tenant, name="share", arguments={"doc": "9", "user": "eve"}),
        pb.BundleRunResponse,
    )

    def doc_tuples(token: str) -> set[str]:
        page = client.call(
            "Data/ReadRelationships",
            pb.RelationshipReadRequest(
                tenant_id=tenant,
                metadata=pb.RelationshipReadRequestMetadata(snap_token=token),
                filter=base.TupleFilter(entity=base.EntityFilter(type="doc", ids=["9", "2"])),
            ),
            pb.RelationshipReadResponse,
        )
        return {f"{t.entity.id}#{t.relation}@{t.subject.id}" for t in page.tuples}

    assert doc_tuples(ran.snap_token) == {"9#editor@eve", "2#viewer@ann"}
    deleted = client.call(
        "Data/DeleteRelationships",
        pb.RelationshipDeleteRequest(
            tenant_id=tenant,
            filter=base.TupleFilter(entity=base.EntityFilter(type="doc", ids=["9"])),
        ),
        pb.RelationshipDeleteResponse,
    )
    assert doc_tuples(deleted.snap_token) == {"2#viewer@ann"}
    cleared = client.call(
        "Data/Delete",
        pb.DataDeleteRequest(
            tenant_id=tenant,
            tuple_filter=base.TupleFilter(entity=base.EntityFilter(type="doc", ids=["2"])),
            attribute_filter=base.AttributeFilter(entity=base.EntityFilter(type="doc")),
        ),
        pb.DataDeleteResponse,
    )
    assert doc_tuples(cleared.snap_token) == set()
    attributes = client.call(
        "Data/ReadAttributes",
        pb.AttributeReadRequest(
            tenant_id=tenant,
            metadata=pb.AttributeReadRequestMetadata(snap_token=cleared.snap_token),
            filter=base.AttributeFilter(entity=base.EntityFilter(type="doc")),
        ),
        pb.AttributeReadResponse,
    )
    assert list(attributes.attributes) == []
    with pytest.raises(grpc.RpcError) as raised:  # an empty filter would delete everything
        client.call("Data/Delete", pb.DataDeleteRequest(tenant_id=tenant), pb.DataDeleteResponse)
    assert _status(raised.value)[1].startswith("ERROR_CODE_VALIDATION: tuple_filter: ")
    client.call(
        "Bundle/Delete",
        pb.BundleDeleteRequest(tenant_id=tenant, name="share"),
        pb.BundleDeleteResponse,
    )

    tenants = client.call(
        "Tenancy/List", pb.TenantListRequest(page_size=1000), pb.TenantListResponse
    )
    assert tenant in {t.id for t in tenants.tenants}
    gone = client.call("Tenancy/Delete", pb.TenantDeleteRequest(id=tenant), pb.TenantDeleteResponse)
    assert gone.tenant_id == tenant
    with pytest.raises(grpc.RpcError) as raised:
        client.call(
            "Bundle/Read", pb.BundleReadRequest(tenant_id=tenant, name="x"), pb.BundleReadResponse
        )
    assert _status(raised.value)[0] == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xff\xff", b"\x22\x02\xff\xfe"],  # not protobuf; a string field that is not UTF-8
    ids=["garbage", "bad-utf8"],
)
def test_bytes_that_are_not_the_request_are_invalid_argument(
    channel: grpc.Channel, raw: bytes
) -> None:
    check = channel.unary_unary(
        "/base.v1.Permission/Check",
        request_serializer=lambda data: data,
        response_deserializer=pb.PermissionCheckResponse.FromString,
    )
    with pytest.raises(grpc.RpcError) as raised:
        check(raw, metadata=Client(channel).metadata, timeout=10)
    code, message, _ = _status(raised.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith(
        "ERROR_CODE_VALIDATION: body: not a valid PermissionCheckRequest message"
    )


def test_a_request_of_too_many_values_is_refused_as_over_http(client: Client) -> None:
    """max_body_values bounds a gRPC request as it bounds an HTTP body (RESOURCE_EXHAUSTED,
    HTTP's 413), before the request model reads it."""
    tuples = _tuples([f"doc:{i}#viewer@user:u{i}" for i in range(6000)])
    with pytest.raises(grpc.RpcError) as raised:
        client.call(
            "Data/WriteRelationships",
            pb.RelationshipWriteRequest(tenant_id="t1", tuples=tuples),
            pb.RelationshipWriteResponse,
        )
    code, message, _ = _status(raised.value)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "holds more than 25,000 JSON values (max_body_values)" in message


def test_grpc_calls_are_counted_in_the_metrics(client: Client, http: httpx.Client) -> None:
    def counted(status: int) -> float:
        text = http.get("/metrics").text
        found = re.search(
            r'^stonetown_http_requests_total\{method="GRPC",'
            rf'route="/base.v1.Tenancy/List",status="{status}"\}} (\S+)$',
            text,
            re.MULTILINE,
        )
        return float(found[1]) if found else 0.0

    ok, refused = counted(200), counted(401)
    client.call("Tenancy/List", pb.TenantListRequest(), pb.TenantListResponse)
    with pytest.raises(grpc.RpcError):
        Client(client.channel, None).call(
            "Tenancy/List", pb.TenantListRequest(), pb.TenantListResponse
        )
    assert (counted(200), counted(401)) == (ok + 1, refused + 1)


def test_schema_read_of_rules_and_attributes_answers_as_http(
    client: Client, http: httpx.Client
) -> None:
    """All of HTTP's SchemaDefinition but a rule's expression, which the proto cannot carry."""
    tenant = client.tenant()
    schema = """
    entity user {}
    entity account {
        relation owner @user
        attribute balance integer
        attribute tags string[]
        permission withdraw = check_balance(balance) and owner
    }
    rule check_balance(balance integer) {
        balance >= context.data.amount
    }
    """
    client.call(
        "Schema/Write",
        pb.SchemaWriteRequest(tenant_id=tenant, schema=schema),
        pb.SchemaWriteResponse,
    )
    over_http = _http(http, f"/v1/tenants/{tenant}/schemas/read", {})
    for rule in over_http["schema"]["rule_definitions"].values():
        assert rule.pop("expression")
    read = client.call("Schema/Read", pb.SchemaReadRequest(tenant_id=tenant), pb.SchemaReadResponse)
    assert _as_json(read) == over_http

    # An expand tree with attribute and rule leaves (Any values) answers alike too.
    balance = base.Attribute(entity=_entity("account:1"), attribute="balance")
    balance.value.Pack(base.IntegerValue(data=40))
    client.call(
        "Data/Write",
        pb.DataWriteRequest(
            tenant_id=tenant, tuples=_tuples(["account:1#owner@user:ann"]), attributes=[balance]
        ),
        pb.DataWriteResponse,
    )
    expand = pb.PermissionExpandRequest(entity=_entity("account:1"), permission="withdraw")
    body = json_format.MessageToDict(expand, preserving_proto_field_name=True)
    over_http = _http(http, f"/v1/tenants/{tenant}/permissions/expand", body)
    expand.tenant_id = tenant
    tree = client.call("Permission/Expand", expand, pb.PermissionExpandResponse)
    assert _as_json(tree) == over_http
    assert "values" in json.dumps(over_http)  # the rule's leaf is there, with its values
