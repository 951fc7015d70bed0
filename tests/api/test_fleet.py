"""A fleet: several `stonetown serve` processes on one PostgreSQL database, run as real
subprocesses of the installed console script. `stonetown migrate`; `serve --database-url`
refusing a database that is behind; `--workers`; a snap token from one replica honoured by
another; a watch on one replica seeing the writes made through another; the relations layer's
races across replicas.

The database going away and coming back is in ``test_database_loss.py``.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from api.cli import main
from storage.postgres import LATEST_VERSION, schema_version
from tests.api.conftest import Server
from tests.api.served import STONETOWN, environ
from tests.api.test_watch import Tenant as WatchTenant
from tests.api.test_watch import changes, tuple_json, watching
from tests.conftest import POSTGRES_TEMPLATE
from tests.postgres import PostgresServer

READY = re.compile(r"stonetown serving on (http://127\.0\.0\.1:(\d+)) \(database: (.+)\)\n")
#: An idle watch polls the change log this often, so a write through another replica shows
#: within it (the default is a second).
POLL = "0.05"


@dataclass
class Replica:
    proc: subprocess.Popen[str]
    url: str
    ready: str
    stderr: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.proc.wait(30)


def _start(database_url: str, log: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    with log.open("w") as err:
        return subprocess.Popen(
            [STONETOWN, "serve", "--port", "0", "--database-url", database_url, *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=environ(STONETOWN_WATCH_POLL_SECONDS=POLL, STONETOWN_ACCESS_LOG="false", **env),
        )


def _ready(proc: subprocess.Popen[str], log: Path) -> Replica:
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if readable else ""
    found = READY.fullmatch(line)
    if found is None:
        proc.kill()
        proc.wait()
        raise AssertionError(f"no ready line, got {line!r}; stderr:\n{log.read_text()}")
    return Replica(proc, found[1], line, log)


class Launcher:
    """Starts `stonetown serve --database-url` processes; kills what is left at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[subprocess.Popen[str]] = []

    def launch(self, database_url: str, *args: str, count: int = 1) -> list[Replica]:
        """``count`` servers, started together (so their start-ups overlap)."""
        logs = [self.directory / f"serve{len(self.started) + n}.stderr" for n in range(count)]
        procs = [_start(database_url, log, *args) for log in logs]
        self.started += procs
        return [_ready(proc, log) for proc, log in zip(procs, logs, strict=True)]

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path_factory.mktemp("fleet"))
    yield launcher
    launcher.close()


@pytest.fixture(scope="module")
def fleet_url(postgres_server: PostgresServer) -> Iterator[str]:
    """One migrated database for the module's replicas (each test in tenants of its own)."""
    name = postgres_server.create_database(template=POSTGRES_TEMPLATE)
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture(scope="module")
def replicas(launcher: Launcher, fleet_url: str) -> tuple[Replica, Replica]:
    """Two replicas, A and B, on one database."""
    a, b = launcher.launch(fleet_url, count=2)
    return a, b


@pytest.fixture
def empty_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A database without Stonetown's tables."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


# -- migrate and start-up -------------------------------------------------------------------------


def _migrate(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [STONETOWN, "migrate", "--database-url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ(),
    )


def test_migrate_run_by_three_replicas_at_once_applies_each_step_once(empty_url: str) -> None:
    procs = [_migrate(empty_url) for _ in range(3)]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    applied: list[int] = []
    for out, _ in outputs:
        if "applied" in out:
            applied += [int(v) for v in re.findall(r"\d+", out.split("applied", 1)[1])]
        else:
            assert out.endswith("up to date\n"), out
    assert sorted(applied) == list(range(1, LATEST_VERSION + 1))
    assert schema_version(empty_url) == LATEST_VERSION
    again = _migrate(empty_url)
    out, _ = again.communicate(timeout=60)
    assert (again.returncode, out.endswith(": up to date\n")) == (0, True), out


def test_migrate_says_which_database_it_could_not_reach_and_exits_1() -> None:
    url = "postgresql://stonetown:s3cret@127.0.0.1:1/nowhere?connect_timeout=2"
    result = CliRunner().invoke(main, ["migrate", "--database-url", url])
    assert result.exit_code == 1, result.output
    assert "postgresql://stonetown:***@127.0.0.1:1/nowhere" in result.output
    assert "s3cret" not in result.output


def test_migrate_needs_a_postgresql_url() -> None:
    result = CliRunner().invoke(main, ["migrate", "--database-url", "sqlite:///x.db"])
    assert result.exit_code == 2
    assert "expected a PostgreSQL URL" in result.output
    result = CliRunner().invoke(main, ["migrate"], env={"STONETOWN_DATABASE_URL": ""})
    assert result.exit_code == 2
    assert "--database-url" in result.output


def test_serve_refuses_a_database_that_needs_migrating(empty_url: str, tmp_path: Path) -> None:
    # With workers, so that the supervisor's report of its workers' failure is what is seen
    # (one process alone fails the same way as without its database, below).
    log = tmp_path / "serve.stderr"
    proc = _start(empty_url, log, "--workers", "2")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert out == ""  # no ready line
    assert "stonetown serve: " in log.read_text()
    assert "run `stonetown migrate --database-url" in log.read_text()


def test_serve_without_its_database_exits_1_within_its_timeout(tmp_path: Path) -> None:
    log = tmp_path / "serve.stderr"
    with socket.socket() as held:  # bound, never listening: connections are refused
        held.bind(("127.0.0.1", 0))
        url = f"postgresql://stonetown:s3cret@127.0.0.1:{held.getsockname()[1]}/authz"
        started = time.monotonic()
        proc = _start(url, log, STONETOWN_DB_TIMEOUT_SECONDS="0.5")
        out, _ = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (1, "")
    assert time.monotonic() - started < 10
    assert "stonetown serve: no database connection within 0.5 s" in log.read_text()
    assert "s3cret" not in log.read_text()


def test_several_workers_need_postgresql(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--workers", "2", "--data-dir", str(tmp_path / "d")], env={}
    )
    assert result.exit_code == 2
    assert "LevelDB is single-process" in result.output


def test_print_config_hides_the_database_password() -> None:
    url = "postgresql://app:hunter2@db.internal:5432/authz"
    result = CliRunner().invoke(
        main, ["serve", "--print-config", "--database-url", url, "--max-staleness", "0.5"], env={}
    )
    assert result.exit_code == 0, result.output
    assert "database_url: postgresql://app:***@db.internal:5432/authz" in result.output
    assert "max_staleness_seconds: 0.5" in result.output
    assert "hunter2" not in result.output


# -- workers ---------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as found:
        return [int(child) for child in found.read().split()]


def _listening_inodes(port: int) -> set[str]:
    """The socket inodes listening on ``port`` (IPv4), from /proc/net/tcp."""
    inodes = set()
    with open("/proc/net/tcp", encoding="ascii") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                inodes.add(inode)
    return inodes


def _sockets_of(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _gone(pids: list[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(os.path.exists(f"/proc/{pid}") for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_workers_each_listen_on_the_one_port_and_stop_with_the_supervisor(
    launcher: Launcher, fleet_url: str
) -> None:
    (served,) = launcher.launch(fleet_url, "--workers", "2")
    assert served.ready.endswith(", 2 workers)\n")
    port = int(served.url.rsplit(":", 1)[1])
    workers = _children(served.proc.pid)
    assert len(workers) == 2
    listening = _listening_inodes(port)
    assert len(listening) == 2  # one socket per worker: the kernel spreads connections
    for worker in workers:
        assert _sockets_of(worker) & listening
    for _ in range(8):  # new connections, whichever worker takes each
        with served.client() as client:
            assert _ok(client.get("/healthz")) == {"status": "SERVING"}
    assert served.stop() == 0
    assert _gone(workers, 5)


def test_a_worker_dying_on_its_own_stops_the_others_and_the_supervisor_exits_1(
    launcher: Launcher, fleet_url: str
) -> None:
    (served,) = launcher.launch(fleet_url, "--workers", "2")
    first, second = _children(served.proc.pid)
    os.kill(first, signal.SIGKILL)
    assert served.proc.wait(30) == 1
    assert _gone([second], 5)
    assert "a worker exited on its own" in served.stderr.read_text()


def test_workers_refuse_a_port_another_server_shares_with_so_reuseport(
    fleet_url: str, tmp_path: Path
) -> None:
    with socket.socket() as other:  # as another fleet's worker listens
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = str(other.getsockname()[1])
        log = tmp_path / "serve.stderr"
        proc = _start(fleet_url, log, "--workers", "2", "--port", port)
        out, _ = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (1, "")
    assert f"cannot listen on 127.0.0.1:{port}" in log.read_text()


def test_workers_outlive_no_killed_supervisor(launcher: Launcher, fleet_url: str) -> None:
    (served,) = launcher.launch(fleet_url, "--workers", "2")
    workers = _children(served.proc.pid)
    served.stop(signal.SIGKILL)
    assert _gone(workers, 10), "a worker outlived its supervisor"


# -- two replicas ----------------------------------------------------------------------------

SCHEMA = """
entity user {}
entity document {
    relation viewer @user
    attribute public boolean
    permission view = viewer or public
}
"""


def _check(client: httpx.Client, tenant: str, doc: str, user: str, token: str = "") -> bool:
    body = {
        "entity": {"type": "document", "id": doc},
        "permission": "view",
        "subject": {"type": "user", "id": user},
        "metadata": {"snap_token": token, "depth": 10},
    }
    answer = _ok(client.post(f"/v1/tenants/{tenant}/permissions/check", json=body))
    return bool(answer["can"] == "CHECK_RESULT_ALLOWED")


def test_a_token_from_one_replica_is_honoured_by_the_other(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    with a.client() as on_a, b.client() as on_b:
        tenant = WatchTenant(on_a)
        for n in range(10):  # each write at once read back through the other replica
            writer, reader = (on_a, on_b) if n % 2 == 0 else (on_b, on_a)
            body = {"tuples": [tuple_json(f"d{n}", "ann")]}
            token = _ok(writer.post(f"/v1/tenants/{tenant.id}/data/write", json=body))
            assert _check(reader, tenant.id, f"d{n}", "ann", token["snap_token"]), n
        deleted = _ok(
            on_a.post(
                f"/v1/tenants/{tenant.id}/relationships/delete",
                json={"filter": {"entity": {"type": "document", "ids": ["d0"]}}},
            )
        )["snap_token"]
        assert not _check(on_b, tenant.id, "d0", "ann", deleted)
        assert _check(on_b, tenant.id, "d0", "ann", token["snap_token"])  # the older snapshot
        assert not _check(on_b, tenant.id, "d0", "ann")  # no token: the latest committed


def test_a_watch_on_one_replica_sees_every_write_through_the_other_in_order(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    with a.client() as on_a, b.client() as on_b:
        tenant = WatchTenant(on_a)
        start = tenant.write([tuple_json("start", "ann")])
        tokens: list[str] = []

        def write_through_both() -> None:
            with a.client() as wa, b.client() as wb:
                for n in range(12):
                    writer = wa if n % 3 else wb  # mostly A, some B: one change log for both
                    body = {"tuples": [tuple_json(f"w{n}", "ann")]}
                    got = _ok(writer.post(f"/v1/tenants/{tenant.id}/data/write", json=body))
                    tokens.append(got["snap_token"])

        seen: list[tuple[str, str]] = []
        with watching(on_b, tenant.id, start) as watch:
            writer = threading.Thread(target=write_through_both)
            writer.start()
            while len(seen) < 12:
                token, data = changes(watch.next())
                seen += [(token, change["tuple"]["entity"]["id"]) for change in data]
            writer.join()
        assert [doc for _, doc in seen] == [f"w{n}" for n in range(12)]  # none missing or repeated
        assert [token for token, _ in seen] == tokens  # each write's own token, in order
        with watching(on_a, tenant.id, tokens[5]) as resumed:  # resumable on the other replica
            later = [changes(resumed.next())[1][0]["tuple"]["entity"]["id"] for _ in range(6)]
        assert later == [f"w{n}" for n in range(6, 12)]


def _register(client: httpx.Client, tenant: str, body: dict[str, Any]) -> str:
    answer = _ok(client.post(f"/v1/tenants/{tenant}/relationship-types", json=body), 201)
    return str(answer["data"]["relationshipTypeId"])


RELATIONS_SCHEMA = """
entity user {}
entity order {
    relation contains @line_item
}
entity line_item {
    relation part_of @order
}
entity contact {
    relation owner @user
    relation categories @category
    permission view = owner
    permission edit = owner
}
entity category {}
"""


def _co_to_co(role: str, parent: str, child: str, **fields: Any) -> dict[str, Any]:
    return {
        "kind": "co_to_co",
        "role": role,
        "parentCustomObjectType": parent,
        "childCustomObjectType": child,
        **fields,
    }


def _at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Make every call from a thread of its own, released together."""
    barrier = threading.Barrier(len(calls))
    answers: list[httpx.Response] = []

    def run(call: Callable[[], httpx.Response]) -> None:
        barrier.wait()
        answers.append(call())

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def _relations_tenant(client: httpx.Client, name: str) -> str:
    tenant = f"{name}-{os.urandom(4).hex()}"
    _ok(client.post("/v1/tenants/create", json={"id": tenant, "name": tenant}))
    _ok(client.post(f"/v1/tenants/{tenant}/schemas/write", json={"schema": RELATIONS_SCHEMA}))
    return tenant


def test_ten_racing_one_to_one_creates_through_two_replicas_let_exactly_one_through(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    clients = [a.client() if n % 2 else b.client() for n in range(10)]
    try:
        tenant = _relations_tenant(clients[0], "one-to-one")
        type_id = _register(
            clients[0],
            tenant,
            _co_to_co("contains", "order", "line_item", cardinality="ONE_TO_ONE"),
        )
        path = f"/v1/tenants/{tenant}/relationships"

        def link(client: httpx.Client, source: str, target: str) -> Callable[[], httpx.Response]:
            body = {"relationshipTypeId": type_id, "sourceId": source, "targetId": target}
            return lambda: client.post(path, json=body)

        for round_ in range(3):
            calls = [link(c, f"o{round_}", f"l{round_}-{n}") for n, c in enumerate(clients)]
            statuses = sorted(answer.status_code for answer in _at_once(calls))
            assert statuses == [201] + [409] * 9, f"round {round_}: {statuses}"
        rows = _ok(clients[1].get(path, params={"relationshipTypeId": type_id, "limit": 100}))
        assert sorted(row["source"] for row in rows["data"]) == ["order:o0", "order:o1", "order:o2"]
    finally:
        for client in clients:
            client.close()


def test_racing_list_edits_through_two_replicas_keep_positions_contiguous(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    with a.client() as on_a:
        tenant = _relations_tenant(on_a, "positions")
        _register(on_a, tenant, _co_to_co("categories", "contact", "category"))
    path = f"/v1/tenants/{tenant}/entities/contact:a/relations"

    def editor(replica: Replica, n: int) -> Callable[[], httpx.Response]:
        def edit() -> httpx.Response:
            with replica.client() as client:
                for i in range(5):
                    data = {"categories": {"connect": [f"category:{n}-{i}"]}}
                    response = client.put(path, json={"data": data})
                    assert response.status_code == 200, response.text
                return response

        return edit

    _at_once([editor(a, 0), editor(b, 1), editor(a, 2), editor(b, 3)])
    with b.client() as on_b:
        rows = _ok(on_b.get(path, params={"direction": "outgoing", "limit": 200}))["data"]
    positions = sorted(row["position"] for row in rows if row["relation_type"] == "categories")
    assert positions == list(range(1, 21))


def test_with_max_staleness_an_answer_without_a_token_may_lag_but_a_token_never_does(
    replicas: tuple[Replica, Replica], fleet_url: str, start_server: Callable[..., Server]
) -> None:
    a, _ = replicas
    lagging = start_server(database_url=fleet_url, max_staleness_seconds=600.0)
    with a.client() as on_a, lagging.client() as on_lagging:
        tenant = WatchTenant(on_a)
        assert not _check(on_lagging, tenant.id, "d1", "ann")  # reads (and keeps) the head
        token = tenant.write([tuple_json("d1", "ann")])
        assert not _check(on_lagging, tenant.id, "d1", "ann")  # the kept head: stale, by choice
        assert _check(on_lagging, tenant.id, "d1", "ann", token)  # a token is looked up afresh
        assert _check(on_a, tenant.id, "d1", "ann")  # no staleness: the latest
