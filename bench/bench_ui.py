"""The UI's questions on a simulated world: one-hop graph expansion, following to endpoints, address pages, search.

The world is the simulator's (``small``: ~352,000 Bitcoin transactions with a background economy of 40,000
users; ``large``: ~10.8 M), ingested, tags and prices imported, clustered, the theft recorded as an incident.
Timed after the trace graphs are built (the service builds them at start): ``expand`` forward and backward
from random addresses never seen before (the /v1/graph/expand service call; the trace resolves the address
string with a query of the address dictionary), ``expand_neighbour`` as the UI does it (a node an earlier
expansion returned, breadth first from the theft), ``follow`` of the theft's seeds,
the address page's activity and counterparties (paged in SQL) for the busiest address, the cluster page of
the largest cluster, a search by address. The anchor is a fixed NumPy workload measured in the same run, so
the ratios say how the UI's calls compare on a machine whose load changes.

Usage: ``python bench/bench_ui.py [demo|small|large] [--home DIR] [--expand-only]`` (prints JSON;
``--expand-only`` times the graph expansions only, not the pages).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build_world(home: Path, scale: str) -> dict:
    from fundtrail.attribution.service import import_paths
    from fundtrail.cluster.service import cluster
    from fundtrail.incidents import create_incident
    from fundtrail.ingest.bitcoin.service import ingest_block_files
    from fundtrail.ingest.evm.service import ingest_evm
    from fundtrail.prices import import_csv
    from fundtrail.simulate.world import simulate
    from fundtrail.store import Workspace

    out = home.parent / (home.name + "-world")
    ws = Workspace(home)
    if (out / "truth.json").exists() and ws.setting("cluster:regtest") is not None:
        return json.loads((out / "truth.json").read_text())
    simulate(out, scale, 1)
    truth = json.loads((out / "truth.json").read_text())
    ingest_block_files(ws, out / "bitcoin" / "blocks", "regtest")
    ingest_evm(ws, (out / "evm" / "rpc.jsonl").as_uri(), truth["chains"]["evm"])
    import_paths(ws, sorted((out / "tags").glob("*.yaml")))
    import_csv(ws, out / "prices.csv")
    for chain in ("regtest", "simeth"):
        cluster(ws, chain)
    seeds = truth["theft"]["seeds"]
    create_incident(ws, "sim-theft", sorted({s["chain"] for s in seeds}),
                    addresses=[f"{s['chain']}:{s['address']}" for s in seeds])
    return truth


def _anchor() -> float:
    a = np.arange(10_000_000, dtype=np.int64)
    t0 = time.perf_counter()
    for _ in range(5):
        int((a * 3 + 1).sum())
    return (time.perf_counter() - t0) / 5


def _times(fn, n: int) -> dict:
    ts = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return {"n": n, "median_ms": round(statistics.median(ts) * 1000, 2),
            "p95_ms": round(ts[min(n - 1, int(n * 0.95))] * 1000, 2), "max_ms": round(ts[-1] * 1000, 2)}


def run(scale: str, home: Path, expand_only: bool = False) -> dict:
    from fundtrail.investigate import activity as A
    from fundtrail.investigate import clusters as K
    from fundtrail.investigate import graph as G
    from fundtrail.investigate import search as S
    from fundtrail.model.trace import Seed
    from fundtrail.store import Workspace

    out: dict = {"scale": scale}
    t0 = time.perf_counter()
    truth = build_world(home, scale)
    ws = Workspace(home)
    out["world_s"] = round(time.perf_counter() - t0, 1)
    con = ws.connect()
    try:
        out["transactions"] = con.execute("SELECT count(*) FROM utxo_transactions").fetchone()[0]
        addrs = [r[0] for r in con.execute("SELECT address FROM addresses WHERE chain = 'regtest' "
                                           "USING SAMPLE 60 ROWS").fetchall()]
        if not expand_only:
            busiest = con.execute("SELECT a.address, count(*) FROM utxo_outputs o JOIN addresses a USING (chain, "
                                  "address_id) GROUP BY 1 ORDER BY 2 DESC LIMIT 1").fetchone()
            big = con.execute("SELECT cluster_id, count(*) FROM cluster_members WHERE chain = 'regtest' "
                              "GROUP BY 1 ORDER BY 2 DESC LIMIT 1").fetchone()
    finally:
        con.close()
    from fundtrail.store import addrindex as AI
    from fundtrail.trace import crossing as XC

    t0 = time.perf_counter()
    AI.ensure(ws)
    out["address_index_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    G.warm(ws)
    out["graph_build_s"] = round(time.perf_counter() - t0, 1)
    anchor = _anchor()
    out["anchor_ms"] = round(anchor * 1000, 2)

    def cold() -> None:  # forget the resolved addresses and the loaded index (its files stay)
        XC._NAMES.clear()
        AI.clear_cache()

    # never-seen addresses; the index loaded from its files on the first call (cold), then in memory (warm)
    def fwd(i: int) -> None:
        G.expand(ws, "regtest", addrs[i % len(addrs)])

    cold()
    out["expand_forward"] = _times(fwd, 30)
    t0 = time.perf_counter()
    cold()
    G.expand(ws, "regtest", addrs[30])
    out["expand_first_after_index_load_ms"] = round((time.perf_counter() - t0) * 1000, 2)
    out["expand_backward"] = _times(lambda i: G.expand(ws, "regtest", addrs[i % len(addrs)],
                                                      direction="backward"), 30)
    out["expand_forward_repeat"] = _times(fwd, 30)  # the same addresses again (warm)
    # the same never-seen addresses resolved by querying the dictionary files (no index): the old way
    real_index = AI.index
    try:
        AI.index = lambda *a, **k: None
        G.index = AI.index
        cold()
        out["expand_forward_scan"] = _times(lambda i: G.expand(ws, "regtest", addrs[30 + i % 30]), 20)
        cold()
    finally:
        AI.index = real_index
        G.index = real_index
    cold()
    out["expand_forward_indexed_same"] = _times(lambda i: G.expand(ws, "regtest", addrs[30 + i % 30]), 20)
    # the UI's way: expand a node that an earlier expansion put on the graph (its address is known already)
    frontier = [(x["chain"], x["address"]) for x in truth["theft"]["seeds"]]
    seen = set(frontier)

    def next_hop(i: int) -> None:
        chain, a = frontier.pop(0)
        for n in G.expand(ws, chain, a)["nodes"]:
            k = (n["chain"], n["address"])
            if n["address"] and k not in seen:
                seen.add(k)
                frontier.append(k)

    out["expand_neighbour"] = _times(next_hop, 30)
    if expand_only:
        for k in ("expand_forward", "expand_backward", "expand_forward_repeat", "expand_forward_scan",
                  "expand_forward_indexed_same", "expand_neighbour"):
            out[k]["median_vs_anchor"] = round(out[k]["median_ms"] / out["anchor_ms"], 2)
        return out
    seeds = [Seed(x["chain"], address=x["address"]) for x in truth["theft"]["seeds"]]
    out["follow_theft"] = _times(lambda i: G.follow(ws, seeds), 5)
    out["busiest_address_outputs"] = int(busiest[1])
    out["activity_page"] = _times(lambda i: A.activity(ws, "regtest", busiest[0], page=i), 10)
    out["counterparties_page"] = _times(lambda i: A.counterparties(ws, "regtest", busiest[0], page=i), 5)
    out["largest_cluster"] = int(big[1])
    out["cluster_page"] = _times(lambda i: K.cluster_page(ws, "regtest", int(big[0]), page=i * 100), 5)
    out["search_address"] = _times(lambda i: S.search(ws, addrs[i]), 10)
    for k in ("expand_forward", "expand_backward", "expand_forward_repeat", "expand_forward_scan",
              "expand_forward_indexed_same", "expand_neighbour", "follow_theft", "activity_page", "counterparties_page", "cluster_page",
              "search_address"):
        out[k]["median_vs_anchor"] = round(out[k]["median_ms"] / out["anchor_ms"], 2)
    return out


if __name__ == "__main__":
    scale = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "small"
    home = Path(sys.argv[sys.argv.index("--home") + 1]) if "--home" in sys.argv else \
        Path(tempfile.gettempdir()) / f"ft-bench-ui-{scale}"
    print(json.dumps(run(scale, home, "--expand-only" in sys.argv), indent=1))
