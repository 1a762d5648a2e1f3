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


# --- a real browser: Debian's Chromium driven by Playwright (dev/setup installs it; never `playwright install`)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for one test module; skips with the reason when Chromium or Playwright is absent."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (dev/setup installs Debian's chromium with apt)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
