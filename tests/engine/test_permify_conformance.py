"""`stonetown validate` on every Permify validation file in ../shared/conformance (never copied
here): each under permify/ must pass; each under permify-rejected/ must stop at a schema error
placed at a line:col of that file."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.validate import SchemaFileError, StoreFactory, validate_file
from tests.conftest import CONFORMANCE, REJECTED, conformance_files, require_shared

# tests.conftest resolves ../shared (STONETOWN_SHARED overrides it): the same place as
# Path(__file__).resolve().parents[3] / "shared" / "conformance".
FILES = conformance_files()
#: The files also run on PostgreSQL: one per feature (checks, exclusion, attributes and rules,
#: lookups with pages both ways, expand, subject permission, cache reuse). All of them pass
#: there too; the subset keeps the suite's time down.
ON_POSTGRES = [
    "banking-system.yaml",
    "custom-roles.yaml",
    "polymorphic-relations.yaml",
    "docs-examples/docs__abac-weekday.yaml",
    "extracted/notion__initialnotionshape.yaml",
    "extracted/facebook-groups__initialfacebookgroupsshape.yaml",
    "extracted/check__github-sample-check__github-sample-case-2.yaml",
    "extracted/cache-check__ip-range-sample-check__ip-range-sample-case-1.yaml",
    "extracted/subjectpermission__drive-sample-subject-permission__drive-sample-case-1.yaml",
    "extracted/lookup__drive-sample-subject-filter__drive-sample-case-8-pagination.yaml",
    "extracted/lookup__google-docs-sample-entity-filter__google-docs-sample-case-4-pagination.yaml",
    "extracted/extensions/expand__polymorphic-relations-sample-expand__polymorphic-relations-sample-case-1.yaml",
]
REJECTED_FILES = sorted(REJECTED.glob("*.yaml")) if REJECTED.exists() else []


def test_conformance_folders_are_present() -> None:
    require_shared(CONFORMANCE)
    require_shared(REJECTED)
    assert len(FILES) >= 95
    assert REJECTED_FILES


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CONFORMANCE)) for p in FILES])
def test_permify_file_validates(path: Path, store_factory: StoreFactory) -> None:
    report = validate_file(path, store_factory=store_factory)
    assert report.ok, "\n".join([*(str(f) for f in report.failures), report.summary()])


@pytest.mark.parametrize("name", ON_POSTGRES)
def test_permify_file_validates_on_postgres(
    name: str, postgres_store_factory: StoreFactory
) -> None:
    path = require_shared(CONFORMANCE / name)
    report = validate_file(path, store_factory=postgres_store_factory)
    assert report.ok, "\n".join([*(str(f) for f in report.failures), report.summary()])


@pytest.mark.parametrize(
    "path", REJECTED_FILES, ids=[str(p.relative_to(REJECTED)) for p in REJECTED_FILES]
)
def test_rejected_file_fails_with_a_schema_error_at_line_and_column(
    path: Path, store_factory: StoreFactory
) -> None:
    with pytest.raises(SchemaFileError) as caught:
        validate_file(path, store_factory=store_factory)
    lines = path.read_text(encoding="utf-8").splitlines()
    for problem in caught.value.problems:
        assert problem.file == str(path)
        assert 1 <= problem.line <= len(lines)
        assert 1 <= problem.column <= len(lines[problem.line - 1]) + 1


def test_rejected_weekday_points_at_its_dotted_rule_argument(store_factory: StoreFactory) -> None:
    path = require_shared(REJECTED / "weekday.v1.0.0.yaml")
    with pytest.raises(SchemaFileError) as caught:
        validate_file(path, store_factory=store_factory)
    (problem,) = caught.value.problems
    line = path.read_text(encoding="utf-8").splitlines()[problem.line - 1]
    assert line[problem.column - 1 :].startswith("request.day_of_week)")
    assert str(problem).startswith(f"{path}:{problem.line}:{problem.column}: ")
