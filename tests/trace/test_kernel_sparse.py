"""The sparse UTXO kernel against the dense one it replaced (kernel_reference.py, kept verbatim): the same
taint, status, hops, processed transactions, sinks, evidence links and FIFO segments on random graphs; its
reusable scratch left clean, whether traces run back to back or from several threads at once."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundtrail.model.trace import PEEL_TXS
from fundtrail.trace.graph import UtxoGraph
from fundtrail.trace.taint import MODELS, PEEL_MIN_RUN, run_utxo, scratch_pool

from .kernel_reference import propagate_dense
from .test_properties import dags


def _dense(g, model, forward, cj, stop, seeds, taints, max_hops, dust, keep_order, peel_txs, node_stop, peel_run):
    return propagate_dense(forward, MODELS[model], g.tx_out_ptr, g.tx_in_ptr, g.in_node, g.in_value, g.out_value,
                           g.out_addr, g.out_tx, g.out_spent_tx, g.out_opret, g.tx_fee, cj, stop,
                           np.asarray(seeds, np.int64), np.asarray(taints, np.int64), max_hops, dust, keep_order,
                           peel_txs, np.zeros(0, np.bool_) if node_stop is None else node_stop, peel_run)


def _same(g, out, ref, model, keep_order) -> None:
    """``out`` (sparse) says exactly what ``ref`` (the dense kernel's tuple) says."""
    (taint, status, hop, done, sink, sink_kind, tx_hop, tx_best, seg_start, seg_cnt, seg_amt, seg_flag, absorbed,
     n_free, peel_hit) = ref
    nodes = np.flatnonzero(status)
    assert out.nodes.tolist() == nodes.tolist()
    assert not taint[status == 0].any() and not hop[status == 0].any()
    assert out.node_taint.tolist() == taint[nodes].tolist()
    assert out.node_status.tolist() == status[nodes].tolist()
    assert out.node_hop.tolist() == hop[nodes].tolist()
    assert out.done.tolist() == done.tolist()
    assert out.sink.tolist() == sink.tolist() and out.sink_kind.tolist() == sink_kind.tolist()
    assert out.done_hop.tolist() == tx_hop[done].tolist() and out.done_best.tolist() == tx_best[done].tolist()
    rest = np.ones(g.ntx, np.bool_)
    rest[done] = False
    assert (tx_hop[rest] == -1).all() and (tx_best[rest] == -1).all()
    assert (out.absorbed, out.peel_free_txs, out.peel_hit) == (int(absorbed), int(n_free), int(peel_hit))
    # the lookups answer for any output and transaction
    allo, allt = np.arange(g.nout), np.arange(g.ntx)
    assert out.taint_of(allo).tolist() == taint.tolist() and out.status_of(allo).tolist() == status.tolist()
    assert out.hop_of(allo).tolist() == hop.tolist()
    assert out.tx_hop_of(allt).tolist() == tx_hop.tolist() and out.tx_best_of(allt).tolist() == tx_best.tolist()
    # FIFO segments: the same list, the same per-output slices
    assert out.seg_amt.tolist() == seg_amt.tolist() and out.seg_flag.tolist() == seg_flag.tolist()
    if model == "fifo" and keep_order:
        assert (seg_start[status == 0] == -1).all()
        assert out.seg_start.tolist() == seg_start[nodes].tolist()
        assert out.seg_cnt.tolist() == np.where(seg_start[nodes] >= 0, seg_cnt[nodes], 0).tolist()
    else:
        assert len(out.seg_start) == 0 and len(out.seg_cnt) == 0
        assert len(seg_start) == 0 or (seg_start == -1).all()


def _clean(g) -> None:
    for s in scratch_pool(g)._free:
        assert not s.taint.any() and not s.status.any() and not s.hop.any() and not s.queued.any()
        assert not s.seg_start.any() and not s.seg_cnt.any()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), st.integers(0, 8), st.sampled_from([0, 0, 1000, 10**7]), st.booleans(), st.booleans(),
       st.sampled_from([0, 2, 1 << 62]), st.sampled_from([2, 3]), st.data())
def test_sparse_kernel_equals_dense(d, max_hops, dust, forward, keep_order, peel_txs, peel_run, data):
    g, stop, cj, seeds = d
    taints = np.array([data.draw(st.integers(0, int(v) + 5)) for v in g.out_value[seeds].tolist()], np.int64)
    node_stop = None
    if data.draw(st.booleans()):
        node_stop = np.zeros(g.nout, np.bool_)
        node_stop[data.draw(st.lists(st.integers(0, g.nout - 1), max_size=3))] = True
    # every model twice on the same graph (the scratch reused), against the dense kernel
    for _ in range(2):
        for m in ("poison", "haircut", "fifo"):
            args = (m, forward, cj, stop, seeds, taints, max_hops, dust, keep_order, peel_txs, node_stop, peel_run)
            out = run_utxo(g, *args[:-3], peel_txs=peel_txs, node_stop=node_stop, peel_run=peel_run)
            _same(g, out, _dense(g, *args), m, keep_order)
    _clean(g)


def _random_graph(n_tx: int, seed: int) -> UtxoGraph:
    """A random spend graph of ``n_tx`` transactions (1-3 inputs from the unspent outputs, 1-3 outputs)."""
    rng = np.random.default_rng(seed)
    out_value: list[int] = []
    out_tx: list[int] = []
    tx_in: list[list[int]] = []
    tx_out_ptr = [0]
    unspent: list[int] = []
    for t in range(n_tx):
        if t < 20 or len(unspent) < 4:
            ins: list[int] = []
            total = int(rng.integers(10**6, 10**10))
        else:
            k = int(rng.integers(1, 4))
            idx = sorted(set(rng.integers(0, len(unspent), k).tolist()), reverse=True)
            ins = [unspent.pop(i) for i in idx]
            total = sum(out_value[p] for p in ins) - int(rng.integers(0, 1000))
        n_out = int(rng.integers(1, 4))
        cuts = np.sort(rng.integers(0, max(total, 1), n_out - 1)).tolist()
        for v in (b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)):
            unspent.append(len(out_value))
            out_value.append(v)
            out_tx.append(t)
        tx_in.append(ins)
        tx_out_ptr.append(len(out_value))
    in_node = [p for ins in tx_in for p in ins]
    spent = np.full(len(out_value), -1, np.int64)
    for t, ins in enumerate(tx_in):
        spent[ins] = t
    ov = np.array(out_value, np.int64)
    ptr = np.array(tx_out_ptr, np.int64)
    fee = np.array([ov[ins].sum() - ov[ptr[t]:ptr[t + 1]].sum() if ins else 0 for t, ins in enumerate(tx_in)],
                   np.int64)
    return UtxoGraph(chain="regtest", txid=pa.array([f"{t:064x}" for t in range(n_tx)]),
                     tx_height=np.arange(n_tx, dtype=np.int64), tx_time=np.arange(n_tx, dtype=np.int64),
                     tx_fee=fee, tx_coinbase=np.array([not x for x in tx_in]), tx_out_ptr=ptr,
                     tx_in_ptr=np.cumsum([0] + [len(x) for x in tx_in]).astype(np.int64),
                     in_node=np.array(in_node, np.int64), in_value=ov[np.array(in_node, np.int64)],
                     out_value=ov, out_addr=rng.integers(0, n_tx // 2, len(ov)).astype(np.int64),
                     out_n=np.zeros(len(ov), np.int32), out_tx=np.array(out_tx, np.int64), out_spent_tx=spent,
                     out_opret=np.zeros(len(ov), np.bool_))


def _jobs(g, n: int, seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    stop = np.zeros(g.ntx // 2, np.int8)
    stop[rng.integers(0, len(stop), len(stop) // 50)] = rng.integers(1, 4, len(stop) // 50)
    cj = rng.random(g.ntx) < 0.01
    jobs = []
    for _ in range(n):
        seeds = np.unique(rng.integers(0, g.nout, int(rng.integers(1, 6))))
        jobs.append((str(rng.choice(["poison", "haircut", "fifo"])), bool(rng.random() < 0.7), cj, stop, seeds,
                     g.out_value[seeds], int(rng.integers(1, 12)), int(rng.choice([0, 10**5])),
                     bool(rng.random() < 0.5)))
    return jobs


def _key(out) -> tuple:
    return (out.nodes.tolist(), out.node_taint.tolist(), out.node_status.tolist(), out.node_hop.tolist(),
            out.done.tolist(), out.sink.tolist(), out.done_hop.tolist(), out.done_best.tolist(),
            out.seg_start.tolist(), out.seg_cnt.tolist(), out.seg_amt.tolist(), out.absorbed)


def test_back_to_back_and_concurrent_traces_match_fresh_ones():
    g = _random_graph(4000, 5)
    jobs = _jobs(g, 40, 9)
    # each job on a graph of its own (a fresh scratch), and against the dense kernel
    fresh = []
    for job in jobs:
        g2 = UtxoGraph(**{f: getattr(g, f) for f in UtxoGraph.__dataclass_fields__ if f != "aux"})
        out = run_utxo(g2, *job)
        _same(g2, out, _dense(g2, *job, PEEL_TXS, None, PEEL_MIN_RUN), job[0], job[-1])
        fresh.append(_key(out))
    # back to back on one graph: one scratch reused by every job
    assert [_key(run_utxo(g, *job)) for job in jobs] == fresh
    assert scratch_pool(g).idle() == 1
    _clean(g)
    # from four threads at once, each over every job (in its own order)
    got: dict[int, list] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            order = list(range(len(jobs)))[k:] + list(range(len(jobs)))[:k]
            got[k] = [(i, _key(run_utxo(g, *jobs[i]))) for i in order for _ in range(2)]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(4):
        assert all(key == fresh[i] for i, key in got[k])
    assert 1 <= scratch_pool(g).idle() <= 2
    _clean(g)


def test_address_index_equals_scan():
    g = _random_graph(3000, 11)
    addr = g.out_addr.copy()
    addr[::7] = -1  # outputs without an address
    g = UtxoGraph(**{f: getattr(g, f) for f in UtxoGraph.__dataclass_fields__ if f not in ("aux", "out_addr")},
                  out_addr=addr)
    for a in [-1, 0, 1, 5, int(addr.max()), int(addr.max()) + 1, 10**9]:
        assert g.outputs_of(a).tolist() == (np.flatnonzero(addr == a).tolist() if a >= 0 else [])
    want = [3, 4, 3, 17, 10**9]
    assert g.outputs_of_many(want).tolist() == np.flatnonzero(np.isin(addr, want)).tolist()
    assert g.outputs_of_many([]).tolist() == []
