"""``stonetown relationship list|get|create|schema|upsert``: the relations layer's relationship
records on a server, printed as JSON lines; ``upsert`` reads its rows from a CSV file.

The same group is also the ``friendshipcli`` console script (``friendshipcli relationship
...``), the name the record model's documents use: same commands, flags and CSV upsert."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import click

from api.cli.files import STDIN, display_name
from api.cli.session import F, client_options, count, exiting_on_client_error, with_options
from api.client import (
    MAX_RETRIES,
    RECORDS_MAX_PAGE_SIZE,
    RECORDS_PAGE_SIZE,
    RETRY_BASE_DELAY,
    RecordsClient,
    Retry,
    Upserted,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def relationship() -> None:
    """Relationship records between contacts, through a server's record endpoints
    (/v1/tenants/TENANT/xapi2/data/relationship).

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
    return client_options(with_options(command, options))


@contextlib.contextmanager
def _records_session(
    url: str, key: str | None, tenant: str, retries: int, retry_delay: float
) -> Iterator[RecordsClient]:
    """A records client; a ClientError raised inside is reported and exits 1."""
    retry = Retry(retries=retries, base_delay=retry_delay)
    with (
        exiting_on_client_error(),
        RecordsClient(url, key=key, tenant=tenant, retry=retry) as client,
    ):
        yield client


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
    """Print the server's description of a record as JSON: fields with their limits and
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
    label = display_name(path)
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
        click.echo(f"upserted {count(counts.total(), 'row')}: {done}", err=True)
    sys.exit(1 if counts["error"] else 0)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stonetown")
def friendshipcli() -> None:
    """friendshipcli: relationship records between contacts on a Stonetown server.

    The same commands as `stonetown relationship`: list, get, create, schema and upsert.
    """


friendshipcli.add_command(relationship)
