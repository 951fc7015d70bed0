"""The client commands (`schema push|pull`, `check`, `tuples write|read|delete`) against a real
server, through click's CliRunner: output, exit codes and error messages."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from api.cli import main
from api.client import Client, ClientError
from tests.api.conftest import Server

SCHEMA = """entity user {}

entity group {
    relation member @user
}

entity doc {
    relation owner @user
    relation viewer @user @group#member
    permission view = viewer or owner
}
"""
OTHER = "entity user {}\n\nentity doc {\n    relation owner @user\n}\n"
BAD = "entity doc {\n    relation owner @usr\n    permission edit = ownr\n}\n"


@dataclass(frozen=True)
class Target:
    """A server and a tenant on it; ``tenant`` None leaves --tenant out."""

    url: str
    tenant: str | None = None


@pytest.fixture(autouse=True)
def _no_stonetown_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("STONETOWN_")]:
        monkeypatch.delenv(name)


def cli(
    target: Target, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> Result:
    where = ["--url", target.url] + (["--tenant", target.tenant] if target.tenant else [])
    return CliRunner().invoke(main, [*args, *where], input=stdin, env=env, catch_exceptions=False)


def _ok(result: Result) -> str:
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def fresh(module_server: Server) -> Target:
    """A new, empty tenant on the module's server."""
    tenant = f"client{next(_TENANTS)}"
    with module_server.client() as client:
        assert client.post("/v1/tenants/create", json={"id": tenant}).is_success
    return Target(module_server.url, tenant)


_TENANTS = itertools.count()


@pytest.fixture
def loaded(fresh: Target, tmp_path: Path) -> Target:
    """A tenant with SCHEMA and a few tuples."""
    path = tmp_path / "schema.perm"
    path.write_text(SCHEMA)
    _ok(cli(fresh, "schema", "push", str(path)))
    _ok(
        cli(
            fresh,
            "tuples",
            "write",
            "doc:1#viewer@user:1",
            "doc:2#viewer@group:1#member",
            "group:1#member@user:2",
            "doc:3#owner@user:3",
        )
    )
    return fresh


# -- schema push / pull ---------------------------------------------------------------------


def test_schema_push_prints_the_version_and_pull_prints_the_text(
    fresh: Target, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.perm", tmp_path / "second.perm"
    first.write_text(SCHEMA)
    second.write_text(OTHER)
    v1 = _ok(cli(fresh, "schema", "push", str(first))).strip()
    v2 = _ok(cli(fresh, "schema", "push", "-", stdin=OTHER)).strip()
    assert v1 and v2 and v1 != v2
    assert _ok(cli(fresh, "schema", "pull")) == OTHER
    assert _ok(cli(fresh, "schema", "pull", "--version", v1)) == SCHEMA


def test_schema_push_of_a_bad_schema_prints_every_error_at_line_col(
    fresh: Target, tmp_path: Path
) -> None:
    path = tmp_path / "bad.perm"
    path.write_text(BAD)
    result = cli(fresh, "schema", "push", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}:2:21: unknown entity `usr` in subject type `@usr`",
        f"{path}:3:23: `ownr` is not a relation, permission or attribute of entity `doc` "
        "(did you mean `owner`?)",
    ]


def test_schema_pull_without_a_schema_reports_the_404(fresh: Target) -> None:
    result = cli(fresh, "schema", "pull")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert result.stderr.rstrip().endswith("(HTTP 404, ERROR_CODE_SCHEMA_NOT_FOUND)")


# -- check ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity", "permission", "subject", "answer", "code"),
    [
        ("doc:1", "view", "user:1", "ALLOWED", 0),
        ("doc:1", "view", "user:2", "DENIED", 1),
        ("doc:2", "view", "user:2", "ALLOWED", 0),
        ("doc:2", "viewer", "group:1#member", "ALLOWED", 0),
        ("doc:3", "view", "user:3", "ALLOWED", 0),
    ],
    ids=["direct", "denied", "through-group", "userset-subject", "owner"],
)
def test_check_prints_the_answer_and_exits_0_allowed_1_denied(
    loaded: Target, entity: str, permission: str, subject: str, answer: str, code: int
) -> None:
    result = cli(loaded, "check", entity, permission, subject)
    assert (result.exit_code, result.stdout) == (code, answer + "\n")


def test_check_at_a_snap_token_sees_that_snapshot(loaded: Target) -> None:
    before = _ok(cli(loaded, "tuples", "write", "doc:9#viewer@user:9")).strip()
    _ok(cli(loaded, "tuples", "delete", "--entity-type", "doc", "--entity-id", "9"))
    assert cli(loaded, "check", "doc:9", "view", "user:9").exit_code == 1
    result = cli(loaded, "check", "doc:9", "view", "user:9", "--snap-token", before)
    assert (result.exit_code, result.stdout) == (0, "ALLOWED\n")
    assert _ok(cli(loaded, "check", "doc:2", "view", "user:2", "--depth", "10")) == "ALLOWED\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["doc:1", "vew", "user:1"], "(HTTP 400, ERROR_CODE_PERMISSION_NOT_FOUND)"),
        (["folder:1", "view", "user:1"], "(HTTP 400, ERROR_CODE_ENTITY_TYPE_NOT_FOUND)"),
        (["doc:1", "view", "user:1", "--snap-token", "bogus"], "(HTTP 400, ERROR_CODE_"),
        (["doc1", "view", "user:1"], "entity 'doc1' is not of the form type:id"),
        (["doc:1", "view", "user:1#"], "is not of the form type:id[#relation]"),
        (["doc:1", "view", "user:1", "--depth", "2"], "2 is not in the range x>=3"),
    ],
    ids=[
        "unknown-permission",
        "unknown-entity-type",
        "bad-snap-token",
        "bad-entity",
        "bad-subject",
        "depth-too-small",
    ],
)
def test_check_without_an_answer_exits_2(loaded: Target, args: list[str], message: str) -> None:
    result = cli(loaded, "check", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr


# -- tuples ---------------------------------------------------------------------------------


def test_tuples_write_takes_arguments_or_stdin_and_prints_a_snap_token(loaded: Target) -> None:
    stdin = "# comment\n\ndoc:5#viewer@user:5\ndoc:6#viewer@group:1#member\n"
    token = _ok(cli(loaded, "tuples", "write", "-", "doc:7#owner@user:7", stdin=stdin)).strip()
    assert token
    out = _ok(cli(loaded, "tuples", "read", "--entity-type", "doc", "--snap-token", token))
    assert set(out.splitlines()) >= {
        "doc:5#viewer@user:5",
        "doc:6#viewer@group:1#member",
        "doc:7#owner@user:7",
    }


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            [],
            [
                "doc:1#viewer@user:1",
                "doc:2#viewer@group:1#member",
                "doc:3#owner@user:3",
                "group:1#member@user:2",
            ],
        ),
        (
            ["--entity-type", "doc", "--relation", "viewer"],
            ["doc:1#viewer@user:1", "doc:2#viewer@group:1#member"],
        ),
        (
            ["--entity-type", "doc", "--entity-id", "1", "--entity-id", "3"],
            ["doc:1#viewer@user:1", "doc:3#owner@user:3"],
        ),
        (["--subject-type", "user", "--subject-id", "2"], ["group:1#member@user:2"]),
        (["--entity-type", "doc", "--subject-relation", "member"], ["doc:2#viewer@group:1#member"]),
        (
            ["--entity-type", "doc", "--subject-relation", "..."],
            ["doc:1#viewer@user:1", "doc:3#owner@user:3"],
        ),
        (
            ["--entity-type", "doc", "--page-size", "1"],
            ["doc:1#viewer@user:1", "doc:2#viewer@group:1#member", "doc:3#owner@user:3"],
        ),
    ],
    ids=["all", "relation", "entity-ids", "subject", "subject-relation", "plain-subjects", "pages"],
)
def test_tuples_read_prints_the_matching_tuples(
    loaded: Target, flags: list[str], expected: list[str]
) -> None:
    assert sorted(_ok(cli(loaded, "tuples", "read", *flags)).splitlines()) == sorted(expected)


def test_tuples_read_follows_every_page(loaded: Target) -> None:
    _ok(
        cli(
            loaded,
            "tuples",
            "write",
            "-",
            stdin="".join(f"doc:p{i}#owner@user:{i}\n" for i in range(25)),
        )
    )
    out = _ok(cli(loaded, "tuples", "read", "--relation", "owner", "--page-size", "4"))
    assert len(out.splitlines()) == 26
    assert len(set(out.splitlines())) == 26


def test_tuples_delete_removes_the_matching_tuples(loaded: Target) -> None:
    token = _ok(cli(loaded, "tuples", "delete", "--entity-type", "doc", "--relation", "viewer"))
    assert token.strip()
    assert _ok(cli(loaded, "tuples", "read", "--entity-type", "doc")) == "doc:3#owner@user:3\n"
    assert cli(loaded, "check", "doc:1", "view", "user:1").exit_code == 1


def test_tuples_delete_refuses_an_empty_filter(loaded: Target) -> None:
    result = cli(loaded, "tuples", "delete")
    assert result.exit_code == 2
    assert "an empty filter would delete every tuple" in result.stderr
    assert len(_ok(cli(loaded, "tuples", "read")).splitlines()) == 4


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["doc:1#viewer"], 2, "argument 'doc:1#viewer': invalid tuple"),
        (["doc:1#viewr@user:1"], 1, "(HTTP 400, ERROR_CODE_RELATION_DEFINITION_NOT_FOUND)"),
        (["doc:1#viewer@doc:2"], 1, "(HTTP 400, ERROR_CODE_SUBJECT_TYPE_NOT_FOUND)"),
    ],
    ids=["not-a-tuple", "unknown-relation", "wrong-subject-type"],
)
def test_tuples_write_reports_bad_tuples(
    loaded: Target, args: list[str], code: int, message: str
) -> None:
    result = cli(loaded, "tuples", "write", *args)
    assert result.exit_code == code
    assert message in result.stderr
    assert len(_ok(cli(loaded, "tuples", "read")).splitlines()) == 4


# -- connection, tenant and key -------------------------------------------------------------


def test_unreachable_server_is_one_clear_message_and_exit_1(refused_url: str) -> None:
    url = refused_url
    for args in (["tuples", "read"], ["schema", "pull"], ["tuples", "write", "doc:1#owner@user:1"]):
        result = cli(Target(url), *args)
        assert result.exit_code == 1, args
        assert result.stderr.startswith(f"error: cannot connect to {url}: ")
        assert "Traceback" not in result.stderr
    result = cli(Target(url), "check", "doc:1", "view", "user:1")
    assert result.exit_code == 2  # check: no answer is neither ALLOWED nor DENIED
    assert "cannot connect" in result.stderr


def test_unknown_tenant_is_a_404(loaded: Target) -> None:
    result = cli(Target(loaded.url, "nope"), "tuples", "read")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: tenant 'nope' does not exist (HTTP 404, ERROR_CODE_TENANT_NOT_FOUND)"
    ]


def test_tenant_comes_from_stonetown_tenant(loaded: Target) -> None:
    server = Target(loaded.url)
    assert cli(server, "tuples", "read", env={"STONETOWN_TENANT": "nope"}).exit_code == 1
    result = cli(server, "tuples", "read", env={"STONETOWN_TENANT": str(loaded.tenant)})
    assert len(_ok(result).splitlines()) == 4


def test_url_comes_from_stonetown_url(loaded: Target) -> None:
    result = CliRunner().invoke(
        main,
        ["check", "doc:1", "view", "user:1", "--tenant", str(loaded.tenant)],
        env={"STONETOWN_URL": loaded.url},
    )
    assert (result.exit_code, result.stdout) == (0, "ALLOWED\n")


def test_key_from_flag_or_env_and_401_without(start_server: Callable[..., Server]) -> None:
    server = Target(start_server(preshared_keys=("k1",)).url)
    missing = cli(server, "tuples", "read")
    assert missing.exit_code == 1
    assert missing.stderr.splitlines() == [
        "error: missing bearer token: send `Authorization: Bearer <key>` "
        "(HTTP 401, ERROR_CODE_MISSING_BEARER_TOKEN)",
        "give the key with --key or STONETOWN_KEY",
    ]
    wrong = cli(server, "tuples", "read", "--key", "k2")
    assert wrong.exit_code == 1
    assert "(HTTP 401, ERROR_CODE_INVALID_BEARER_TOKEN)" in wrong.stderr
    assert cli(server, "tuples", "read", "--key", "k1").exit_code == 0
    assert cli(server, "tuples", "read", env={"STONETOWN_KEY": "k1"}).exit_code == 0


# -- the client against servers that are not Stonetown ----------------------------------------


def _answering(status: int, **kwargs: Any) -> Client:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, **kwargs))
    return Client("http://elsewhere", transport=transport)


def test_schema_read_from_a_server_without_the_extension_has_no_text() -> None:
    with _answering(200, json={"schema": {"entity_definitions": {}}}) as client:
        found = client.read_schema()
    assert (found.definition, found.text) == ({"entity_definitions": {}}, None)


@pytest.mark.parametrize(
    ("status", "body", "message", "reason"),
    [
        (502, {"text": "<html>Bad Gateway</html>"}, "HTTP 502: <html>Bad Gateway</html>", ""),
        (503, {"content": b""}, "HTTP 503: Service Unavailable", ""),
        (
            404,
            {"json": {"code": 5, "message": "gone", "details": [{"reason": "ERROR_CODE_X"}]}},
            "gone",
            "ERROR_CODE_X",
        ),
        (200, {"text": "not json"}, "http://elsewhere/v1/tenants/t1/data/write answered 200", ""),
    ],
    ids=["html-error", "empty-error", "permify-error", "success-not-json"],
)
def test_client_error_describes_any_answer(
    status: int, body: dict[str, Any], message: str, reason: str
) -> None:
    with _answering(status, **body) as client, pytest.raises(ClientError) as caught:
        client.write_data([])
    assert caught.value.message.startswith(message)
    assert (caught.value.status, caught.value.reason) == (status, reason)
