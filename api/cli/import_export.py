"""``stonetown import`` and ``stonetown export``: a tenant's tuples and attributes to and from
NDJSON or CSV files, through a server (the streaming and resuming live in ``api.transfer``)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from api.cli.files import replacing
from api.cli.session import client_options, count, report, session
from api.client import ClientError
from api.transfer import (
    DataFileError,
    Format,
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
@click.option("--resume", is_flag=True, help="Continue after the writes FILE.import-state notes.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@client_options
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
    with session(url, key, tenant) as client:
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
                report(exc)
            else:  # a DataFileError's message is `FILE:LINE: what`
                prefix = "" if isinstance(exc, DataFileError) else "error: "
                click.echo(f"{prefix}{exc}", err=True)
            _resume_hint(where)
            sys.exit(1)
    state = result.state
    if not quiet:
        resumed = f", resumed at line {result.started_at}" if result.started_at > 1 else ""
        click.echo(
            f"imported {count(state.tuples, 'tuple')} and "
            f"{count(state.attributes, 'attribute')} in {count(state.writes, 'write')}{resumed}",
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
    """Write every tuple and attribute of the tenant as NDJSON or CSV, in the format `import`
    reads.

    Everything is read at one snapshot (--snap-token, or the newest when the export starts),
    so writes landing during the export are never partly included. A file given with --output
    appears only once the export has completed; the snap token used is printed on standard
    error.
    """
    form = Format.of(output, fmt)
    with session(url, key, tenant) as client:
        if output is None:
            result = run_export(client, sys.stdout, form, snap_token=snap_token)
        else:
            with replacing(output) as out:
                result = run_export(client, out, form, snap_token=snap_token)
    if not quiet:
        tuples, attributes = count(result.tuples, "tuple"), count(result.attributes, "attribute")
        click.echo(f"exported {tuples} and {attributes} at {result.snap_token}", err=True)
