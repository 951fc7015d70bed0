"""The ``stonetown`` commands that need no server: ``schema validate``, ``schema fmt``,
``validate`` (run Permify validation files) and ``coverage``.

``validate`` is wiring as well: it chooses the store a file runs on, a fresh LevelDB store in a
temporary directory per file, and hands the runner a factory for it.

The validation runner, the coverage report and LevelDB are imported inside the commands that use
them: `schema validate` and `schema fmt` run in CI jobs and git hooks, where start-up time is most
of their time, and need only the DSL.
"""

from __future__ import annotations

import difflib
import sys
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from api.cli.files import STDIN, display_name, read_input, write_atomically
from dsl.compiler import load
from dsl.errors import SchemaError
from dsl.format import format_schema

if TYPE_CHECKING:
    from api.validate import Report

T = TypeVar("T")


def _read_schema(path: str, use: Callable[[bytes], T], *, err: bool) -> tuple[bytes, T] | None:
    """Read ``path`` and apply ``use`` to it; report an unreadable file or a schema error (on
    stderr with ``err``) and return None."""
    label = display_name(path)
    try:
        raw = read_input(path)
        return raw, use(raw)
    except OSError as exc:
        click.echo(f"{label}: cannot read: {exc.strerror or exc}", err=err)
    except SchemaError as exc:
        click.echo(exc.render(label), err=err)
    return None


@click.command("validate")
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
            click.echo(f"{display_name(path)}: valid")
    sys.exit(1 if failed else 0)


@click.command("fmt")
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
        label = display_name(path)
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
            write_atomically(path, formatted)
            click.echo(f"reformatted {label}")
    sys.exit(1 if failed else 0)


@click.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Run Permify validation FILES (schema, relationships, attributes, scenarios).

    Each file runs on its own temporary store. Prints every failed assertion as `file: scenario
    "name": query -> expected: ..., got: ...`, then `file: SUCCESS` or `file: FAILED`; a schema
    error as `file:line:col: message`. Exits 0 when every file passes, 1 otherwise.
    """
    from api.validate import ValidationFileError  # noqa: PLC0415

    failed = False
    for path in files:
        try:
            report = _validate_on_a_temporary_store(path)
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


def _validate_on_a_temporary_store(path: str) -> Report:
    """Run the file at ``path`` on a fresh LevelDB store in a temporary directory, removed when
    the run ends."""
    from api.validate import validate_file  # noqa: PLC0415
    from storage.leveldb import LevelDBStore  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="stonetown-validate-") as directory:
        return validate_file(path, store_factory=lambda: LevelDBStore(directory, gc_interval=None))


@click.command("coverage")
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
    from api.coverage import coverage as schema_coverage  # noqa: PLC0415
    from api.validate import ValidationFileError, compile_shape_schema, load_shape  # noqa: PLC0415

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
