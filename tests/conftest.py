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


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for every Spark test: local[2], 4 shuffle partitions, no UI."""
    pytest.importorskip("pyspark", reason="PySpark is not installed (pip install 'fundtrail[spark]')")
    import shutil
    import subprocess

    if shutil.which("java") is None:
        pytest.skip("no java on the PATH (Spark needs Java 17)")
    subprocess.run(["java", "-version"], capture_output=True, check=True)
    from fundtrail.engine.base import EngineSpec
    from fundtrail.engine.spark.session import session

    s = session(EngineSpec("spark", "local[2]", (
        ("spark.sql.shuffle.partitions", "4"), ("spark.default.parallelism", "2"), ("spark.ui.enabled", "false"),
        ("spark.driver.memory", "1g"), ("spark.sql.adaptive.coalescePartitions.enabled", "true"))))
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()
