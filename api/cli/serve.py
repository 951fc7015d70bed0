"""``stonetown serve``: Permify's HTTP API on a LevelDB data directory, until a signal stops it.

The only command that starts a server: the aiohttp stack is imported when it runs, so the other
commands do not pay for it at start-up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from dataclasses import fields

import click
import yaml

from api.config import Config, ConfigError, load_config
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


async def _serve_until_signalled(config: Config) -> None:
    """Serve until SIGINT or SIGTERM, then stop accepting, let in-flight requests finish (up to
    ``shutdown_timeout``) and close the store. A second signal exits at once."""
    # Imported here: the server stack is most of the CLI's start-up time, which the local and
    # client commands should not pay.
    from aiohttp import web  # noqa: PLC0415

    from api.app import create_app, make_runner  # noqa: PLC0415

    runner = make_runner(create_app(config))
    try:
        await runner.setup()  # opens the store
    except StorageError as exc:
        raise _ServeFailed(str(exc)) from exc
    try:
        site = web.TCPSite(runner, config.host, config.port)
        try:
            await site.start()
        except OSError as exc:
            where = f"{config.host}:{config.port}"
            raise _ServeFailed(f"cannot listen on {where}: {exc.strerror or exc}") from exc
        port = runner.addresses[0][1]
        click.echo(f"stonetown serving on {_http_url(config.host, port)} (data: {config.data_dir})")
        sys.stdout.flush()
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
        received = await stop
        log.info(
            "%s: stopping; in-flight requests get up to %gs",
            signal.Signals(received).name,
            config.shutdown_timeout,
        )
    finally:
        await runner.cleanup()
    log.info("stopped")


def _shown_config(config: Config) -> str:
    settings: dict[str, object] = {}
    for f in fields(Config):
        value = getattr(config, f.name)
        if f.name == "preshared_keys":
            value = ["<hidden>"] * len(value)
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
@click.option("--print-config", is_flag=True, help="Print the settings in effect and exit.")
def serve(
    *,
    data_dir: str | None,
    port: int | None,
    host: str | None,
    preshared_keys: tuple[str, ...],
    config_file: str | None,
    print_config: bool,
) -> None:
    """Serve Permify's HTTP API on a LevelDB data directory.

    Settings come from defaults, then the --config file, then STONETOWN_* variables, then flags.
    Prints one line, `stonetown serving on URL (data: DIR)`, when ready; logs (JSON access log
    lines included) go to standard error. SIGINT or SIGTERM stops it gracefully: no new
    connections, in-flight requests finish (up to shutdown_timeout), the store is closed, exit 0.
    A second signal exits at once (1). A data directory in use by another server, or a port
    that cannot be bound, is an error (1); a bad setting is a usage error (2).
    """
    overrides = {"data_dir": data_dir, "port": port, "host": host, "preshared_keys": preshared_keys}
    try:
        config = load_config(file=config_file, overrides=overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    if print_config:
        click.echo(_shown_config(config), nl=False)
        return
    _configure_logging()
    try:
        asyncio.run(_serve_until_signalled(config))
    except _ServeFailed as exc:
        click.echo(f"stonetown serve: {exc}", err=True)
        sys.exit(1)
