"""``stonetown import`` and ``stonetown export``: a tenant's schema, tuples, attributes and
relations layer to and from NDJSON or CSV files, through a server (the streaming and resuming
live in ``api.transfer``)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from api.cli.files import replacing
from api.cli.session import client_options, count, exiting_on_client_error, report, session
from api.client import ClientError
from api.client.records import RelationsBackupClient
from api.transfer import (
    DataFileError,
    Format,
    ImportTarget,
    LayerTarget,
    TransferError,
    load_state,
    run_export,
    run_import,
    state_path,
)

FORMAT_CHOICE = click.Choice([f.value for f in Format])
#: What one import write holds by default, and at most (Permify's max_data_per_write).
DEFAULT_BATCH = 500
MAX_BATCH = 1000
#: Data writes in flight at once: the server validates one while the store writes another.
DEFAULT_IN_FLIGHT = 2
MAX_IN_FLIGHT = 16


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=FORMAT_CHOICE, help="Default: from FILE's extension.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH),
    default=DEFAULT_BATCH,
    show_default=True,
    help="Items per write; each write is atomic.",
)
@click.option(
    "--in-flight",
    type=click.IntRange(1, MAX_IN_FLIGHT),
    default=DEFAULT_IN_FLIGHT,
    show_default=True,
    help="Data writes sent at once (each still atomic; progress is saved in file order).",
)
@click.option(
    "--database-url",
    metavar="URL",
    help="Write straight into this PostgreSQL database (as a server on it would) instead of "
    "through --url.",
)
@click.option("--resume", is_flag=True, help="Continue after the writes FILE.import-state notes.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@client_options
def import_(
    *,
    file: str,
    fmt: str | None,
    batch_size: int,
    in_flight: int,
    database_url: str | None,
    resume: bool,
    quiet: bool,
    url: str,
    key: str | None,
    tenant: str,
) -> None:
    """Write the schema, tuples, attributes and relations in FILE (NDJSON or CSV, as `export`
    writes) to the server: into an empty tenant, a backup restores one that answers every
    check and shows every relation as the exported one did.

    Streams FILE in batches, each one atomic write (data/write; relations/restore, which needs
    the admin key, for the relations layer, never splitting a pair). After each write the
    position is saved in FILE.import-state; --resume continues from there (deleted when the
    import completes). A bad record stops the import at `FILE:LINE: message` (exit 1) after
    writing every record before it. Prints the last snap token; a summary and a progress bar
    (on a terminal) go to standard error.
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
    with contextlib.ExitStack() as stack:
        target: ImportTarget
        layer: LayerTarget
        if database_url:
            # The pool's reconnection warnings would bury the one error reported below.
            logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
            with exiting_on_client_error():
                # The server stack, imported only for a direct import.
                from api.cli.import_direct import DirectTarget  # noqa: PLC0415

                direct = stack.enter_context(DirectTarget(database_url, tenant))
            target = layer = direct
        else:
            target = stack.enter_context(session(url, key, tenant))
            layer = stack.enter_context(RelationsBackupClient(url, key=key, tenant=tenant))
        try:
            with bar as shown:
                result = run_import(
                    target,
                    file,
                    form,
                    batch_size=batch_size,
                    resume=resume,
                    progress=shown.update if shown is not None else None,
                    layer=layer,
                    in_flight=in_flight,
                )
        except (TransferError, ClientError) as exc:
            if isinstance(exc, ClientError):
                report(exc)
            else:  # a DataFileError's message is `FILE:LINE: what`
                prefix = "" if isinstance(exc, DataFileError) else "error: "
                click.echo(f"{prefix}{exc}", err=True)
            _resume_hint(where)
            sys.exit(1)
    state = result.state
    if not quiet:
        resumed = f", resumed at line {result.started_at}" if result.started_at > 1 else ""
        relations = f" and {count(state.relations, 'relation')}" if state.relations else ""
        click.echo(
            f"imported {count(state.tuples, 'tuple')} and "
            f"{count(state.attributes, 'attribute')}{relations} in "
            f"{count(state.writes, 'write')}{resumed}",
            err=True,
        )
    if state.snap_token:
        click.echo(state.snap_token)


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
            f"written: everything before line {line} ({count(state.tuples, 'tuple')}, "
            f"{count(state.attributes, 'attribute')}); fix the file and rerun with --resume",
            err=True,
        )


@click.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Default: standard output.")
@click.option("--format", "fmt", type=FORMAT_CHOICE, help="Default: from --output's extension.")
@click.option(
    "--snap-token",
    default="",
    help="Read everything at this snapshot (default: the newest when the export starts).",
)
@click.option("--quiet", "-q", is_flag=True, help="No summary on standard error.")
@client_options
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
    """Write the tenant's schema, every tuple and attribute, and its relations layer (settings,
    relationship types, relations with their metadata and positions; the admin key reads it)
    as NDJSON or CSV, in the format `import` reads: a backup `import` restores.

    Everything is read at one snapshot (--snap-token, or the newest when the export starts),
    so writes landing during the export are never partly included. A file given with --output
    appears only once the export has completed; the snap token used is printed on standard
    error.
    """
    form = Format.of(output, fmt)
    with (
        session(url, key, tenant) as client,
        RelationsBackupClient(url, key=key, tenant=tenant) as layer,
    ):
        if output is None:
            result = run_export(client, sys.stdout, form, snap_token=snap_token, layer=layer)
        else:
            with replacing(output) as out:
                result = run_export(client, out, form, snap_token=snap_token, layer=layer)
    if not quiet:
        tuples, attributes = count(result.tuples, "tuple"), count(result.attributes, "attribute")
        more = [
            count(result.types, "relationship type") if result.types else "",
            count(result.relations, "relation") if result.relations else "",
            "the schema" if result.schema else "",
        ]
        also = "".join(f", {part}" for part in more if part)
        click.echo(f"exported {tuples} and {attributes}{also} at {result.snap_token}", err=True)
