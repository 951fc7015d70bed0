"""Data bundles over HTTP: write, read and delete bundles, run one (every change at one snap
token, checked against the head schema, nothing written on any error), and the error statuses.
One server serves the module; each test works in tenants of its own."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from api import models as m
from tests.api.conftest import Server, shaped

SCHEMA = """
entity user {}

entity group {
    relation member @user @group#member
}

entity doc {
    relation owner @user
    relation viewer @user @group#member
    attribute public boolean
    attribute tags string[]
    permission view = owner or viewer or public
}
"""
_ids = itertools.count()

#: Every list used once; the operation order is Permify's (writes, then deletes).
SHARE: dict[str, Any] = {
    "name": "share",
    "arguments": ["id", "user", "old"],
    "operations": [
        {
            "relationships_write": ["doc:{{.id}}#owner@user:{{ .user }}"],
            "relationships_delete": ["doc:{{.id}}#viewer@user:{{.old}}"],
            "attributes_write": ["doc:{{.id}}$public|boolean:false"],
            "attributes_delete": ["doc:{{.id}}$tags"],
        }
    ],
}


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def error(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = shaped(m.ErrorResponse, response.json())
    assert body["details"][0]["reason"] == reason, body
    return dict(body)


class Tenant:
    """A fresh tenant with SCHEMA as its head."""

    def __init__(self, client: httpx.Client, *, schema: bool = True, id: str = "") -> None:
        """A new tenant; with ``id``, that existing tenant (through ``client``)."""
        self.client = client
        self.id = id or f"bundles{next(_ids)}"
        if id:
            return
        ok(client.post("/v1/tenants/create", json={"id": self.id}))
        if schema:
            ok(self.post("schemas/write", {"schema": SCHEMA}))

    def post(self, endpoint: str, body: dict[str, Any]) -> httpx.Response:
        return self.client.post(f"/v1/tenants/{self.id}/{endpoint}", json=body)

    def write_bundles(self, *bundles: dict[str, Any]) -> list[str]:
        body = shaped(m.BundleWriteResponse, ok(self.post("bundle/write", {"bundles": bundles})))
        return list(body["names"])

    def read_bundle(self, name: str) -> dict[str, Any]:
        body = shaped(m.BundleReadResponse, ok(self.post("bundle/read", {"name": name})))
        return dict(body["bundle"])

    def run(self, name: str, arguments: dict[str, str]) -> httpx.Response:
        return self.post("data/run-bundle", {"name": name, "arguments": arguments})

    def run_ok(self, name: str, arguments: dict[str, str]) -> str:
        body = shaped(m.SnapTokenResponse, ok(self.run(name, arguments)))
        token: str = body["snap_token"]
        assert token
        return token

    def write(self, body: dict[str, Any]) -> str:
        token: str = shaped(m.SnapTokenResponse, ok(self.post("data/write", body)))["snap_token"]
        return token

    def can(self, entity: str, permission: str, subject: str, token: str = "") -> bool:
        entity_type, entity_id = entity.split(":", 1)
        subject_type, subject_id = subject.split(":", 1)
        body = {
            "metadata": {"snap_token": token, "depth": 10},
            "entity": {"type": entity_type, "id": entity_id},
            "permission": permission,
            "subject": {"type": subject_type, "id": subject_id},
        }
        answer = shaped(m.CheckResponse, ok(self.post("permissions/check", body)))
        return bool(answer["can"] == "CHECK_RESULT_ALLOWED")

    def tuples(self, token: str = "") -> set[str]:
        body = {"metadata": {"snap_token": token}, "filter": {"entity": {"type": "doc"}}}
        page = shaped(m.RelationshipsReadResponse, ok(self.post("data/relationships/read", body)))
        out = set()
        for t in page["tuples"]:
            e, s = t["entity"], t["subject"]
            suffix = f"#{s['relation']}" if s["relation"] else ""
            out.add(f"{e['type']}:{e['id']}#{t['relation']}@{s['type']}:{s['id']}{suffix}")
        return out

    def attributes(self, token: str = "") -> dict[str, Any]:
        body = {"metadata": {"snap_token": token}, "filter": {"entity": {"type": "doc"}}}
        page = shaped(m.AttributesReadResponse, ok(self.post("data/attributes/read", body)))
        return {
            f"{a['entity']['type']}:{a['entity']['id']}${a['attribute']}": a["value"]["data"]
            for a in page["attributes"]
        }


@pytest.fixture(scope="module")
def client(module_server: Server) -> Iterator[httpx.Client]:
    with module_server.client() as c:
        yield c


@pytest.fixture
def tenant(client: httpx.Client) -> Tenant:
    return Tenant(client)


def full(bundle: dict[str, Any]) -> dict[str, Any]:
    """``bundle`` with every field present, as a read returns it."""
    lists = ("relationships_write", "relationships_delete", "attributes_write", "attributes_delete")
    return {
        "name": bundle["name"],
        "arguments": bundle.get("arguments", []),
        "operations": [{k: op.get(k, []) for k in lists} for op in bundle.get("operations", [])],
    }


# -- write, read, delete ------------------------------------------------------------------------


def test_a_written_bundle_reads_back_with_every_field_and_deletes(tenant: Tenant) -> None:
    sparse = {"name": "sparse", "operations": [{"relationships_write": ["doc:1#owner@user:1"]}]}
    assert tenant.write_bundles(SHARE, sparse) == ["share", "sparse"]

    assert tenant.read_bundle("share") == SHARE
    assert tenant.read_bundle("sparse") == full(sparse)
    assert tenant.read_bundle("sparse")["operations"][0]["attributes_delete"] == []

    deleted = shaped(m.BundleDeleteResponse, ok(tenant.post("bundle/delete", {"name": "share"})))
    assert deleted == {"name": "share"}
    error(tenant.post("bundle/read", {"name": "share"}), 404, "ERROR_CODE_BUNDLE_NOT_FOUND")
    assert tenant.read_bundle("sparse") == full(sparse)


def test_a_bundle_without_operations_or_arguments_reads_back_empty(tenant: Tenant) -> None:
    tenant.write_bundles({"name": "empty"})
    assert tenant.read_bundle("empty") == {"name": "empty", "arguments": [], "operations": []}


def test_writing_a_bundle_again_replaces_it(tenant: Tenant) -> None:
    tenant.write_bundles(SHARE)
    newer = {
        "name": "share",
        "arguments": ["id"],
        "operations": [{"relationships_write": ["doc:{{.id}}#viewer@user:2"]}],
    }
    assert tenant.write_bundles(newer) == ["share"]
    assert tenant.read_bundle("share") == full(newer)
    token = tenant.run_ok("share", {"id": "7"})
    assert tenant.tuples(token) == {"doc:7#viewer@user:2"}


def test_duplicate_names_in_one_write_are_a_400_and_write_nothing(tenant: Tenant) -> None:
    body = {"bundles": [{"name": "a"}, {"name": "other"}, {"name": "a"}]}
    found = error(tenant.post("bundle/write", body), 400, "ERROR_CODE_ALREADY_EXIST")
    assert "bundles[0]" in found["message"] and "bundles[2]" in found["message"]
    error(tenant.post("bundle/read", {"name": "other"}), 404, "ERROR_CODE_BUNDLE_NOT_FOUND")


BAD_TEMPLATES = [
    ("doc:{{.id#owner@user:1", "`{{` at column 5 is never closed"),
    ("doc:{{.nope}}#owner@user:1", "`nope` is not a declared argument"),
    ('doc:{{.id | printf "%s"}}#owner@user:1', "pipelines are not supported"),
    ("doc:{{.id}}@user:1", "missing `#` after the entity_id"),
    ("doc:{{.id}}#owner@user:a b", "subject_id 'a b' is invalid"),
]


@pytest.mark.parametrize(
    ("text", "fragment"), BAD_TEMPLATES, ids=[text for text, _ in BAD_TEMPLATES]
)
def test_a_bad_template_is_a_400_naming_where_it_is(
    tenant: Tenant, text: str, fragment: str
) -> None:
    bundle = {
        "name": "b",
        "arguments": ["id"],
        "operations": [{}, {"relationships_write": ["doc:{{.id}}#owner@user:1", text]}],
    }
    found = error(tenant.post("bundle/write", {"bundles": [bundle]}), 400, "ERROR_CODE_VALIDATION")
    assert found["message"].startswith(f"bundle `b`: operations[1].relationships_write[1] `{text}`")
    assert fragment in found["message"]
    error(tenant.post("bundle/read", {"name": "b"}), 404, "ERROR_CODE_BUNDLE_NOT_FOUND")


def test_every_problem_of_a_write_is_in_the_message(tenant: Tenant) -> None:
    bundles = [
        {"name": "a", "operations": [{"attributes_write": ["doc:1$public|boolean:maybe"]}]},
        {"name": "b", "operations": [{"attributes_delete": ["doc:{{.x}}$tags"]}]},
    ]
    found = error(tenant.post("bundle/write", {"bundles": bundles}), 400, "ERROR_CODE_VALIDATION")
    assert found["message"].startswith("2 problems: ")
    assert "bundle `a`: operations[0].attributes_write[0]" in found["message"]
    assert "bundle `b`: operations[0].attributes_delete[0]" in found["message"]


BAD_BODIES = [
    ({"bundles": []}, "bundles"),
    ({"bundles": [{"name": "1b"}]}, "bundles[0].name"),
    ({"bundles": [{"name": "b", "arguments": ["a-b"]}]}, "bundles[0].arguments[0]"),
    ({"bundles": [{"name": "b", "operations": [{"relationships_write": [1]}]}]}, "bundles[0]"),
]


@pytest.mark.parametrize(
    ("body", "field"), BAD_BODIES, ids=["no-bundles", "bad-name", "bad-argument", "not-a-string"]
)
def test_a_malformed_write_is_a_400_naming_the_field(
    tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    found = error(tenant.post("bundle/write", body), 400, "ERROR_CODE_VALIDATION")
    fields = [v["field"] for v in found["details"][1]["field_violations"]]
    assert any(f.startswith(field) for f in fields), fields


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("bundle/read", {"name": "nope"}),
        ("bundle/delete", {"name": "nope"}),
        ("data/run-bundle", {"name": "nope", "arguments": {}}),
    ],
    ids=["read", "delete", "run"],
)
def test_an_unknown_bundle_is_a_404(tenant: Tenant, endpoint: str, body: dict[str, Any]) -> None:
    found = error(tenant.post(endpoint, body), 404, "ERROR_CODE_BUNDLE_NOT_FOUND")
    assert "`nope`" in found["message"]


def test_an_unknown_bundle_is_a_404_even_in_a_tenant_without_a_schema(client: httpx.Client) -> None:
    bare = Tenant(client, schema=False)
    error(bare.run("nope", {}), 404, "ERROR_CODE_BUNDLE_NOT_FOUND")
    bare.write_bundles(SHARE)
    arguments = {"id": "1", "user": "ann", "old": "bob"}
    error(bare.run("share", arguments), 404, "ERROR_CODE_SCHEMA_NOT_FOUND")


# -- run ----------------------------------------------------------------------------------------


def test_a_run_writes_and_deletes_at_one_snap_token(tenant: Tenant) -> None:
    tags = {
        "entity": {"type": "doc", "id": "1"},
        "attribute": "tags",
        "value": {"@type": "type.googleapis.com/base.v1.StringArrayValue", "data": ["x"]},
    }
    viewer = {
        "entity": {"type": "doc", "id": "1"},
        "relation": "viewer",
        "subject": {"type": "user", "id": "bob"},
    }
    previous = tenant.write({"tuples": [viewer], "attributes": [tags]})
    tenant.write_bundles(SHARE)

    token = tenant.run_ok("share", {"id": "1", "user": "ann", "old": "bob"})

    assert token != previous
    assert tenant.can("doc:1", "view", "user:ann", token)
    assert not tenant.can("doc:1", "view", "user:bob", token)
    assert tenant.tuples(token) == {"doc:1#owner@user:ann"}
    assert tenant.attributes(token) == {"doc:1$public": False}
    # At the previous token nothing of the run is there yet.
    assert not tenant.can("doc:1", "view", "user:ann", previous)
    assert tenant.can("doc:1", "view", "user:bob", previous)
    assert tenant.tuples(previous) == {"doc:1#viewer@user:bob"}
    assert tenant.attributes(previous) == {"doc:1$tags": ["x"]}


def test_a_run_without_every_argument_is_a_400_and_writes_nothing(tenant: Tenant) -> None:
    tenant.write_bundles(SHARE)
    found = error(tenant.run("share", {"id": "1"}), 400, "ERROR_CODE_MISSING_ARGUMENT")
    assert "missing: `user`, `old`" in found["message"]
    assert tenant.tuples() == set() and tenant.attributes() == {}


def test_a_run_the_schema_rejects_is_a_400_and_writes_nothing(tenant: Tenant) -> None:
    bundle = {
        "name": "b",
        "arguments": ["id"],
        "operations": [
            {"relationships_write": ["doc:{{.id}}#owner@user:1"]},
            {"relationships_write": ["doc:{{.id}}#editor@user:1"]},
        ],
    }
    tenant.write_bundles(bundle)
    found = error(tenant.run("b", {"id": "9"}), 400, "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND")
    assert found["message"].startswith("bundle `b`: operations[1].relationships_write[0]")
    assert "doc:9#editor@user:1" in found["message"]
    assert tenant.tuples() == set()
    assert not tenant.can("doc:9", "view", "user:1")


INJECTIONS = [
    ("user", "1#owner", "subject_id"),  # a userset instead of a user
    ("id", "x#owner@user:2", "entity_id"),  # another tuple altogether
    ("id", "1$public|boolean:true", "entity_id"),
    ("old", "", "subject_id"),
    ("user", "a\x00b", "subject_id"),
    ("user", "é", "subject_id"),
    ("user", "x" * 129, "subject_id"),
]


@pytest.mark.parametrize(
    ("argument", "value", "component"),
    INJECTIONS,
    ids=[f"{a}-{v[:10]!r}" for a, v, _ in INJECTIONS],
)
def test_an_argument_that_would_change_a_strings_shape_is_a_400_and_writes_nothing(
    tenant: Tenant, argument: str, value: str, component: str
) -> None:
    tenant.write_bundles(SHARE)
    arguments = {"id": "1", "user": "ann", "old": "bob", argument: value}
    found = error(tenant.run("share", arguments), 400, "ERROR_CODE_INVALID_ARGUMENT")
    assert found["message"].startswith("bundle `share`: operations[0].")
    assert f"argument `{argument}` = {value[:40]!r}" in found["message"]
    assert component in found["message"]
    assert tenant.tuples() == set() and tenant.attributes() == {}


def test_ids_with_colon_and_at_from_arguments_are_written_as_given(tenant: Tenant) -> None:
    tenant.write_bundles(SHARE)
    token = tenant.run_ok("share", {"id": "a@b:c", "user": "x:y@z", "old": "bob"})
    assert tenant.tuples(token) == {"doc:a@b:c#owner@user:x:y@z"}
    assert tenant.can("doc:a@b:c", "view", "user:x:y@z", token)


def test_run_arguments_must_be_strings(tenant: Tenant) -> None:
    tenant.write_bundles(SHARE)
    body = {"name": "share", "arguments": {"id": 1, "user": "ann", "old": "bob"}}
    found = error(tenant.post("data/run-bundle", body), 400, "ERROR_CODE_VALIDATION")
    assert "arguments.id" in [v["field"] for v in found["details"][1]["field_violations"]]


def test_a_run_wakes_watch_streams_at_once(start_server: Callable[..., Server]) -> None:
    server = start_server(watch_poll_seconds=60.0)
    with server.client() as client, server.client() as writer:
        tenant = Tenant(client)
        tenant.write_bundles(SHARE)
        path = f"/v1/tenants/{tenant.id}/watch"
        with client.stream("POST", path, json={}, timeout=httpx.Timeout(10.0)) as stream:
            assert stream.status_code == 200
            through_writer = Tenant(writer, id=tenant.id)
            token = through_writer.run_ok("share", {"id": "1", "user": "ann", "old": "bob"})
            # Without the wake-up the line would come only after the 60 s poll: a read timeout.
            line = json.loads(next(stream.iter_lines()))
    changes = shaped(m.WatchLine, line)["result"]["changes"]
    assert changes["snap_token"] == token
    # The owner tuple and the public attribute, in one change set.
    assert sorted((c["operation"], "tuple" in c) for c in changes["data_changes"]) == [
        ("OPERATION_CREATE", False),
        ("OPERATION_CREATE", True),
    ]


# -- tenants ------------------------------------------------------------------------------------


def test_bundles_belong_to_one_tenant(client: httpx.Client) -> None:
    one, two = Tenant(client), Tenant(client)
    one.write_bundles(SHARE)
    arguments = {"id": "1", "user": "ann", "old": "bob"}

    error(two.post("bundle/read", {"name": "share"}), 404, "ERROR_CODE_BUNDLE_NOT_FOUND")
    error(two.run("share", arguments), 404, "ERROR_CODE_BUNDLE_NOT_FOUND")
    error(two.post("bundle/delete", {"name": "share"}), 404, "ERROR_CODE_BUNDLE_NOT_FOUND")
    assert one.read_bundle("share") == SHARE

    theirs = {"name": "share", "operations": [{"relationships_write": ["doc:9#owner@user:9"]}]}
    two.write_bundles(theirs)
    assert one.read_bundle("share") == SHARE
    token = two.run_ok("share", {})
    assert two.tuples(token) == {"doc:9#owner@user:9"}
    assert one.tuples() == set()
    ok(two.post("bundle/delete", {"name": "share"}))
    assert one.read_bundle("share") == SHARE


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("bundle/write", {"bundles": [SHARE]}),
        (
            "bundle/write",
            {"bundles": [{"name": "b", "operations": [{"relationships_write": ["x"]}]}]},
        ),
        ("bundle/read", {"name": "share"}),
        ("bundle/delete", {"name": "share"}),
        ("data/run-bundle", {"name": "share", "arguments": {}}),
    ],
    ids=["write", "write-bad-bundle", "read", "delete", "run"],
)
def test_an_unknown_tenant_is_a_404(
    client: httpx.Client, endpoint: str, body: dict[str, Any]
) -> None:
    response = client.post(f"/v1/tenants/nobody/{endpoint}", json=body)
    found = error(response, 404, "ERROR_CODE_TENANT_NOT_FOUND")
    assert "nobody" in found["message"]


def test_the_openapi_document_lists_the_bundle_endpoints(client: httpx.Client) -> None:
    paths = ok(client.get("/openapi.json"))["paths"]
    for path, tag in [
        ("/v1/tenants/{tenant_id}/bundle/write", "Bundle"),
        ("/v1/tenants/{tenant_id}/bundle/read", "Bundle"),
        ("/v1/tenants/{tenant_id}/bundle/delete", "Bundle"),
        ("/v1/tenants/{tenant_id}/data/run-bundle", "Data"),
    ]:
        assert paths[path]["post"]["tags"] == [tag], path
