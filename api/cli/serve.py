"""``stonetown serve``: Permify's HTTP API on a LevelDB data directory or a PostgreSQL database,
until a signal stops it.

The only command that starts a server: the aiohttp stack is imported when it runs, so the other
commands do not pay for it at start-up.

With ``--workers N`` (PostgreSQL only) this process becomes a supervisor: it forks N server
processes that each listen on the same port (SO_REUSEPORT, so the kernel spreads connections
among them), prints the ready line once all of them are serving, forwards SIGINT and SIGTERM to
them and exits when they have. A worker that dies on its own stops the others (exit 1): whatever
runs the supervisor restarts it whole. Each worker watches a pipe from the supervisor and stops
gracefully when it closes, so none outlives a supervisor that was killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import fields, replace

import click
import yaml

from api.config import Config, ConfigError, load_config, redacted_url
from storage.errors import StorageError

log = logging.getLogger("stonetown.server")


class _ServeFailed(Exception):
    """The server could not start; the message says why."""


def _configure_logging() -> None:
    """Server logs and the JSON access log (one object per line, as is) go to stderr."""
    plain = logging.StreamHandler(sys.stderr)
    plain.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(plain)
    root.setLevel(logging.INFO)
    bare = logging.StreamHandler(sys.stderr)
    bare.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger("stonetown.access")
    access.addHandler(bare)
    access.propagate = False


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _where(config: Config) -> str:
    """What the ready line says the data is."""
    if not config.database_url:
        return f"data: {config.data_dir}"
    workers = f", {config.workers} workers" if config.workers > 1 else ""
    return f"database: {redacted_url(config.database_url)}{workers}"


async def _serve_until_signalled(
    config: Config,
    announce: Callable[[int], None],
    *,
    reuse_port: bool = False,
    supervisor: int | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then stop accepting, let in-flight requests finish (up to
    ``shutdown_timeout``) and close the store. A second signal exits at once. ``announce`` gets
    the port once the server listens. A worker (``supervisor``: the read end of the pipe its
    supervisor holds open) also stops when that pipe closes."""
    # Imported here: the server stack is most of the CLI's start-up time, which the local and
    # client commands should not pay.
    from aiohttp import web  # noqa: PLC0415

    from api.app import create_app, make_runner  # noqa: PLC0415
    from api.grpc.server import GrpcServer, grpc_port_of, start_grpc  # noqa: PLC0415

    runner = make_runner(create_app(config))
    grpc_server: GrpcServer | None = None
    try:
        await runner.setup()  # opens the store
    except StorageError as exc:
        raise _ServeFailed(str(exc)) from exc
    try:
        site = web.TCPSite(runner, config.host, config.port, reuse_port=reuse_port or None)
        try:
            await site.start()
        except OSError as exc:
            where = f"{config.host}:{config.port}"
            raise _ServeFailed(f"cannot listen on {where}: {exc.strerror or exc}") from exc
        grpc_port = grpc_port_of(config)
        if grpc_port is not None:  # Permify's gRPC API, on the same app and event loop
            try:
                grpc_server = await start_grpc(
                    runner.app, config.host, grpc_port, reuse_port=reuse_port
                )
            except OSError as exc:
                raise _ServeFailed(str(exc)) from exc
        announce(runner.addresses[0][1])
        stop: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_signal(signum: int) -> None:
            if not stop.done():
                stop.set_result(signum)
                return
            log.warning("%s again: exiting without waiting", signal.Signals(signum).name)
            os._exit(1)

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        if supervisor is not None:

            def on_orphaned() -> None:
                loop.remove_reader(supervisor)
                log.warning("the supervisor is gone: stopping")
                if not stop.done():
                    stop.set_result(signal.SIGTERM)

            loop.add_reader(supervisor, on_orphaned)
        received = await stop
        log.info(
            "%s: stopping; in-flight requests get up to %gs",
            signal.Signals(received).name,
            config.shutdown_timeout,
        )
    finally:
        if grpc_server is not None:
            await grpc_server.stop(config.shutdown_timeout)
        await runner.cleanup()
    log.info("stopped")


def _serve_one(config: Config) -> None:
    """One server process: the ready line once it listens."""

    def announce(port: int) -> None:
        click.echo(f"stonetown serving on {_http_url(config.host, port)} ({_where(config)})")
        sys.stdout.flush()

    try:
        asyncio.run(_serve_until_signalled(config, announce))
    except _ServeFailed as exc:
        click.echo(f"stonetown serve: {exc}", err=True)
        sys.exit(1)


#: A worker's report to its supervisor: one line, shorter than PIPE_BUF so that the lines of
#: several workers never interleave.
_REPORT_LIMIT = 2048


def _run_worker(config: Config, alive: int, report: int) -> int:
    """A forked worker's whole life; returns its exit status."""
    os.setpgrp()  # Ctrl-C reaches the supervisor alone, which forwards it once

    def send(line: str) -> None:
        os.write(report, (line.replace("\n", " ")[:_REPORT_LIMIT] + "\n").encode())

    try:
        asyncio.run(
            _serve_until_signalled(
                config, lambda port: send(f"ready {port}"), reuse_port=True, supervisor=alive
            )
        )
    except _ServeFailed as exc:
        send(f"failed {exc}")
        return 1
    return 0


def _reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) with SO_REUSEPORT and never listening: it fixes the port
    when ``port`` is 0, so that every worker binds the same one, and takes no connections.

    A port some other server already listens on is refused, even one that listens with
    SO_REUSEPORT itself (another fleet's workers): sharing it would split the requests between
    two servers, which may not even have the same database."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    held = socket.socket(family, socket.SOCK_STREAM)
    try:
        if port:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
                probe.bind((host, port))
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind((host, port))
    except OSError as exc:
        held.close()
        raise _ServeFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return held


class _Supervisor:
    """Forks the workers, reports readiness once, forwards signals, and reaps them."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.children: dict[int, int] = {}  # pid -> exit status once reaped (-1 while running)
        self.stopping = False

    def run(self) -> int:
        config = self.config
        from api.grpc.server import grpc_port_of  # noqa: PLC0415

        held = [_reserve_port(config.host, config.port)]
        port = held[0].getsockname()[1]
        grpc_port = grpc_port_of(config)
        if grpc_port is not None:  # a free port (0) becomes the same one for every worker
            held.append(_reserve_port(config.host, grpc_port))
            grpc_port = held[-1].getsockname()[1]
        worker_config = replace(config, port=port, grpc_port=grpc_port or 0)
        alive_r, alive_w = os.pipe()
        report_r, report_w = os.pipe()
        for _ in range(config.workers):
            pid = os.fork()
            if pid == 0:  # the worker
                status = 1
                try:
                    for sock in held:
                        sock.close()
                    os.close(alive_w)
                    os.close(report_r)
                    status = _run_worker(worker_config, alive_r, report_w)
                except BaseException:  # os._exit below would swallow it unsaid
                    log.exception("worker %d failed", os.getpid())
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(status)
            self.children[pid] = -1
        os.close(alive_r)
        os.close(report_w)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._forward)
        try:
            failure = self._await_ready(report_r)
            if failure is None:
                where = _where(config)
                click.echo(f"stonetown serving on {_http_url(config.host, port)} ({where})")
                sys.stdout.flush()
            else:
                click.echo(f"stonetown serve: {failure}", err=True)
                self._stop_all()
            return self._reap_all(failed=failure is not None)
        finally:
            os.close(report_r)
            os.close(alive_w)
            for sock in held:
                sock.close()

    def _forward(self, signum: int, _frame: object) -> None:
        self.stopping = True
        for pid, status in self.children.items():
            if status == -1:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)

    def _stop_all(self) -> None:
        self._forward(signal.SIGTERM, None)

    def _reap(self, block: bool) -> bool:
        """Reap one exited worker; whether one was."""
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return False
        self.children[pid] = os.waitstatus_to_exitcode(status)
        return True

    def _running(self) -> list[int]:
        return [pid for pid, status in self.children.items() if status == -1]

    def _await_ready(self, report: int) -> str | None:
        """Wait until every worker says it serves; the first failure's message otherwise."""
        ready, pending = 0, b""
        while ready < len(self.children):
            if self.stopping:
                return "stopped by a signal before every worker was ready"
            readable, _, _ = select.select([report], [], [], 0.2)
            if readable:
                chunk = os.read(report, 65536)
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    text = line.decode(errors="replace")
                    if text.startswith("failed "):
                        return text.removeprefix("failed ")
                    ready += text.startswith("ready ")
            while self._reap(block=False):
                pass
            if any(status != -1 for status in self.children.values()):
                return "a worker exited during start-up; see its log above"
        return None

    def _reap_all(self, *, failed: bool) -> int:
        while self._running():
            if not self._reap(block=True):
                break
            if not self.stopping and self._running():
                log.error("a worker exited on its own: stopping the others")
                failed = True
                self._stop_all()
        return 1 if failed or any(self.children.values()) else 0


def _shown_config(config: Config) -> str:
    settings: dict[str, object] = {}
    for f in fields(Config):
        value = getattr(config, f.name)
        if f.name == "preshared_keys":
            value = ["<hidden>"] * len(value)
        elif f.name == "database_url":
            value = redacted_url(config.database_url)
        settings[f.name] = list(value) if isinstance(value, tuple) else value
    return yaml.safe_dump(settings, sort_keys=False)


@click.command("serve")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="LevelDB data directory (env STONETOWN_DATA_DIR; default ./data).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (env STONETOWN_PORT; default 3476).",
)
@click.option(
    "--grpc-port",
    type=click.IntRange(0, 65535),
    help="Port of Permify's gRPC API; 0 disables it (env STONETOWN_GRPC_PORT; default 3478, or "
    "a free port, logged, when --port is 0).",
)
@click.option("--host", help="Address to listen on (env STONETOWN_HOST; default 127.0.0.1).")
@click.option(
    "--preshared-key",
    "preshared_keys",
    multiple=True,
    metavar="KEY",
    help="A key clients must send as `Authorization: Bearer KEY`; repeat for several "
    "(env STONETOWN_PRESHARED_KEYS, comma-separated; default: no authentication).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="YAML file of settings (env STONETOWN_CONFIG).",
)
@click.option(
    "--database-url",
    metavar="URL",
    help="Serve from this PostgreSQL database (postgresql://user:password@host:port/db) instead "
    "of LevelDB; several servers may share it (env STONETOWN_DATABASE_URL).",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    help="Server processes sharing the port (SO_REUSEPORT); more than 1 needs --database-url "
    "(env STONETOWN_WORKERS; default 1).",
)
@click.option(
    "--max-staleness",
    "max_staleness",
    type=click.FloatRange(0),
    metavar="SECONDS",
    help="PostgreSQL: answers without a snap token may reflect a revision up to this old "
    "(env STONETOWN_MAX_STALENESS_SECONDS; default 0, the latest committed).",
)
@click.option(
    "--resident-tuples",
    type=click.IntRange(0),
    metavar="N",
    help="LevelDB: tuples kept in memory for the engine's reads, all tenants together (about "
    "160 bytes each); 0 turns it off (env STONETOWN_RESIDENT_TUPLES; default 1000000).",
)
@click.option("--print-config", is_flag=True, help="Print the settings in effect and exit.")
def serve(
    *,
    data_dir: str | None,
    port: int | None,
    grpc_port: int | None,
    host: str | None,
    preshared_keys: tuple[str, ...],
    config_file: str | None,
    database_url: str | None,
    workers: int | None,
    max_staleness: float | None,
    resident_tuples: int | None,
    print_config: bool,
) -> None:
    """Serve Permify's HTTP API on a LevelDB data directory or a PostgreSQL database.

    Permify's gRPC API is served too, on --grpc-port (3478; 0: none), from the same process;
    the log says where (`gRPC serving on HOST:PORT`).

    Settings come from defaults, then the --config file, then STONETOWN_* variables, then flags.
    Prints one line, `stonetown serving on URL (data: DIR)` (or `(database: URL)`, its password
    hidden), when ready; logs (JSON access log lines included) go to standard error. SIGINT or
    SIGTERM stops it gracefully: no new connections, in-flight requests finish (up to
    shutdown_timeout), the store is closed, exit 0. A second signal exits at once (1). A data
    directory in use by another server, a database that is unreachable or needs `stonetown
    migrate`, or a port that cannot be bound, is an error (1); a bad setting is a usage error (2).

    With --workers N (PostgreSQL only) N server processes share the port; the ready line comes
    once all of them serve, a signal is passed to each, and a worker that dies stops the rest
    (exit 1).
    """
    overrides = {
        "data_dir": data_dir,
        "port": port,
        "grpc_port": grpc_port,
        "host": host,
        "preshared_keys": preshared_keys,
        "database_url": database_url,
        "workers": workers,
        "max_staleness_seconds": max_staleness,
        "resident_tuples": resident_tuples,
    }
    try:
        config = load_config(file=config_file, overrides=overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    if print_config:
        click.echo(_shown_config(config), nl=False)
        return
    _configure_logging()
    if config.workers == 1:
        _serve_one(config)
        return
    try:
        status = _Supervisor(config).run()
    except _ServeFailed as exc:
        click.echo(f"stonetown serve: {exc}", err=True)
        sys.exit(1)
    sys.exit(status)
