"""``stats --engine spark`` gives the embedded figures: every grouped total, the flows by month, timing
and shares, for every taint model, on the simulated world of four thefts (traces as Spark tasks, sums over
a DataFrame of the facts)."""

from __future__ import annotations

import pytest

from fundtrail.cli.main import main
from fundtrail.engine.base import EngineSpec
from fundtrail.stats import compute_stats, distributed
from fundtrail.store import Workspace

pytestmark = pytest.mark.slow

SPEC = EngineSpec("spark", "local[2]")
MODELS = ("haircut", "poison", "fifo")


def test_spark_stats_equal_embedded(spark, multi_world, capsys):
    home, _doc = multi_world
    ws = Workspace(home)
    for by in (("actor", "year"), ("entity", "country", "asset")):
        emb = compute_stats(ws, by=by, models=MODELS)
        spk = distributed.compute_stats(ws, spec=SPEC, by=by, models=MODELS)
        assert spk.groups and spk.groups == emb.groups
        assert spk.monthly == emb.monthly
        assert spk.facts == emb.facts
        assert (spk.timing, spk.shares, spk.notes, spk.incidents) == \
            (emb.timing, emb.shares, emb.notes, emb.incidents)
    # the command
    assert main(["stats", "--home", str(home), "--engine", "spark", "--spark-master", "local[2]",
                 "--format", "json", "--by", "actor"]) == 0
    assert '"groups"' in capsys.readouterr().out
