"""API tokens (T1-T3), who may call the relations routes (spec 3.3/3.4, cases 57-61) and the
tenant's relations settings; each test on its own real server and LevelDB."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.services import SERVICES
from engine.relations.model import SCOPES, Settings
from tests.api.relations_support import register, strapi_error, tenant_with_schema
from tests.api.support import Clock

ADMIN_KEY = "admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
SCHEMA = """
entity user {}
entity company {}
entity contact {
    relation owner @user
    relation works_at @company
    permission view = owner
    permission edit = owner
}
"""
E1 = "/v1/tenants/t1/entities/contact:1/relations"
SECRET = re.compile(r"pat_[A-Za-z0-9]{32}")
TOKEN_FIELDS = {
    "id",
    "name",
    "scopes",
    "subject",
    "created_at",
    "expires_at",
    "revoked_at",
    "last_used_at",
}
INVALID_TOKEN = 'Bearer error="invalid_token"'


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def setup(client: httpx.Client, tenant: str = "t1") -> None:
    tenant_with_schema(client, SCHEMA, ADMIN, tenant)


def new_token(
    client: httpx.Client, scopes: list[str], tenant: str = "t1", **fields: Any
) -> dict[str, Any]:
    body = {"name": "ci", "scopes": scopes, **fields}
    response = client.post(f"/v1/tenants/{tenant}/tokens", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


@pytest.fixture
def keyed(start_server: Callable[..., Any]) -> Any:
    """A server with an admin key and a schema in tenant t1."""
    server = start_server(preshared_keys=(ADMIN_KEY,))
    with server.client() as c:
        setup(c)
    return server


@pytest.fixture
def client(keyed: Any) -> Any:
    with keyed.client() as c:
        yield c


# -- T1-T3 -------------------------------------------------------------------------------------


def test_created_token_shows_its_secret_once_and_only_its_sha256_is_stored(
    keyed: Any, client: httpx.Client
) -> None:
    expires = iso_in(3600)
    response = client.post(
        "/v1/tenants/t1/tokens",
        json={
            "name": "sync job",
            "scopes": ["relationship:list", "relationship:create"],
            "subject": "user:alice",
            "expires_at": expires,
        },
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert set(data) == TOKEN_FIELDS | {"token"}
    secret = data.pop("token")
    assert SECRET.fullmatch(secret)
    assert data["id"].startswith("tok-")
    assert data["name"] == "sync job"
    assert data["scopes"] == ["relationship:list", "relationship:create"]
    assert data["subject"] == "user:alice"
    assert datetime.fromisoformat(data["expires_at"]) == datetime.fromisoformat(expires)
    assert data["revoked_at"] is None

    listing = client.get("/v1/tenants/t1/tokens", headers=ADMIN)
    assert listing.status_code == 200
    assert listing.json() == {"data": [data]}
    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in listing.text and digest not in listing.text

    stored = list(keyed.app[SERVICES].store.reader("t1").records("tok"))
    assert len(stored) == 1
    assert digest.encode() in stored[0].value + "".join(stored[0].key).encode()
    assert secret.encode() not in stored[0].value
    assert secret not in "".join(stored[0].key)


def test_each_token_gets_its_own_secret_and_the_list_is_oldest_first(
    client: httpx.Client,
) -> None:
    first = new_token(client, ["*"], name="a")
    second = new_token(client, ["*"], name="b")
    assert first["token"] != second["token"]
    listing = client.get("/v1/tenants/t1/tokens", headers=ADMIN).json()["data"]
    assert [t["id"] for t in listing] == [first["id"], second["id"]]
    assert all("token" not in t and "hash" not in t for t in listing)


def test_revoking_a_token_marks_it_and_a_second_revoke_is_404(client: httpx.Client) -> None:
    token = new_token(client, ["relationship:list"])
    assert client.get(E1, headers=bearer(token["token"])).status_code == 200
    response = client.delete(f"/v1/tenants/t1/tokens/{token['id']}", headers=ADMIN)
    assert response.status_code == 204
    assert response.content == b""
    (listed,) = client.get("/v1/tenants/t1/tokens", headers=ADMIN).json()["data"]
    assert listed["revoked_at"] is not None
    strapi_error(client.get(E1, headers=bearer(token["token"])), 401)
    again = client.delete(f"/v1/tenants/t1/tokens/{token['id']}", headers=ADMIN)
    strapi_error(again, 404)
    unknown = client.delete("/v1/tenants/t1/tokens/tok-nope", headers=ADMIN)
    strapi_error(unknown, 404)


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"name": "x", "scopes": ["relationshp:list"]}, [["scopes", 0]]),
        ({"name": "x", "scopes": []}, [["scopes"]]),
        ({"name": "x"}, [["scopes"]]),
        ({"name": "x", "scopes": "relationship:list"}, [["scopes"]]),
        ({"name": "x", "scopes": ["*", 5]}, [["scopes", 1]]),
        ({"scopes": ["*"]}, [["name"]]),
        ({"name": "", "scopes": ["*"]}, [["name"]]),
        ({"name": "n" * 201, "scopes": ["*"]}, [["name"]]),
        ({"name": 7, "scopes": ["*"]}, [["name"]]),
        ({"name": "x", "scopes": ["*"], "subject": "alice"}, [["subject"]]),
        ({"name": "x", "scopes": ["*"], "subject": "User:alice"}, [["subject"]]),
        ({"name": "x", "scopes": ["*"], "subject": "user:*"}, [["subject"]]),
        ({"name": "x", "scopes": ["*"], "subject": ["user:a"]}, [["subject"]]),
        ({"name": "x", "scopes": ["*"], "expires_at": "2001-01-01T00:00:00Z"}, [["expires_at"]]),
        ({"name": "x", "scopes": ["*"], "expires_at": "2099-01-01T00:00:00"}, [["expires_at"]]),
        ({"name": "x", "scopes": ["*"], "expires_at": "tomorrow"}, [["expires_at"]]),
        ({"name": "x", "scopes": ["*"], "expires_at": 4102444800}, [["expires_at"]]),
        ({}, [["name"], ["scopes"]]),
        (
            {"name": "", "scopes": ["nope", "*", "also:nope"], "subject": "x", "expires_at": "x"},
            [["name"], ["scopes", 0], ["scopes", 2], ["subject"], ["expires_at"]],
        ),
    ],
    ids=[
        "unknown-scope",
        "empty-scopes",
        "missing-scopes",
        "scopes-not-array",
        "scope-not-string",
        "missing-name",
        "empty-name",
        "name-too-long",
        "name-not-string",
        "subject-without-type",
        "subject-bad-type",
        "subject-wildcard",
        "subject-not-string",
        "expires-in-past",
        "expires-without-timezone",
        "expires-not-a-time",
        "expires-a-number",
        "empty-body-two-errors",
        "every-error-at-once",
    ],
)
def test_token_creation_rejects_invalid_bodies_listing_every_error(
    client: httpx.Client, body: dict[str, Any], paths: list[list[Any]]
) -> None:
    error = strapi_error(client.post("/v1/tenants/t1/tokens", json=body, headers=ADMIN), 400)
    assert [e["path"] for e in error["details"]["errors"]] == paths
    if len(paths) > 1:
        assert error["message"] == f"{len(paths)} errors occurred"
    assert client.get("/v1/tenants/t1/tokens", headers=ADMIN).json() == {"data": []}


def test_unknown_scope_error_names_it_and_suggests_the_closest(client: httpx.Client) -> None:
    body = {"name": "x", "scopes": ["relationship:list", "relationshp:lst"]}
    error = strapi_error(client.post("/v1/tenants/t1/tokens", json=body, headers=ADMIN), 400)
    assert "relationshp:lst" in error["message"]
    (item,) = error["details"]["errors"]
    assert item["value"] == "relationshp:lst"
    assert item["suggestions"][0] == "relationship:list"


def test_every_documented_scope_is_accepted(client: httpx.Client) -> None:
    token = new_token(client, list(SCOPES))
    assert token["scopes"] == list(SCOPES)


def test_repeated_scopes_are_stored_once(client: httpx.Client) -> None:
    token = new_token(client, ["relationship:list", "*", "relationship:list"])
    assert token["scopes"] == ["relationship:list", "*"]


def test_token_body_bad_json_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/v1/tenants/t1/tokens",
        content=b"{not json",
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert strapi_error(response, 400)["message"] == "Invalid JSON body"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/tenants/t1/tokens", {"name": "x", "scopes": ["*"]}),
        ("POST", "/v1/tenants/t1/tokens", {"name": "x", "scopes": ["bogus"]}),
        ("GET", "/v1/tenants/t1/tokens", None),
        ("DELETE", "/v1/tenants/t1/tokens/tok-nope", None),
        ("GET", "/v1/tenants/t1/relations/settings", None),
        ("PUT", "/v1/tenants/t1/relations/settings", {}),
        ("PUT", "/v1/tenants/t1/relations/settings", {"person_type": "Bad Type"}),
    ],
    ids=[
        "create",
        "create-invalid-body",
        "list",
        "revoke",
        "settings-get",
        "settings-put",
        "settings-put-invalid-body",
    ],
)
def test_token_and_settings_management_refuse_api_tokens_with_403(
    client: httpx.Client, method: str, path: str, body: dict[str, Any] | None
) -> None:
    everything = new_token(client, ["*"])
    response = client.request(method, path, json=body, headers=bearer(everything["token"]))
    strapi_error(response, 403)
    (only,) = client.get("/v1/tenants/t1/tokens", headers=ADMIN).json()["data"]
    assert only["revoked_at"] is None


def test_token_management_needs_credentials_and_an_existing_tenant(client: httpx.Client) -> None:
    response = client.get("/v1/tenants/t1/tokens")
    strapi_error(response, 401)
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN
    error = strapi_error(client.get("/v1/tenants/ghost/tokens", headers=ADMIN), 404)
    assert error["message"] == "tenant ghost not found"
    body = {"name": "x", "scopes": ["*"]}
    assert client.post("/v1/tenants/ghost/tokens", json=body, headers=ADMIN).status_code == 404


def test_deleting_a_tenant_removes_its_tokens(client: httpx.Client) -> None:
    setup(client, "t2")
    token = new_token(client, ["*"], tenant="t2")
    assert client.get(E1.replace("t1", "t2"), headers=bearer(token["token"])).status_code == 200
    assert client.delete("/v1/tenants/t2", headers=ADMIN).status_code == 200
    setup(client, "t2")
    assert client.get("/v1/tenants/t2/tokens", headers=ADMIN).json() == {"data": []}
    for tenant in ("t1", "t2"):
        response = client.get(E1.replace("t1", tenant), headers=bearer(token["token"]))
        strapi_error(response, 401)


# -- case 57: 401 ----------------------------------------------------------------------------


def _expired(server: Any, client: httpx.Client) -> str:
    relations = server.app[SERVICES].relations
    _, secret = relations.create_token("t1", "old", ["*"], None, relations.now_micros() - 1)
    return f"Bearer {secret}"


def _revoked(server: Any, client: httpx.Client) -> str:
    token = new_token(client, ["*"])
    assert client.delete(f"/v1/tenants/t1/tokens/{token['id']}", headers=ADMIN).status_code == 204
    return f"Bearer {token['token']}"


def _unknown_pat(server: Any, client: httpx.Client) -> str:
    new_token(client, ["*"])
    return "Bearer pat_" + "A" * 32


CREDENTIALS: list[tuple[str, Callable[[Any, httpx.Client], str | None]]] = [
    ("missing-header", lambda s, c: None),
    ("basic-scheme", lambda s, c: "Basic YWRtaW46YWRtaW4="),
    ("basic-scheme-with-admin-key", lambda s, c: f"Basic {ADMIN_KEY}"),
    ("bearer-without-token", lambda s, c: "Bearer"),
    ("wrong-admin-key", lambda s, c: "Bearer not-the-key"),
    ("unknown-pat", _unknown_pat),
    ("malformed-pat", lambda s, c: "Bearer pat_short"),
    ("expired-pat", _expired),
    ("revoked-pat", _revoked),
]


@pytest.mark.parametrize(
    "credential", [c for _, c in CREDENTIALS], ids=[name for name, _ in CREDENTIALS]
)
def test_requests_without_valid_credentials_get_401_with_a_bearer_challenge(
    keyed: Any, client: httpx.Client, credential: Callable[[Any, httpx.Client], str | None]
) -> None:
    header = credential(keyed, client)
    headers = {} if header is None else {"Authorization": header}
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", E1, None),
        ("POST", E1, {"target_entity_id": "company:1", "relation_type": "works_at"}),
        ("PUT", E1, {"data": {}}),
        # 401 comes before the 404 of an unknown tenant
        ("GET", E1.replace("t1", "ghost"), None),
    ]
    for method, path, body in requests:
        response = client.request(method, path, json=body, headers=headers)
        error = strapi_error(response, 401)
        assert error["name"] == "UnauthorizedError", (method, path)
        assert response.headers["WWW-Authenticate"] == INVALID_TOKEN


def test_token_works_until_it_expires_then_gets_401(start_server: Callable[..., Any]) -> None:
    clock = Clock()  # the server's: moved past the expiry instead of waiting for it
    server = start_server(clock=clock, preshared_keys=(ADMIN_KEY,))
    with server.client() as client:
        setup(client)
        token = new_token(client, ["relationship:list"], expires_at=iso_in(1.0))
        assert client.get(E1, headers=bearer(token["token"])).status_code == 200
        expires = datetime.fromisoformat(token["expires_at"]).timestamp()
        clock.set(expires - 0.001)
        assert client.get(E1, headers=bearer(token["token"])).status_code == 200
        clock.set(expires + 0.001)
        response = client.get(E1, headers=bearer(token["token"]))
        strapi_error(response, 401)
        assert response.headers["WWW-Authenticate"] == INVALID_TOKEN


# -- case 58: another tenant's token ----------------------------------------------------------


def test_token_of_another_tenant_reads_exactly_like_an_unknown_tenant(
    client: httpx.Client,
) -> None:
    setup(client, "t2")
    token = new_token(client, ["*"])
    other = client.get(E1.replace("t1", "t2"), headers=bearer(token["token"]))
    strapi_error(other, 404)
    nowhere = client.get(E1.replace("t1", "ghost"), headers=bearer(token["token"]))
    assert nowhere.json() == client.get(E1.replace("t1", "ghost"), headers=ADMIN).json()
    assert client.delete("/v1/tenants/t2", headers=ADMIN).status_code == 200
    unknown = client.get(E1.replace("t1", "t2"), headers=ADMIN)
    assert other.json() == unknown.json()
    assert other.json()["error"]["name"] == "NotFoundError"


@pytest.mark.parametrize("state", ["expired", "revoked"], ids=["expired", "revoked"])
def test_dead_token_of_another_tenant_is_401_not_404(
    keyed: Any, client: httpx.Client, state: str
) -> None:
    setup(client, "t2")
    header = _expired(keyed, client) if state == "expired" else _revoked(keyed, client)
    response = client.get(E1.replace("t1", "t2"), headers={"Authorization": header})
    strapi_error(response, 401)


# -- case 59/60: scopes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "status"),
    [
        (["relationship:read", "relationship:create"], 403),
        (["relationship_type:*"], 403),
        (["relationship_type:list"], 403),
        (["relationship:list"], 200),
        (["relationship:*"], 200),
        (["*"], 200),
    ],
    ids=["other-actions", "other-family-star", "other-family-list", "exact", "family-star", "star"],
)
def test_list_route_needs_relationship_list_or_a_wildcard(
    client: httpx.Client, scopes: list[str], status: int
) -> None:
    token = new_token(client, scopes)
    response = client.get(E1, headers=bearer(token["token"]))
    assert response.status_code == status, response.text
    if status == 403:
        error = strapi_error(response, 403)
        assert error["message"] == "Missing scope relationship:list"
        assert error["details"] == {"missing_scopes": ["relationship:list"]}
    else:
        assert response.json()["data"] == []


def test_relationship_star_token_creates_relations(keyed: Any, client: httpx.Client) -> None:
    register(keyed, "t1", "contact", "works_at", "company")
    token = new_token(client, ["relationship:*"])
    body = {"target_entity_id": "company:1", "relation_type": "works_at"}
    response = client.post(E1, json=body, headers=bearer(token["token"]))
    assert response.status_code == 201, response.text
    listed = client.get(E1, headers=bearer(token["token"])).json()["data"]
    assert [r["target_entity_id"] for r in listed] == ["company:1"]


@pytest.mark.parametrize(
    ("method", "body", "missing"),
    [
        ("POST", b"{not json", "relationship:create"),
        ("POST", b'{"relation_type": 5}', "relationship:create"),
        ("PUT", b"[1, 2]", "relationship:update"),
        ("PUT", b'{"data": {"works_at": {"connect": [], "foo": 1}}}', "relationship:update"),
    ],
    ids=["e2-bad-json", "e2-bad-field", "e6-not-object", "e6-bad-op"],
)
def test_missing_scope_is_403_before_the_body_is_validated(
    client: httpx.Client, method: str, body: bytes, missing: str
) -> None:
    reader = new_token(client, ["relationship:list", "relationship:read"])
    headers = {"Content-Type": "application/json"}
    response = client.request(
        method, E1, content=body, headers={**headers, **bearer(reader["token"])}
    )
    error = strapi_error(response, 403)
    assert error["details"] == {"missing_scopes": [missing]}
    # the same body with the scope is a 400: the order, not the body, made the 403
    writer = new_token(client, ["relationship:*"])
    response = client.request(
        method, E1, content=body, headers={**headers, **bearer(writer["token"])}
    )
    strapi_error(response, 400)


# -- open mode and key handling -------------------------------------------------------------


def test_without_preshared_keys_anonymous_is_admin_but_a_bad_pat_is_401(
    start_server: Callable[..., Any],
) -> None:
    server = start_server()
    with server.client() as client:
        response = client.post("/v1/tenants/t1/schemas/write", json={"schema": SCHEMA})
        assert response.status_code == 200, response.text
        assert client.get(E1).status_code == 200
        assert client.get(E1, headers=bearer("anything")).status_code == 200
        created = client.post("/v1/tenants/t1/tokens", json={"name": "x", "scopes": ["*"]})
        assert created.status_code == 201, created.text
        response = client.get(E1, headers=bearer("pat_" + "z" * 32))
        strapi_error(response, 401)
        assert response.headers["WWW-Authenticate"] == INVALID_TOKEN
        limited = client.post(
            "/v1/tenants/t1/tokens", json={"name": "y", "scopes": ["relationship:read"]}
        ).json()["data"]
        response = client.get(E1, headers=bearer(limited["token"]))
        assert strapi_error(response, 403)["details"] == {"missing_scopes": ["relationship:list"]}
        everything = bearer(created.json()["data"]["token"])
        assert client.get(E1, headers=everything).status_code == 200
        response = client.get("/v1/tenants/t1/tokens", headers=everything)
        strapi_error(response, 403)


def test_a_preshared_key_that_looks_like_a_pat_is_still_the_admin_key(
    start_server: Callable[..., Any],
) -> None:
    key = "pat_" + "K" * 32
    server = start_server(preshared_keys=(key,))
    with server.client() as client:
        response = client.post(
            "/v1/tenants/t1/schemas/write", json={"schema": SCHEMA}, headers=bearer(key)
        )
        assert response.status_code == 200, response.text
        assert client.get(E1, headers=bearer(key)).status_code == 200
        response = client.post(
            "/v1/tenants/t1/tokens", json={"name": "x", "scopes": ["*"]}, headers=bearer(key)
        )
        assert response.status_code == 201, response.text


# -- settings ---------------------------------------------------------------------------------

CUSTOM = {
    "person_type": "member",
    "require_schema_relation": False,
    "read_permission": "read",
    "write_permission": "manage",
    "data_model": {
        "model": "link",
        "ref_type": "person",
        "mirror_hook": "pair_relationship",
        "kinds": {"boss": "staff", "staff": "boss", "peer": "peer"},
    },
}


def test_settings_start_at_the_defaults_and_round_trip(keyed: Any, client: httpx.Client) -> None:
    path = "/v1/tenants/t1/relations/settings"
    first = client.get(path, headers=ADMIN)
    assert first.status_code == 200
    assert first.json()["data"] == asdict(Settings())
    assert isinstance(first.json()["meta"]["snap_token"], str)

    put = client.put(path, json={**CUSTOM, "unknown_key": 1}, headers=ADMIN)
    assert put.status_code == 200, put.text
    assert put.json()["data"] == CUSTOM
    assert put.json()["meta"]["snap_token"] != first.json()["meta"]["snap_token"]
    again = client.get(path, headers=ADMIN).json()
    assert again["data"] == CUSTOM
    assert again["meta"]["snap_token"] == put.json()["meta"]["snap_token"]
    assert asdict(keyed.app[SERVICES].relations.settings("t1")) == CUSTOM


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, asdict(Settings())),
        ({"data_model": None}, {**asdict(Settings()), "data_model": None}),
        (
            {"read_permission": "see", "data_model": {"kinds": {"twin": "twin"}}},
            {
                **asdict(Settings()),
                "read_permission": "see",
                "data_model": {**asdict(Settings())["data_model"], "kinds": {"twin": "twin"}},
            },
        ),
    ],
    ids=["empty-is-defaults", "null-data-model-disables-records", "partial-data-model"],
)
def test_settings_put_replaces_everything_missing_fields_take_defaults(
    client: httpx.Client, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    path = "/v1/tenants/t1/relations/settings"
    assert client.put(path, json=CUSTOM, headers=ADMIN).status_code == 200
    response = client.put(path, json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == expected
    assert client.get(path, headers=ADMIN).json()["data"] == expected


def _model(**fields: Any) -> dict[str, Any]:
    return {"data_model": {**CUSTOM["data_model"], **fields}}  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"person_type": "Person"}, [["person_type"]]),
        ({"person_type": None}, [["person_type"]]),
        ({"person_type": "p" * 65}, [["person_type"]]),
        ({"require_schema_relation": "true"}, [["require_schema_relation"]]),
        ({"read_permission": "can view"}, [["read_permission"]]),
        ({"write_permission": 3}, [["write_permission"]]),
        ({"data_model": []}, [["data_model"]]),
        (_model(model="Bad-Model"), [["data_model", "model"]]),
        (_model(ref_type=""), [["data_model", "ref_type"]]),
        (_model(mirror_hook="other_hook"), [["data_model", "mirror_hook"]]),
        (_model(kinds={}), [["data_model", "kinds"]]),
        (_model(kinds=["parent"]), [["data_model", "kinds"]]),
        (_model(kinds={"parent": "child"}), [["data_model", "kinds", "parent"]]),
        (_model(kinds={"Parent": "Parent"}), [["data_model", "kinds", "Parent"]]),
        (_model(kinds={"peer": 1}), [["data_model", "kinds", "peer"]]),
        (
            {
                "person_type": "X",
                "require_schema_relation": 1,
                "read_permission": "",
                "write_permission": "a b",
                "data_model": {"mirror_hook": None, "kinds": {"a": "b"}},
            },
            [
                ["person_type"],
                ["require_schema_relation"],
                ["read_permission"],
                ["write_permission"],
                ["data_model", "mirror_hook"],
                ["data_model", "kinds", "a"],
            ],
        ),
    ],
    ids=[
        "person-type-uppercase",
        "person-type-null",
        "person-type-too-long",
        "require-not-bool",
        "read-permission-space",
        "write-permission-number",
        "data-model-not-object",
        "model-bad-syntax",
        "ref-type-empty",
        "unknown-mirror-hook",
        "kinds-empty",
        "kinds-not-object",
        "inverse-not-a-kind",
        "kind-bad-syntax",
        "inverse-not-string",
        "every-error-at-once",
    ],
)
def test_settings_put_rejects_invalid_fields_and_keeps_the_old_settings(
    client: httpx.Client, body: dict[str, Any], paths: list[list[Any]]
) -> None:
    path = "/v1/tenants/t1/relations/settings"
    assert client.put(path, json=CUSTOM, headers=ADMIN).status_code == 200
    error = strapi_error(client.put(path, json=body, headers=ADMIN), 400)
    assert [e["path"] for e in error["details"]["errors"]] == paths
    if len(paths) > 1:
        assert error["message"] == f"{len(paths)} errors occurred"
    assert client.get(path, headers=ADMIN).json()["data"] == CUSTOM


def test_settings_of_an_unknown_tenant_are_404(client: httpx.Client) -> None:
    path = "/v1/tenants/ghost/relations/settings"
    strapi_error(client.get(path, headers=ADMIN), 404)
    strapi_error(client.put(path, json={}, headers=ADMIN), 404)


def test_credentials_are_checked_before_the_tenant_id(start_server: Any) -> None:
    server = start_server(preshared_keys=("admin-key",))
    with server.client() as client:
        response = client.get("/v1/tenants/bad*tenant/entities/contact:1/relations")
        assert response.status_code == 401
        response = client.get(
            "/v1/tenants/bad*tenant/entities/contact:1/relations",
            headers={"Authorization": "Bearer admin-key"},
        )
        assert response.status_code == 400
        assert response.json()["error"]["details"]["errors"][0]["path"] == ["tenant_id"]
