"""The ``stonetown`` command line: ``main``, the group every command is added to.

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

import click

from api.cli import import_export, local, relationship, remote, serve

# The commands live one group per module: local tools (``local``), the server (``serve``),
# questions about schemas and tuples (``remote``), bulk data (``import_export``) and the
# relationship records (``relationship``); ``files`` and ``session`` hold what they share.


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stonetown")
def main() -> None:
    """Stonetown: a Zanzibar-style authorization engine, Permify-compatible."""


@main.group()
def schema() -> None:
    """Work with schema files (Permify's .perm language)."""


schema.add_command(local.schema_validate)
schema.add_command(local.schema_fmt)
schema.add_command(remote.schema_push)
schema.add_command(remote.schema_pull)
main.add_command(local.validate)
main.add_command(local.coverage)
main.add_command(serve.serve)
main.add_command(remote.check)
main.add_command(remote.tuples)
main.add_command(import_export.import_)
main.add_command(import_export.export)
main.add_command(relationship.relationship)

__all__ = ["main"]
