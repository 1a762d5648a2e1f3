"""Shared fixtures. Real public data lives in ../shared/data beside the repository root."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test saying what is missing."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p} (the ../shared/data folder beside the repository)")
    return p


@pytest.fixture
def shared_data() -> Path:
    return shared_path()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty workspace directory."""
    h = tmp_path / "ws"
    h.mkdir()
    return h
