"""The ``stonetown`` commands that ask a server about schemas and tuples: ``schema push|pull``,
``check`` and ``tuples write|read|delete``. The server, key and tenant come from
``--url``/``--key``/``--tenant`` or their ``STONETOWN_*`` variables."""

from __future__ import annotations

import sys
from typing import Any

import click

from api.cli.files import STDIN, display_name, read_input
from api.cli.session import F, client_options, session, with_options
from api.client import READ_PAGE_SIZE, Client, ClientError
from api.models import MAX_PAGE_SIZE
from dsl.compiler import load
from engine.errors import InvalidRequest
from engine.suggest import suggest
from engine.types import Entity, parse_subject
from storage.base import Subject, Tuple, TupleFilter


@click.command("push")
@click.argument("file", type=click.Path(dir_okay=False))
@client_options
def schema_push(file: str, url: str, key: str | None, tenant: str) -> None:
    """Write the schema in FILE (`-`: standard input) to the server; print its version.

    A schema that does not compile prints `file:line:col: message` for every error (exit 1).
    """
    label = display_name(file)
    try:
        text = read_input(file).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        click.echo(f"{label}: cannot read: {reason or exc}", err=True)
        sys.exit(1)
    with session(url, key, tenant) as client:
        try:
            click.echo(client.write_schema(text))
        except ClientError as exc:
            located = [v.description for v in exc.violations if v.field == "schema"]
            if exc.status != 400 or not located:
                raise
            for line in located:
                click.echo(f"{label}:{line}", err=True)
            sys.exit(1)


@click.command("pull")
@click.option("--version", "schema_version", default="", help="A schema version (default: head).")
@client_options
def schema_pull(schema_version: str, url: str, key: str | None, tenant: str) -> None:
    """Print a schema version's text as it was written.

    Reads the `x_schema_text` field Stonetown adds to `schemas/read` (a Permify server, which
    does not send it, is an error).
    """
    with session(url, key, tenant) as client:
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


@click.command("check")
@click.argument("entity", callback=_entity)
@click.argument("permission")
@click.argument("subject", callback=_subject)
@click.option("--snap-token", default="", help="Answer at this snapshot (default: the newest).")
@click.option("--depth", type=click.IntRange(min=3), help="Depth limit (server default 50).")
@client_options
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
    with session(url, key, tenant, failure=2) as client:
        allowed = client.check(entity, permission, subject, snap_token=snap_token, depth=depth)
    click.echo("ALLOWED" if allowed else "DENIED")
    sys.exit(0 if allowed else 1)


@click.group()
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
@client_options
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
    with session(url, key, tenant) as client:
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
    return with_options(command, options)


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
@client_options
def tuples_read(
    *, snap_token: str, page_size: int, url: str, key: str | None, tenant: str, **flt: Any
) -> None:
    """Print the tuples matching the filter, one per line in Permify's string form.

    Follows every page. Without filter options prints every tuple of the tenant.
    """
    with session(url, key, tenant) as client:
        selected = _tuple_filter(**flt)
        problem = _unknown_names(client, selected)
        if problem:
            click.echo(f"error: {problem}", err=True)
            sys.exit(1)
        for t in client.read_tuples(selected, snap_token=snap_token, page_size=page_size):
            click.echo(str(t))


def _unknown_names(client: Client, selected: TupleFilter) -> str | None:
    """What in the filter the tenant's schema does not know (an entity type, a relation, a
    subject type), with the closest names, or None. A filter naming what no schema has matches
    nothing: said, not printed as an empty answer. Not checked without a schema text (a
    tenant without a schema, a Permify server)."""
    if not (selected.entity_type or selected.relation or selected.subject_type):
        return None
    try:
        text = client.read_schema().text
    except ClientError as exc:
        if exc.status == 404:
            return None
        raise
    if text is None:
        return None
    schema = load(text)

    def unknown(what: str, name: str, known: list[str]) -> str:
        close = suggest(name, known)
        hint = f"; did you mean {' or '.join(f'`{c}`' for c in close)}?" if close else ""
        return f"{what} `{name}` is not in the tenant's schema{hint}"

    types = sorted(schema.entities)
    for name in (selected.entity_type, selected.subject_type):
        if name and name not in schema.entities:
            return unknown("entity type", name, types)
    if selected.relation:
        owners = (
            [schema.entities[selected.entity_type]]
            if selected.entity_type
            else [schema.entities[t] for t in types]
        )
        relations = sorted({r for entity in owners for r in entity.relations})
        if selected.relation not in relations:
            where = f"relation of `{selected.entity_type}`" if selected.entity_type else "relation"
            return unknown(where, selected.relation, relations)
    return None


@tuples.command("delete")
@_filter_options
@client_options
def tuples_delete(url: str, key: str | None, tenant: str, **flt: Any) -> None:
    """Delete the tuples matching the filter in one write; print its snap token.

    At least one filter option is required (an empty filter would delete every tuple).
    """
    selected = _tuple_filter(**flt)
    if selected.is_empty:
        raise click.UsageError(
            "give at least one filter option; an empty filter would delete every tuple"
        )
    with session(url, key, tenant) as client:
        click.echo(client.delete_tuples(selected))
