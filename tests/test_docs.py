"""The examples in README.md, docs/*.md and bench/README.md do what the text around them says.

What runs, per fenced block's language:

* ``perm``: compiles, and formats to text that compiles to the same schema.
* ``python``: executed, each block in a fresh namespace (they assert what they claim).
* ``sh``, ``bash``, ``shell``: executed with bash (``set -euo pipefail``) against a real
  ``stonetown serve`` (LevelDB in a temporary directory, a free port), one server per document,
  the document's blocks in order in one working directory (``.venv`` there links to the
  project's, so ``.venv/bin/stonetown`` works as written). ``localhost:3476`` and
  ``127.0.0.1:3476`` are rewritten to that server, and ``STONETOWN_URL`` points the CLI's client
  commands at it. Every command must exit 0.
  Comment lines right under a command (no blank line between) are its expected output: a JSON
  value must be contained in the command's answer (keys not shown are not checked, ``...`` or
  ``…`` stand for any text), other text must appear in its output. A comment after a blank
  line, or at the end of a command's line, is prose.
* ``json``: parses.
* ``text``: never run. It marks what must not run: ``make serve`` (it blocks until Ctrl-C),
  ``make test`` (it is this suite), benchmarks (minutes, and they want the machine alone) and
  command synopses with placeholders.

Any other fence language (or none) fails, so no example can escape these checks.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dsl.compiler import load
from dsl.format import format_schema

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ("README.md", "bench/README.md", "docs/architecture.md")
DOCUMENTS = sorted(
    path
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "bench" / "README.md"]
    if path.is_file()
)
RUN = {"sh", "bash", "shell"}
LANGUAGES = RUN | {"perm", "python", "json", "text"}
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
STONETOWN = ROOT / ".venv" / "bin" / "stonetown"
READY = re.compile(r"stonetown serving on (http://127\.0\.0\.1:(\d+)) ")
WILDCARD = re.compile(r"\.\.\.|…")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [
        Block(path, text.count("\n", 0, m.start()) + 1, m[1].strip(), m[2])
        for m in FENCE.finditer(text)
    ]


ALL_BLOCKS = [block for path in DOCUMENTS for block in blocks_of(path)]


def blocks(*languages: str) -> list[Block]:
    return [block for block in ALL_BLOCKS if block.language in languages]


def ids(items: list[Block]) -> list[str]:
    return [block.where for block in items]


def test_the_documents_exist() -> None:
    for name in REQUIRED:
        assert (ROOT / name).is_file(), name


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=ids(ALL_BLOCKS))
def test_every_example_has_a_language_this_suite_checks(block: Block) -> None:
    assert block.language in LANGUAGES, (
        f"{block.where}: fence language {block.language!r}; use one of {sorted(LANGUAGES)}"
    )


PERM = blocks("perm")


@pytest.mark.parametrize("block", PERM, ids=ids(PERM))
def test_schema_examples_compile_and_format_to_the_same_schema(block: Block) -> None:
    schema = load(block.text)
    assert load(format_schema(block.text)) == schema


PYTHON = blocks("python")


@pytest.mark.parametrize("block", PYTHON, ids=ids(PYTHON))
def test_python_examples_run(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(block.text, block.where, "exec"), {"__name__": "__doc_example__"})


JSON = blocks("json")


def test_json_examples_parse() -> None:
    """Every ```json block parses (one test over all of them: the docs may hold none, and an
    empty parametrization would be a skip)."""
    for block in JSON:
        try:
            json.loads(block.text)
        except json.JSONDecodeError as exc:
            pytest.fail(f"{block.where}: {exc}")


# -- shell examples ------------------------------------------------------------------------------


@dataclass
class Step:
    command: str
    line: int
    expected: list[str]


def steps_of(block: Block) -> list[Step]:
    """The block's commands, each with the comment lines right under it."""
    steps: list[Step] = []
    lines = block.text.splitlines()
    index, after_command = 0, False
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if not stripped:
            after_command = False
        elif stripped.startswith("#"):
            if after_command:
                steps[-1].expected.append(stripped[1:].strip())
        else:
            start, command = index, [line]
            while command[-1].endswith("\\") and index + 1 < len(lines):
                index += 1
                command.append(lines[index])
            heredoc = HEREDOC.search(line)
            if heredoc:
                while index + 1 < len(lines):
                    index += 1
                    command.append(lines[index])
                    if lines[index].strip() == heredoc[2]:
                        break
            steps.append(Step("\n".join(command), block.line + 1 + start, []))
            after_command = True
        index += 1
    return steps


def _wildcard(expected: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in WILDCARD.split(expected)), re.DOTALL)


def contains(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` has everything ``expected`` shows."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and contains(actual[key], value) for key, value in expected.items()
        )
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return False
        if expected and expected[-1] in ("...", "…"):
            expected = expected[:-1]
            actual = actual[: len(expected)]
        return len(actual) == len(expected) and all(map(contains, actual, expected))
    if isinstance(expected, str):
        return isinstance(actual, str) and _wildcard(expected).fullmatch(actual) is not None
    return type(actual) is type(expected) and actual == expected


def _json_values(output: str) -> list[Any]:
    """The output as one JSON value, or its lines that are JSON values (NDJSON)."""
    try:
        return [json.loads(output)]
    except ValueError:
        pass
    values = []
    for line in output.splitlines():
        try:
            values.append(json.loads(line))
        except ValueError:
            continue
    return values


def _expected_json(text: str) -> Any:
    text = re.sub(r",\s*(\.\.\.|…)(?=\s*[}\]])", "", text)
    return json.loads(text)


def check_output(step: Step, output: str, where: str) -> None:
    pending = list(step.expected)
    while pending:
        first = pending.pop(0)
        if first[:1] in "{[":
            text = first
            # A JSON value may span several comment lines.
            while pending and not _parses(text) and _parses_later(text, pending):
                text += "\n" + pending.pop(0)
            expected = _expected_json(text)
            assert any(contains(value, expected) for value in _json_values(output)), (
                f"{where}: `{step.command}` should answer {text}, got:\n{output}"
            )
        else:
            assert _wildcard(first).search(output), (
                f"{where}: `{step.command}` should print {first!r}, got:\n{output}"
            )


def _parses(text: str) -> bool:
    try:
        _expected_json(text)
    except ValueError:
        return False
    return True


def _parses_later(text: str, pending: list[str]) -> bool:
    return any(_parses("\n".join([text, *pending[: n + 1]])) for n in range(len(pending)))


@dataclass
class Served:
    url: str
    workdir: Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(ROOT / ".venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STONETOWN_")}
    stderr = (tmp_path / "serve.stderr").open("w")
    proc = subprocess.Popen(
        [str(STONETOWN), "serve", "--port", "0", "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if readable else ""
        found = READY.match(line)
        assert found, f"no ready line from stonetown serve: {line!r}"
        yield Served(found[1], workdir)
    finally:
        proc.terminate()
        proc.wait(30)
        stderr.close()
        if proc.stdout is not None:
            proc.stdout.close()


SHELL_DOCUMENTS = [path for path in DOCUMENTS if any(b.language in RUN for b in blocks_of(path))]


@pytest.mark.parametrize(
    "path", SHELL_DOCUMENTS, ids=[p.relative_to(ROOT).as_posix() for p in SHELL_DOCUMENTS]
)
def test_shell_examples_run_against_a_real_server(path: Path, served: Served) -> None:
    address = served.url.removeprefix("http://")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STONETOWN_")}
    env["STONETOWN_URL"] = served.url
    for block in blocks_of(path):
        if block.language not in RUN:
            continue
        steps = steps_of(block)
        script = ["set -euo pipefail"]
        for number, step in enumerate(steps):
            command = re.sub(r"(localhost|127\.0\.0\.1):3476", address, step.command)
            script += [f"printf '\\n@@step {number}@@\\n'", command]
        done = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            check=False,
            cwd=served.workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # what a terminal shows: messages go to stderr
            text=True,
            timeout=120,
        )
        parts = re.split(r"\n@@step (\d+)@@\n", "\n" + done.stdout)
        outputs = dict(zip(map(int, parts[1::2]), parts[2::2], strict=True))
        last = max(outputs, default=-1)
        for number, step in enumerate(steps[:last]):  # the last one ran may have failed
            check_output(step, outputs[number], f"{path.relative_to(ROOT)}:{step.line}")
        failed = steps[last] if last >= 0 else None
        assert done.returncode == 0, (
            f"{block.where}: exit {done.returncode} at "
            f"`{failed.command if failed else block.text}` (line {failed.line if failed else '?'})"
            f"\noutput:\n{done.stdout}"
        )
        if failed is not None:
            check_output(failed, outputs[last], f"{path.relative_to(ROOT)}:{failed.line}")


# -- what the documents name ---------------------------------------------------------------------

PATH = re.compile(
    r"(?<![\w./-])((?:api|dsl|engine|storage|tests|bench|docs)/[\w./-]*\w/?|(?:docs|bench)/README\.md)"
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def named_paths(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    found = set()
    for code in re.findall(r"`([^`\n]+)`", text):
        found.update(PATH.findall(code))
    for target in LINK.findall(text):
        if "://" not in target:
            found.add((path.parent / target).resolve().relative_to(ROOT).as_posix())
    return found


@pytest.mark.parametrize(
    "path", DOCUMENTS, ids=[p.relative_to(ROOT).as_posix() for p in DOCUMENTS]
)
def test_every_path_a_document_names_exists(path: Path) -> None:
    missing = sorted(p for p in named_paths(path) if not (ROOT / p).exists())
    assert not missing, f"{path.relative_to(ROOT)} names paths that do not exist: {missing}"


TICKETS = re.compile(
    r"\b[RDET][1-9]\b(?:\s*[-\u2013]\s*[RDET]?[1-9])?|seed[ -]?0\d\d|\bIssue \d+|§|reference\s+§?\d"
)


@pytest.mark.parametrize(
    "path",
    [*DOCUMENTS, ROOT / "Makefile"],
    ids=[p.relative_to(ROOT).as_posix() for p in [*DOCUMENTS, ROOT / "Makefile"]],
)
def test_documents_name_concepts_not_ticket_ids(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if path.name == "Makefile":  # the recipes are code; only comments and help text are prose
        text = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    found = [m[0] for m in TICKETS.finditer(text)]
    assert not found, f"{path.relative_to(ROOT)} refers to ticket ids or private documents: {found}"

