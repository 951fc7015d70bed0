"""A throwaway PostgreSQL cluster for tests: ``initdb`` into a temporary directory, ``pg_ctl
start`` listening on a unix socket in that directory only (so clusters of parallel test workers
never race for a port), and ``stop`` at the end.

PostgreSQL refuses to run as root, so when the tests run as root the cluster is initialised and
run as an unprivileged user (``postgres`` when the machine has one, else ``nobody``) through
``setpriv``, in a directory that user owns; the tests connect over the socket as the cluster's
superuser ``postgres`` with trust authentication (the socket directory is private to the run).

Durability is switched off (``fsync``, ``synchronous_commit``, ``full_page_writes``): a test
cluster lives for one session and is never recovered, and it makes each commit cheap.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg

from storage.postgres.migrations import new_tenant_pk

#: How long ``pg_ctl`` waits for the server to start or stop.
_WAIT_SECONDS = 60


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, or the cluster did not start (the message says)."""


def _bin_dir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: Debian's newest, else the PATH's."""

    def major(initdb: str) -> int:
        version = Path(initdb).parent.parent.name
        return int(version) if version.isdigit() else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=major)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl): install Debian's postgresql package "
        "(.ci/run does so when they are missing)"
    )


def _unprivileged_user() -> pwd.struct_passwd | None:
    """The user to run the cluster as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresUnavailable("running as root and neither user postgres nor nobody exists")


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory; ``url(database)`` names a database."""

    def __init__(self) -> None:
        self._bin = _bin_dir()
        self._user = _unprivileged_user()
        # Short: a unix socket path must stay under about 100 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="stpg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.log = self.root / "server.log"
        self.port = 5432  # only names the socket file; nothing listens on TCP
        self._running = False

    # -- life cycle --------------------------------------------------------------------------

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        prefix: list[str] = []
        if self._user is not None:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise PostgresUnavailable("running as root needs setpriv to drop privileges")
            prefix = [
                setpriv,
                f"--reuid={self._user.pw_uid}",
                f"--regid={self._user.pw_gid}",
                "--clear-groups",
            ]
        return subprocess.run(
            [*prefix, *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )

    def start(self) -> PostgresServer:
        """Initialise the cluster (first time only) and start it; raise PostgresUnavailable
        with the server's own words when it does not come up."""
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        os.chmod(self.root, 0o700)
        if not self.data.exists():
            done = self._run(
                str(self._bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
            if done.returncode != 0:
                raise PostgresUnavailable(f"initdb failed: {done.stderr.strip() or done.stdout}")
        options = " ".join(
            [
                "-c listen_addresses=''",
                f"-c unix_socket_directories={self.socket_dir}",
                f"-p {self.port}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=300",
                "-c shared_buffers=32MB",
            ]
        )
        done = self._run(
            str(self._bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            str(_WAIT_SECONDS),
            "start",
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise PostgresUnavailable(
                f"pg_ctl start failed: {done.stderr.strip() or done.stdout.strip()}\n{log}"
            )
        self._running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` simulates a crash); the cluster stays for ``start``."""
        if not self._running:
            return
        self._run(str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        self._running = False

    def destroy(self) -> None:
        """Stop the server and remove the cluster's directory."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- databases ---------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """A libpq URL of ``database`` over this cluster's socket, as superuser postgres."""
        return (
            f"postgresql://postgres@/{quote(database)}"
            f"?host={quote(str(self.socket_dir))}&port={self.port}"
        )

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, template: str | None = None) -> str:
        """A new, uniquely named database (a copy of ``template`` when given); its name."""
        name = f"db_{uuid.uuid4().hex[:16]}"
        sql = f'CREATE DATABASE "{name}"'
        if template:
            # FILE_COPY copies the few files of a small template faster than WAL_LOG.
            sql += f' TEMPLATE "{template}" STRATEGY FILE_COPY'
        self.execute(sql)
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting whoever is still connected."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_database(url: str) -> None:
    """Make the migrated database at ``url`` look freshly migrated again: no rows but the
    store id and the default tenant. Much cheaper than a new database for tests that each need
    an empty store (a handful of deletes on small tables)."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                " AND tablename LIKE 'stonetown%%'"
                " AND tablename NOT IN ('stonetown_migrations', 'stonetown_meta')"
            )
        ]
        for table in tables:
            conn.execute(f"DELETE FROM {table}")  # type: ignore[arg-type]
        conn.execute(
            "INSERT INTO stonetown_tenants (id, pk, live, name, created_at, revision, horizon,"
            " committed_at, schema_head) VALUES ('t1', %s, TRUE, '', %s, 0, 0, 0, '')",
            (new_tenant_pk(), time.time()),
        )
