"""Spark against the embedded engine, end to end, on a prepared simulated world: ``fundtrail cluster`` and
``fundtrail exposure build``, each Spark figure beside the embedded run of the same step in the same run
(the anchor), and the results compared (clusters as partitions; index rows key by key).

The world is the one ``bench/bench_service.py --scale large --prepare-only`` prepares (read only: it is
copied first, both engines write into the copy). Clustering is measured with Spark's per-round figures
(edges, the largest star, the largest partition: the skew of a giant component).

    PYTHONPATH=src python bench/bench_spark.py --ws /tmp/fundtrail-bench/large/ws --copy /tmp/bench-spark-ws
    PYTHONPATH=src python bench/bench_spark.py --only exposure --master local[2]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import time
from pathlib import Path

CHAIN = "regtest"


def _partition(ws, chain: str):
    """The partition as an array: per address id, the smallest address id of its cluster (ids compared as
    partitions, whatever cluster ids an engine gives)."""
    import numpy as np

    m = ws.read("cluster_members", chain, columns=["address_id", "cluster_id"])
    ids = m["address_id"].to_numpy()
    cl = m["cluster_id"].to_numpy()
    order = np.argsort(cl, kind="stable")
    uniq, first = np.unique(cl[order], return_index=True)
    mins = np.minimum.reduceat(ids[order], first)
    canon = np.empty(int(ids.max(initial=-1)) + 1, np.int64)
    canon[ids] = mins[np.searchsorted(uniq, cl)]
    return canon


def bench_cluster(ws, spec) -> dict:
    from fundtrail.cluster import distributed
    from fundtrail.cluster.service import cluster

    t = time.perf_counter()
    st = cluster(ws, CHAIN, full=True).chains[0]
    t_emb = time.perf_counter() - t
    part = _partition(ws, CHAIN)
    print(json.dumps({"cluster_embedded": {"addresses": st.addresses, "edges": st.edges, "clusters": st.clusters,
                                           "embedded_s": round(t_emb, 2)}}), flush=True)  # before a long Spark run
    t = time.perf_counter()
    sst, cc = distributed.cluster_utxo(ws, CHAIN, spec, measure=True)
    t_spark = time.perf_counter() - t
    import numpy as np

    got = _partition(ws, CHAIN)
    same = got.shape == part.shape and bool(np.array_equal(got, part))
    return {"addresses": st.addresses, "edges": st.edges, "clusters": st.clusters,
            "largest_cluster": int(np.bincount(part).max(initial=0)), "embedded_s": round(t_emb, 2),
            "spark_s": round(t_spark, 1), "spark_over_embedded": round(t_spark / t_emb, 1),
            "same_partition": same, "spark_clusters": sst.clusters, "rounds": cc.rounds,
            "per_round": [{k: getattr(f, k) for k in f.__slots__} for f in cc.figures]}


def _rows(path: Path) -> dict[tuple, dict]:
    import pyarrow.parquet as pq

    key = ("chain", "subject", "subject_id", "direction", "gid", "asset")
    return {tuple(r[k] for k in key): r for r in pq.read_table(path / "exposure.parquet").to_pylist()}


def bench_exposure(ws, spec) -> dict:
    from fundtrail.exposure import distributed
    from fundtrail.exposure.index import build_index
    from fundtrail.trace.graph import clear_cache

    clear_cache()  # both runs build the chain's graph (Spark's workers build their own)
    t = time.perf_counter()
    emb = build_index(ws)
    t_emb = time.perf_counter() - t
    clear_cache()
    t = time.perf_counter()
    spk = distributed.build_index(ws, spec)
    t_spark = time.perf_counter() - t
    a, b = _rows(emb), _rows(spk)
    diff_amount = sum(1 for k, r in a.items() if k in b and b[k]["amount"] != r["amount"])
    rel = max((abs(b[k]["total"] - r["total"]) / max(abs(r["total"]), 1.0) for k, r in a.items() if k in b),
              default=0.0)
    meta = json.loads((spk / "meta.json").read_text())
    emeta = json.loads((emb / "meta.json").read_text())
    return {"rows": len(a), "groups": len(meta["groups"]), "spark_tasks": meta["engine"]["tasks"],
            "embedded_s": round(t_emb, 2), "spark_s": round(t_spark, 1),
            "spark_over_embedded": round(t_spark / t_emb, 1), "same_keys": set(a) == set(b),
            "amount_mismatches": diff_amount, "max_relative_total_diff": rel if math.isfinite(rel) else None,
            "embedded_timings": emeta["timings"], "spark_timings": meta["timings"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ws", default="/tmp/fundtrail-bench/large/ws", help="the prepared workspace (read only)")
    ap.add_argument("--copy", default="/tmp/bench-spark-ws", help="where to copy it (both engines write there)")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--shuffle-partitions", default="8")
    ap.add_argument("--only", choices=("cluster", "exposure"), action="append")
    args = ap.parse_args()
    from fundtrail.engine.base import EngineSpec
    from fundtrail.engine.spark.session import session
    from fundtrail.store import Workspace

    src, dst = Path(args.ws), Path(args.copy)
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("lock", "readers"))
    ws = Workspace(dst)
    spec = EngineSpec("spark", args.master, (("spark.sql.shuffle.partitions", args.shuffle_partitions),
                                              ("spark.ui.enabled", "false"), ("spark.driver.memory", "4g")))
    t = time.perf_counter()
    session(spec).sparkContext.setLogLevel("ERROR")
    out: dict = {"world": str(src), "master": args.master, "session_start_s": round(time.perf_counter() - t, 1)}
    for step in args.only or ("cluster", "exposure"):
        out[step] = bench_cluster(ws, spec) if step == "cluster" else bench_exposure(ws, spec)
        print(json.dumps({step: out[step]}), flush=True)
    out["driver_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
