"""The ``stonetown`` command line: ``main``, the group every command is added to.

Local tools: ``schema validate``, ``schema fmt``, ``validate`` (run Permify validation files) and
``coverage``. The server: ``serve``, and ``migrate`` for its PostgreSQL database. Client
commands, talking to a server given by ``--url`` / ``STONETOWN_URL`` with ``--key`` /
``STONETOWN_KEY`` for tenant ``--tenant`` / ``STONETOWN_TENANT``: ``schema push|pull``,
``check``, ``tuples write|read|delete``, ``import``, ``export`` and ``relationship
list|get|create|upsert|schema`` (the relations layer's relationship records).

Exit codes: 0 success; 1 a failure (a schema error, a file that would change, a failed assertion,
coverage below a threshold, an error answer from the server or no answer, a bad import record); 2 a
usage error. ``check`` alone differs, grep-style: 0 ALLOWED, 1 DENIED, 2 no answer (a usage error,
an error answer, an unreachable server), so that a script never mistakes a failure for ALLOWED or
DENIED.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

# The commands live one group per module: local tools (``local``), the server (``serve``),
# questions about schemas and tuples (``remote``), bulk data (``import_export``) and the
# relationship records (``relationship``); ``files`` and ``session`` hold what they share.
# Each is imported only when its command runs (or a help page lists it): start-up time is paid
# on every invocation, by CI jobs and git hooks running `schema validate`, and the server and
# client stacks are most of it.


class LazyGroup(click.Group):
    """A group whose subcommands are ``"module:attribute"`` references, imported when asked for
    (click's "lazy loading of subcommands")."""

    def __init__(self, *args: Any, lazy_subcommands: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands and cmd_name not in self.commands:
            self.add_command(self._load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:
            # click suggests close names from the commands loaded so far; offer all of them.
            raise click.exceptions.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=exc.ctx
            ) from None

    def _load(self, cmd_name: str) -> click.Command:
        module_name, attribute = self.lazy_subcommands[cmd_name].split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}:{attribute} is not a click command")
        return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    lazy_subcommands={
        "validate": "api.cli.local:validate",
        "coverage": "api.cli.local:coverage",
        "serve": "api.cli.serve:serve",
        "migrate": "api.cli.migrate:migrate",
        "check": "api.cli.remote:check",
        "tuples": "api.cli.remote:tuples",
        "import": "api.cli.import_export:import_",
        "export": "api.cli.import_export:export",
        "relationship": "api.cli.relationship:relationship",
    },
)
@click.version_option(package_name="stonetown")
def main() -> None:
    """Stonetown: a Zanzibar-style authorization engine, Permify-compatible."""


@main.group(
    cls=LazyGroup,
    lazy_subcommands={
        "validate": "api.cli.local:schema_validate",
        "fmt": "api.cli.local:schema_fmt",
        "push": "api.cli.remote:schema_push",
        "pull": "api.cli.remote:schema_pull",
    },
)
def schema() -> None:
    """Work with schema files (Permify's .perm language)."""


__all__ = ["main"]
