"""Continuing a forward run over new transactions equals running the kernel over the whole graph
(a property over random transaction graphs: peel chains, seeds, services, hop limits, fees)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.exposure import utxo as U
from fundtrail.exposure.delta import Delta, RunSpec, extend_forward, outpoint_keys, spent_rows
from fundtrail.trace.graph import TxIds, UtxoGraph
from fundtrail.trace.taint import S_SERVICE

NADDR = 12
MEMBERS = frozenset({0, 1})
SERVICE = 2


@st.composite
def worlds(draw):
    """Transactions in chain order: (inputs as indexes into the outputs so far, output values, addresses)."""
    ntx = draw(st.integers(3, 40))
    txs = []
    nout = 0
    unspent: list[int] = []
    values: list[int] = []
    for t in range(ntx):
        if t < 2 or not unspent or draw(st.integers(0, 9)) == 0:
            ins: list[int] = []
            total = draw(st.integers(1, 10**8))
        else:
            k = draw(st.integers(1, min(3, len(unspent))))
            picks = draw(st.lists(st.sampled_from(unspent), min_size=k, max_size=k, unique=True))
            ins = picks
            for p in picks:
                unspent.remove(p)
            total = sum(values[p] for p in picks)
        nouts = draw(st.integers(1, 3))
        fee = draw(st.integers(0, total // 10))
        left = total - fee
        outs = []
        for i in range(nouts):
            v = left if i == nouts - 1 else draw(st.integers(0, left))
            left -= v
            outs.append((v, draw(st.integers(-1, NADDR - 1))))
        txs.append((ins, outs))
        for v, _a in outs:
            values.append(v)
            unspent.append(nout)
            nout += 1
    return txs, draw(st.integers(1, ntx - 1)), draw(st.integers(1, 4))


def _graph(txs, upto: int) -> UtxoGraph:
    txs = txs[:upto]
    ntx = len(txs)
    raw = np.zeros((ntx, 32), np.uint8)
    raw[:, 0] = np.arange(ntx) % 256
    raw[:, 1] = np.arange(ntx) // 256
    raw[:, 31] = 7
    out_value, out_addr, out_n, out_tx = [], [], [], []
    in_node, in_value, in_ptr, out_ptr = [], [], [0], [0]
    for t, (ins, outs) in enumerate(txs):
        for p in ins:
            in_node.append(p)
            in_value.append(out_value[p])
        if not ins:
            in_node.append(-1)
            in_value.append(0)
        for n, (v, a) in enumerate(outs):
            out_value.append(v)
            out_addr.append(a)
            out_n.append(n)
            out_tx.append(t)
        in_ptr.append(len(in_node))
        out_ptr.append(len(out_value))
    nout = len(out_value)
    spent = np.full(nout, -1, np.int64)
    for t in range(ntx):
        for j in range(in_ptr[t], in_ptr[t + 1]):
            if in_node[j] >= 0:
                spent[in_node[j]] = t
    return UtxoGraph("x", TxIds(raw), np.arange(ntx, dtype=np.int64), np.zeros(ntx, np.int64),
                     np.zeros(ntx, np.int64), np.array([not ins for ins, _ in txs], np.bool_),
                     np.array(out_ptr, np.int64), np.array(in_ptr, np.int64), np.array(in_node, np.int64),
                     np.array(in_value, np.int64), np.array(out_value, np.int64), np.array(out_addr, np.int64),
                     np.array(out_n, np.int32), np.array(out_tx, np.int64), spent, np.zeros(nout, np.bool_))


def _delta(g: UtxoGraph, cut: int) -> Delta:
    ts = np.arange(cut, g.ntx)
    o0, o1 = int(g.tx_out_ptr[cut]), int(g.tx_out_ptr[g.ntx])
    i0, i1 = int(g.tx_in_ptr[cut]), int(g.tx_in_ptr[g.ntx])
    node = g.in_node[i0:i1]
    ok = node >= 0
    prev = np.zeros((len(node), 32), np.uint8)
    prev[ok] = g.txid.raw[g.out_tx[node[ok]]]
    prev_n = np.where(ok, g.out_n[np.maximum(node, 0)], -1).astype(np.int64)
    addr = np.where(ok, g.out_addr[np.maximum(node, 0)], -1).astype(np.int64)
    return Delta(cut - 1, g.txid.raw[ts], [g.txid_of(int(t)) for t in ts], g.tx_height[ts], g.tx_time[ts],
                 g.tx_out_ptr[cut:] - o0, g.out_n[o0:o1].astype(np.int64), g.out_value[o0:o1], g.out_addr[o0:o1],
                 g.out_opret[o0:o1], np.zeros(o1 - o0, np.int8), g.tx_in_ptr[cut:] - i0, prev, ok, prev_n,
                 g.in_value[i0:i1], addr)


def _stop(n: int) -> np.ndarray:
    s = np.zeros(max(n, NADDR), np.int8)
    s[SERVICE] = S_SERVICE
    return s


def _run(g: UtxoGraph, max_hops: int):
    seeds = np.flatnonzero(np.isin(g.out_addr, list(MEMBERS)) & ~g.out_opret)
    out = U.run(g, _stop(NADDR), seeds, g.out_value[seeds], max_hops, True)
    return U.hits_of(g, out, True), U.frontier_of(g, out)


def _hits_dict(h) -> dict[int, tuple]:
    return {int(a): (int(x), int(hp), int(b), tuple(p)) for a, x, hp, b, p in
            zip(h.address_id, h.amount, h.hops, h.best, h.paths, strict=True)}


@settings(max_examples=100, deadline=None)
@given(worlds())
def test_extend_forward_equals_a_run_over_the_whole_graph(w):
    txs, cut, max_hops = w
    full = _graph(txs, len(txs))
    head = _graph(txs, cut)
    want_hits, want_front = _run(full, max_hops)
    hits, front = _run(head, max_hops)
    d = _delta(full, cut)
    fr_run = np.zeros(len(front), np.int64)
    spends = spent_rows(d, outpoint_keys(front.txid, front.n), front.txid, front.n)
    spec = RunSpec(0, 0, max_hops, MEMBERS, None, frozenset(), False)
    ext = extend_forward(d, [spec], fr_run, front.taint, front.hop, front.peel, lambda r: front.path[r], spends,
                         _stop(NADDR))
    got = _hits_dict(hits)
    for h in ext.hits:  # merged as update.py merges them
        r = got.get(h.address_id)
        if r is None:
            got[h.address_id] = (h.taint, h.hop, h.taint, tuple(h.path))
        else:
            best, path = (h.taint, tuple(h.path)) if h.taint > r[2] else (r[2], r[3])
            got[h.address_id] = (r[0] + h.taint, min(r[1], h.hop), best, path)
    assert got == _hits_dict(want_hits)
    keep = np.ones(len(front), np.bool_)
    keep[ext.spent] = False
    out_tx = np.repeat(np.arange(d.ntx), np.diff(d.out_ptr))
    have = {(bytes(front.txid[i]), int(front.n[i]), int(front.taint[i]), int(front.hop[i]), bool(front.peel[i]),
             tuple(front.path[i])) for i in np.flatnonzero(keep)}
    have |= {(bytes(d.txid[out_tx[o]]), int(d.out_n[o]), x, hp, bool(pl), tuple(p))
             for o, x, hp, pl, p in ext.frontier.get(0, [])}
    want = {(bytes(want_front.txid[i]), int(want_front.n[i]), int(want_front.taint[i]), int(want_front.hop[i]),
             bool(want_front.peel[i]), tuple(want_front.path[i])) for i in range(len(want_front))}
    assert have == want
