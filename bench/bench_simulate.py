"""World generation: speed (Bitcoin transactions per second, MB/s of block files) and peak memory, and the
accuracy of clustering and tracing against the world's ground truth.

``run(scale)`` simulates a world of that scale in a temporary directory in a child process (so the peak
memory is the generator's own), then — for demo and small — runs the pipeline over it and scores it:
clustering by pairwise precision / recall against the truth's co-spend groups, tracing by the share of the
stolen value (per asset, haircut) attributed to the right endpoint. The machine is shared (2 cores, other
engineers' jobs running): figures are indicative.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path


def _simulate(out: Path, scale: str) -> dict:
    code = ("import json,resource,sys;from fundtrail.simulate.world import simulate;"
            f"s=simulate({str(out)!r},{scale!r},1);d=s.to_json();"
            "d['peak_rss_mb']=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024;print(json.dumps(d))")
    t = time.monotonic()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    d = json.loads(p.stdout.strip().splitlines()[-1])
    d["wall_s"] = round(time.monotonic() - t, 2)
    return d


def pairwise_scores(truth_groups: list[list[str]], found: dict[str, int]) -> tuple[float, float]:
    """Pairwise precision and recall of ``found`` (address -> cluster id) against the true groups, over
    the addresses the truth groups cover."""
    covered = {a for g in truth_groups for a in g}
    true_pairs = sum(len(g) * (len(g) - 1) // 2 for g in truth_groups)
    by_cluster: dict[int, list[str]] = {}
    for a in covered:
        if a in found:
            by_cluster.setdefault(found[a], []).append(a)
    true_of = {a: i for i, g in enumerate(truth_groups) for a in g}
    found_pairs = 0
    both = 0
    for members in by_cluster.values():
        found_pairs += len(members) * (len(members) - 1) // 2
        if len(members) > 2000:  # count correct pairs per true group instead of enumerating
            counts: dict[int, int] = {}
            for a in members:
                counts[true_of[a]] = counts.get(true_of[a], 0) + 1
            both += sum(c * (c - 1) // 2 for c in counts.values())
        else:
            both += sum(1 for a, b in combinations(members, 2) if true_of[a] == true_of[b])
    precision = both / found_pairs if found_pairs else 1.0
    recall = both / true_pairs if true_pairs else 1.0
    return round(precision, 4), round(recall, 4)


def score_pipeline(world: Path, model: str = "haircut") -> dict:
    """Ingest, tag, cluster and trace ``world``; score against its truth."""
    from fundtrail.attribution.service import import_paths
    from fundtrail.cluster.service import cluster
    from fundtrail.ingest.bitcoin.service import ingest_block_files
    from fundtrail.ingest.evm.service import ingest_evm
    from fundtrail.model.trace import Seed
    from fundtrail.store import Workspace
    from fundtrail.trace.service import trace

    truth = json.loads((world / "truth.json").read_text())
    out: dict = {}
    with tempfile.TemporaryDirectory() as home:
        ws = Workspace(Path(home))
        t = time.monotonic()
        ingest_block_files(ws, world / "bitcoin" / "blocks", "regtest")
        ingest_evm(ws, (world / "evm" / "rpc.jsonl").resolve().as_uri(), "simeth")
        import_paths(ws, sorted((world / "tags").glob("*.yaml")))
        out["ingest_s"] = round(time.monotonic() - t, 2)
        t = time.monotonic()
        cluster(ws)  # every chain, after both are ingested: EVM deposit addresses join their exchange
        out["cluster_s"] = round(time.monotonic() - t, 2)
        rows = ws.query("select address, cluster_id from clusters where chain = 'regtest'").to_pylist()
        found = {r["address"]: r["cluster_id"] for r in rows}
        p, r = pairwise_scores(truth["clusters"]["regtest"], found)
        out["cluster_precision"], out["cluster_recall"] = p, r
        seeds = [Seed(s["chain"], address=s["address"]) for s in truth["theft"]["seeds"]]
        t = time.monotonic()
        res = trace(ws, seeds, model=model)
        out["trace_s"] = round(time.monotonic() - t, 3)
        exp = truth["expected"][model]
        want: dict[tuple, int] = {(e["entity"], e["chain"], e["asset"]): int(e["amount"]) for e in exp["endpoints"]}
        got: dict[tuple, int] = {}
        for e in res.endpoints:
            k = (e.entity, e.chain, e.asset)
            got[k] = got.get(k, 0) + e.amount
        shares = {}
        for asset in sorted({k[2] for k in want} | {k[2] for k in got}):
            tot = sum(v for k, v in want.items() if k[2] == asset)
            right = sum(min(v, got.get(k, 0)) for k, v in want.items() if k[2] == asset)
            shares[asset] = round(right / tot, 6) if tot else None
        out["trace_share_right_endpoint"] = shares
        out["trace_exact_endpoints"] = sum(1 for k, v in want.items() if got.get(k) == v)
        out["trace_expected_endpoints"] = len(want)
    return out


def run(scale: str = "small") -> dict:
    with tempfile.TemporaryDirectory() as d:
        world = Path(d) / "world"
        s = _simulate(world, scale)
        res = {"scale": scale, "btc_txs": s["btc_txs"], "btc_blocks": s["btc_blocks"],
               "btc_mb": round(s["btc_bytes"] / 1e6, 1), "evm_txs": s["evm_txs"], "simulate_s": s["wall_s"],
               "btc_tx_per_s": round(s["btc_txs"] / max(s["wall_s"], 1e-9)),
               "block_mb_per_s": round(s["btc_bytes"] / 1e6 / max(s["wall_s"], 1e-9), 2),
               "generator_s": s["seconds"], "peak_rss_mb": round(s["peak_rss_mb"], 1)}
        if scale in ("demo", "small"):
            try:
                res.update(score_pipeline(world))
            except Exception as e:  # noqa: BLE001 - a pipeline piece that fails is reported, not fatal
                res["pipeline_error"] = f"{type(e).__name__}: {e}"[:300]
        return res


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", action="append", help="demo | small | large (repeatable; default demo)")
    a = ap.parse_args()
    rows = []
    for sc in a.scale or ["demo"]:
        r = run(sc)
        rows.append(r)
        for k, v in r.items():
            print(f"{k:32} {v}")
        print()
    print(f"{'scale':8} {'btc txs':>12} {'block MB':>10} {'seconds':>9} {'tx/s':>10} {'MB/s':>8} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['scale']:8} {r['btc_txs']:>12,} {r['btc_mb']:>10} {r['simulate_s']:>9} {r['btc_tx_per_s']:>10,} "
              f"{r['block_mb_per_s']:>8} {r['peak_rss_mb']:>12}")
