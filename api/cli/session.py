"""What the commands that talk to a server share: the --url/--key/--tenant options, a client
session that turns a failed request into a message and an exit status, and summary counts."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import click

from api.client import DEFAULT_TENANT, DEFAULT_URL, Client, ClientError

F = TypeVar("F", bound=Callable[..., Any])


def with_options(command: F, options: Sequence[Callable[[F], F]]) -> F:
    """``command`` with click ``options`` applied, listed in the order --help shows them."""
    for option in reversed(options):
        command = option(command)
    return command


def client_options(command: F) -> F:
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
    return with_options(command, options)


def report(exc: ClientError) -> None:
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
def exiting_on_client_error(failure: int = 1) -> Iterator[None]:
    """A ClientError raised inside is reported and exits with ``failure``."""
    try:
        yield
    except ClientError as exc:
        report(exc)
        sys.exit(failure)


@contextlib.contextmanager
def session(url: str, key: str | None, tenant: str, *, failure: int = 1) -> Iterator[Client]:
    """A client; a ClientError raised inside is reported and exits with ``failure``."""
    with exiting_on_client_error(failure), Client(url, key=key, tenant=tenant) as client:
        yield client


def count(n: int, noun: str) -> str:
    """``1 tuple``, ``2 tuples``: a number of ``noun`` for a summary line."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
