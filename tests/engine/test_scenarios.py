"""Stonetown's own scenario files (``scenarios/*.yaml``, Permify's validation format with
hand-computed answers), each run as ``stonetown validate FILE`` runs it.

Each file covers one topic, described in its header comment. ``test_oracle.py`` checks the same
answers against the naive evaluator, so a wrong expectation shows up there as well. Every file
runs on LevelDB and on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from api.validate import StoreFactory, validate_file

SCENARIOS = Path(__file__).parent / "scenarios"
FILES = sorted(SCENARIOS.glob("*.yaml"))


def test_every_topic_has_its_file() -> None:
    assert len(FILES) >= 9, f"expected the scenario files in {SCENARIOS}"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_scenario_file_validates(path: Path, store_factory: StoreFactory) -> None:
    report = validate_file(path, store_factory=store_factory)
    assert report.ok, "\n".join([*(str(f) for f in report.failures), report.summary()])


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_scenario_file_validates_on_postgres(
    path: Path, postgres_store_factory: StoreFactory
) -> None:
    report = validate_file(path, store_factory=postgres_store_factory)
    assert report.ok, "\n".join([*(str(f) for f in report.failures), report.summary()])
