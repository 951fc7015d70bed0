"""Local files and standard input for the ``stonetown`` commands: reading a path or ``-``, naming
it in messages, and replacing a file only once its new content is complete."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

#: The path that means standard input.
STDIN = "-"


def read_input(path: str) -> bytes:
    """The bytes of ``path``, or of standard input for ``-``."""
    if path == STDIN:
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def display_name(path: str) -> str:
    """How messages name ``path``."""
    return "<stdin>" if path == STDIN else path


@contextlib.contextmanager
def replacing(path: str, *, keep_mode: bool = False) -> Iterator[IO[str]]:
    """A text stream that replaces ``path`` when the block completes, and vanishes otherwise, so
    a crash never leaves a half-written file. ``keep_mode`` gives the new file the permissions
    of the one it replaces (which must exist)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        if keep_mode:
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomically(path: str, text: str) -> None:
    """Replace the existing file ``path`` with ``text``, keeping its permissions."""
    with replacing(path, keep_mode=True) as handle:
        handle.write(text)
