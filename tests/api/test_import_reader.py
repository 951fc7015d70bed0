"""The import's NDJSON reader: a line of the plain form ``{"tuple": "…"}`` is read without the
JSON decoder, and must give what the decoder gives (the item, its line, the error).

Each file is read as written and again with every object spelled so that no line has the plain
form (a space before the colon): both readings must agree record for record, and on the error.
"""

from __future__ import annotations

import io
import json

import pytest

from api.transfer import DataFileError, Format, Records, read_records
from storage.base import Tuple

VALUES = [
    "doc:1#viewer@user:1",
    "doc:1#viewer@group:eng#member",
    "doc:é#viewer@user:\x7f",  # DEL and non-ASCII need no escape
    'doc:1#viewer@user:a"b',  # escaped in JSON: read by the decoder either way
    "doc:1#viewer@user:a\\b",
    "doc:1#viewer@user:a\tb",
    "  doc:2#owner@user:2  ",
    "doc:3#owner@user:3#...",
]


def _read(text: str) -> list[tuple[object, int]]:
    records: Records = read_records(io.BytesIO(text.encode()), Format.NDJSON, label="f")
    return [(r.item, r.line) for r in records]


def _file(values: list[object], *, plain: bool, newline: str = "\n") -> str:
    separators = (", ", ": ") if plain else (", ", " : ")
    return "".join(json.dumps({"tuple": v}, separators=separators) + newline for v in values)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "  \n"], ids=["lf", "crlf", "trailing-space"])
def test_plain_lines_read_as_the_decoder_reads_them(newline: str) -> None:
    plain = _read(_file(VALUES, plain=True, newline=newline))
    assert plain == _read(_file(VALUES, plain=False, newline=newline))
    assert plain[0] == (Tuple("doc", "1", "viewer", "user", "1"), 1)
    assert plain[2][0] == Tuple("doc", "é", "viewer", "user", "\x7f")
    assert [line for _, line in plain] == list(range(1, len(VALUES) + 1))


def test_a_compact_line_and_blank_lines_between() -> None:
    text = '{"tuple":"doc:1#viewer@user:1"}\n\n   \n{"tuple": "doc:2#viewer@user:2"}\n'
    assert _read(text) == [
        (Tuple("doc", "1", "viewer", "user", "1"), 1),
        (Tuple("doc", "2", "viewer", "user", "2"), 4),
    ]


@pytest.mark.parametrize(
    "bad",
    ["doc:1#viewer", "doc:1#viewer@user:", ""],
    ids=["no-subject", "empty-subject-id", "empty"],
)
def test_a_bad_tuple_is_reported_alike_at_its_line(bad: str) -> None:
    errors = []
    for plain in (True, False):
        with pytest.raises(DataFileError) as caught:
            _read(_file(["doc:1#viewer@user:1", bad], plain=plain))
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert "f:2" in errors[0]


def test_a_line_with_a_control_character_is_refused_as_the_decoder_refuses_it() -> None:
    with pytest.raises(DataFileError, match="not a JSON object"):
        _read('{"tuple": "doc:1#viewer@user:a\tb"}\n')
