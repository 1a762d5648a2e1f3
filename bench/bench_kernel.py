"""The Bitcoin taint kernel on a large graph: one-hop expansion before (dense) and after (sparse).

A UI expansion is a one-hop trace from an address: its outputs looked up, the kernel run from them, the
outcome read. Before, each step cost the chain's size: the lookup scanned every output
(``flatnonzero(out_addr == a)``), the kernel allocated and filled arrays of one entry per output and per
transaction on every call, and the caller scanned them (``flatnonzero(status)``). Now the lookup reads the
graph's address -> outputs index, the kernel works in a reused zeroed scratch and returns only what the taint
reached. Both run here on the same synthetic graph, interleaved, from the same addresses; "before" is the
dense kernel kept verbatim as the tests' reference (tests/trace/kernel_reference.py). Each figure is printed
beside a fixed NumPy anchor measured in the same run (``*_vs_anchor``), and the results of both are compared.

The graph is built in memory (no workspace): layers of ``WIDTH`` transactions, each spending one or two
outputs of the layer before and paying one or two outputs (1.42 per transaction, as in the simulated large
world) to addresses drawn from a pool (about five outputs per address); 0.2% of the addresses are services
(the trace stops there). Scales: ``demo`` 200k transactions, ``small`` 1M, ``large`` 10.8M (15.3M outputs,
the simulated large world's size).

Usage: ``python bench/bench_kernel.py [demo|small|large]`` (prints JSON); ``python bench/bench_kernel.py
--expand HOME NTX``: the end-to-end expansion on a workspace (:func:`expand_phase`); ``python
bench/bench_kernel.py --graph DIR``: the kernel comparison on a graph stored by trace/graphstore.py
(``HOME/index/graph/CHAIN/KEY``), read-only (:func:`open_graph`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SCALES = {"demo": 200_000, "small": 1_000_000, "large": 10_800_000}
WIDTH = 50_000
TWO_OUTPUTS = 0.42  # share of transactions paying two outputs (15.3M outputs / 10.8M transactions)
OUTPUTS_PER_ADDRESS = 5
N_ADDRESSES = 30


def build_graph(n_tx: int, seed: int = 7):
    """A layered random spend graph of ``n_tx`` transactions (see the module text)."""
    from fundtrail.trace.graph import TxIds, UtxoGraph

    rng = np.random.default_rng(seed)
    layers = max(2, n_tx // WIDTH)
    n_tx = layers * WIDTH
    n_addr = max(1000, int(n_tx * (1 + TWO_OUTPUTS)) // OUTPUTS_PER_ADDRESS)
    nouts, vals, nins, in_nodes, in_vals, fees = [], [], [], [], [], []
    first_out = 0
    prev_first, prev_vals = 0, None
    for layer in range(layers):
        if layer == 0:
            nin = np.zeros(WIDTH, np.int64)
            vin = rng.integers(1_000_000, 5_000_000_000, WIDTH)
            fee = np.zeros(WIDTH, np.int64)
        else:
            nin = np.where(rng.random(WIDTH) < 0.75, 1, 2)
            total = int(nin.sum())
            pick = rng.permutation(len(prev_vals))[:total]
            pv = prev_vals[pick]
            vin = np.add.reduceat(pv, np.concatenate([[0], np.cumsum(nin)[:-1]]))
            fee = np.minimum(vin // 1000, 5_000)
            in_nodes.append(prev_first + pick)
            in_vals.append(pv)
        nout = np.where(rng.random(WIDTH) < TWO_OUTPUTS, 2, 1)
        spend = vin - fee
        o0 = np.where(nout == 2, (spend * rng.uniform(0.05, 0.95, WIDTH)).astype(np.int64), spend)
        v = np.empty(int(nout.sum()), np.int64)
        starts = np.cumsum(nout) - nout
        v[starts] = o0
        two = starts[nout == 2] + 1
        v[two] = (spend - o0)[nout == 2]
        nouts.append(nout)
        vals.append(v)
        nins.append(nin)
        fees.append(fee)
        prev_first, prev_vals = first_out, v
        first_out += len(v)
    nout = np.concatenate(nouts)
    nin = np.concatenate(nins)
    out_value = np.concatenate(vals)
    in_node = np.concatenate(in_nodes)
    tx_out_ptr = np.zeros(n_tx + 1, np.int64)
    np.cumsum(nout, out=tx_out_ptr[1:])
    tx_in_ptr = np.zeros(n_tx + 1, np.int64)
    np.cumsum(nin, out=tx_in_ptr[1:])
    out_tx = np.repeat(np.arange(n_tx, dtype=np.int64), nout)
    out_spent_tx = np.full(len(out_value), -1, np.int64)
    out_spent_tx[in_node] = np.repeat(np.arange(n_tx, dtype=np.int64), nin)
    raw = np.zeros((n_tx, 32), np.uint8)
    raw[:, 24:] = np.arange(n_tx, dtype=">u8").view(np.uint8).reshape(-1, 8)
    g = UtxoGraph(chain="regtest", txid=TxIds(raw), tx_height=np.arange(n_tx, dtype=np.int64) // WIDTH,
                  tx_time=1_700_000_000 + 600 * (np.arange(n_tx, dtype=np.int64) // WIDTH),
                  tx_fee=np.concatenate(fees), tx_coinbase=nin == 0, tx_out_ptr=tx_out_ptr, tx_in_ptr=tx_in_ptr,
                  in_node=in_node, in_value=np.concatenate(in_vals), out_value=out_value,
                  out_addr=rng.integers(0, n_addr, len(out_value)).astype(np.int64),
                  out_n=(np.arange(len(out_value)) - np.repeat(tx_out_ptr[:-1], nout)).astype(np.int32),
                  out_tx=out_tx, out_spent_tx=out_spent_tx, out_opret=np.zeros(len(out_value), np.bool_))
    stop = np.zeros(n_addr, np.int8)
    stop[rng.choice(n_addr, max(10, n_addr // 500), replace=False)] = 1  # S_SERVICE
    return g, stop


def open_graph(d: str, seed: int = 7):
    """A graph stored by trace/graphstore.py (any format version), memory-mapped read-only: nothing is
    written, no workspace is opened. The stops are drawn as for the generated graph (0.2% of the addresses
    are services)."""
    from fundtrail.trace import graphstore
    from fundtrail.trace.graph import TxIds, UtxoGraph

    p = Path(d)
    meta = json.loads((p / "meta.json").read_text())
    arrays = {n: np.load(p / f"{n}.npy", mmap_mode="r") for n in graphstore.ARRAYS}
    g = UtxoGraph(chain=meta["chain"], txid=TxIds(np.load(p / "txid.npy", mmap_mode="r")), **arrays)
    n_addr = int(g.out_addr.max()) + 1
    rng = np.random.default_rng(seed)
    stop = np.zeros(n_addr, np.int8)
    stop[rng.choice(n_addr, max(10, n_addr // 500), replace=False)] = 1
    return g, stop


def _reference():
    """The dense kernel (imported as the tests import it, so numba's cache of it is shared)."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module("tests.trace.kernel_reference").propagate_dense


def _anchor() -> float:
    a = np.arange(10_000_000, dtype=np.int64)
    t0 = time.perf_counter()
    for _ in range(5):
        int((a * 3 + 1).sum())
    return (time.perf_counter() - t0) / 5


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _stats(ts: list[float], anchor: float) -> dict:
    ts = sorted(ts)
    med = statistics.median(ts)
    return {"n": len(ts), "median_ms": round(med * 1000, 2), "p95_ms": round(ts[min(len(ts) - 1,
                                                                                 int(len(ts) * 0.95))] * 1000, 2),
            "median_vs_anchor": round(med / anchor, 3)}


def run(scale: str = "small", graph_dir: str | None = None) -> dict:
    from fundtrail.trace.taint import MODELS, run_utxo, scratch_pool

    dense = _reference()
    out: dict = {"scale": scale}
    t0 = time.perf_counter()
    g, stop = open_graph(graph_dir) if graph_dir else build_graph(SCALES[scale])
    if graph_dir:
        out["graph_dir"] = graph_dir
    out.update(transactions=g.ntx, outputs=g.nout, inputs=len(g.in_node),
               graph_build_s=round(time.perf_counter() - t0, 1))
    cj = np.zeros(g.ntx, np.bool_)
    nostop = np.zeros(0, np.bool_)
    rng = np.random.default_rng(3)
    addrs = [int(a) for a in g.out_addr[rng.integers(0, g.nout, 4 * N_ADDRESSES)].tolist() if a >= 0][:N_ADDRESSES]

    def before(aid: int, forward: bool, hops: int):
        nodes = np.flatnonzero(g.out_addr == aid)  # the old seed lookup: every output scanned
        nodes = nodes[g.out_value[nodes] > 0]
        r = dense(forward, MODELS["haircut"], g.tx_out_ptr, g.tx_in_ptr, g.in_node, g.in_value, g.out_value,
                  g.out_addr, g.out_tx, g.out_spent_tx, g.out_opret, g.tx_fee, cj, stop, nodes, g.out_value[nodes],
                  hops, 0, False, 0, nostop, 3)
        taint, status = r[0], r[1]
        touched = np.flatnonzero(status)  # UtxoOutcome.nodes(): every output scanned
        return touched, status[touched], taint[touched], r[3]

    def after(aid: int, forward: bool, hops: int):
        nodes = g.outputs_of(aid)
        nodes = nodes[g.out_value[nodes] > 0]
        o = run_utxo(g, "haircut", forward, cj, stop, nodes, g.out_value[nodes], hops, 0, peel_txs=0)
        return o.nodes, o.node_status, o.node_taint, o.done

    # warm up: compiled code loaded, the address index built, the first scratch made (each timed once)
    t0 = time.perf_counter()
    g.outputs_of(addrs[0])
    out["address_index_build_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    # what a process that opens a stored graph pays instead (graphstore format 2: the index memory-mapped)
    with tempfile.TemporaryDirectory(prefix="kernel-bench-") as d:
        for n, a in zip(("addr_ptr", "addr_order"), g.address_index(), strict=True):
            np.save(Path(d) / f"{n}.npy", a)
        t0 = time.perf_counter()
        ptr, order = (np.load(Path(d) / f"{n}.npy", mmap_mode="c") for n in ("addr_ptr", "addr_order"))
        order[ptr[addrs[1]]:ptr[addrs[1] + 1]].astype(np.int64)
        out["address_index_open_stored_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        del ptr, order
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    after(addrs[0], True, 1)
    out["first_sparse_run_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    before(addrs[0], True, 1)
    out["rss_scratch_mb"] = round(_rss_mb() - rss0, 1)
    anchor = _anchor()
    out["anchor_ms"] = round(anchor * 1000, 2)
    same = True
    for name, forward, hops in (("expand_forward", True, 1), ("expand_backward", False, 1),
                                ("trace_forward_10_hops", True, 10)):
        tb, ta = [], []
        reached = []
        for aid in addrs:
            t0 = time.perf_counter()
            b = before(aid, forward, hops)
            tb.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            a = after(aid, forward, hops)
            ta.append(time.perf_counter() - t0)
            same &= all(np.array_equal(x, y) for x, y in zip(b, a, strict=True))
            reached.append(len(a[0]))
        sb, sa = _stats(tb, anchor), _stats(ta, anchor)
        out[name] = {"before": sb, "after": sa, "speedup_median": round(sb["median_ms"] / sa["median_ms"], 1),
                     "outputs_reached_median": int(statistics.median(reached))}
    # the parts of "after" alone: the lookup, and the scratch pool's state
    ts = []
    for aid in addrs:
        t0 = time.perf_counter()
        g.outputs_of(aid)
        ts.append(time.perf_counter() - t0)
    out["address_lookup_us_median"] = round(statistics.median(ts) * 1e6, 1)
    ts = []
    for aid in addrs[:10]:
        t0 = time.perf_counter()
        np.flatnonzero(g.out_addr == aid)
        ts.append(time.perf_counter() - t0)
    out["address_scan_ms_median"] = round(statistics.median(ts) * 1000, 2)
    out["idle_scratch"] = scratch_pool(g).idle()
    out["same_results"] = bool(same)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    with open("/proc/loadavg") as fh:
        out["loadavg"] = fh.read().split()[:3]
    return out


def _p2wpkh(n: int):
    """``n`` distinct regtest P2WPKH address strings (the 20-byte program: the index, big-endian)."""
    from fundtrail.ingest.bitcoin.script import KEYW, KIND_WIT, encode_keys
    from fundtrail.model.chain import bitcoin_network

    keys = np.zeros((n, KEYW), np.uint8)
    keys[:, 0], keys[:, 1], keys[:, 2] = KIND_WIT, 0, 20
    keys[:, 15:23] = np.arange(n, dtype=">u8").view(np.uint8).reshape(-1, 8)
    return encode_keys(keys, bitcoin_network("regtest"))


def expand_phase(home: str, n_tx: int, n: int = 30) -> dict:
    """End to end: the UI's one-hop expansion (``investigate.graph.expand``, forward and backward) from ``n``
    random addresses of a workspace written by bench_trace.py's generator (``n_tx`` transactions, two outputs
    each), after a warm-up (graphs opened or built and stored, address index built). Run it once with the
    source before the change and once with the source after it (``PYTHONPATH``) on the same workspace to
    compare; each run prints its own anchor."""
    import importlib.util as iu

    from fundtrail.investigate import graph as G
    from fundtrail.store import Workspace

    spec = iu.spec_from_file_location("bench_trace", Path(__file__).resolve().parent / "bench_trace.py")
    bt = iu.module_from_spec(spec)
    spec.loader.exec_module(bt)
    t0 = time.perf_counter()
    bt.build_world(Path(home), n_tx, n_addr=2 * n_tx // OUTPUTS_PER_ADDRESS, address_strings=_p2wpkh)
    out: dict = {"world_s": round(time.perf_counter() - t0, 1)}
    ws = Workspace(home)
    t0 = time.perf_counter()
    G.warm(ws)
    out["warm_s"] = round(time.perf_counter() - t0, 1)
    con = ws.connect()
    try:
        out["transactions"] = con.execute("SELECT count(*) FROM utxo_transactions").fetchone()[0]
        # the same addresses in every run (ids spread over the whole range), so runs compare
        step = max(1, int(con.execute("SELECT max(address_id) FROM addresses").fetchone()[0]) // n)
        addrs = [r[0] for r in con.execute("SELECT address FROM addresses WHERE address_id % ? = 11 "
                                           "ORDER BY address_id LIMIT ?", [step, n]).fetchall()]
    finally:
        con.close()
    anchor = _anchor()
    out["anchor_ms"] = round(anchor * 1000, 2)
    digest = hashlib.sha256()
    for name, direction in (("expand_forward", "forward"), ("expand_backward", "backward")):
        ts, sizes = [], []
        for a in addrs:
            t0 = time.perf_counter()
            r = G.expand(ws, "regtest", a, direction=direction)
            ts.append(time.perf_counter() - t0)
            sizes.append(len(r["nodes"]))
            digest.update(json.dumps({k: v for k, v in r.items() if k != "seconds"}, sort_keys=True,
                                     default=str).encode())
        out[name] = {**_stats(ts, anchor), "nodes_median": int(statistics.median(sizes))}
    out["results_sha256"] = digest.hexdigest()[:16]  # equal in two runs: the same expansions
    # what every trace ends with: heap pages handed back to the OS (trace/graph.py release_memory)
    from fundtrail.trace.graph import release_memory

    ts = []
    for _ in range(10):
        t0 = time.perf_counter()
        release_memory()
        ts.append(time.perf_counter() - t0)
    out["release_memory_ms_median"] = round(statistics.median(ts) * 1000, 2)
    out["rss_mb"] = round(_rss_mb(), 1)
    with open("/proc/loadavg") as fh:
        out["loadavg"] = fh.read().split()[:3]
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--expand":
        print(json.dumps(expand_phase(sys.argv[2], int(sys.argv[3])), indent=1))
    elif len(sys.argv) > 1 and sys.argv[1] == "--graph":
        print(json.dumps(run("stored", sys.argv[2]), indent=1))
    else:
        print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "small"), indent=1))
