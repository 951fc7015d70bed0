"""A full scenario through the official Permify Python REST client (PyPI ``permify``), unchanged:
its request models go out as it builds them and our answers must parse into its response models.
A parse failure here is a wire-format difference in Stonetown, never a reason to adapt the client.

Bundles and partial schema writes are covered by their own modules.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import permify
import pytest
from permify import models as pm
from permify.api_response import ApiResponse
from permify.exceptions import ApiException

from tests.api.conftest import Server

# The client's generated ``Any`` model annotates ``additional_properties: Dict[str, Any]`` with
# itself in place of ``typing.Any``, so pydantic warns (harmlessly: the value is sent as given)
# whenever an attribute value is serialised. That is the client's own quirk, not ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Pydantic serializer warnings:UserWarning:pydantic.main"
)

TENANT = "acme"
SCHEMA = """
entity user {}

entity group {
    relation member @user
}

entity document {
    relation owner @user
    relation viewer @user @group#member
    attribute public boolean
    attribute tags string[]

    permission edit = owner
    permission view = viewer or edit or public
}
"""
DOCS = ["1", "2", "3", "4", "5"]
TIMEOUT = 30.0
T = TypeVar("T")


def tuple_(entity: str, relation: str, subject: str) -> pm.Tuple:
    kind, id_ = entity.split(":")
    ref, _, subject_relation = subject.partition("#")
    s_kind, s_id = ref.split(":")
    return pm.Tuple(
        entity=pm.Entity(type=kind, id=id_),
        relation=relation,
        subject=pm.Subject(type=s_kind, id=s_id, relation=subject_relation or None),
    )


def value(kind: str, data: Any) -> pm.Any:
    found = pm.Any.from_dict({"@type": f"type.googleapis.com/base.v1.{kind}", "data": data})
    assert found is not None
    return found


def user(id_: str) -> pm.Subject:
    return pm.Subject(type="user", id=id_)


def document(id_: str) -> pm.Entity:
    return pm.Entity(type="document", id=id_)


def _plain(value: Any) -> Any:
    """A client model's ``to_dict()`` as JSON carries it: enums by name, timestamps in RFC 3339
    with microseconds and ``Z``, as we write them (so a timestamp must survive the client)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return value


def parsed(call: Callable[..., ApiResponse[T]], *args: Any) -> T:
    """The client's parsed answer, after checking it lost nothing we sent: a field the client
    knows by another name, or a value it cannot read, would be missing from its model."""
    response = call(*args, _request_timeout=TIMEOUT)
    assert response.status_code == 200
    data = response.data
    assert data is not None
    sent = json.loads(response.raw_data)  # type: ignore[attr-defined]
    # Stonetown's documented extensions (x_schema_text, x_snap_token) are for other clients.
    permify_fields = {k: v for k, v in sent.items() if not k.startswith("x_")}
    assert _plain(data.to_dict()) == permify_fields
    return data


@pytest.fixture
def api(server: Server) -> Iterator[permify.ApiClient]:
    with permify.ApiClient(permify.Configuration(host=server.url)) as client:
        yield client


def test_full_scenario_through_the_official_client(api: permify.ApiClient) -> None:
    tenancy = permify.TenancyApi(api)
    schemas = permify.SchemaApi(api)
    data = permify.DataApi(api)
    permissions = permify.PermissionApi(api)

    # -- tenant and schema --------------------------------------------------------------------
    created = parsed(
        tenancy.tenants_create_with_http_info,
        pm.TenantCreateRequest(id=TENANT, name="Acme Inc"),
    )
    assert created.tenant is not None
    assert (created.tenant.id, created.tenant.name) == (TENANT, "Acme Inc")
    assert created.tenant.created_at is not None

    written = parsed(
        schemas.schemas_write_with_http_info, TENANT, pm.SchemaWriteBody(var_schema=SCHEMA)
    )
    version = written.schema_version
    assert version

    # -- data -------------------------------------------------------------------------------------
    tuples = [
        *(tuple_(f"document:{d}", "viewer", "user:bob") for d in DOCS),
        tuple_("document:1", "owner", "user:alice"),
        tuple_("document:2", "viewer", "group:eng#member"),
        tuple_("group:eng", "member", "user:carol"),
    ]
    attributes = [
        pm.Attribute(entity=document("9"), attribute="public", value=value("BooleanValue", True)),
        pm.Attribute(
            entity=document("1"), attribute="tags", value=value("StringArrayValue", ["a", "b"])
        ),
    ]
    first = parsed(
        data.data_write_with_http_info,
        TENANT,
        pm.DataWriteBody(
            metadata=pm.DataWriteRequestMetadata(schema_version=version),
            tuples=tuples,
            attributes=attributes,
        ),
    ).snap_token
    assert first

    # -- check ------------------------------------------------------------------------------------
    def check(entity: pm.Entity, permission: str, subject: pm.Subject, snap: str = "") -> Any:
        body = pm.CheckBody(
            metadata=pm.PermissionCheckRequestMetadata(snap_token=snap, depth=20),
            entity=entity,
            permission=permission,
            subject=subject,
        )
        answer = parsed(permissions.permissions_check_with_http_info, TENANT, body)
        assert answer.metadata is not None and answer.metadata.check_count is not None
        return answer.can

    assert check(document("1"), "edit", user("alice")) == pm.CheckResult.CHECK_RESULT_ALLOWED
    assert check(document("1"), "edit", user("bob")) == pm.CheckResult.CHECK_RESULT_DENIED
    assert check(document("2"), "view", user("carol")) == pm.CheckResult.CHECK_RESULT_ALLOWED
    assert check(document("9"), "view", user("zed")) == pm.CheckResult.CHECK_RESULT_ALLOWED

    bulk = parsed(
        permissions.permissions_bulk_check_with_http_info,
        TENANT,
        pm.BulkCheckBody(
            items=[
                pm.PermissionBulkCheckRequestItem(entity=document("1"), permission=p, subject=s)
                for p, s in [("view", user("bob")), ("edit", user("bob")), ("edit", user("alice"))]
            ]
        ),
    )
    assert [r.can for r in bulk.results or []] == [
        pm.CheckResult.CHECK_RESULT_ALLOWED,
        pm.CheckResult.CHECK_RESULT_DENIED,
        pm.CheckResult.CHECK_RESULT_ALLOWED,
    ]

    # -- lookups ----------------------------------------------------------------------------------
    found: list[str] = []
    token = ""
    for _ in range(10):
        page = parsed(
            permissions.permissions_lookup_entity_with_http_info,
            TENANT,
            pm.LookupEntityBody(
                entity_type="document",
                permission="view",
                subject=user("bob"),
                page_size=2,
                continuous_token=token,
            ),
        )
        found += page.entity_ids or []
        token = page.continuous_token or ""
        if not token:
            break
    assert found == [*DOCS, "9"]  # 9 is public

    scoped = parsed(
        permissions.permissions_lookup_entity_with_http_info,
        TENANT,
        pm.LookupEntityBody(
            entity_type="document",
            permission="view",
            subject=user("bob"),
            scope={"document": pm.StringArrayValue(data=["2", "4", "8"])},
        ),
    )
    assert scoped.entity_ids == ["2", "4"]

    # The stream is NDJSON; the client reads one object, so it is asked for the raw body and
    # each line parsed with the client's own line model.
    raw = permissions.permissions_lookup_entity_stream_without_preload_content(
        TENANT,
        pm.LookupEntityStreamBody(entity_type="document", permission="view", subject=user("bob")),
    )
    assert raw.status == 200
    lines = [
        pm.StreamResultOfPermissionLookupEntityStreamResponse.from_dict(json.loads(line))
        for line in raw.data.decode().splitlines()
    ]
    assert [line.result.entity_id for line in lines if line and line.result] == [*DOCS, "9"]
    # A stream of one line is one JSON object, which the client's plain call does parse.
    before_last = lines[-2].result
    assert before_last is not None
    last = permissions.permissions_lookup_entity_stream(
        TENANT,
        pm.LookupEntityStreamBody(
            entity_type="document",
            permission="view",
            subject=user("bob"),
            continuous_token=before_last.continuous_token,
        ),
    )
    assert last.result is not None and last.result.entity_id == "9"

    subjects = parsed(
        permissions.permissions_lookup_subject_with_http_info,
        TENANT,
        pm.LookupSubjectBody(
            entity=document("2"),
            permission="view",
            subject_reference=pm.RelationReference(type="user"),
        ),
    )
    assert subjects.subject_ids == ["bob", "carol"]
    usersets = parsed(
        permissions.permissions_lookup_subject_with_http_info,
        TENANT,
        pm.LookupSubjectBody(
            entity=document("2"),
            permission="view",
            subject_reference=pm.RelationReference(type="group", relation="member"),
        ),
    )
    assert usersets.subject_ids == ["eng"]

    granted = parsed(
        permissions.permissions_subject_permission_with_http_info,
        TENANT,
        pm.SubjectPermissionBody(
            metadata=pm.PermissionSubjectPermissionRequestMetadata(only_permission=True),
            entity=document("1"),
            subject=user("alice"),
        ),
    )
    assert granted.results == {
        "edit": pm.CheckResult.CHECK_RESULT_ALLOWED,
        "view": pm.CheckResult.CHECK_RESULT_ALLOWED,
    }

    expanded = parsed(
        permissions.permissions_expand_with_http_info,
        TENANT,
        pm.PermissionExpandBody(entity=document("2"), permission="viewer"),
    )
    tree = expanded.tree
    assert tree is not None and tree.expand is not None
    assert tree.permission == "viewer"
    assert tree.expand.operation == pm.ExpandTreeNodeOperation.OPERATION_UNION
    children = tree.expand.children or []
    assert [(c.entity.type, c.entity.id, c.permission) for c in children if c.entity] == [
        ("group", "eng", "member"),
        ("document", "2", "viewer"),
    ]
    leaf = children[1].leaf
    assert leaf is not None and leaf.subjects is not None
    assert [(s.type, s.id, s.relation) for s in leaf.subjects.subjects or []] == [
        ("user", "bob", ""),
        ("group", "eng", "member"),
    ]

    # -- read with pagination ---------------------------------------------------------------------
    for page_size in (1, 2):
        read: list[tuple[str, str, str, str]] = []
        token = ""
        for _ in range(20):
            page = parsed(
                data.data_relationships_read_with_http_info,
                TENANT,
                pm.ReadRelationshipsBody(
                    metadata=pm.RelationshipReadRequestMetadata(snap_token=first),
                    filter=pm.TupleFilter(entity=pm.EntityFilter(type="document")),
                    page_size=page_size,
                    continuous_token=token,
                ),
            )
            assert len(page.tuples or []) <= page_size
            read += [
                (t.entity.id, t.relation, t.subject.type, t.subject.id)
                for t in page.tuples or []
                if t.entity and t.relation and t.subject and t.subject.type and t.subject.id
            ]
            token = page.continuous_token or ""
            if not token:
                break
        assert sorted(read) == sorted(
            [(d, "viewer", "user", "bob") for d in DOCS]
            + [("1", "owner", "user", "alice"), ("2", "viewer", "group", "eng")]
        ), f"page_size {page_size}"

    attributes_read = parsed(
        data.data_attributes_read_with_http_info,
        TENANT,
        pm.ReadAttributesBody(
            filter=pm.AttributeFilter(entity=pm.EntityFilter(type="document", ids=["1"])),
        ),
    )
    [tags] = attributes_read.attributes or []
    assert tags.attribute == "tags" and tags.value is not None
    assert tags.value.type == "type.googleapis.com/base.v1.StringArrayValue"
    assert tags.value.additional_properties == {"data": ["a", "b"]}

    # -- delete, then snap tokens on either side --------------------------------------------------
    deleted = parsed(
        data.relationships_delete_with_http_info,
        TENANT,
        pm.DeleteRelationshipsBody(
            filter=pm.TupleFilter(
                entity=pm.EntityFilter(type="document", ids=["1"]),
                relation="owner",
                subject=pm.SubjectFilter(type="user", ids=["alice"]),
            )
        ),
    ).snap_token
    assert deleted and deleted != first
    allowed, denied = pm.CheckResult.CHECK_RESULT_ALLOWED, pm.CheckResult.CHECK_RESULT_DENIED
    assert check(document("1"), "edit", user("alice"), snap=first) == allowed
    assert check(document("1"), "edit", user("alice"), snap=deleted) == denied
    assert check(document("1"), "edit", user("alice")) == denied

    removed = parsed(
        data.data_delete_with_http_info,
        TENANT,
        pm.DataDeleteBody(
            attribute_filter=pm.AttributeFilter(
                entity=pm.EntityFilter(type="document", ids=["9"]), attributes=["public"]
            )
        ),
    ).snap_token
    assert check(document("9"), "view", user("zed"), snap=removed) == denied

    # -- schemas ----------------------------------------------------------------------------------
    listed = parsed(schemas.schemas_list_with_http_info, TENANT, pm.SchemaListBody(page_size=10))
    assert listed.head == version
    assert [s.version for s in listed.schemas or []] == [version]
    read_body = pm.SchemaReadBody(metadata=pm.SchemaReadRequestMetadata(schema_version=version))
    definition = schemas.schemas_read(TENANT, read_body).var_schema
    assert definition is not None
    entity = pm.SchemaDefinitionReference.REFERENCE_ENTITY
    assert definition.references == {"user": entity, "group": entity, "document": entity}
    # The client names SchemaDefinition.entity_definitions by its lowerCamel JSON name, which
    # Permify's own gateway never sends (UseProtoNames), so it is None there as here; the
    # entity definitions are read from the raw body, each with the client's model.
    raw_schema = json.loads(schemas.schemas_read_without_preload_content(TENANT, read_body).data)[
        "schema"
    ]
    assert set(raw_schema["entity_definitions"]) == {"user", "group", "document"}
    doc_def = pm.EntityDefinition.from_dict(raw_schema["entity_definitions"]["document"])
    assert doc_def is not None and doc_def.name == "document"
    assert set(doc_def.permissions or {}) == {"edit", "view"}
    assert set(doc_def.relations or {}) == {"owner", "viewer"}
    assert doc_def.attributes is not None
    assert {name: a.type for name, a in doc_def.attributes.items()} == {
        "public": pm.AttributeType.ATTRIBUTE_TYPE_BOOLEAN,
        "tags": pm.AttributeType.ATTRIBUTE_TYPE_STRING_ARRAY,
    }
    assert doc_def.references is not None
    assert doc_def.references["view"] == pm.EntityDefinitionReference.REFERENCE_PERMISSION

    # -- tenants ----------------------------------------------------------------------------------
    tenants = parsed(tenancy.tenants_list_with_http_info, pm.TenantListRequest(page_size=10))
    assert TENANT in [t.id for t in tenants.tenants or []]
    gone = parsed(tenancy.tenants_delete_with_http_info, TENANT)
    assert gone.tenant_id == TENANT
    tenants = parsed(tenancy.tenants_list_with_http_info, pm.TenantListRequest(page_size=10))
    assert TENANT not in [t.id for t in tenants.tenants or []]


def test_errors_reach_the_client_as_api_exceptions(api: permify.ApiClient) -> None:
    permissions = permify.PermissionApi(api)
    body = pm.CheckBody(entity=document("1"), permission="view", subject=user("bob"))
    with pytest.raises(ApiException) as raised:
        permissions.permissions_check("no-such-tenant", body, _request_timeout=TIMEOUT)
    assert raised.value.status == 404
    status = pm.Status.from_json(raised.value.body or "")
    assert status is not None and status.code == 5
    assert status.message


def test_the_client_reads_a_schema_with_rules(api: permify.ApiClient) -> None:
    permify.TenancyApi(api).tenants_create(pm.TenantCreateRequest(id="rules"))
    text = (
        "entity user {}\n"
        "entity account {\n"
        "    attribute balance double\n"
        "    permission withdraw = enough(balance)\n"
        "}\n"
        "rule enough(balance double) {\n"
        "    balance >= context.data.amount\n"
        "}\n"
    )
    schemas = permify.SchemaApi(api)
    parsed(schemas.schemas_write_with_http_info, "rules", pm.SchemaWriteBody(var_schema=text))
    definition = schemas.schemas_read("rules", pm.SchemaReadBody()).var_schema
    assert definition is not None and definition.references is not None
    assert definition.references["enough"] == pm.SchemaDefinitionReference.REFERENCE_RULE
    raw = schemas.schemas_read_without_preload_content("rules", pm.SchemaReadBody())
    rules = json.loads(raw.data)["schema"]["rule_definitions"]  # see the scenario's note
    rule = pm.RuleDefinition.from_dict(rules["enough"])
    assert rule is not None and rule.name == "enough"
    assert rule.arguments == {"balance": pm.AttributeType.ATTRIBUTE_TYPE_DOUBLE}
    permissions = permify.PermissionApi(api)
    permify.DataApi(api).data_write(
        "rules",
        pm.DataWriteBody(
            attributes=[
                pm.Attribute(
                    entity=pm.Entity(type="account", id="1"),
                    attribute="balance",
                    value=value("DoubleValue", 100.0),
                )
            ]
        ),
    )

    def withdraw(amount: float) -> Any:
        body = pm.CheckBody(
            entity=pm.Entity(type="account", id="1"),
            permission="withdraw",
            subject=user("alice"),
            context=pm.Context(data={"amount": amount}),
        )
        return parsed(permissions.permissions_check_with_http_info, "rules", body).can

    assert withdraw(50) == pm.CheckResult.CHECK_RESULT_ALLOWED
    assert withdraw(500) == pm.CheckResult.CHECK_RESULT_DENIED
