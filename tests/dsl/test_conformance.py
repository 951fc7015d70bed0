"""Every schema in Permify's validation files (../shared/conformance) parses and compiles, and the
formatter keeps each one's meaning and comments."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from dsl.compiler import load
from dsl.errors import SchemaError
from dsl.format import format_schema
from tests.conftest import CONFORMANCE, REJECTED, conformance_files, require_shared

FILES = conformance_files()


def _schema(path: Path) -> str:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    schema = document["schema"]
    assert isinstance(schema, str)
    return schema


def test_conformance_folder_is_present_and_full() -> None:
    require_shared(CONFORMANCE)
    assert len(FILES) >= 95


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CONFORMANCE)) for p in FILES])
def test_conformance_schema_compiles(path: Path) -> None:
    schema = load(_schema(path))
    assert schema.entities


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CONFORMANCE)) for p in FILES])
def test_format_preserves_meaning_comments_and_is_idempotent(path: Path) -> None:
    source = _schema(path)
    formatted = format_schema(source)
    assert format_schema(formatted) == formatted
    assert load(formatted) == load(source)
    comments = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
    assert [c.strip() for c in comments.findall(formatted)] == [
        c.strip() for c in comments.findall(source)
    ]


def test_rejected_weekday_schema_fails_at_its_dotted_argument() -> None:
    path = require_shared(REJECTED / "weekday.v1.0.0.yaml")
    with pytest.raises(SchemaError) as caught:
        load(_schema(path))
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.line, diagnostic.column) == (32, 36)
    assert "request.day_of_week" in diagnostic.message
    assert "permission delete = is_weekday(request.day_of_week)" in diagnostic.source_line
