"""The template language of bundle strings: literal text and ``{{.argument}}`` actions.

Permify renders every string with Go's text/template and accepts whatever that parses (a
misspelt argument silently renders as an empty string). Stonetown supports exactly the action
``{{.argument}}``, with optional spaces inside the braces (``{{ .argument }}``), and rejects
every other action (pipelines, functions, ``if``, trim markers, comments), an unbalanced ``{{``
or ``}}`` and an empty string, each with what is wrong and its 1-based column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Template:
    """Literal text and argument names alternating in ``parts`` (``parts[0]``, ``parts[2]``, ...
    are text, ``parts[1]``, ``parts[3]``, ... names): one component of a bundle string, or a
    whole string."""

    parts: tuple[str, ...]

    @property
    def arguments(self) -> tuple[str, ...]:
        """The argument names referenced, in order (repeats included)."""
        return self.parts[1::2]

    @property
    def is_literal(self) -> bool:
        """True when no argument appears (the text is the value)."""
        return len(self.parts) == 1

    @property
    def is_one_argument(self) -> bool:
        """True when the template is exactly one ``{{.argument}}`` and nothing else."""
        return len(self.parts) == 3 and not self.parts[0] and not self.parts[2]

    def render(self, values: Mapping[str, str]) -> str:
        parts = list(self.parts)
        for i in range(1, len(parts), 2):
            parts[i] = values[parts[i]]
        return "".join(parts)

    def __str__(self) -> str:
        parts = list(self.parts)
        for i in range(1, len(parts), 2):
            parts[i] = f"{{{{.{parts[i]}}}}}"
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class Segment:
    """Literal text (``argument`` is "") or one ``{{.argument}}``, at 0-based ``start``."""

    start: int
    text: str
    argument: str = ""


# Go's text/template allows these (and only these) as spaces inside an action.
_GO_SPACE = "[ \t\r\n]*"
_REFERENCE = re.compile(rf"{_GO_SPACE}\.([A-Za-z_][A-Za-z0-9_]*){_GO_SPACE}")
_KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
)


def _unsupported(inner: str) -> str:
    """Why the action ``{{inner}}`` is not ``{{.argument}}``."""
    body = inner.strip(" \t\r\n")
    word = body.split(maxsplit=1)[0] if body else ""
    if not body:
        return "the action is empty"
    if inner.startswith("-") or inner.endswith("-"):
        return "trim markers (`{{-`, `-}}`) are not supported"
    if body.startswith("/*"):
        return "comments are not supported"
    if body == ".":
        return "`{{.}}` (the whole argument map) is not supported"
    if "{" in body or "}" in body:
        return "a stray `{` or `}` inside the action"
    if body.startswith("$"):
        return "variables are not supported"
    if word in _KEYWORDS:
        return f"`{word}` actions are not supported"
    if "|" in body:
        return "pipelines are not supported"
    if re.fullmatch(r"\.[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)+", body):
        return "field chains (`.a.b`) are not supported"
    if body.startswith("."):
        return f"`{body[1:]}` is not an argument name (letters, digits and `_`)"
    return "functions and other expressions are not supported"


def segments(text: str) -> list[Segment]:
    """``text`` as literal and argument segments, without leading and trailing spaces; raise
    ValueError saying what is wrong and where (1-based column)."""
    if not text.strip():
        raise ValueError("the string is empty")
    segments: list[Segment] = []
    pos = 0
    while True:
        opened = text.find("{{", pos)
        closed = text.find("}}", pos)
        if closed != -1 and (opened == -1 or closed < opened):
            raise ValueError(f"`}}}}` at column {closed + 1} closes no `{{{{`")
        if opened == -1:
            segments.append(Segment(pos, text[pos:]))
            break
        end = text.find("}}", opened + 2)
        if end == -1:
            raise ValueError(f"`{{{{` at column {opened + 1} is never closed by `}}}}`")
        inner = text[opened + 2 : end]
        nested = inner.find("{{")
        if nested != -1:
            raise ValueError(
                f"`{{{{` at column {opened + 1} is not closed before the next `{{{{` "
                f"at column {opened + 3 + nested}"
            )
        match = _REFERENCE.fullmatch(inner)
        if match is None:
            raise ValueError(
                f"`{text[opened : end + 2]}` at column {opened + 1}: {_unsupported(inner)}; "
                "only `{{.argument}}` is (spaces inside the braces are allowed)"
            )
        segments.append(Segment(pos, text[pos:opened]))
        segments.append(Segment(opened, text[opened : end + 2], match[1]))
        pos = end + 2
    # As in Permify's string forms, spaces around the string are dropped (not inside it).
    first = segments[0]
    stripped = first.text.lstrip()
    segments[0] = Segment(first.start + len(first.text) - len(stripped), stripped)
    segments[-1] = Segment(segments[-1].start, segments[-1].text.rstrip())
    return [s for s in segments if s.text]


def joined(segments: Sequence[Segment]) -> Template:
    """The template the segments make: literal text merged, arguments kept in order."""
    parts = [""]
    for segment in segments:
        if segment.argument:
            parts.extend((segment.argument, ""))
        else:
            parts[-1] += segment.text
    return Template(tuple(parts))
