"""Trace latency: a forward haircut trace (10 hops) from a theft in a world of 1M+ Bitcoin transactions.

The world is written straight into a workspace's stored tables (utxo_transactions / outputs / inputs,
addresses, tags): layers of ``WIDTH`` transactions, each spending one or two outputs of the layer before
(a random matching: every output is spent at most once; about 30% stay unspent) and paying two outputs to
addresses drawn from a pool with reuse; 0.2% of the addresses are tagged as exchanges. The graph, labels
and CoinJoin mask are built once (reported as build time); then each trace is timed on its own.

Memory: the trace phase runs in a fresh process (``--trace``), so RSS after the graph build, steady RSS
after the traces and the peak (``ru_maxrss``) are the tracer's own: world generation runs in another child.

Scales: ``small`` 100k transactions, ``large`` 1.05M. Figures are indicative: the machine is shared.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

SCALES = {"demo": 20_000, "small": 100_000, "large": 1_050_000}
WIDTH = 20_000
SEED_TXS = 50  # the theft: one victim's coins paid out in 50 transactions


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def build_world(home: Path, n_tx: int, seed: int = 7, n_addr: int | None = None, address_strings=None) -> dict:
    """The world (see the module text). ``n_addr`` (default 1.5 per transaction) and ``address_strings``
    (``n -> pa.Array`` of n address strings; default made-up strings, which only the trace accepts) let
    bench_kernel.py write a world the UI's expansion can take addresses from."""
    from fundtrail.store import GLOBAL, Workspace

    rng = np.random.default_rng(seed)
    ws = Workspace(home)
    if ws.chain("regtest") is not None:
        return {"reused": True}
    layers = max(2, n_tx // WIDTH)
    n_addr = n_addr or int(n_tx * 1.5)
    chain = "regtest"
    # txid k is the 32-byte big-endian number perm[k] (hex f"{perm[k]:064x}"), stored as binary
    txid_all = np.zeros((layers * WIDTH, 32), np.uint8)
    txid_all[:, 24:] = rng.permutation(layers * WIDTH).astype(">u8").view(np.uint8).reshape(-1, 8)
    prev_vals = prev_tx = prev_addr = None
    tx_tables, out_tables, in_tables = [], [], []
    for layer in range(layers):
        tid = np.arange(layer * WIDTH, (layer + 1) * WIDTH)
        txids = txid_all[tid]
        if layer == 0:
            nin = np.zeros(WIDTH, np.int64)
            vin = rng.integers(1_000_000, 5_000_000_000, WIDTH)
            fee = np.zeros(WIDTH, np.int64)
        else:
            nin = np.where(rng.random(WIDTH) < 0.6, 1, 2)
            total_in = int(nin.sum())
            pick = rng.permutation(len(prev_vals))[:total_in]
            in_tx = np.repeat(np.arange(WIDTH), nin)
            in_n = _ranks(nin)
            pv = prev_vals[pick]
            vin = np.add.reduceat(pv, np.concatenate([[0], np.cumsum(nin)[:-1]]))
            fee = np.minimum(vin // 1000, 5_000)
            in_tables.append(pa.table({
                "chain": pa.array([chain] * total_in), "height": np.full(total_in, layer, np.int64),
                "txid": _txids(txids[in_tx]), "n": in_n.astype(np.int32),
                "prev_txid": _txids(prev_tx[pick // 2]), "prev_n": (pick % 2).astype(np.int64),
                "value": pv.astype(np.int64), "address_id": prev_addr[pick]}))
        spend = vin - fee
        frac = rng.uniform(0.05, 0.95, WIDTH)
        o0 = (spend * frac).astype(np.int64)
        o1 = spend - o0
        vals = np.empty(2 * WIDTH, np.int64)
        vals[0::2], vals[1::2] = o0, o1
        addrs = rng.integers(0, n_addr, 2 * WIDTH)
        out_tables.append(pa.table({
            "chain": pa.array([chain] * (2 * WIDTH)), "height": np.full(2 * WIDTH, layer, np.int64),
            "txid": _txids(np.repeat(txids, 2, axis=0)), "n": np.tile(np.array([0, 1], np.int32), WIDTH),
            "value": vals, "address_id": addrs, "script_type": pa.array(["p2wpkh"] * (2 * WIDTH))}))
        tx_tables.append(pa.table({
            "chain": pa.array([chain] * WIDTH), "height": np.full(WIDTH, layer, np.int64),
            "tx_index": np.arange(WIDTH, dtype=np.int32), "txid": _txids(txids),
            "time": pa.array((1_700_000_000 + layer * 600) * np.ones(WIDTH, np.int64), pa.timestamp("s", "UTC")),
            "fee": fee.astype(np.int64), "is_coinbase": nin == 0, "input_count": nin.astype(np.int32),
            "output_count": np.full(WIDTH, 2, np.int32)}))
        prev_vals, prev_tx, prev_addr = vals, txids, addrs
    n_exch = max(10, n_addr // 500)
    exch = rng.choice(n_addr, n_exch, replace=False)
    addr_strings = address_strings(n_addr) if address_strings is not None else \
        pa.array([f"bcrt1qbench{i:032x}" for i in range(n_addr)], pa.string())
    with ws.transaction() as txn:
        for name, tabs in (("utxo_transactions", tx_tables), ("utxo_outputs", out_tables),
                           ("utxo_inputs", in_tables)):
            txn.append(name, chain, pa.concat_tables(tabs, promote_options="default"))
        txn.append("addresses", chain, pa.table({"chain": pa.array([chain] * n_addr),
                                                 "address_id": np.arange(n_addr, dtype=np.int64),
                                                 "address": addr_strings}))
        txn.append("tags", GLOBAL, pa.table({
            "chain": pa.array([chain] * n_exch), "address": addr_strings.take(pa.array(exch)),
            "label": pa.array([f"Exchange {i % 7}" for i in range(n_exch)]),
            "category": pa.array(["exchange"] * n_exch),
            "entity": pa.array([f"Exchange {i % 7}" for i in range(n_exch)]),
            "country": pa.array([["RU", "US", "SC", "KY", "DE", "SG", "AE"][i % 7] for i in range(n_exch)]),
            "source": pa.array(["bench"] * n_exch), "confidence": np.ones(n_exch)}))
        txn.set_chain(chain, kind="utxo", network="regtest", tip_height=layers - 1)
    return {"reused": False, "layers": layers}


def _txids(raw: np.ndarray) -> pa.Array:
    """A binary(32) column (the stored form of txids) over the rows of an (n, 32) uint8 matrix."""
    raw = np.ascontiguousarray(raw)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), len(raw), [None, pa.py_buffer(raw)])


def _ranks(nin: np.ndarray) -> np.ndarray:
    """0, 1, … within each transaction's inputs."""
    starts = np.repeat(np.cumsum(nin) - nin, nin)
    return np.arange(int(nin.sum())) - starts


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def trace_phase(home: str, traces: int = 5) -> dict:
    """The measured phase, meant to run in a fresh process (``--trace``): build the graph, labels and
    CoinJoin mask, then time ``traces`` forward haircut traces (10 hops), each from its own theft."""
    import gc

    from fundtrail.model.trace import Seed
    from fundtrail.store import Workspace
    from fundtrail.trace import graph as G
    from fundtrail.trace.context import chain_labels, coinjoin_mask
    from fundtrail.trace.crossing import cross_book
    from fundtrail.trace.service import trace

    ws = Workspace(Path(home))
    rss0 = _rss_mb()
    t = time.perf_counter()
    g = G.utxo_graph(ws, "regtest")
    graph_s = time.perf_counter() - t
    rss_graph = _rss_mb()
    peak_graph = _peak_mb()
    t = time.perf_counter()
    book = cross_book(ws)
    chain_labels(ws, "regtest", book, "utxo")
    coinjoin_mask(ws, "regtest", g)
    labels_s = time.perf_counter() - t
    rss_build = _rss_mb()
    # theft seeds: coinbase outputs of layer 0
    rng = np.random.default_rng(11)
    picks = rng.choice(WIDTH, (traces + 1) * SEED_TXS, replace=False).reshape(traces + 1, SEED_TXS)
    seed_sets = [[Seed("regtest", txid=g.txid_of(int(x))) for x in row] for row in picks]
    # warm-up (numba loads its cache)
    trace(ws, seed_sets[-1], model="haircut", max_hops=10)
    rss_warm = _rss_mb()
    lat, reach, ends = [], [], []
    ok = True
    for seeds in seed_sets[:traces]:
        t = time.perf_counter()
        r = trace(ws, seeds, model="haircut", max_hops=10)
        lat.append(time.perf_counter() - t)
        ok &= all(b.balanced for b in r.balances)
        reach.append(r.params.get("transactions_traced", 0))
        ends.append(len(r.endpoints))
        del r
    # the same seeds at the default settings (--max-hops 20, a peel chain costing one hop): the anchor
    # above is the 10-hop trace of the same run
    dlat, dreach, peels, peel_txs, free = [], [], [], [], []
    for seeds in seed_sets[:traces]:
        t = time.perf_counter()
        r = trace(ws, seeds, model="haircut")
        dlat.append(time.perf_counter() - t)
        ok &= all(b.balanced for b in r.balances)
        dreach.append(r.params.get("transactions_traced", 0))
        free.append(r.params.get("peel_free_txs", 0))
        peels.append(len(r.peel_chains))
        peel_txs.append(max((p.hops for p in r.peel_chains), default=0))
        del r
    # the second anchor: the same 20-hop budget counting every transaction as a hop (--no-peel-budget): what
    # the hop budget alone reaches on this graph, whatever peel chains cost
    nlat, nreach = [], []
    for seeds in seed_sets[:traces]:
        t = time.perf_counter()
        r = trace(ws, seeds, model="haircut", peel_budget=False)
        nlat.append(time.perf_counter() - t)
        ok &= all(b.balanced for b in r.balances)
        nreach.append(r.params.get("transactions_traced", 0))
        del r
    gc.collect()
    return {
        "transactions": g.ntx, "outputs": g.nout, "inputs": int(len(g.in_node)),
        "graph_build_s": round(graph_s, 2), "labels_coinjoin_build_s": round(labels_s, 2),
        "graph_mb": round(g.nbytes() / 2**20, 1),
        "rss_before_graph_mb": round(rss0, 1), "rss_after_graph_mb": round(rss_graph, 1),
        "peak_rss_graph_build_mb": round(peak_graph, 1), "rss_after_build_mb": round(rss_build, 1),
        "rss_after_warmup_mb": round(rss_warm, 1), "rss_steady_after_traces_mb": round(_rss_mb(), 1),
        "peak_rss_mb": round(_peak_mb(), 1),
        "trace_latency_s": [round(x, 4) for x in lat], "trace_latency_median_s": round(float(np.median(lat)), 4),
        "trace_latency_max_s": round(max(lat), 4), "seed_txs_per_trace": SEED_TXS,
        "transactions_traced": reach, "endpoint_entities": ends, "conservation_ok": bool(ok),
        "default_trace_latency_s": [round(x, 4) for x in dlat],
        "default_trace_latency_median_s": round(float(np.median(dlat)), 4),
        "default_trace_latency_max_s": round(max(dlat), 4),
        "default_vs_10_hops_median": round(float(np.median(dlat)) / max(float(np.median(lat)), 1e-9), 2),
        "default_transactions_traced": dreach, "default_peel_free_txs": free, "default_peel_chains": peels,
        "no_peel_budget_20_hops_latency_median_s": round(float(np.median(nlat)), 4),
        "no_peel_budget_20_hops_transactions_traced": nreach,
        "default_vs_no_peel_budget_median": round(float(np.median(dlat)) / max(float(np.median(nlat)), 1e-9), 2),
        "default_longest_peel_chain_txs": peel_txs,
    }


def run(scale: str = "small", traces: int = 5, home: str | None = None) -> dict:
    import json
    import subprocess

    n_tx = SCALES[scale]
    base = Path(home or os.environ.get("FUNDTRAIL_BENCH_HOME") or Path(tempfile.gettempdir()) / f"ft-bench-trace-{scale}")
    base.mkdir(parents=True, exist_ok=True)
    reused = (base / "manifest.json").exists()
    me = str(Path(__file__).resolve())
    # the world is written by one child process, the traces measured in another, fresh one: its RSS and
    # peak (ru_maxrss) are the tracer's own, not world generation's or the caller's (pytest, bench/run.py)
    t = time.perf_counter()
    done = subprocess.run([sys.executable, me, "--build", str(base), str(n_tx)], check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building the bench world failed (exit {done.returncode})")
    world_s = time.perf_counter() - t
    done = subprocess.run([sys.executable, me, "--trace", str(base), str(traces)], check=False,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the trace phase failed (exit {done.returncode}): {done.stderr[-2000:]}")
    phase = json.loads(done.stdout.strip().splitlines()[-1])
    return {"scale": scale, **{k: phase.pop(k) for k in ("transactions", "outputs", "inputs")},
            "world_build_s": round(world_s, 2), "world_reused": reused, **phase,
            "note": "indicative: 2 shared cores; RSS/peak of a fresh trace-phase process"}


def _right_shares(exp: dict[tuple, int], got: dict[tuple, int]) -> dict[str, float]:
    """Per chain and asset: the share of the value truth says reached services that the trace attributed
    to the right entity (amounts of different assets are never added)."""
    tot: dict[str, int] = {}
    right: dict[str, int] = {}
    for (ent, chain, asset), v in exp.items():
        key = f"{chain}/{asset}"
        tot[key] = tot.get(key, 0) + v
        right[key] = right.get(key, 0) + min(got.get((ent, chain, asset), 0), v)
    return {k: round(right[k] / t, 6) for k, t in sorted(tot.items()) if t}


def accuracy(scale: str = "demo", seed: int = 1) -> dict:
    """Forward tracing at the DEFAULT settings on a simulated laundering world (peel chains, a CoinJoin,
    bridges, swaps, EVM deposit addresses) against its ground truth (truth.json's expected haircut
    endpoints, computed by the simulator with its own rules): the share of the value that reached
    exchanges attributed to the right exchange, false endpoints, the largest relative error per
    endpoint, any limit notice, and the trace latency."""
    import json

    from fundtrail.attribution.service import import_paths
    from fundtrail.cluster.service import cluster
    from fundtrail.ingest.bitcoin.service import ingest_block_files
    from fundtrail.ingest.evm.service import ingest_evm
    from fundtrail.model.trace import Seed
    from fundtrail.simulate.world import simulate
    from fundtrail.store import Workspace
    from fundtrail.trace.service import trace

    out: dict = {"world": scale, "seed": seed}
    with tempfile.TemporaryDirectory() as tmp:
        w = Path(tmp) / "world"
        simulate(w, scale, seed)
        truth = json.loads((w / "truth.json").read_text())
        ws = Workspace(Path(tmp) / "ws")
        ingest_block_files(ws, w / "bitcoin" / "blocks", "regtest")
        ingest_evm(ws, (w / "evm" / "rpc.jsonl").resolve().as_uri(), "simeth")
        import_paths(ws, sorted((w / "tags").glob("*.yaml")))
        for chain in ("regtest", "simeth"):
            cluster(ws, chain)
        seeds = [Seed(s["chain"], address=s["address"]) for s in truth["theft"]["seeds"]]
        exp: dict[tuple, int] = {}
        for e in truth["expected"]["haircut"]["endpoints"]:
            k = (e["entity"], e["chain"], e["asset"].lower())
            exp[k] = exp.get(k, 0) + int(e["amount"])
        trace(ws, seeds, model="haircut")  # warm-up: graphs, labels, compiled kernels
        t = time.perf_counter()
        r = trace(ws, seeds, model="haircut")
        out["trace_s"] = round(time.perf_counter() - t, 4)
        got: dict[tuple, int] = {}
        for e in r.endpoints:
            k = (e.entity, e.chain, e.asset.lower())
            got[k] = got.get(k, 0) + e.amount
        right = _right_shares(exp, got)
        false = sorted(str(k) for k in got if k not in exp)
        errs = [abs(got.get(k, 0) - v) / v for k, v in exp.items() if v]
        # the anchor: the same trace counting every transaction as a hop (wave 1's budget)
        t = time.perf_counter()
        r0 = trace(ws, seeds, model="haircut", peel_budget=False)
        out["trace_without_peel_budget_s"] = round(time.perf_counter() - t, 4)
        got0: dict[tuple, int] = {}
        for e in r0.endpoints:
            k = (e.entity, e.chain, e.asset.lower())
            got0[k] = got0.get(k, 0) + e.amount
        out["without_peel_budget"] = {"attributed_right_share": _right_shares(exp, got0),
                                      "limits": [x.message for x in r0.limits]}
        out.update({"truth_params": truth["expected"].get("params"), "expected_endpoints": len(exp),
                    "attributed_right_share": right,
                    "false_endpoints": false, "max_relative_error": round(max(errs, default=0.0), 6),
                    "limits": [x.message for x in r.limits], "peel_chains": [p.hops for p in r.peel_chains],
                    "unswept_endpoints": sum(1 for e in r.endpoints if e.state == "unswept"),
                    "balanced": all(b.balanced for b in r.balances)})
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "accuracy":
        import json

        print(json.dumps(accuracy(sys.argv[2] if len(sys.argv) > 2 else "demo"), indent=1))
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--build":
        build_world(Path(sys.argv[2]), int(sys.argv[3]))
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--trace":
        import json

        print(json.dumps(trace_phase(sys.argv[2], int(sys.argv[3]))))
        sys.exit(0)
    scale = sys.argv[1] if len(sys.argv) > 1 else "small"
    f = run(scale)
    width = max(len(k) for k in f)
    for k, v in f.items():
        print(f"{k:<{width}}  {v}")
