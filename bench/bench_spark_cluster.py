"""Spark against the embedded engine on the connected-components step, and the skew of a giant component.

The graph: one exchange-like giant component (a star of ``giant`` deposit addresses swept by one hot wallet,
plus a peel chain of ``chain`` hops hanging off it) and ``small`` random two-to-five-address clusters, as the
co-spend edges of a chain would give. The anchor is the embedded union-find over the same edges, in the same
run. Reports Spark's rounds, the largest star (children of one parent) and the largest partition per round.

    PYTHONPATH=src python bench/bench_spark_cluster.py --giant 200000 --small 100000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

SCALES = {"small": (20_000, 300, 20_000), "large": (200_000, 3_000, 200_000)}  # giant, chain, small


def graph(giant: int, chain: int, small: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    a = [np.zeros(giant, np.int64)]
    b = [rng.permutation(np.arange(1, giant + 1, dtype=np.int64))]
    c = np.arange(giant + 1, giant + 1 + chain, dtype=np.int64)
    a += [c[1:], np.array([c[0]])]
    b += [c[:-1], np.array([giant])]
    base = giant + 1 + chain
    sizes = rng.integers(2, 6, small)
    starts = base + np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for k in range(2, 6):
        s = starts[sizes == k]
        for j in range(1, k):
            a.append(s)
            b.append(s + j)
    n = int(base + sizes.sum())
    perm = rng.permutation(n).astype(np.int64)  # ids from first appearance are not sorted by cluster
    perm[0] = 0
    return perm[np.concatenate(a)], perm[np.concatenate(b)], n


def run(scale: str = "small", master: str = "local[2]") -> dict:
    from fundtrail.cluster.unionfind import UnionFind
    from fundtrail.engine.base import EngineSpec
    from fundtrail.engine.spark.components import connected_components
    from fundtrail.engine.spark.session import session

    giant, chain, small = SCALES[scale]
    a, b, n = graph(giant, chain, small)
    t = time.perf_counter()
    uf = UnionFind(n)
    uf.union(a, b)
    expect = uf.labels()
    t_uf = time.perf_counter() - t
    spark = session(EngineSpec("spark", master, (("spark.sql.shuffle.partitions", "8"),
                                                   ("spark.ui.enabled", "false"))))
    spark.sparkContext.setLogLevel("ERROR")
    import pyarrow as pa

    df = spark.createDataFrame(pa.table({"a": a, "b": b})).cache()
    df.count()
    t = time.perf_counter()
    labels, cc = connected_components(spark, df)
    lab = labels.toArrow()
    t_spark = time.perf_counter() - t
    got = np.arange(n, dtype=np.int64)
    got[lab["id"].to_numpy()] = lab["label"].to_numpy()
    _, measured = connected_components(spark, df, measure=True)
    return {"edges": len(a), "addresses": n, "giant_component": int(np.count_nonzero(expect == 0)),
            "embedded_union_find_s": round(t_uf, 3), "spark_components_s": round(t_spark, 2),
            "spark_over_embedded": round(t_spark / t_uf, 1), "same_partition": bool(np.array_equal(got, expect)),
            "rounds": cc.rounds, "per_round": [f.__dict__ if hasattr(f, "__dict__") else
                                               {k: getattr(f, k) for k in f.__slots__} for f in measured.figures]}


def world(name: str = "demo", master: str = "local[2]") -> dict:
    """End to end on a simulated world: ``fundtrail cluster`` embedded against ``--engine spark`` (cold: the
    session's first job; warm: a second run in the same session), the partitions compared."""
    import tempfile
    from pathlib import Path

    from fundtrail.cluster import distributed
    from fundtrail.cluster.service import cluster
    from fundtrail.engine.base import EngineSpec
    from fundtrail.engine.spark.session import session
    from fundtrail.ingest.bitcoin.service import ingest_block_files
    from fundtrail.simulate.world import simulate
    from fundtrail.store import Workspace

    tmp = Path(tempfile.mkdtemp(prefix="bench-spark-world-"))
    simulate(tmp / "world", name, 1)
    ws = Workspace(tmp / "ws")
    ingest_block_files(ws, tmp / "world" / "bitcoin" / "blocks", "regtest")

    def partition() -> set[frozenset[int]]:
        m = ws.read("cluster_members", "regtest", columns=["address_id", "cluster_id"])
        groups: dict[int, set[int]] = {}
        for a, c in zip(m["address_id"].to_pylist(), m["cluster_id"].to_pylist(), strict=True):
            groups.setdefault(c, set()).add(a)
        return {frozenset(g) for g in groups.values()}

    t = time.perf_counter()
    st = cluster(ws, "regtest", full=True).chains[0]
    t_emb = time.perf_counter() - t
    part = partition()
    spec = EngineSpec("spark", master, (("spark.sql.shuffle.partitions", "4"), ("spark.ui.enabled", "false")))
    session(spec).sparkContext.setLogLevel("ERROR")
    times = []
    for _ in range(2):
        t = time.perf_counter()
        _, cc = distributed.cluster_utxo(ws, "regtest", spec)
        times.append(time.perf_counter() - t)
    return {"world": name, "addresses": st.addresses, "edges": st.edges, "clusters": st.clusters,
            "embedded_s": round(t_emb, 2), "spark_cold_s": round(times[0], 1), "spark_warm_s": round(times[1], 1),
            "spark_warm_over_embedded": round(times[1] / t_emb, 1), "rounds": cc.rounds,
            "same_partition": partition() == part}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="small", choices=sorted(SCALES))
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--world", help="a simulated world (demo, small, ...): end-to-end clustering instead")
    args = ap.parse_args()
    print(json.dumps(world(args.world, args.master) if args.world else run(args.scale, args.master), indent=1))
