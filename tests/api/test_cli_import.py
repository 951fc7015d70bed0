"""`stonetown import` and `export` against a real server: both formats, batching, the progress
bar, a bad record mid-file and `--resume`, and the export -> import round trip."""

from __future__ import annotations

import itertools
import json
import math
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from api.cli import main
from api.client import Client
from dsl.schema import AttributeType
from storage.base import Attribute, AttributeFilter, Tuple, TupleFilter
from tests.api.conftest import Server

STONETOWN = str(Path(sys.executable).parent / "stonetown")
SCHEMA = """entity user {}

entity group {
    relation member @user
}

entity doc {
    relation viewer @user @group#member
    attribute public boolean
    attribute title string
    attribute tags string[]
    attribute score integer
    attribute weights double[]
    permission view = viewer or public
}
"""
_TENANTS = itertools.count()
Render = Callable[[list[tuple[str, object]]], str]


@dataclass(frozen=True)
class Target:
    url: str
    tenant: str

    def client(self) -> Client:
        return Client(self.url, tenant=self.tenant)

    def tuples(self) -> list[str]:
        with self.client() as c:
            return [str(t) for t in c.read_tuples(TupleFilter())]

    def attributes(self) -> list[Attribute]:
        with self.client() as c:
            return list(c.read_attributes(AttributeFilter()))


@pytest.fixture(autouse=True)
def _no_stonetown_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("STONETOWN_")]:
        monkeypatch.delenv(name)


def _tenant(server: Server) -> Target:
    target = Target(server.url, f"import{next(_TENANTS)}")
    with target.client() as c:
        c.create_tenant(target.tenant)
        c.write_schema(SCHEMA)
    return target


@pytest.fixture
def target(module_server: Server) -> Target:
    """A new tenant with SCHEMA on the module's server."""
    return _tenant(module_server)


def cli(target: Target, *args: str) -> Result:
    where = ["--url", target.url, "--tenant", target.tenant]
    return CliRunner().invoke(main, [*args, *where], catch_exceptions=False)


def _ok(result: Result) -> str:
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def _ndjson(items: list[tuple[str, object]]) -> str:
    return "".join(json.dumps({kind: value}) + "\n" for kind, value in items)


def _csv(items: list[tuple[str, object]]) -> str:
    rows = ["kind,value"]
    for kind, value in items:
        text = value if isinstance(value, str) else json.dumps(value)
        rows.append(f'{kind},"{text.replace(chr(34), chr(34) * 2)}"')
    return "\n".join(rows) + "\n"


def _tuples(ids: range) -> list[tuple[str, object]]:
    return [("tuple", f"doc:{i}#viewer@user:{i}") for i in ids]


TITLE = {
    "entity": {"type": "doc", "id": "1"},
    "attribute": "title",
    "value": {"@type": "type.googleapis.com/base.v1.StringValue", "data": "a: b | c"},
}
MIXED = [
    *_tuples(range(5)),
    ("tuple", "doc:9#viewer@group:1#member"),
    ("attribute", "doc:1$public|boolean:true"),
    ("tuple", "group:1#member@user:7"),
    ("attribute", "doc:2$tags|string[]:x,y"),
    ("attribute", TITLE),
]


# -- import ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "render", "flags"),
    [
        ("data.ndjson", _ndjson, []),
        ("data.csv", _csv, []),
        ("data.txt", _csv, ["--format", "csv"]),
        ("data", _ndjson, []),
    ],
    ids=["ndjson", "csv", "csv-by-flag", "ndjson-by-default"],
)
def test_import_writes_tuples_and_attributes_in_batches(
    target: Target, tmp_path: Path, name: str, render: Render, flags: list[str]
) -> None:
    path = tmp_path / name
    path.write_text(render(MIXED))
    result = cli(target, "import", str(path), "--batch-size", "3", *flags)
    token = _ok(result).strip()
    assert token
    assert result.stderr == "imported 7 tuples and 3 attributes in 4 writes\n"
    assert sorted(target.tuples()) == sorted(str(v) for k, v in MIXED if k == "tuple")
    values = {(a.entity_id, a.name): a.value for a in target.attributes()}
    assert values == {("1", "public"): True, ("2", "tags"): ("x", "y"), ("1", "title"): "a: b | c"}
    assert not (tmp_path / f"{name}.import-state").exists()
    allowed = cli(target, "check", "doc:9", "view", "user:7", "--snap-token", token)
    assert allowed.stdout == "ALLOWED\n"


def test_progress_bar_shows_on_a_terminal_only(target: Target, tmp_path: Path) -> None:
    path = tmp_path / "data.ndjson"
    path.write_text(_ndjson(_tuples(range(40))))
    args = ["import", str(path), "--batch-size", "10", "--url", target.url]
    args += ["--tenant", target.tenant]
    terminal = _on_terminal([STONETOWN, *args])
    assert "importing" in terminal and "100%" in terminal
    assert "imported 40 tuples" in terminal
    assert _on_terminal([STONETOWN, *args, "--quiet"]) == ""
    piped = CliRunner().invoke(main, args)
    assert (piped.exit_code, piped.stderr) == (
        0,
        "imported 40 tuples and 0 attributes in 4 writes\n",
    )


def _on_terminal(command: list[str]) -> str:
    """What ``command`` writes to its standard error when that is a terminal."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STONETOWN_")}
    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower, env=env
    ) as proc:
        os.close(follower)
        out = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child has closed the terminal
                break
            if not chunk:
                break
            out += chunk
        os.close(leader)
        assert proc.wait(30) == 0, out
    return out.decode()


@pytest.mark.parametrize(
    ("name", "render", "bad_line"),
    [("data.ndjson", _ndjson, 11), ("data.csv", _csv, 12)],
    ids=["ndjson", "csv"],
)
def test_bad_record_stops_after_writing_everything_before_it_and_resume_finishes(
    target: Target, tmp_path: Path, name: str, render: Render, bad_line: int
) -> None:
    items = [*_tuples(range(10)), ("tuple", "doc:x#viewer@"), *_tuples(range(10, 16))]
    path = tmp_path / name
    path.write_text(render(items))
    failed = cli(target, "import", str(path), "--batch-size", "3")
    assert failed.exit_code == 1
    assert failed.stdout == ""
    assert failed.stderr.splitlines() == [
        f"{path}:{bad_line}: invalid tuple 'doc:x#viewer@': expected "
        "entity_type:entity_id#relation@subject_type:subject_id[#subject_relation]",
        f"written: everything before line {bad_line} (10 tuples, 0 attributes); fix the file "
        "and rerun with --resume",
    ]
    assert sorted(target.tuples()) == sorted(str(v) for _, v in _tuples(range(10)))
    state = json.loads((tmp_path / f"{name}.import-state").read_text())
    assert state["position"]["line"] == bad_line
    assert (state["tenant"], state["tuples"]) == (target.tenant, 10)

    path.write_text(path.read_text().replace("doc:x#viewer@", "doc:x#viewer@user:x"))
    resumed = cli(target, "import", str(path), "--batch-size", "3", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    # Every record was sent once: 10 before the stop, 7 after (the counts add up over runs).
    assert resumed.stderr == (
        f"imported 17 tuples and 0 attributes in 7 writes, resumed at line {bad_line}\n"
    )
    expected = [*_tuples(range(16)), ("tuple", "doc:x#viewer@user:x")]
    assert sorted(target.tuples()) == sorted(str(v) for _, v in expected)
    assert not (tmp_path / f"{name}.import-state").exists()


def test_record_the_server_refuses_is_reported_at_its_line(target: Target, tmp_path: Path) -> None:
    items = [*_tuples(range(4)), ("tuple", "doc:4#viewr@user:4"), *_tuples(range(5, 7))]
    path = tmp_path / "data.ndjson"
    path.write_text(_ndjson(items))
    # One batch at a time: nothing after the refused batch is sent (see test_import_concurrent).
    failed = cli(target, "import", str(path), "--batch-size", "3", "--in-flight", "1")
    assert failed.exit_code == 1
    first = failed.stderr.splitlines()[0]
    assert first.startswith(f"{path}:5: ")
    assert "`viewr`" in first
    # The batch holding line 5 (lines 4-6) is one atomic write, refused whole.
    assert sorted(target.tuples()) == sorted(str(v) for _, v in _tuples(range(3)))
    state = json.loads((tmp_path / "data.ndjson.import-state").read_text())
    assert state["position"]["line"] == 4


def _stopped_import(target: Target, tmp_path: Path) -> Path:
    path = tmp_path / "data.ndjson"
    path.write_text(_ndjson([*_tuples(range(4)), ("tuple", "bad"), *_tuples(range(4, 6))]))
    assert cli(target, "import", str(path), "--batch-size", "2").exit_code == 1
    return path


def test_resume_refuses_a_file_changed_before_its_position(target: Target, tmp_path: Path) -> None:
    path = _stopped_import(target, tmp_path)
    path.write_text(
        path.read_text().replace("doc:0#", "doc:00#").replace('"bad"', '"doc:b#viewer@user:b"')
    )
    result = cli(target, "import", str(path), "--resume")
    assert result.exit_code == 1
    assert f"{path} changed before line 5" in result.stderr
    assert "delete" in result.stderr


def test_resume_refuses_another_tenant(
    target: Target, module_server: Server, tmp_path: Path
) -> None:
    path = _stopped_import(target, tmp_path)
    other = _tenant(module_server)
    result = cli(other, "import", str(path), "--resume")
    assert result.exit_code == 1
    assert f"resume with --tenant {target.tenant}" in result.stderr
    assert other.tuples() == []


def test_import_without_resume_starts_over(target: Target, tmp_path: Path) -> None:
    path = _stopped_import(target, tmp_path)
    path.write_text(path.read_text().replace('"bad"', '"doc:b#viewer@user:b"'))
    result = cli(target, "import", str(path))
    assert result.exit_code == 0
    assert result.stderr.startswith(f"note: ignoring {path}.import-state; starting at line 1")
    assert "imported 7 tuples" in result.stderr


# -- export ---------------------------------------------------------------------------------


def _varied(target: Target) -> None:
    """Items of every kind, several that only the object form can carry."""
    tuples = [
        Tuple("doc", "1", "viewer", "user", "1"),
        Tuple("doc", "1", "viewer", "group", "g", "member"),
        Tuple("doc", "urn:2", "viewer", "user", "a@b.c"),
        Tuple("group", "g", "member", "user", "*"),
    ]
    attributes = [
        Attribute("doc", "1", "public", AttributeType.BOOLEAN, False),
        Attribute("doc", "1", "title", AttributeType.STRING, "plain"),
        Attribute("doc", "2", "title", AttributeType.STRING, " a: b|c "),
        Attribute("doc", "1", "tags", AttributeType.STRING_ARRAY, ("x", "y,z")),
        Attribute("doc", "2", "tags", AttributeType.STRING_ARRAY, ()),
        Attribute("doc", "1", "score", AttributeType.INTEGER, -7),
        Attribute("doc", "1", "weights", AttributeType.DOUBLE_ARRAY, (0.1, 1e300, math.inf)),
    ]
    with target.client() as c:
        c.write_data(tuples, attributes)


@pytest.mark.parametrize("fmt", ["ndjson", "csv"], ids=["ndjson", "csv"])
def test_export_then_import_into_a_fresh_tenant_gives_the_same_data(
    target: Target, module_server: Server, tmp_path: Path, fmt: str
) -> None:
    _varied(target)
    first, second = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    result = cli(target, "export", "--output", str(first))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("exported 4 tuples and 7 attributes, the schema at ")
    text = first.read_text()
    assert "doc:1#viewer@group:g#member" in text  # the string form where it reads back
    assert "a@b.c" in text and " a: b|c " in text  # the object form where it does not
    fresh = _tenant(module_server)
    _ok(cli(fresh, "import", str(first)))
    _ok(cli(fresh, "export", "-o", str(second)))
    assert second.read_text() == text
    assert sorted(fresh.tuples()) == sorted(target.tuples())
    theirs = {a.key: a for a in fresh.attributes()}
    assert all(theirs[a.key].same_value(a) for a in target.attributes())
    assert len(theirs) == 7


def test_export_to_stdout_writes_ndjson(target: Target) -> None:
    _ok(cli(target, "tuples", "write", "doc:1#viewer@user:1"))
    assert _ok(cli(target, "export")) == (
        json.dumps({"schema": SCHEMA}) + '\n{"tuple": "doc:1#viewer@user:1"}\n'
    )
    csv_text = _ok(cli(target, "export", "--format", "csv"))
    assert csv_text.startswith('kind,value\nschema,"entity user {}\n')
    assert csv_text.endswith('}\n"\ntuple,doc:1#viewer@user:1\n')


def test_export_at_a_snap_token_sees_that_snapshot(target: Target) -> None:
    token = _ok(cli(target, "tuples", "write", "doc:1#viewer@user:1")).strip()
    _ok(cli(target, "tuples", "write", "doc:2#viewer@user:2"))
    pinned = _ok(cli(target, "export", "--snap-token", token, "--quiet"))
    assert pinned.splitlines()[1:] == ['{"tuple": "doc:1#viewer@user:1"}']


def test_failed_export_leaves_no_file(target: Target, tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    result = cli(Target(target.url, "nope"), "export", "--output", str(out))
    assert result.exit_code == 1
    assert "error: tenant nope not found (HTTP 404" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_reads_and_export_stay_at_the_snapshot_they_started_at(
    target: Target, tmp_path: Path
) -> None:
    with target.client() as c:
        c.write_data([Tuple.parse(f"doc:{i}#viewer@user:u") for i in range(5)], [])
        pages = c.read_tuples(TupleFilter(), page_size=2)
        first = next(pages)
        # Lands between pages: the walk is pinned to the first page's snapshot.
        c.write_data([Tuple.parse("doc:9#viewer@user:u")], [])
        seen = [first, *pages]
        assert [t.entity_id for t in seen] == ["0", "1", "2", "3", "4"]
        before = c.head_token()
        c.write_data([Tuple.parse("doc:99#viewer@user:u")], [])
    out = tmp_path / "pinned.ndjson"
    _ok(cli(target, "export", "--output", str(out), "--snap-token", before))
    assert "doc:99" not in out.read_text() and "doc:9#" in out.read_text()
