"""Large-star / small-star connected components in Spark DataFrames against the union-find kernel."""

from __future__ import annotations

import numpy as np
import pytest

from fundtrail.cluster.unionfind import UnionFind
from fundtrail.engine.spark.components import connected_components


def _graph(seed: int = 3) -> tuple[np.ndarray, np.ndarray, int]:
    """A giant star (an exchange's deposit addresses), long chains (peel chains) and random small parts."""
    rng = np.random.default_rng(seed)
    a = [np.zeros(400, np.int64)]
    b = [np.arange(1, 401, dtype=np.int64)]
    chain = np.arange(1000, 1300, dtype=np.int64)
    a.append(chain[1:])  # a chain given from its end: the worst order for a min-label propagation
    b.append(chain[:-1])
    x = rng.integers(2000, 2600, 300)
    y = rng.integers(2000, 2600, 300)
    a.append(x)
    b.append(y)
    a.append(np.array([400, 1299]))  # joins the star and the chain
    b.append(np.array([1299, 400]))
    return np.concatenate(a), np.concatenate(b), 2600


@pytest.mark.slow
def test_components_label_every_id_with_its_clusters_smallest_id(spark):
    a, b, n = _graph()
    uf = UnionFind(n)
    uf.union(a, b)
    expect = uf.labels()
    df = spark.createDataFrame([(int(x), int(y)) for x, y in zip(a, b, strict=True)], "a long, b long")
    labels_df, run = connected_components(spark, df, checkpoint_every=2, measure=True)
    lab = labels_df.toArrow()
    got = np.arange(n, dtype=np.int64)
    got[lab["id"].to_numpy()] = lab["label"].to_numpy()
    assert np.array_equal(got, expect)
    assert lab.num_rows == len(set(lab["id"].to_pylist()))  # one label per id
    print("rounds", run.rounds, run.figures)
    assert 1 <= run.rounds <= 12 and len(run.figures) == run.rounds
    assert run.figures[-1].largest_star == int(np.count_nonzero(expect == 0)) - 1  # one star per component
