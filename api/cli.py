"""The ``stonetown`` command line.

Local tools: ``schema validate``, ``schema fmt``, ``validate`` (run Permify validation files) and
``coverage``. The server: ``serve``. Client commands, talking to a server given by ``--url`` /
``STONETOWN_URL`` with ``--key`` / ``STONETOWN_KEY`` for tenant ``--tenant`` / ``STONETOWN_TENANT``:
``schema push|pull``, ``check``, ``tuples write|read|delete``, ``import``, ``export`` and
``relationship list|get|create|upsert|schema`` (the relations layer's relationship records).

Exit codes: 0 success; 1 a failure (a schema error, a file that would change, a failed assertion,
coverage below a threshold, an error answer from the server or no answer, a bad import record); 2 a
usage error. ``check`` alone differs, grep-style: 0 ALLOWED, 1 DENIED, 2 no answer (a usage error,
an error answer, an unreachable server), so that a script never mistakes a failure for ALLOWED or
DENIED.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import difflib
import io
import json
import logging
import os
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import IO, Any, TypeVar

import click
import yaml

from api.client import (
    DEFAULT_TENANT,
    DEFAULT_URL,
    MAX_RETRIES,
    READ_PAGE_SIZE,
    RECORDS_MAX_PAGE_SIZE,
    RECORDS_PAGE_SIZE,
    RETRY_BASE_DELAY,
    Client,
    ClientError,
    RecordsClient,
    Retry,
    Upserted,
)
from api.config import Config, ConfigError, load_config
from api.models import MAX_PAGE_SIZE
from api.transfer import (
    DataFileError,
    Format,
    TransferError,
    load_state,
    run_export,
    run_import,
    state_path,
)
from dsl.compiler import load
from dsl.errors import SchemaError
from dsl.format import format_schema
from engine.coverage import coverage as schema_coverage
from engine.errors import InvalidRequest
from engine.types import Entity, parse_subject
from engine.validate import ValidationFileError, compile_shape_schema, load_shape, validate_file
from storage.base import Subject, Tuple, TupleFilter
from storage.errors import StorageError

STDIN = "-"
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("stonetown.server")


def _read(path: str) -> bytes:
    if path == STDIN:
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def _label(path: str) -> str:
    return "<stdin>" if path == STDIN else path


def _read_schema(path: str, use: Callable[[bytes], T], *, err: bool) -> tuple[bytes, T] | None:
    """Read ``path`` and apply ``use`` to it; report an unreadable file or a schema error (on
    stderr with ``err``) and return None."""
    label = _label(path)
    try:
        raw = _read(path)
        return raw, use(raw)
    except OSError as exc:
        click.echo(f"{label}: cannot read: {exc.strerror or exc}", err=err)
    except SchemaError as exc:
        click.echo(exc.render(label), err=err)
    return None


def _write_atomically(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` so a crash never leaves a half-written schema."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, target.stat().st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stonetown")
def main() -> None:
    """Stonetown: a Zanzibar-style authorization engine, Permify-compatible."""


@main.group()
def schema() -> None:
    """Work with schema files (Permify's .perm language)."""


@schema.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def schema_validate(files: tuple[str, ...]) -> None:
    """Check schema FILES; print `file:line:col: message` for every problem.

    Exits 0 when every file is valid, 1 otherwise. `-` reads standard input.
    """
    failed = False
    for path in files:
        if _read_schema(path, load, err=False) is None:
            failed = True
        else:
            click.echo(f"{_label(path)}: valid")
    sys.exit(1 if failed else 0)


@schema.command("fmt")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if a file would change.")
@click.option("--write", "-w", is_flag=True, help="Rewrite files in place.")
@click.option("--diff", is_flag=True, help="With --check, show what would change.")
def schema_fmt(files: tuple[str, ...], check: bool, write: bool, diff: bool) -> None:
    """Print schema FILES in canonical form.

    Without options the formatted text goes to standard output (one file, or `-` for standard
    input). --write rewrites files in place; --check reports files that are not formatted.
    Comments are kept. A file that does not parse is reported and left alone (exit 1).
    """
    if check and write:
        raise click.UsageError("--check and --write exclude each other")
    if diff and not check:
        raise click.UsageError("--diff goes with --check")
    if not (check or write) and len(files) > 1:
        raise click.UsageError("give --write or --check to format several files")
    if write and STDIN in files:
        raise click.UsageError("--write cannot rewrite standard input")
    failed = False
    for path in files:
        label = _label(path)
        result = _read_schema(path, format_schema, err=True)
        if result is None:
            failed = True
            continue
        raw, formatted = result
        if not (check or write):
            click.echo(formatted, nl=False)
            continue
        original = raw.decode("utf-8")
        if original == formatted:
            continue
        if check:
            click.echo(f"would reformat {label}")
            if diff:
                click.echo(
                    "".join(
                        difflib.unified_diff(
                            original.splitlines(keepends=True),
                            formatted.splitlines(keepends=True),
                            fromfile=label,
                            tofile=f"{label} (formatted)",
                        )
                    ),
                    nl=False,
                )
            failed = True
        else:
            _write_atomically(path, formatted)
            click.echo(f"reformatted {label}")
    sys.exit(1 if failed else 0)


@main.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Run Permify validation FILES (schema, relationships, attributes, scenarios).

    Each file runs on its own temporary store. Prints every failed assertion as `file: scenario
    "name": query -> expected: ..., got: ...`, then `file: SUCCESS` or `file: FAILED`; a schema
    error as `file:line:col: message`. Exits 0 when every file passes, 1 otherwise.
    """
    failed = False
    for path in files:
        try:
            report = validate_file(path)
        except ValidationFileError as exc:
            for line in exc.lines:
                click.echo(line)
            click.echo(f"{path}: FAILED")
            failed = True
            continue
        for line in report.warnings:
            click.echo(line)
        for failure in report.failures:
            click.echo(f"{path}: {failure}")
        click.echo(f"{path}: {report.summary()}")
        failed = failed or not report.ok
    sys.exit(1 if failed else 0)


@main.command("coverage")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--coverage-relationships",
    default=0,
    metavar="N",
    type=click.IntRange(0, 100),
    help="Fail when total relationship coverage is below N%.",
)
@click.option(
    "--coverage-attributes",
    default=0,
    metavar="N",
    type=click.IntRange(0, 100),
    help="Fail when total attribute coverage is below N%.",
)
@click.option(
    "--coverage-assertions",
    default=0,
    metavar="N",
    type=click.IntRange(0, 100),
    help="Fail when total assertion coverage is below N%.",
)
def coverage(
    file: str, coverage_relationships: int, coverage_attributes: int, coverage_assertions: int
) -> None:
    """Report how much of FILE's schema its relationships, attributes and assertions cover.

    Per entity: declared relation/subject-type combinations used by a relationship, declared
    attributes set, and per scenario the permissions asserted by checks or entity filters.
    Exits 1 when a total is below its threshold (or the file cannot be read), 0 otherwise.
    """
    try:
        shape = load_shape(file)
        report = schema_coverage(shape, compile_shape_schema(shape))
    except ValidationFileError as exc:
        for line in exc.lines:
            click.echo(line)
        sys.exit(1)
    for line in shape.warnings:
        click.echo(line)
    for line in report.lines():
        click.echo(line)
    below = report.below(
        relationships=coverage_relationships,
        attributes=coverage_attributes,
        assertions=coverage_assertions,
    )
    for line in below:
        click.echo(f"{file}: FAILED: {line}")
    sys.exit(1 if below else 0)


# -- serve ------------------------------------------------------------------------------------


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


@main.command("serve")
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


# -- client commands --------------------------------------------------------------------------


def _client_options(command: F) -> F:
    """--url, --key and --tenant, each with its environment variable."""
    options = [
        click.option(
            "--url",
            envvar="STONETOWN_URL",
            default=DEFAULT_URL,
            show_default=True,
            help="The server (env STONETOWN_URL).",
        ),
        click.option(
            "--key",
            envvar="STONETOWN_KEY",
            default=None,
            help="Bearer key, sent as `Authorization: Bearer KEY` (env STONETOWN_KEY).",
        ),
        click.option(
            "--tenant",
            envvar="STONETOWN_TENANT",
            default=DEFAULT_TENANT,
            show_default=True,
            help="Tenant id (env STONETOWN_TENANT).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _report(exc: ClientError) -> None:
    """An error answer or a missing one, on stderr, in one or two lines (never a traceback)."""
    if exc.status is None:
        click.echo(f"error: {exc.message}", err=True)
        if "connect" in exc.message:
            click.echo("is `stonetown serve` running there? (set --url or STONETOWN_URL)", err=True)
        return
    code = f"HTTP {exc.status}" + (f", {exc.reason}" if exc.reason else "")
    click.echo(f"error: {exc.message} ({code})", err=True)
    if exc.status == 401:
        click.echo("give the key with --key or STONETOWN_KEY", err=True)


@contextlib.contextmanager
def _session(url: str, key: str | None, tenant: str, *, failure: int = 1) -> Iterator[Client]:
    """A client; a ClientError raised inside is reported and exits with ``failure``."""
    try:
        with Client(url, key=key, tenant=tenant) as client:
            yield client
    except ClientError as exc:
        _report(exc)
        sys.exit(failure)


@schema.command("push")
@click.argument("file", type=click.Path(dir_okay=False))
@_client_options
def schema_push(file: str, url: str, key: str | None, tenant: str) -> None:
    """Write the schema in FILE (`-`: standard input) to the server; print its version.

    A schema that does not compile prints `file:line:col: message` for every error (exit 1).
    """
    label = _label(file)
    try:
        text = _read(file).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        click.echo(f"{label}: cannot read: {reason or exc}", err=True)
        sys.exit(1)
    with _session(url, key, tenant) as client:
        try:
            click.echo(client.write_schema(text))
        except ClientError as exc:
            located = [v.description for v in exc.violations if v.field == "schema"]
            if exc.status != 400 or not located:
                raise
            for line in located:
                click.echo(f"{label}:{line}", err=True)
            sys.exit(1)


@schema.command("pull")
@click.option("--version", "schema_version", default="", help="A schema version (default: head).")
@_client_options
def schema_pull(schema_version: str, url: str, key: str | None, tenant: str) -> None:
    """Print a schema version's text as it was written.

    Reads the `x_schema_text` field Stonetown adds to `schemas/read` (a Permify server, which
    does not send it, is an error).
    """
    with _session(url, key, tenant) as client:
        found = client.read_schema(schema_version)
    if found.text is None:
        click.echo(
            f"error: {url} sent no schema text (x_schema_text, Stonetown's extension of "
            "schemas/read); is it a Stonetown server?",
            err=True,
        )
        sys.exit(1)
    click.echo(found.text, nl=not found.text.endswith("\n"))


def _entity(_ctx: click.Context, _param: click.Parameter, value: str) -> Entity:
    try:
        return Entity.parse(value)
    except InvalidRequest as exc:
        raise click.BadParameter(str(exc)) from exc


def _subject(_ctx: click.Context, _param: click.Parameter, value: str) -> Subject:
    try:
        return parse_subject(value)
    except InvalidRequest as exc:
        raise click.BadParameter(str(exc)) from exc


@main.command("check")
@click.argument("entity", callback=_entity)
@click.argument("permission")
@click.argument("subject", callback=_subject)
@click.option("--snap-token", default="", help="Answer at this snapshot (default: the newest).")
@click.option("--depth", type=click.IntRange(min=3), help="Depth limit (server default 50).")
@_client_options
def check(
    *,
    entity: Entity,
    permission: str,
    subject: Subject,
    snap_token: str,
    depth: int | None,
    url: str,
    key: str | None,
    tenant: str,
) -> None:
    """Can SUBJECT do PERMISSION on ENTITY? Prints ALLOWED or DENIED.

    ENTITY is `type:id` (`doc:1`), SUBJECT `type:id` or a userset `type:id#relation`
    (`group:1#member`). Exit status, grep-style: 0 ALLOWED, 1 DENIED, 2 no answer (usage error,
    error answer, unreachable server).
    """
    with _session(url, key, tenant, failure=2) as client:
        allowed = client.check(entity, permission, subject, snap_token=snap_token, depth=depth)
    click.echo("ALLOWED" if allowed else "DENIED")
    sys.exit(0 if allowed else 1)


@main.group()
def tuples() -> None:
    """Write, read and delete relationship tuples on a server."""


#: Tuples one `tuples write` sends (Permify's max_data_per_write); more belong in `import`.
MAX_TUPLES_PER_WRITE = 1000


def _tuple_args(args: tuple[str, ...]) -> list[Tuple]:
    sources: list[tuple[str, str]] = []
    for arg in args:
        if arg == STDIN:
            for number, line in enumerate(sys.stdin, start=1):
                text = line.strip()
                if text and not text.startswith("#"):
                    sources.append((f"<stdin>:{number}", text))
        else:
            sources.append((f"argument {arg!r}", arg))
    out = []
    for where, text in sources:
        try:
            out.append(Tuple.parse(text))
        except ValueError as exc:
            raise click.UsageError(f"{where}: {exc}") from exc
    return out


@tuples.command("write")
@click.argument("tuple_strings", metavar="TUPLE...", nargs=-1, required=True)
@_client_options
def tuples_write(tuple_strings: tuple[str, ...], url: str, key: str | None, tenant: str) -> None:
    """Write tuples in one atomic write; print its snap token.

    Each TUPLE is Permify's string form `doc:1#viewer@user:1` (`doc:1#viewer@group:1#member` for
    a userset); `-` reads one per line from standard input (blank lines and `#` comments are
    skipped). At most 1000; use `stonetown import` for more.
    """
    items = _tuple_args(tuple_strings)
    if not items:
        raise click.UsageError("no tuples given")
    if len(items) > MAX_TUPLES_PER_WRITE:
        raise click.UsageError(
            f"{len(items)} tuples: one write holds at most {MAX_TUPLES_PER_WRITE}; "
            "use `stonetown import` for more"
        )
    with _session(url, key, tenant) as client:
        click.echo(client.write_data(items))


def _filter_options(command: F) -> F:
    options = [
        click.option("--entity-type", default="", help="Entity type."),
        click.option("--entity-id", "entity_ids", multiple=True, help="Entity id; repeatable."),
        click.option("--relation", default="", help="Relation."),
        click.option("--subject-type", default="", help="Subject type."),
        click.option("--subject-id", "subject_ids", multiple=True, help="Subject id; repeatable."),
        click.option(
            "--subject-relation",
            default=None,
            help="Subject relation; `...` for plain subjects only (default: any).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _tuple_filter(
    *,
    entity_type: str,
    entity_ids: tuple[str, ...],
    relation: str,
    subject_type: str,
    subject_ids: tuple[str, ...],
    subject_relation: str | None,
) -> TupleFilter:
    return TupleFilter(
        entity_type=entity_type,
        entity_ids=entity_ids,
        relation=relation,
        subject_type=subject_type,
        subject_ids=subject_ids,
        # Not given: any subject relation; `...`: plain subjects only.
        subject_relation=(
            None if not subject_relation else "" if subject_relation == "..." else subject_relation
        ),
    )


@tuples.command("read")
@_filter_options
@click.option("--snap-token", default="", help="Read at this snapshot (default: the newest).")
@click.option(
    "--page-size",
    type=click.IntRange(1, MAX_PAGE_SIZE),
    default=READ_PAGE_SIZE,
    show_default=True,
    help="Tuples asked for per request.",
)
@_client_options
def tuples_read(
    *, snap_token: str, page_size: int, url: str, key: str | None, tenant: str, **flt: Any
) -> None:
    """Print the tuples matching the filter, one per line in Permify's string form.

    Follows every page. Without filter options prints every tuple of the tenant.
    """
    with _session(url, key, tenant) as client:
        selected = _tuple_filter(**flt)
        for t in client.read_tuples(selected, snap_token=snap_token, page_size=page_size):
            click.echo(str(t))


@tuples.command("delete")
@_filter_options
@_client_options
def tuples_delete(url: str, key: str | None, tenant: str, **flt: Any) -> None:
    """Delete the tuples matching the filter in one write; print its snap token.

    At least one filter option is required (an empty filter would delete every tuple).
    """
    selected = _tuple_filter(**flt)
    if selected.is_empty:
        raise click.UsageError(
            "give at least one filter option; an empty filter would delete every tuple"
        )
    with _session(url, key, tenant) as client:
        click.echo(client.delete_tuples(selected))


# -- import and export ------------------------------------------------------------------------

FORMAT_CHOICE = click.Choice([f.value for f in Format])
#: What one import write holds by default, and at most (Permify's max_data_per_write).
DEFAULT_BATCH = 500
MAX_BATCH = 1000


@main.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=FORMAT_CHOICE, help="Default: from FILE's extension.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH),
    default=DEFAULT_BATCH,
    show_default=True,
    help="Items per write; each write is atomic.",
)
@click.option("--resume", is_flag=True, help="Continue after the writes FILE.import-state notes.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@_client_options
def import_(
    *,
    file: str,
    fmt: str | None,
    batch_size: int,
    resume: bool,
    quiet: bool,
    url: str,
    key: str | None,
    tenant: str,
) -> None:
    """Write the tuples and attributes in FILE (NDJSON or CSV, as `export` writes) to the server.

    Streams FILE in batches, each one atomic data/write. After each write the position is saved
    in FILE.import-state; --resume continues from there (deleted when the import completes). A
    bad record stops the import at `FILE:LINE: message` (exit 1) after writing every record
    before it. Prints the last snap token; a summary and a progress bar (on a terminal) go to
    standard error.
    """
    form = Format.of(file, fmt)
    where = state_path(file)
    if where.exists() and not resume:
        click.echo(f"note: ignoring {where}; starting at line 1 (--resume continues)", err=True)
    elif resume and not where.exists():
        click.echo(f"note: no {where}; starting at line 1", err=True)
    try:
        size = os.path.getsize(file)
    except OSError as exc:
        click.echo(f"{file}: cannot read: {exc.strerror or exc}", err=True)
        sys.exit(1)
    bar: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if not quiet and sys.stderr.isatty():
        bar = click.progressbar(length=size, label=f"importing {file}", file=sys.stderr)
    with _session(url, key, tenant) as client:
        try:
            with bar as shown:
                result = run_import(
                    client,
                    file,
                    form,
                    batch_size=batch_size,
                    resume=resume,
                    progress=shown.update if shown is not None else None,
                )
        except (TransferError, ClientError) as exc:
            if isinstance(exc, ClientError):
                _report(exc)
            else:  # a DataFileError's message is `FILE:LINE: what`
                prefix = "" if isinstance(exc, DataFileError) else "error: "
                click.echo(f"{prefix}{exc}", err=True)
            _resume_hint(where)
            sys.exit(1)
    state = result.state
    if not quiet:
        resumed = f", resumed at line {result.started_at}" if result.started_at > 1 else ""
        click.echo(
            f"imported {_count(state.tuples, 'tuple')} and "
            f"{_count(state.attributes, 'attribute')} in {_count(state.writes, 'write')}{resumed}",
            err=True,
        )
    if state.snap_token:
        click.echo(state.snap_token)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _resume_hint(where: Path) -> None:
    try:
        state = load_state(where)
    except TransferError:
        return
    if state is None:
        click.echo("nothing was written", err=True)
    else:
        line = state.position.line
        click.echo(
            f"written: everything before line {line} ({_count(state.tuples, 'tuple')}, "
            f"{_count(state.attributes, 'attribute')}); fix the file and rerun with --resume",
            err=True,
        )


@main.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Default: standard output.")
@click.option("--format", "fmt", type=FORMAT_CHOICE, help="Default: from --output's extension.")
@click.option(
    "--snap-token",
    default="",
    help="Read everything at this snapshot (default: the newest when the export starts).",
)
@click.option("--quiet", "-q", is_flag=True, help="No summary on standard error.")
@_client_options
def export(
    *,
    output: str | None,
    fmt: str | None,
    snap_token: str,
    quiet: bool,
    url: str,
    key: str | None,
    tenant: str,
) -> None:
    """Write every tuple and attribute of the tenant as NDJSON or CSV, in the format `import`
    reads.

    Everything is read at one snapshot (--snap-token, or the newest when the export starts),
    so writes landing during the export are never partly included. A file given with --output
    appears only once the export has completed; the snap token used is printed on standard
    error.
    """
    form = Format.of(output, fmt)
    with _session(url, key, tenant) as client:
        if output is None:
            result = run_export(client, sys.stdout, form, snap_token=snap_token)
        else:
            with _replacing(output) as out:
                result = run_export(client, out, form, snap_token=snap_token)
    if not quiet:
        tuples, attributes = _count(result.tuples, "tuple"), _count(result.attributes, "attribute")
        click.echo(f"exported {tuples} and {attributes} at {result.snap_token}", err=True)


@contextlib.contextmanager
def _replacing(path: str) -> Iterator[IO[str]]:
    """A text stream that replaces ``path`` when the block completes, and vanishes otherwise."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- relationship records ---------------------------------------------------------------------


@main.group()
def relationship() -> None:
    """Relationship records between contacts (the relations layer's D1-D6) on a server.

    Records print as JSON, one per line. A request answered 429 or 5xx, or not at all, is
    retried with exponential backoff (--retries, --retry-delay; a Retry-After is honoured);
    other error answers are not. Exit codes: 0 success; 1 an error answer or no answer (for
    `upsert`: any row failed); 2 a usage error.
    """


def _records_options(command: F) -> F:
    """The client options, and how failed requests are retried."""
    options = [
        click.option(
            "--retries",
            type=click.IntRange(0, MAX_RETRIES),
            default=MAX_RETRIES,
            show_default=True,
            help="Retries of a request answered 429 or 5xx, or not at all.",
        ),
        click.option(
            "--retry-delay",
            type=click.FloatRange(min=0),
            default=RETRY_BASE_DELAY,
            show_default=True,
            metavar="SECONDS",
            help="Wait before the first retry; each further one waits twice as long.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return _client_options(command)


@contextlib.contextmanager
def _records_session(
    url: str, key: str | None, tenant: str, retries: int, retry_delay: float
) -> Iterator[RecordsClient]:
    """A records client; a ClientError raised inside is reported and exits 1."""
    retry = Retry(retries=retries, base_delay=retry_delay)
    try:
        with RecordsClient(url, key=key, tenant=tenant, retry=retry) as client:
            yield client
    except ClientError as exc:
        _report(exc)
        sys.exit(1)


def _json_line(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _filter_pairs(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE")
        pairs.append((name, text))
    return pairs


@relationship.command("list")
@click.option("--limit", type=click.IntRange(min=1), help="At most N records (default: all).")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_filter_pairs,
    help="Only records whose KEY is VALUE; repeat a key for any of several values. Keys: "
    "parent_id, target_id, kind, status, is_archived, owned_by.",
)
@click.option(
    "--sort",
    help="created_at or kind, `-` first for descending (default: the server's, kind).",
)
@click.option(
    "--page-size",
    type=click.IntRange(1, RECORDS_MAX_PAGE_SIZE),
    default=RECORDS_PAGE_SIZE,
    show_default=True,
    help="Records asked for per request.",
)
@_records_options
def relationship_list(
    *,
    limit: int | None,
    filters: list[tuple[str, str]],
    sort: str | None,
    page_size: int,
    **conn: Any,
) -> None:
    """Print records as NDJSON, one per line, following the pages (keyset on created_at sorts,
    offsets otherwise) until --limit records or the end."""
    with _records_session(**conn) as client:
        for record in client.records(filters=filters, sort=sort, limit=limit, page_size=page_size):
            click.echo(_json_line(record))


@relationship.command("get")
@click.argument("record_id", metavar="ID")
@_records_options
def relationship_get(record_id: str, **conn: Any) -> None:
    """Print the record ID as one JSON line (a missing or unreadable one is an error, exit 1)."""
    with _records_session(**conn) as client:
        click.echo(_json_line(client.get(record_id)))


@relationship.command("create")
@click.option("--parent-id", required=True, help="The contact the relationship starts at.")
@click.option("--target-id", required=True, help="The contact it points to.")
@click.option("--kind", required=True, help="partner, spouse, parent, child, ... (see `schema`).")
@click.option("--label", help="Up to 80 characters.")
@click.option("--notes", help="Up to 2000 characters.")
@click.option("--since", help="Up to 32 characters.")
@_records_options
def relationship_create(
    *,
    parent_id: str,
    target_id: str,
    kind: str,
    label: str | None,
    notes: str | None,
    since: str | None,
    **conn: Any,
) -> None:
    """Create a record and print it as one JSON line. The server writes its mirror (the
    inverse kind, from --target-id to --parent-id) with it."""
    fields = {"parent_id": parent_id, "target_id": target_id, "kind": kind}
    for name, value in (("label", label), ("notes", notes), ("since", since)):
        if value is not None:
            fields[name] = value
    with _records_session(**conn) as client:
        click.echo(_json_line(client.create(fields)))


@relationship.command("schema")
@_records_options
def relationship_schema(**conn: Any) -> None:
    """Print the server's description of a record (D6) as JSON: fields with their limits and
    create/patch flags, filters, sort keys, page sizes and the scope of every endpoint."""
    with _records_session(**conn) as client:
        found = client.schema()
    click.echo(json.dumps(found.document, indent=2, ensure_ascii=False))


def _unique_fields(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise click.BadParameter("give field names separated by commas")
    return list(dict.fromkeys(names))


#: One CSV data row: its number (from 1, after the header) and its non-empty cells by column,
#: or what is wrong with it.
Row = tuple[int, dict[str, str] | str]


@contextlib.contextmanager
def _csv_rows(path: str) -> Iterator[tuple[list[str], Iterator[Row]]]:
    """The CSV file's columns and its rows. An unreadable file, no header row or a repeated
    column is reported and exits 1; so is a file that turns out unreadable midway."""
    label = _label(path)
    try:
        if path == STDIN:
            handle = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
        else:
            handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        click.echo(f"{label}: cannot read: {exc.strerror or exc}", err=True)
        sys.exit(1)
    try:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            click.echo(f"{label}:1: {exc}", err=True)
            sys.exit(1)
        if header is None:
            click.echo(f"{label}: no header row", err=True)
            sys.exit(1)
        columns = [name.strip() or f"(column {n})" for n, name in enumerate(header, start=1)]
        repeated = sorted({name for name in columns if columns.count(name) > 1})
        if repeated:
            click.echo(f"{label}: repeated columns: {', '.join(repeated)}", err=True)
            sys.exit(1)
        yield columns, _csv_cells(label, columns, reader)
    finally:
        if path == STDIN:
            handle.detach()  # standard input stays open
        else:
            handle.close()


def _csv_cells(label: str, columns: list[str], reader: Any) -> Iterator[Row]:
    number = 0
    try:
        for record in reader:
            if not record:  # a blank line
                continue
            number += 1
            if len(record) > len(columns):
                yield number, f"{len(record)} cells, but the header has {len(columns)} columns"
                continue
            # Fewer cells than columns: the missing ones are empty.
            cells = zip(columns, record, strict=False)
            yield number, {name: value for name, value in cells if value != ""}
    except (csv.Error, UnicodeDecodeError) as exc:
        click.echo(f"{label}:{reader.line_num}: {exc}", err=True)
        sys.exit(1)


@relationship.command("upsert")
@click.option(
    "--unique",
    required=True,
    callback=_unique_fields,
    metavar="FIELD[,FIELD...]",
    help="The fields that identify a record; each must be a filter key (see `schema`).",
)
@click.option(
    "--csv",
    "csv_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="A CSV file whose header row names the fields; `-`: standard input.",
)
@click.option("--quiet", "-q", is_flag=True, help="No summary on standard error.")
@_records_options
def relationship_upsert(*, unique: list[str], csv_file: str, quiet: bool, **conn: Any) -> None:
    """Create or update a record for every row of a CSV file.

    A row's non-empty cells are its fields: an empty cell is not sent, and a non-empty one in a
    column that is no writable field of the record (see `schema`) is the row's error. The
    records whose --unique fields equal the row's decide: none, the record is created; one, its
    patchable fields that differ are changed (`updated`, or `unchanged`), while a differing
    create-only field (kind, parent_id, target_id) is the row's error; several, the row's error
    `ambiguous match (n)`. An error answer of 4xx is the row's error too (the server's message),
    and the run goes on.

    Prints one JSON line per row: {"row", "action", "id", "error"}, rows counted from 1 after
    the header. Exits 1 when any row failed. No answer, or a 5xx after the retries, stops the
    run (exit 1); the rows before it are done.
    """
    counts: Counter[str] = Counter()
    with _records_session(**conn) as client, _csv_rows(csv_file) as (columns, rows):
        described = client.schema()
        problem = described.unique_problem(unique, columns)
        if problem is not None:
            raise click.UsageError(f"--unique: {problem}")
        for number, cells in rows:
            if isinstance(cells, str):
                outcome = Upserted("error", error=cells)
            else:
                outcome = client.upsert(described, unique, cells)
            counts[outcome.action] += 1
            line = {"row": number, "action": outcome.action, "id": outcome.id}
            click.echo(_json_line({**line, "error": outcome.error}))
    if not quiet:
        done = ", ".join(f"{counts[a]} {a}" for a in ("created", "updated", "unchanged", "error"))
        click.echo(f"upserted {_count(counts.total(), 'row')}: {done}", err=True)
    sys.exit(1 if counts["error"] else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
