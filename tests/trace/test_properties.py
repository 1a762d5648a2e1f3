"""Invariants (hypothesis): exact integer splits, conservation, haircut <= poison, FIFO <= poison."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundtrail.model.trace import Seed
from fundtrail.store import Workspace
from fundtrail.trace.graph import UtxoGraph
from fundtrail.trace.taint import FOLLOWED, UNTOUCHED, muldiv, run_utxo, split_exact, split_largest_remainder

from .world import EvmWorld, eaddr

MAXSAT = 21_000_000 * 100_000_000


@settings(deadline=None)
@given(st.integers(0, MAXSAT), st.integers(0, MAXSAT), st.integers(1, MAXSAT))
def test_muldiv_is_exact(a, b, c):
    a = min(a, c)
    q, r = muldiv(a, b, c)
    assert (q, r) == divmod(a * b, c)


@settings(deadline=None)
@given(st.integers(0, MAXSAT), st.lists(st.integers(0, MAXSAT // 100), min_size=1, max_size=12))
def test_largest_remainder_split(total, weights):
    W = sum(weights)
    total = min(total, W)
    out = np.zeros(len(weights), np.int64)
    split_largest_remainder(total, np.array(weights, np.int64), out)
    assert int(out.sum()) == total
    assert all(0 <= o <= w for o, w in zip(out.tolist(), weights, strict=True))
    assert out.tolist() == split_exact(total, weights)
    if W:  # each share is within one unit of the exact quota
        assert all(abs(o * W - total * w) < W for o, w in zip(out.tolist(), weights, strict=True))


@st.composite
def dags(draw):
    """A random transaction DAG as graph arrays, plus stops, CoinJoins and seeds."""
    n_cb = draw(st.integers(1, 4))
    n_tx = n_cb + draw(st.integers(1, 18))
    unspent: list[int] = []
    out_value: list[int] = []
    out_tx: list[int] = []
    out_addr: list[int] = []
    tx_in: list[list[int]] = []
    tx_out_ptr = [0]
    for t in range(n_tx):
        if t < n_cb or not unspent:
            ins: list[int] = []
            total = draw(st.integers(1, 10**9))
        else:
            k = draw(st.integers(1, min(3, len(unspent))))
            idx = draw(st.lists(st.sampled_from(range(len(unspent))), min_size=k, max_size=k, unique=True))
            ins = [unspent[i] for i in idx]
            for i in sorted(idx, reverse=True):
                unspent.pop(i)
            total = sum(out_value[i] for i in ins)
        n_out = draw(st.integers(1, 3))
        fee = draw(st.integers(0, total // 10)) if ins else 0
        rest = total - fee
        cuts = sorted(draw(st.lists(st.integers(0, rest), min_size=n_out - 1, max_size=n_out - 1)))
        vals = [b - a for a, b in zip([0, *cuts], [*cuts, rest], strict=True)]
        for v in vals:
            unspent.append(len(out_value))
            out_value.append(v)
            out_tx.append(t)
            out_addr.append(draw(st.integers(0, 9)))
        tx_in.append(ins)
        tx_out_ptr.append(len(out_value))
    in_node = [p for ins in tx_in for p in ins]
    tx_in_ptr = np.cumsum([0] + [len(x) for x in tx_in])
    spent = np.full(len(out_value), -1, np.int64)
    for t, ins in enumerate(tx_in):
        for p in ins:
            spent[p] = t
    fee = []
    for t, ins in enumerate(tx_in):
        fee.append(sum(out_value[p] for p in ins) - sum(out_value[tx_out_ptr[t]:tx_out_ptr[t + 1]]) if ins else 0)
    g = UtxoGraph(chain="regtest", txid=pa.array([f"{t:064x}" for t in range(n_tx)]),
                  tx_height=np.arange(n_tx, dtype=np.int64), tx_time=np.arange(n_tx, dtype=np.int64),
                  tx_fee=np.array(fee, np.int64), tx_coinbase=np.array([not x for x in tx_in]),
                  tx_out_ptr=np.array(tx_out_ptr, np.int64), tx_in_ptr=tx_in_ptr.astype(np.int64),
                  in_node=np.array(in_node, np.int64), in_value=np.array([out_value[p] for p in in_node], np.int64),
                  out_value=np.array(out_value, np.int64), out_addr=np.array(out_addr, np.int64),
                  out_n=np.zeros(len(out_value), np.int32), out_tx=np.array(out_tx, np.int64),
                  out_spent_tx=spent, out_opret=np.zeros(len(out_value), np.bool_))
    stop = np.zeros(10, np.int8)
    for a in draw(st.lists(st.integers(0, 9), max_size=3)):
        stop[a] = draw(st.integers(1, 2))
    cj = np.array([draw(st.booleans()) and draw(st.booleans()) for _ in range(n_tx)], np.bool_)
    seeds = draw(st.lists(st.sampled_from(range(len(out_value))), min_size=1, max_size=3, unique=True))
    return g, stop, cj, np.array(seeds, np.int64)


def _dense(out, nout: int) -> tuple[np.ndarray, np.ndarray]:
    """The sparse outcome's taint and status as one entry per output."""
    taint = np.zeros(nout, np.int64)
    status = np.full(nout, UNTOUCHED, np.int8)
    taint[out.nodes] = out.node_taint
    status[out.nodes] = out.node_status
    return taint, status


def _terminal_sum(out) -> int:
    term = (out.node_status != UNTOUCHED) & (out.node_status != FOLLOWED)
    return int(out.node_taint[term].sum()) + int(out.sink.sum())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), st.integers(1, 12), st.sampled_from([0, 0, 1000, 10**7]), st.booleans(), st.booleans())
def test_conservation_and_haircut_never_exceeds_poison(d, max_hops, dust, forward, keep_order):
    g, stop, cj, seeds = d
    seed_taint = g.out_value[seeds]
    outs = {}
    for m in ("poison", "haircut", "fifo"):
        out = run_utxo(g, m, forward, cj, stop, seeds, seed_taint, max_hops, dust, keep_order)
        traced = int(np.minimum(seed_taint, g.out_value[seeds]).sum())
        assert _terminal_sum(out) == traced + out.absorbed, m
        assert (out.node_taint <= g.out_value[out.nodes]).all() and (out.node_taint >= 0).all()
        if m != "poison":
            assert out.absorbed <= 0  # only seed overlap (never growth) outside poison
        outs[m] = out
    if dust == 0:
        poison = _dense(outs["poison"], g.nout)[0]
        assert (_dense(outs["haircut"], g.nout)[0] <= poison).all()
        assert (_dense(outs["fifo"], g.nout)[0] <= poison).all()


@st.composite
def ledgers(draw):
    """A random EVM world: accounts passing ETH and one token around, with fees."""
    w = EvmWorld()
    w.token("tok", "TOK", 18)
    n = draw(st.integers(3, 7))
    names = [f"a{i}" for i in range(n)]
    big = 10**24  # wei beyond int64
    for i, a in enumerate(names):
        w.tx(f"fund{i}", a, [(None, a, "ETH", big * (i + 1), "reward"), (None, a, "tok", big, "token")], height=1)
    bal = {(a, s): (big * (i + 1) if s == "ETH" else big) for i, a in enumerate(names) for s in ("ETH", "tok")}
    steps = draw(st.integers(1, 14))
    for k in range(steps):
        src = draw(st.sampled_from(names))
        dst = draw(st.sampled_from([x for x in names if x != src]))
        asset = draw(st.sampled_from(["ETH", "tok"]))
        amt = draw(st.integers(0, bal[(src, asset)] // 2))
        fee = draw(st.integers(0, 10**15)) if asset == "ETH" else 0
        bal[(src, asset)] -= amt
        bal[(dst, asset)] += amt
        bal[(src, "ETH")] -= fee
        w.tx(f"s{k}", src, [(src, dst, asset, amt)], height=2 + k, fee=fee)
    if draw(st.booleans()):
        w.tag(draw(st.sampled_from(names[1:])), "exchange", "Ex", "US")
    return w, names


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(ledgers(), st.integers(1, 6))
def test_evm_conservation_and_haircut_within_poison(tmp_path_factory, lw, max_hops):
    from fundtrail.trace.service import trace

    w, names = lw
    ws = Workspace(tmp_path_factory.mktemp("ws"))
    w.write(ws)
    seed = [Seed("simeth", address=eaddr(names[0]))]
    res = {m: trace(ws, seed, model=m, max_hops=max_hops) for m in ("poison", "haircut", "fifo")}
    for m, r in res.items():
        assert all(b.balanced for b in r.balances), (m, [b.to_json() for b in r.balances])
    hold = {m: {(h.address, h.asset): h.amount for h in r.unspent} for m, r in res.items()}
    ends = {m: {(e.entity, e.asset): e.amount for e in r.endpoints} for m, r in res.items()}
    for m in ("haircut", "fifo"):
        for k, v in hold[m].items():
            assert v <= hold["poison"].get(k, 0), (m, k)
        for k, v in ends[m].items():
            assert v <= ends["poison"].get(k, 0), (m, k)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_backward_shares_from_every_forward_endpoint_equal_the_forward_amounts(d):
    """Haircut, forward from seed coins (coinbase outputs at addresses of their own) and backward from
    every endpoint output it reached, with those seed coins as the backward stops: the share of the
    endpoint that the backward trace credits to the seeds equals what the forward trace put into it,
    within one unit per transaction (rounding). Fees, CoinJoins, services and mixers on the way are
    treated alike in both directions (docs/tracing.md, "Why backward and forward agree")."""
    from fundtrail.trace.taint import ENDPOINT, MIXER

    g, stop, cj, _seeds = d
    n_cb = int(g.tx_coinbase.sum())
    seeds = np.array([o for t in range(n_cb) for o in range(int(g.tx_out_ptr[t]), int(g.tx_out_ptr[t + 1]))
                      if g.out_value[o] > 0][:3], np.int64)
    if not len(seeds):
        return
    out_addr = g.out_addr.copy()
    out_addr[seeds] = 10 + np.arange(len(seeds))  # each seed coin at an address of its own
    g.out_addr = out_addr
    stop_f = np.zeros(10 + len(seeds), np.int8)
    stop_f[:10] = stop
    stop_b = stop_f.copy()
    stop_b[10:] = 1  # backward: reaching a seed coin ends there (credited to the incident)
    fwd = run_utxo(g, "haircut", True, cj, stop_f, seeds, g.out_value[seeds], 10**6, 0)
    ftaint, fstatus = _dense(fwd, g.nout)
    ends = np.flatnonzero(((fstatus == ENDPOINT) | (fstatus == MIXER)) & (ftaint > 0))
    for e in ends.tolist():
        back = run_utxo(g, "haircut", False, cj, stop_b, np.array([e], np.int64), g.out_value[[e]], 10**6, 0)
        btaint, bstatus = _dense(back, g.nout)
        credited = int(btaint[seeds][bstatus[seeds] == ENDPOINT].sum())
        assert abs(credited - int(ftaint[e])) <= len(g.tx_fee), (e, credited, int(ftaint[e]))
