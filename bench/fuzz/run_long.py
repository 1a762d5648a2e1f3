"""Long fuzz runs (not part of the test run): every target of tests/fuzz/targets.py under atheris, up to
``--runs`` inputs each (default 1,000,000) or ``--max-seconds`` per target, ``--jobs`` targets at a time,
at the lowest CPU priority. Findings are written under ``--out`` (crash-*/timeout-* files): keep each one
as a regression case under tests/fuzz/corpus/TARGET/ after fixing it.

    python bench/fuzz/run_long.py [--targets a,b] [--runs N] [--max-seconds S] [--jobs J] [--out DIR]

Prints one line per target: inputs run, seconds, inputs/s, findings; and a JSON summary at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.fuzz.targets import TARGETS, write_seeds  # noqa: E402

DONE = re.compile(r"Done (\d+) runs in (\d+) second")


def start(job: str, runs: int, seconds: int, out: Path) -> tuple[subprocess.Popen, Path, float]:
    """``job`` is a target name, or ``NAME:nojit``: the numba kernels run as bounds-checked, coverage-
    instrumented Python (NUMBA_DISABLE_JIT=1), slower but guided, and an out-of-bounds read raises."""
    name, _, mode = job.partition(":")
    work = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    write_seeds(name, work / "corpus")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    if mode == "nojit":
        env["NUMBA_DISABLE_JIT"] = "1"
    tag = job.replace(":", "-")
    log = out / f"{tag}.log"
    cmd = ["nice", "-n", "19", sys.executable, "-m", "tests.fuzz.run", name, str(work / "corpus"),
           f"-runs={runs}", f"-max_total_time={seconds}", "-timeout=20", "-rss_limit_mb=4096",
           f"-artifact_prefix={out}/{tag}-", "-print_final_stats=1"]
    p = subprocess.Popen(cmd, cwd=work, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    return p, log, time.monotonic()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--max-seconds", type=int, default=3600)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "fundtrail-fuzz-findings")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    todo = a.targets.split(",")
    running: list[tuple[str, subprocess.Popen, Path, float]] = []
    results = {}
    while todo or running:
        while todo and len(running) < a.jobs:
            name = todo.pop(0)
            running.append((name, *start(name, a.runs, a.max_seconds, a.out)))
        for item in list(running):
            name, p, log, t0 = item
            if p.poll() is None:
                continue
            running.remove(item)
            text = log.read_text(errors="replace")
            m = DONE.search(text)
            findings = sorted(f.name for f in a.out.glob(f"{name.replace(':', '-')}-*") if f.suffix != ".log" and "slow-unit" not in f.name)
            runs = int(m.group(1)) if m else None
            secs = round(time.monotonic() - t0, 1)
            results[name] = {"inputs": runs, "seconds": secs, "exit": p.returncode, "findings": findings,
                             "inputs_per_s": round(runs / secs) if runs else None}
            print(f"{name:12s} inputs={runs} seconds={secs} exit={p.returncode} findings={len(findings)}",
                  flush=True)
        time.sleep(1)
    print(json.dumps(results, indent=1))
    return 0 if all(r["exit"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
