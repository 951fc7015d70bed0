"""``stonetown migrate``: create or upgrade a PostgreSQL database's tables to this release.

Versioned and idempotent: each migration runs once, in order, and running the command again (or
from several replicas at once, as a deploy step of each) applies nothing twice. ``serve`` refuses
a database that is behind and names this command.
"""

from __future__ import annotations

import sys

import click

from api.config import redacted_url
from storage.errors import StorageError


@click.command("migrate")
@click.option(
    "--database-url",
    envvar="STONETOWN_DATABASE_URL",
    required=True,
    metavar="URL",
    help="The PostgreSQL database to migrate: postgresql://user:password@host:port/db "
    "(env STONETOWN_DATABASE_URL).",
)
def migrate(*, database_url: str) -> None:
    """Create or upgrade the tables of a PostgreSQL database for `stonetown serve`.

    Prints the versions applied, or that the database was already up to date. Safe to run
    again, and from several machines at once. Exit 0 on success; 1 when the database cannot be
    reached or a migration fails (nothing of that migration is kept); 2 on a usage error.
    """
    if not database_url.startswith(("postgresql://", "postgres://")):
        raise click.BadParameter(
            "expected a PostgreSQL URL: postgresql://user:password@host:port/database",
            param_hint="--database-url",
        )
    # Imported here: the driver is loaded by the commands that use it.
    from storage.postgres import migrate as apply_migrations  # noqa: PLC0415

    where = redacted_url(database_url)
    try:
        applied = apply_migrations(database_url)
    except StorageError as exc:
        click.echo(f"stonetown migrate: {where}: {exc}", err=True)
        sys.exit(1)
    if applied:
        versions = ", ".join(str(v) for v in applied)
        click.echo(f"{where}: applied migration{'s' if len(applied) > 1 else ''} {versions}")
    else:
        click.echo(f"{where}: up to date")
