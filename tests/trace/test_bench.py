"""The trace benchmark runs and its traces balance (slow: builds a 100k-transaction world)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_trace_small(tmp_path):
    path = Path(__file__).resolve().parents[2] / "bench" / "bench_trace.py"
    spec = importlib.util.spec_from_file_location("bench_trace", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    f = mod.run("small", traces=2, home=str(tmp_path / "w"))
    assert f["transactions"] == 100_000 and f["conservation_ok"]
    assert f["trace_latency_max_s"] < 5


@pytest.mark.slow
def test_bench_kernel_demo():
    """The kernel benchmark runs, and the sparse kernel gives the dense one's results on its graph."""
    path = Path(__file__).resolve().parents[2] / "bench" / "bench_kernel.py"
    spec = importlib.util.spec_from_file_location("bench_kernel", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    f = mod.run("demo")
    assert f["same_results"] and f["outputs"] > 200_000
    assert f["expand_forward"]["after"]["median_ms"] < f["expand_forward"]["before"]["median_ms"]
