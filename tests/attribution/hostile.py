"""Run the ``fundtrail`` command on hostile input in a child process with memory and CPU limits, so a
regression (a bomb that expands, a crash, a quadratic regex) fails its test instead of the test run.

``FUNDTRAIL_TEST_SRC`` may point at another source tree (e.g. an export of an older commit) to check that
the tests fail there.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = Path(os.environ.get("FUNDTRAIL_TEST_SRC") or REPO / "src")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str
    seconds: float

    def json(self) -> dict:
        return json.loads(self.out)


def run(args: list[str], *, home: Path, user: str | None = None, mem_mb: int = 3000, cpu_s: int = 60,
        timeout: float = 180) -> Result:
    """``python -m fundtrail ARGS`` with ``FUNDTRAIL_HOME=home``, acting as ``user`` (FUNDTRAIL_USER) when
    given, limited to ``mem_mb`` of address space and ``cpu_s`` seconds of CPU."""

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (mem_mb << 20, mem_mb << 20))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    env = {k: v for k, v in os.environ.items() if k not in ("FUNDTRAIL_USER", "FUNDTRAIL_HOME")}
    env |= {"PYTHONPATH": str(SRC), "FUNDTRAIL_HOME": str(home), "COLUMNS": "250", "NO_COLOR": "1",
            "MALLOC_ARENA_MAX": "2"}  # fewer per-thread malloc arenas: virtual size stays under the cap
    if user:
        env["FUNDTRAIL_USER"] = user
    import time

    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "fundtrail", *args], env=env, preexec_fn=limits,
                       capture_output=True, text=True, timeout=timeout)
    return Result(p.returncode, p.stdout, p.stderr, time.perf_counter() - t0)


def sanctioned(home: Path, address: str, date: str, **kw) -> bool:
    r = run(["tags", "at", address, "--date", date, "--json"], home=home, **kw)
    assert r.code == 0, r.err
    return bool(r.json()["sanctioned"])
