"""Fuzzing: every parser of untrusted input either succeeds or raises an error of fundtrail's error tree.

The inputs the fuzzer found (each a crash once, fixed since) are replayed from tests/fuzz/corpus/; short
atheris runs (10,000 inputs per target) follow. Long runs: bench/fuzz/run_long.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fundtrail.errors import FundtrailError
from tests.fuzz.targets import CORPUS, TARGETS, seeds, write_seeds

ROOT = Path(__file__).resolve().parents[2]
RUNS = 10_000
# targets whose parsers take milliseconds an input (YAML, pyarrow CSV, OFAC remarks, blk framing on disk):
# their 10,000-input runs are in the slow suite; the default run replays their seeds and corpus
SLOW = {"tagpack", "csv_tags", "ofac_csv", "blockfile", "actorpack"}


def _cases() -> list[tuple[str, Path]]:
    return [(name, f) for name in TARGETS for f in sorted((CORPUS / name).glob("*")) if f.is_file()]


@pytest.mark.parametrize(("name", "path"), _cases(), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_found_inputs_stay_fixed(name, path):
    try:
        TARGETS[name](path.read_bytes())
    except FundtrailError:
        pass


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_parse_or_fail_cleanly(name):
    for s in seeds(name):
        try:
            TARGETS[name](s)
        except FundtrailError:
            pass


def _fuzz(name: str, tmp_path: Path, runs: int) -> int:
    pytest.importorskip("atheris")
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_seeds(name, tmp_path / "corpus")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    r = subprocess.run([sys.executable, "-m", "tests.fuzz.run", name, str(tmp_path / "corpus"), f"-runs={runs}",
                        "-timeout=20", f"-artifact_prefix={tmp_path}/", "-seed=1"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    found = sorted(p.name for p in tmp_path.glob("crash-*")) + sorted(p.name for p in tmp_path.glob("timeout-*"))
    assert r.returncode == 0 and not found, f"{name}: {found}\n{r.stderr[-3000:]}"
    m = re.search(r"Done (\d+) runs", r.stderr)
    assert m and int(m.group(1)) >= runs, r.stderr[-2000:]
    return int(m.group(1))


def test_short_fuzz_runs(tmp_path):
    """10,000 inputs for each fast target, two targets at a time (each run is its own process)."""
    pytest.importorskip("atheris")
    names = sorted(set(TARGETS) - SLOW)
    with ThreadPoolExecutor(2) as pool:
        done = dict(zip(names, pool.map(lambda n: _fuzz(n, tmp_path / n, RUNS), names), strict=True))
    assert all(v >= RUNS for v in done.values()), done


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_short_fuzz_run_of_slow_parsers(name, tmp_path):
    _fuzz(name, tmp_path, RUNS)
