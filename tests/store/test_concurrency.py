"""Writers in random interleavings, SIGKILLs among them, readers all the time: no duplicate keys at any
moment, every snapshot one committed state, and in the end the tables a serial run gives."""

from __future__ import annotations

import random

import pytest

from fundtrail.store import Workspace
from tests.store.concurrency import dump, make_data, run_round, serial


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("concurrency"))


def _rounds(data, tmp_path, seeds, *, writers, kills):
    expected = dump(data.reference)
    figures = []
    for seed in seeds:
        rng = random.Random(seed)
        home = tmp_path / f"ws{seed}"
        r = run_round(data, home, rng, writers=writers, kills=kills(rng))
        serial(Workspace(home), data.full, data.tags)  # finish what was refused or killed
        assert dump(home) == expected, f"round {seed} ({r.order}, exits {r.exits}) differs from a serial run"
        figures.append(r)
    return figures


def test_concurrent_writers_and_readers_equal_a_serial_run(data, tmp_path):
    figures = _rounds(data, tmp_path, [1], writers=5, kills=lambda rng: 1)
    assert sum(r.snapshots for r in figures) > 0
    print("concurrency:", [(r.processes, r.order, r.killed, r.locked, r.snapshots, r.generations)
                           for r in figures])


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_many_rounds_with_sigkills(data, tmp_path):
    figures = _rounds(data, tmp_path, range(10, 18), writers=9, kills=lambda rng: rng.randrange(0, 4))
    print("concurrency (slow):", len(figures), "rounds;", sum(r.processes for r in figures), "processes;",
          sum(r.killed for r in figures), "killed;", sum(r.locked for r in figures), "refused;",
          sum(r.snapshots for r in figures), "reader snapshots")
