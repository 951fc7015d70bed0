"""`stonetown relationship list|get|create|upsert|schema` against a real server through click's
CliRunner (records, NDJSON output, exit codes, error messages), and its retries against small
stub servers that answer what a test tells them to."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from api.cli import main
from api.client import ClientError, RecordsClient, Retry
from tests.api.conftest import Server
from tests.api.relations_support import CONTACT_SCHEMA, KINDS, RECORD_FIELDS, UNKNOWN_KIND

INVERSE = {"parent": "child", "child": "parent", "manager": "report", "report": "manager"}
INVERSE |= {"mentor": "mentee", "mentee": "mentor"}


@dataclass(frozen=True)
class Target:
    url: str
    tenant: str


@pytest.fixture(autouse=True)
def _no_stonetown_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("STONETOWN_")]:
        monkeypatch.delenv(name)


def cli(target: Target, *args: str, stdin: str | None = None) -> Result:
    where = ["--url", target.url, "--tenant", target.tenant]
    return CliRunner().invoke(main, [*args, *where], input=stdin, catch_exceptions=False)


def _ok(result: Result) -> str:
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def _ndjson(items: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(item) + "\n" for item in items)


_TENANTS = itertools.count()


def _contacts_tenant(server: Server) -> Target:
    tenant = f"contacts{next(_TENANTS)}"
    with server.client() as client:
        assert client.post("/v1/tenants/create", json={"id": tenant}).is_success
        written = client.post(
            f"/v1/tenants/{tenant}/schemas/write", json={"schema": CONTACT_SCHEMA}
        )
        assert written.is_success, written.text
    return Target(server.url, tenant)


@pytest.fixture
def contacts(module_server: Server) -> Target:
    """A new tenant whose schema declares contact with the 12 kinds, each @contact."""
    return _contacts_tenant(module_server)


def create(target: Target, parent: str, kind: str, child: str, *extra: str) -> dict[str, Any]:
    out = _ok(
        cli(
            target,
            "relationship",
            "create",
            "--parent-id",
            parent,
            "--kind",
            kind,
            "--target-id",
            child,
            *extra,
        )
    )
    [record] = lines(out)
    return record


@dataclass(frozen=True)
class Populated:
    target: Target
    created: list[dict[str, Any]]  # the 23 records `create` printed (not their mirrors)


@pytest.fixture(scope="module")
def populated(module_server: Server) -> Populated:
    """23 records (46 with their mirrors) of every kind: more than two pages of 20."""
    target = _contacts_tenant(module_server)
    created = [
        create(target, f"p{i}", KINDS[i % len(KINDS)], f"t{i % 5}", "--label", f"L{i}")
        for i in range(23)
    ]
    return Populated(target, created)


def _all(populated: Populated) -> list[dict[str, Any]]:
    out = _ok(cli(populated.target, "relationship", "list", "--sort", "created_at"))
    return lines(out)


# -- create / get / list ------------------------------------------------------------------------


def test_create_prints_the_record_and_get_prints_it_again(contacts: Target) -> None:
    result = cli(
        contacts,
        "relationship",
        "create",
        "--parent-id",
        "c1",
        "--target-id",
        "c2",
        "--kind",
        "parent",
        "--label",
        "Mom",
        "--since",
        "1990",
    )
    out = _ok(result)
    assert out.count("\n") == 1
    record = json.loads(out)
    assert set(record) == set(RECORD_FIELDS)
    assert {
        k: record[k] for k in ("kind", "label", "notes", "since", "parent_id", "target_id")
    } == {
        "kind": "parent",
        "label": "Mom",
        "notes": None,
        "since": "1990",
        "parent_id": "c1",
        "target_id": "c2",
    }
    assert record["is_mirror"] is False
    assert _ok(cli(contacts, "relationship", "get", record["id"])) == out
    mirror = lines(_ok(cli(contacts, "relationship", "get", record["pair_id"])))[0]
    assert (mirror["kind"], mirror["parent_id"], mirror["target_id"]) == ("child", "c2", "c1")
    assert (mirror["label"], mirror["is_mirror"], mirror["pair_id"]) == ("Mom", True, record["id"])


def test_list_follows_the_pages_to_every_record(populated: Populated) -> None:
    everything = lines(
        _ok(
            cli(
                populated.target,
                "relationship",
                "list",
                "--sort",
                "created_at",
                "--page-size",
                "20",
            )
        )
    )
    assert len(everything) == 46
    ids = [r["id"] for r in everything]
    assert len(set(ids)) == 46
    created = {r["id"] for r in populated.created}
    mirrors = {r["pair_id"] for r in populated.created}
    assert set(ids) == created | mirrors
    assert all(set(r) == set(RECORD_FIELDS) for r in everything)


def _sorted(records: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    name, descending = sort.lstrip("-"), sort.startswith("-")
    if name == "created_at":
        return sorted(records, key=lambda r: (r["created_at"], r["id"]), reverse=descending)
    return sorted(records, key=lambda r: (r["kind"], r["created_at"], r["id"]), reverse=descending)


@pytest.mark.parametrize(
    "sort",
    [None, "kind", "-kind", "created_at", "-created_at"],
    ids=["default-kind-offset", "kind-offset", "desc-kind-offset", "keyset", "desc-keyset"],
)
def test_list_sorts_across_pages(populated: Populated, sort: str | None) -> None:
    args = ["--page-size", "20"] + (["--sort", sort] if sort else [])
    out = lines(_ok(cli(populated.target, "relationship", "list", *args)))
    assert [r["id"] for r in out] == [r["id"] for r in _sorted(_all(populated), sort or "kind")]


@pytest.mark.parametrize(
    ("limit", "page_size"),
    [("1", "20"), ("20", "20"), ("30", "20"), ("45", "7"), ("46", "200"), ("100", "20")],
    ids=["one", "one-page", "page-and-a-half", "small-pages", "exactly-all", "more-than-all"],
)
def test_list_stops_at_the_limit(populated: Populated, limit: str, page_size: str) -> None:
    args = ["--sort", "-created_at", "--limit", limit, "--page-size", page_size]
    out = lines(_ok(cli(populated.target, "relationship", "list", *args)))
    expected = _sorted(_all(populated), "-created_at")[: int(limit)]
    assert [r["id"] for r in out] == [r["id"] for r in expected]


@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        (["kind=parent"], lambda r: r["kind"] == "parent"),
        (["kind=parent", "kind=child"], lambda r: r["kind"] in ("parent", "child")),
        (["target_id=t1"], lambda r: r["target_id"] == "t1"),
        (
            ["parent_id=t2", "kind=friend"],
            lambda r: r["parent_id"] == "t2" and r["kind"] == "friend",
        ),
        (["is_archived=false", "kind=other"], lambda r: r["kind"] == "other"),
        (["kind=spouse", "parent_id=nobody"], lambda r: False),
    ],
    ids=["one-kind", "repeated-key-is-any", "target", "keys-and", "boolean", "none"],
)
def test_list_filters(
    populated: Populated, filters: list[str], keep: Callable[[dict[str, Any]], bool]
) -> None:
    args = [arg for f in filters for arg in ("--filter", f)]
    out = _ok(cli(populated.target, "relationship", "list", "--page-size", "3", *args))
    expected = [r["id"] for r in _sorted(_all(populated), "kind") if keep(r)]
    assert [r["id"] for r in lines(out)] == expected
    assert expected or out == ""


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--filter", "colour=red"],
            1,
            "error: unknown query parameter colour (known: after, is_archived, kind, limit, "
            "offset, owned_by, parent_id, sort, status, target_id) (HTTP 400, ValidationError)\n",
        ),
        (
            ["--filter", "knd=friend"],
            1,
            "error: unknown query parameter knd; did you mean kind? (known: after, is_archived, "
            "kind, limit, offset, owned_by, parent_id, sort, status, target_id) "
            "(HTTP 400, ValidationError)\n",
        ),
        (
            ["--filter", "kind=cousin"],
            1,
            f"error: {UNKNOWN_KIND} (HTTP 400, ValidationError)\n",
        ),
        (
            ["--filter", "kind="],
            1,
            "error: kind must not be empty (HTTP 400, ValidationError)\n",
        ),
        (
            ["--sort", "label"],
            1,
            "error: cannot sort by 'label': sort keys are created_at, kind "
            "(HTTP 400, ValidationError)\n",
        ),
        (["--filter", "kind"], 2, "'kind' is not KEY=VALUE"),
        (["--limit", "0"], 2, "0 is not in the range x>=1"),
        (["--page-size", "201"], 2, "201 is not in the range 1<=x<=200"),
    ],
    ids=[
        "unknown-filter",
        "misspelt-filter",
        "unknown-kind",
        "empty-value",
        "bad-sort",
        "not-k=v",
        "limit-0",
        "page-201",
    ],
)
def test_list_reports_bad_queries(
    contacts: Target, args: list[str], code: int, message: str
) -> None:
    result = cli(contacts, "relationship", "list", *args)
    assert (result.exit_code, result.stdout) == (code, "")
    if code == 1:
        assert result.stderr == message
    else:
        assert message in result.stderr


def test_get_of_a_missing_record_is_the_servers_404(contacts: Target) -> None:
    result = cli(contacts, "relationship", "get", "rel-nope")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "error: relation rel-nope not found (HTTP 404, NotFoundError)\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--parent-id", "c1", "--target-id", "c2", "--kind", "cousin"],
            UNKNOWN_KIND,
        ),
        (
            ["--parent-id", "c1", "--target-id", "c2", "--kind", "friend", "--label", "x" * 81],
            "label must be at most 80 characters",
        ),
        (
            ["--parent-id", "c1", "--target-id", "c1", "--kind", "friend"],
            "target_id must be a different contact than parent_id",
        ),
        (
            ["--parent-id", "c 1", "--target-id", "c2", "--kind", "cousin", "--since", "s" * 33],
            f"3 errors occurred: {UNKNOWN_KIND}; since must be at most 32 characters; "
            "parent_id must be an id of letters, digits and _ - @ . : +",
        ),
    ],
    ids=["unknown-kind", "label-too-long", "self-link", "several-errors"],
)
def test_create_reports_the_servers_validation_message(
    contacts: Target, args: list[str], message: str
) -> None:
    result = cli(contacts, "relationship", "create", *args)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"error: {message} (HTTP 400, ValidationError)\n"
    assert _ok(cli(contacts, "relationship", "list")) == ""


def test_create_of_an_existing_relation_is_a_conflict(contacts: Target) -> None:
    create(contacts, "c1", "friend", "c2")
    result = cli(
        contacts,
        "relationship",
        "create",
        "--parent-id",
        "c2",
        "--target-id",
        "c1",
        "--kind",
        "friend",
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "error: the relation contact:c2#friend@contact:c1 already exists "
        "(HTTP 409, ConflictError)\n"
    )


def test_schema_prints_the_servers_record_description(
    contacts: Target, module_server: Server
) -> None:
    out = _ok(cli(contacts, "relationship", "schema"))
    document = json.loads(out)
    with module_server.client() as client:
        answer = client.get(f"/v1/tenants/{contacts.tenant}/xapi2/schema/relationship")
    assert document == answer.json()["data"]
    fields = {f["name"]: f for f in document["fields"]}
    assert fields["kind"]["enum"] == KINDS
    assert [n for n, f in fields.items() if f["create"] and not f["patch"]] == [
        "kind",
        "parent_id",
        "target_id",
    ]


def test_a_tenant_without_the_contact_schema_is_a_404(module_server: Server) -> None:
    tenant = f"bare{next(_TENANTS)}"
    with module_server.client() as client:
        assert client.post("/v1/tenants/create", json={"id": tenant}).is_success
    result = cli(Target(module_server.url, tenant), "relationship", "schema")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: tenant {tenant} has no schema yet")
    assert result.stderr.endswith("(HTTP 404, NotFoundError)\n")


# -- upsert ---------------------------------------------------------------------------------------


def _find(target: Target, parent: str, child: str) -> list[dict[str, Any]]:
    out = _ok(
        cli(
            target,
            "relationship",
            "list",
            "--filter",
            f"parent_id={parent}",
            "--filter",
            f"target_id={child}",
        )
    )
    return lines(out)


def upsert(target: Target, unique: str, csv_path: Path | str, stdin: str | None = None) -> Result:
    return cli(
        target, "relationship", "upsert", "--unique", unique, "--csv", str(csv_path), stdin=stdin
    )


def test_upsert_creates_updates_and_reports_row_errors(contacts: Target, tmp_path: Path) -> None:
    updated = create(contacts, "c1", "friend", "c2", "--label", "old")
    same = create(contacts, "c3", "colleague", "c4", "--label", "same", "--notes", "n")
    sibling = create(contacts, "c5", "sibling", "c6")
    create(contacts, "c7", "friend", "c8")
    create(contacts, "c7", "colleague", "c8")
    path = tmp_path / "rows.csv"
    path.write_text(
        "parent_id,target_id,kind,label,notes,colour\n"
        "c1,c2,friend,new,,\n"  # 1: label differs
        "c3,c4,colleague,same,,\n"  # 2: nothing differs (empty notes: not sent)
        "c9,c10,mentor,Boss,,\n"  # 3: no match
        "c11,c12,partner,,,blue\n"  # 4: a non-empty cell in an unknown column
        "c5,c6,spouse,,,\n"  # 5: kind is create-only
        "c7,c8,friend,,,\n"  # 6: two records c7 -> c8
        f"c13,c14,friend,{'x' * 81},,\n"  # 7: the server refuses the label
        "c2,c1,friend,new,,\n"  # 8: row 1's mirror, which row 1 updated too
        "c3,c4,,,fresh,\n"  # 9: notes differ; no kind cell: not compared
    )
    result = upsert(contacts, "parent_id,target_id", path)
    assert result.exit_code == 1, result.stderr
    [mentor] = _find(contacts, "c9", "c10")
    assert (
        _ndjson(
            [
                {"row": 1, "action": "updated", "id": updated["id"], "error": None},
                {"row": 2, "action": "unchanged", "id": same["id"], "error": None},
                {"row": 3, "action": "created", "id": mentor["id"], "error": None},
                {"row": 4, "action": "error", "id": None, "error": "unknown column colour"},
                {"row": 5, "action": "error", "id": sibling["id"], "error": "immutable field kind"},
                {"row": 6, "action": "error", "id": None, "error": "ambiguous match (2)"},
                {
                    "row": 7,
                    "action": "error",
                    "id": None,
                    "error": "label must be at most 80 characters",
                },
                {"row": 8, "action": "unchanged", "id": updated["pair_id"], "error": None},
                {"row": 9, "action": "updated", "id": same["id"], "error": None},
            ]
        )
        == result.stdout
    )
    assert result.stderr == "upserted 9 rows: 1 created, 2 updated, 2 unchanged, 4 error\n"
    assert (mentor["kind"], mentor["label"], mentor["notes"]) == ("mentor", "Boss", None)
    assert [(r["kind"], r["label"]) for r in _find(contacts, "c1", "c2")] == [("friend", "new")]
    assert [(r["label"], r["notes"]) for r in _find(contacts, "c3", "c4")] == [("same", "fresh")]
    assert [r["kind"] for r in _find(contacts, "c5", "c6")] == ["sibling"]
    assert _find(contacts, "c11", "c12") == _find(contacts, "c13", "c14") == []

    again = upsert(contacts, "parent_id,target_id", path)
    assert again.exit_code == 1
    second = lines(again.stdout)
    assert [r["action"] for r in second] == [
        "unchanged",
        "unchanged",
        "unchanged",
        "error",
        "error",
        "error",
        "error",
        "unchanged",
        "unchanged",
    ]
    assert [r["id"] for r in second] == [r["id"] for r in lines(result.stdout)]
    assert [r["error"] for r in second] == [r["error"] for r in lines(result.stdout)]


def test_a_second_identical_upsert_changes_nothing(contacts: Target) -> None:
    csv_text = (
        "kind,parent_id,target_id,label,notes,since\n"
        "parent,a1,b1,Mom,,1990\n"
        'friend,a2,b2,,"likes, commas",\n'
        "\n"  # a blank line is no row
        "mentor,a3,b3,Boss\n"  # fewer cells: the rest are empty
    )
    unique = "parent_id,target_id,kind"
    first = upsert(contacts, unique, "-", stdin=csv_text)
    assert first.exit_code == 0, first.stdout + first.stderr
    assert [(r["row"], r["action"], r["error"]) for r in lines(first.stdout)] == [
        (1, "created", None),
        (2, "created", None),
        (3, "created", None),
    ]
    second = upsert(contacts, unique, "-", stdin=csv_text)
    assert second.exit_code == 0
    assert second.stdout == _ndjson([{**r, "action": "unchanged"} for r in lines(first.stdout)])
    friend = _ok(cli(contacts, "relationship", "get", lines(first.stdout)[1]["id"]))
    assert json.loads(friend)["notes"] == "likes, commas"


@pytest.mark.parametrize(
    ("row", "error"),
    [
        ("c1,c2,friend,,,x", "6 cells, but the header has 5 columns"),
        ("c1,,friend,,", "empty unique field target_id"),
        (",,friend,,", "empty unique fields parent_id, target_id"),
        ("c1,c2,friend,active,", "field status server-managed, cannot be written"),
        ("c1,c2,friend,,rel-1", "field id server-managed, cannot be written"),
        ("c1,c2,,,", "kind is a required field"),
        ("c1,c1,friend,,", "target_id must be a different contact than parent_id"),
        ("c 1,c2,friend,,", "parent_id must be an id of letters, digits and _ - @ . : +"),
    ],
    ids=[
        "extra-cells",
        "empty-unique",
        "empty-uniques",
        "server-managed",
        "id-column",
        "server-required",
        "server-self-link",
        "server-bad-id",
    ],
)
def test_upsert_row_errors(contacts: Target, row: str, error: str) -> None:
    csv_text = f"parent_id,target_id,kind,status,id\n{row}\nc3,c4,friend,,\n"
    result = upsert(contacts, "parent_id,target_id", "-", stdin=csv_text)
    assert result.exit_code == 1
    first, second = lines(result.stdout)
    assert first == {"row": 1, "action": "error", "id": None, "error": error}
    assert (second["row"], second["action"]) == (2, "created")
    listed = lines(_ok(cli(contacts, "relationship", "list")))
    assert sorted(r["parent_id"] for r in listed) == ["c3", "c4"]


@pytest.mark.parametrize(
    ("unique", "csv_text", "code", "message"),
    [
        ("label", "label\nx\n", 2, "--unique: field label cannot be filtered on (filters: "),
        ("kind,id", "kind,id\nx,y\n", 2, "--unique: field id cannot be filtered on"),
        ("kind", "parent_id\nx\n", 2, "--unique: no column for the unique field kind"),
        ("kind,,x", "kind\nx\n", 2, "give field names separated by commas"),
        ("kind", "", 1, "<stdin>: no header row"),
        ("kind", "kind,kind\nx,y\n", 1, "<stdin>: repeated columns: kind"),
    ],
    ids=["not-a-filter", "id-not-a-filter", "no-column", "empty-name", "empty-file", "repeated"],
)
def test_upsert_refuses_a_bad_setup(
    contacts: Target, unique: str, csv_text: str, code: int, message: str
) -> None:
    result = upsert(contacts, unique, "-", stdin=csv_text)
    assert (result.exit_code, result.stdout) == (code, "")
    assert message in result.stderr


def test_upsert_of_a_missing_file_exits_1(contacts: Target, tmp_path: Path) -> None:
    result = upsert(contacts, "kind", tmp_path / "nope.csv")
    assert result.exit_code == 1
    assert result.stderr == f"{tmp_path / 'nope.csv'}: cannot read: No such file or directory\n"


# -- keys -----------------------------------------------------------------------------------------


def test_key_is_sent_as_a_bearer_token_admin_or_pat(start_server: Callable[..., Server]) -> None:
    server = start_server(preshared_keys=("admin",))
    with server.client(headers={"Authorization": "Bearer admin"}) as client:
        written = client.post("/v1/tenants/t1/schemas/write", json={"schema": CONTACT_SCHEMA})
        assert written.is_success, written.text
        answer = client.post(
            "/v1/tenants/t1/tokens",
            json={"name": "cli", "scopes": ["relationship:create", "relationship:list"]},
        )
        assert answer.status_code == 201, answer.text
        pat = answer.json()["data"]["token"]
    target = Target(server.url, "t1")
    missing = cli(target, "relationship", "list")
    assert missing.exit_code == 1
    assert missing.stderr.splitlines() == [
        "error: missing bearer token: send `Authorization: Bearer <token>` "
        "(HTTP 401, UnauthorizedError)",
        "give the key with --key or STONETOWN_KEY",
    ]
    record = lines(
        _ok(
            cli(
                target,
                "relationship",
                "create",
                "--key",
                pat,
                "--parent-id",
                "c1",
                "--target-id",
                "c2",
                "--kind",
                "spouse",
            )
        )
    )[0]
    assert record["owned_by"].startswith("token:tok-")
    assert len(lines(_ok(cli(target, "relationship", "list", "--key", pat)))) == 2
    assert len(lines(_ok(cli(target, "relationship", "list", "--key", "admin")))) == 2
    denied = cli(target, "relationship", "get", record["id"], "--key", pat)
    assert denied.exit_code == 1
    assert denied.stderr == "error: Missing scope relationship:read (HTTP 403, ForbiddenError)\n"


# -- retries, against stub servers ----------------------------------------------------------------


#: What a stub answers: status, headers, JSON body.
Answer = tuple[int, dict[str, str], Any]


@dataclass
class Stub:
    """A foreign HTTP server answering every request with the next of ``answers`` (the last one
    repeats); ``requests`` records what it was asked."""

    answers: list[Answer]
    requests: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(f"{request.method} {request.path_qs}")
        status, headers, body = self.answers[min(len(self.requests), len(self.answers)) - 1]
        return web.json_response(body, status=status, headers=headers)


@pytest.fixture
def stub() -> Iterator[Callable[..., Stub]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runners: list[web.AppRunner] = []

    def start(*answers: Answer) -> Stub:
        stub = Stub(list(answers))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", stub.handle)
        runner = web.AppRunner(app)

        async def setup() -> int:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port: int = runner.addresses[0][1]
            return port

        port = asyncio.run_coroutine_threadsafe(setup(), loop).result(10)
        runners.append(runner)
        stub.url = f"http://127.0.0.1:{port}"
        return stub

    yield start
    for runner in runners:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


RECORD = {"id": "rel-1", "kind": "friend", "parent_id": "a", "target_id": "b"}
OK: Answer = (200, {}, {"data": RECORD})
UNAVAILABLE: Answer = (
    503,
    {},
    {"data": None, "error": {"status": 503, "name": "X", "message": "busy"}},
)


def _strapi(status: int, name: str, message: str) -> Answer:
    return status, {}, {"data": None, "error": {"status": status, "name": name, "message": message}}


def stub_cli(stub: Stub, *args: str) -> Result:
    return cli(Target(stub.url, "t1"), "relationship", *args, "--retry-delay", "0.001")


def test_503_twice_then_200_is_retried_to_success(stub: Callable[..., Stub]) -> None:
    server = stub(UNAVAILABLE, UNAVAILABLE, OK)
    result = stub_cli(server, "get", "rel-1")
    assert (result.exit_code, lines(result.stdout)) == (0, [RECORD])
    assert server.requests == ["GET /v1/tenants/t1/xapi2/data/relationship/rel-1"] * 3


@pytest.mark.parametrize(
    "answer",
    [
        _strapi(400, "ValidationError", "bad request"),
        _strapi(401, "UnauthorizedError", "bad request"),
        _strapi(403, "ForbiddenError", "bad request"),
        _strapi(404, "NotFoundError", "bad request"),
        _strapi(409, "ConflictError", "bad request"),
    ],
    ids=["400", "401", "403", "404", "409"],
)
def test_a_4xx_is_never_retried(stub: Callable[..., Stub], answer: Any) -> None:
    server = stub(answer, OK)
    result = stub_cli(server, "get", "rel-1")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith(
        f"error: bad request (HTTP {answer[0]}, {answer[2]['error']['name']})"
    )
    assert len(server.requests) == 1


def test_retries_stop_after_five(stub: Callable[..., Stub]) -> None:
    server = stub(UNAVAILABLE)
    result = stub_cli(server, "list")
    assert result.exit_code == 1
    assert result.stderr == "error: busy (HTTP 503, X)\n"
    assert len(server.requests) == 6
    fewer = stub(UNAVAILABLE)
    assert stub_cli(fewer, "list", "--retries", "2").exit_code == 1
    assert len(fewer.requests) == 3


@pytest.mark.parametrize(
    ("answers", "delays"),
    [
        ([UNAVAILABLE] * 5 + [OK], [0.1, 0.2, 0.4, 0.8, 1.6]),
        ([(429, {"Retry-After": "3"}, {}), (502, {}, "<html>"), OK], [3.0, 0.2]),
        ([(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, {}), OK], [0.0]),
        ([(429, {"Retry-After": "soon"}, {}), OK], [0.1]),
        ([(503, {"Retry-After": "3600"}, {}), OK], [60.0]),
    ],
    ids=[
        "doubling",
        "retry-after-seconds",
        "retry-after-date-past",
        "retry-after-garbage",
        "capped",
    ],
)
def test_backoff_doubles_and_honours_retry_after(
    stub: Callable[..., Stub], answers: list[Any], delays: list[float]
) -> None:
    server = stub(*answers)
    waited: list[float] = []
    retry = Retry(base_delay=0.1)
    with RecordsClient(server.url, tenant="t1", retry=retry, sleep=waited.append) as client:
        assert client.get("rel-1") == RECORD
    assert waited == pytest.approx(delays)
    assert len(server.requests) == len(delays) + 1


def test_no_answer_is_retried_then_reported(refused_url: str) -> None:
    url = refused_url
    waited: list[float] = []
    with (
        RecordsClient(url, retry=Retry(base_delay=0.01), sleep=waited.append) as client,
        pytest.raises(ClientError, match="cannot connect"),
    ):
        client.schema()
    assert waited == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.16])
    result = cli(Target(url, "t1"), "relationship", "schema", "--retry-delay", "0")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot connect to {url}: ")


def test_upsert_goes_on_after_a_row_4xx_but_stops_at_a_5xx(
    stub: Callable[..., Stub], tmp_path: Path
) -> None:
    describe: Answer = (
        200,
        {},
        {
            "data": {
                "fields": [
                    {"name": "id", "create": False, "patch": False},
                    {"name": "kind", "create": True, "patch": False},
                    {"name": "label", "create": True, "patch": True},
                ],
                "filters": [{"name": "kind"}],
                "pagination": {"max_limit": 200},
            }
        },
    )
    nothing: Answer = (200, {}, {"data": [], "meta": {"pagination": {"has_more": False}}})
    server = stub(
        describe,
        nothing,
        _strapi(422, "ValidationError", "no such kind"),
        nothing,
        (201, {}, {"data": {"id": "rel-9"}}),
        nothing,
        UNAVAILABLE,
    )
    path = tmp_path / "rows.csv"
    path.write_text("kind,label\nx,1\ny,2\nz,3\nw,4\n")
    result = cli(
        Target(server.url, "t1"),
        "relationship",
        "upsert",
        "--unique",
        "kind",
        "--csv",
        str(path),
        "--retries",
        "1",
        "--retry-delay",
        "0",
    )
    assert result.exit_code == 1
    assert result.stdout == _ndjson(
        [
            {"row": 1, "action": "error", "id": None, "error": "no such kind"},
            {"row": 2, "action": "created", "id": "rel-9", "error": None},
        ]
    )
    assert result.stderr == "error: busy (HTTP 503, X)\n"
    assert server.requests[-3:] == [
        "GET /v1/tenants/t1/xapi2/data/relationship?kind=z&limit=200&sort=created_at",
        "POST /v1/tenants/t1/xapi2/data/relationship",
        "POST /v1/tenants/t1/xapi2/data/relationship",
    ]


def _page(ids: list[str], **pagination: Any) -> Answer:
    records = [{**RECORD, "id": i} for i in ids]
    return 200, {}, {"data": records, "meta": {"pagination": pagination}}


PATH = "GET /v1/tenants/t1/xapi2/data/relationship"


@pytest.mark.parametrize(
    ("args", "answers", "requests", "printed"),
    [
        (
            ["--sort", "created_at", "--page-size", "2"],
            [
                _page(["r1", "r2"], has_more=True, next_after="r2", next_offset=2),
                _page(["r3"], has_more=False, next_after=None),
            ],
            [f"{PATH}?limit=2&sort=created_at", f"{PATH}?limit=2&sort=created_at&after=r2"],
            ["r1", "r2", "r3"],
        ),
        (
            ["--page-size", "2", "--filter", "kind=a", "--filter", "kind=b"],
            [
                _page(["r1", "r2"], has_more=True, next_offset=2),
                _page(["r3", "r4"], has_more=True, next_offset=4),
                _page([], has_more=False, next_offset=None),
            ],
            [
                f"{PATH}?kind=a&kind=b&limit=2",
                f"{PATH}?kind=a&kind=b&limit=2&offset=2",
                f"{PATH}?kind=a&kind=b&limit=2&offset=4",
            ],
            ["r1", "r2", "r3", "r4"],
        ),
        (
            ["--limit", "3", "--page-size", "2", "--sort", "-created_at"],
            [
                _page(["r1", "r2"], has_more=True, next_after="r2", next_offset=2),
                _page(["r3"], has_more=True, next_after="r3"),
            ],
            [f"{PATH}?limit=2&sort=-created_at", f"{PATH}?limit=1&sort=-created_at&after=r2"],
            ["r1", "r2", "r3"],
        ),
        (
            ["--limit", "1"],
            [_page(["r1", "r2"], has_more=True, next_offset=2)],
            [f"{PATH}?limit=1"],
            ["r1"],
        ),
    ],
    ids=["keyset-on-created_at", "offsets-otherwise", "limit-shrinks-the-last-page", "limit-cuts"],
)
def test_list_pages_by_next_after_or_next_offset(
    stub: Callable[..., Stub],
    args: list[str],
    answers: list[Answer],
    requests: list[str],
    printed: list[str],
) -> None:
    server = stub(*answers)
    result = stub_cli(server, "list", *args)
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in lines(result.stdout)] == printed
    assert server.requests == requests


def test_a_page_with_more_but_no_cursor_is_an_error(stub: Callable[..., Stub]) -> None:
    server = stub(_page(["r1"], has_more=True))
    result = stub_cli(server, "list")
    assert (result.exit_code, lines(result.stdout)) == (1, [{**RECORD, "id": "r1"}])
    assert result.stderr.startswith("error: a page with has_more but no next_after or next_offset")


# -- friendshipcli ------------------------------------------------------------------------------

FRIENDSHIPCLI = str(Path(sys.executable).parent / "friendshipcli")


def test_friendshipcli_is_the_same_cli_as_installed(contacts: Target, tmp_path: Path) -> None:
    """The console script the record documents name, run as a user runs it: create, list and a
    CSV upsert, with the same flags."""
    where = ["--url", contacts.url, "--tenant", contacts.tenant]

    def run(*args: str) -> str:
        done = subprocess.run(
            [FRIENDSHIPCLI, "relationship", *args, *where],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    made = json.loads(run("create", "--parent-id", "c1", "--target-id", "c2", "--kind", "friend"))
    rows = tmp_path / "rows.csv"
    rows.write_text("parent_id,target_id,kind,label\nc1,c2,friend,Best\nc3,c4,spouse,\n")
    results = lines(run("upsert", "--unique", "parent_id,target_id,kind", "--csv", str(rows), "-q"))
    assert [r["action"] for r in results] == ["updated", "created"]
    assert results[0]["id"] == made["id"]
    listed = lines(run("list", "--filter", "parent_id=c1"))
    assert [(r["id"], r["label"]) for r in listed] == [(made["id"], "Best")]


def test_relationship_help_speaks_of_record_endpoints() -> None:
    done = subprocess.run(
        [FRIENDSHIPCLI, "relationship", "--help"], capture_output=True, text=True, check=True
    )
    assert "record endpoints" in done.stdout
    assert "relations layer" not in done.stdout
    ours = CliRunner().invoke(main, ["relationship", "--help"]).stdout
    assert "record endpoints" in ours and "relations layer" not in ours

    def commands(text: str) -> list[str]:
        listed = text.split("Commands:")[1].splitlines()
        return [line.split()[0] for line in listed if line.startswith("  ") and line.split()]

    assert commands(done.stdout) == commands(ours) == ["create", "get", "list", "schema", "upsert"]
