"""`stonetown schema validate|fmt`, run in process through click's CliRunner (and once as the
installed console script)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.cli import main

GOOD = "entity user {}\n\nentity doc {\n    relation owner @user\n    permission edit = owner\n}\n"
MESSY = "entity user {}\nentity doc { relation owner @user\n permission edit =   owner }\n"
BAD = "entity doc {\n    relation owner @usr\n    permission edit = ownr\n}\n"


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def _stonetown(*args: str, stdin: str | None = None) -> Ran:
    """The CLI run in this process, through click's CliRunner."""
    result = CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


def _installed(*args: str, stdin: str | None = None) -> Ran:
    """The installed console script, run as a process of its own."""
    script = shutil.which("stonetown", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "api.cli"]
    done = subprocess.run(
        [*command, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def test_validate_accepts_valid_files(tmp_path: Path) -> None:
    path = tmp_path / "good.perm"
    path.write_text(GOOD)
    for run in (_stonetown, _installed):  # the console script too, once
        result = run("schema", "validate", str(path))
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout == f"{path}: valid\n"


def test_validate_reports_every_error_as_file_line_col(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.perm", tmp_path / "bad.perm"
    good.write_text(GOOD)
    bad.write_text(BAD)
    result = _stonetown("schema", "validate", str(good), str(bad))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{good}: valid",
        f"{bad}:2:21: unknown entity `usr` in subject type `@usr`",
        f"{bad}:3:23: `ownr` is not a relation, permission or attribute of entity `doc` "
        "(did you mean `owner`?)",
    ]


def test_validate_reports_the_syntax_errors_of_every_definition(tmp_path: Path) -> None:
    broken = tmp_path / "broken.perm"
    broken.write_text(
        "entity user {}\n"
        "entity doc {\n    relation owner = @user\n}\n"
        "entity folder {\n    relation owner @user\n    permission view = owner or\n}\n"
        "rule r(x string {\n    x == 'a'\n}\n"
    )
    result = _stonetown("schema", "validate", str(broken))
    assert result.returncode == 1
    members = "`relation`, `permission`, `action`, `attribute`"
    assert result.stdout.splitlines() == [
        f"{broken}:3:20: unexpected `=`; expected {members}, `@` or `}}`",
        f"{broken}:8:1: unexpected `}}`; expected a name or `(`",
        f"{broken}:9:17: unexpected `{{`; expected {members}, `)`, `,`, `[` or `}}`",
    ]


def test_validate_reads_stdin_and_reports_unreadable_files(tmp_path: Path) -> None:
    assert _stonetown("schema", "validate", "-", stdin=GOOD).stdout == "<stdin>: valid\n"
    missing = tmp_path / "missing.perm"
    result = _stonetown("schema", "validate", str(missing))
    assert result.returncode == 1
    assert result.stdout == f"{missing}: cannot read: No such file or directory\n"


def test_fmt_prints_canonical_text() -> None:
    result = _stonetown("schema", "fmt", "-", stdin=MESSY)
    assert result.returncode == 0
    assert result.stdout == GOOD.replace("\n\nentity doc", "\n\nentity doc")


def test_fmt_check_reports_and_changes_nothing(tmp_path: Path) -> None:
    messy, good = tmp_path / "messy.perm", tmp_path / "good.perm"
    messy.write_text(MESSY)
    good.write_text(GOOD)
    result = _stonetown("schema", "fmt", "--check", "--diff", str(messy), str(good))
    assert result.returncode == 1
    assert result.stdout.startswith(f"would reformat {messy}\n--- {messy}\n")
    assert "+    permission edit = owner\n" in result.stdout
    assert str(good) not in result.stdout.replace(f"{messy}", "")
    assert messy.read_text() == MESSY
    assert _stonetown("schema", "fmt", "--check", str(good)).returncode == 0


def test_fmt_write_rewrites_in_place_and_is_then_clean(tmp_path: Path) -> None:
    messy = tmp_path / "messy.perm"
    messy.write_text(MESSY)
    result = _stonetown("schema", "fmt", "--write", str(messy))
    assert (result.returncode, result.stdout) == (0, f"reformatted {messy}\n")
    assert messy.read_text() == GOOD
    assert _stonetown("schema", "fmt", "--check", str(messy)).returncode == 0
    assert list(tmp_path.iterdir()) == [messy]


def test_fmt_leaves_a_broken_file_alone(tmp_path: Path) -> None:
    bad = tmp_path / "bad.perm"
    bad.write_text("entity doc {")
    result = _stonetown("schema", "fmt", "--write", str(bad))
    assert result.returncode == 1
    assert f"{bad}:1:13: unexpected end of file" in result.stderr
    assert bad.read_text() == "entity doc {"


@pytest.mark.parametrize(
    "args",
    [["--check", "--write"], ["--diff"], ["a.perm", "b.perm"], ["--write", "-"]],
    ids=["check-and-write", "diff-without-check", "several-files-to-stdout", "write-stdin"],
)
def test_fmt_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    files = [] if any(a.endswith(".perm") or a == "-" for a in args) else ["x.perm"]
    assert _stonetown("schema", "fmt", *args, *files).returncode == 2
