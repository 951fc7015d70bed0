"""Shared fixtures: where the team's shared material (../shared) lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STONETOWN_SHARED", REPO_ROOT.parent / "shared"))
CONFORMANCE = SHARED / "conformance" / "permify"
REJECTED = SHARED / "conformance" / "permify-rejected"


def require_shared(path: Path) -> Path:
    """Skip (with the reason) when the shared material is not checked out beside the repo."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared material is read from ../shared, never copied")
    return path


def conformance_files() -> list[Path]:
    return sorted(CONFORMANCE.rglob("*.yaml")) if CONFORMANCE.exists() else []
