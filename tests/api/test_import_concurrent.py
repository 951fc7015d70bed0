"""`stonetown import` with several batches in flight (--in-flight), and straight into a
PostgreSQL database (--database-url): the file order still decides, the state file only moves
past acknowledged batches, a refused batch is reported at its line, and the final token covers
every batch."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from api.cli import main
from tests.api.conftest import Server
from tests.api.test_cli_import import SCHEMA, Target, _ndjson, _tenant, _tuples, cli


@pytest.fixture
def target(module_server: Server) -> Target:
    return _tenant(module_server)


def test_the_last_value_of_an_attribute_in_the_file_wins(target: Target, tmp_path: Path) -> None:
    # A big batch setting the attribute, then a one-item batch setting it again: sent at once,
    # the small one would land first; it waits for the big one, so the file's last value stays.
    items = [*_tuples(range(999)), ("attribute", "doc:1$score|integer:1")]
    items += [("attribute", "doc:1$score|integer:2")]
    path = tmp_path / "data.ndjson"
    path.write_text(_ndjson(items))
    done = cli(target, "import", str(path), "--batch-size", "1000", "--in-flight", "2")
    assert done.exit_code == 0, done.stderr
    assert [a.value for a in target.attributes()] == [2]


def test_the_token_printed_covers_every_batch(target: Target, tmp_path: Path) -> None:
    path = tmp_path / "data.ndjson"
    path.write_text(_ndjson(_tuples(range(60))))
    result = cli(target, "import", str(path), "--batch-size", "2", "--in-flight", "8")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == "imported 60 tuples and 0 attributes in 30 writes\n"
    token = result.stdout.strip()
    for i in (0, 31, 59):
        allowed = cli(target, "check", f"doc:{i}", "view", f"user:{i}", "--snap-token", token)
        assert allowed.stdout == "ALLOWED\n"


def test_a_refused_batch_in_flight_stops_the_import_at_its_line(
    target: Target, tmp_path: Path
) -> None:
    items = [*_tuples(range(10)), ("tuple", "doc:10#viewr@user:10"), *_tuples(range(11, 30))]
    path = tmp_path / "data.ndjson"
    path.write_text(_ndjson(items))
    failed = cli(target, "import", str(path), "--batch-size", "2", "--in-flight", "4")
    assert failed.exit_code == 1
    assert failed.stderr.startswith(f"{path}:11: ")
    assert "`viewr`" in failed.stderr
    stored = set(target.tuples())
    # Every batch before the refused one (lines 11-12) is written, the refused one is not; the
    # batches in flight after it may have landed, and --resume writes them again.
    assert {f"doc:{i}#viewer@user:{i}" for i in range(10)} <= stored
    assert "doc:11#viewer@user:11" not in stored
    state = json.loads((tmp_path / "data.ndjson.import-state").read_text())
    assert state["position"]["line"] == 11
    path.write_text(path.read_text().replace("viewr", "viewer"))
    resumed = cli(target, "import", str(path), "--resume", "--in-flight", "4")
    assert resumed.exit_code == 0, resumed.stderr
    assert sorted(target.tuples()) == sorted(str(v) for _, v in _tuples(range(30)))


def _direct(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["import", *args, "--database-url", url])


def test_direct_import_writes_through_the_servers_validation(
    postgres_url: str, start_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = start_server(database_url=postgres_url)
    target = Target(server.url, "direct")
    with target.client() as c:
        c.create_tenant("direct")
    path = tmp_path / "data.ndjson"
    items = [("schema", SCHEMA), *_tuples(range(5)), ("attribute", "doc:1$public|boolean:true")]
    path.write_text(_ndjson(items))
    done = _direct(postgres_url, str(path), "--tenant", "direct", "--batch-size", "2")
    assert done.exit_code == 0, done.stderr
    assert done.stderr == "imported 5 tuples and 1 attribute in 4 writes\n"
    token = done.stdout.strip()
    assert sorted(target.tuples()) == sorted(str(v) for _, v in _tuples(range(5)))
    allowed = cli(target, "check", "doc:1", "view", "user:9", "--snap-token", token)
    assert allowed.stdout == "ALLOWED\n"  # the attribute, through the schema written directly
    bad = tmp_path / "bad.ndjson"
    bad.write_text(_ndjson([*_tuples(range(5, 7)), ("tuple", "doc:7#viewr@user:7")]))
    refused = _direct(postgres_url, str(bad), "--tenant", "direct", "--batch-size", "2")
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"{bad}:3: ")
    assert "`viewr`" in refused.stderr
    missing = _direct(postgres_url, str(bad), "--tenant", "nobody")
    assert missing.exit_code == 1
    assert "nobody" in missing.stderr
