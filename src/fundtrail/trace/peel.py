"""Peel chains: a long run of transactions each sending a small "peel" off and the rest onward.

A peel step is a traced transaction with at most two tainted inputs and exactly two value-carrying outputs
that both received taint, where the larger (the continuing output) is at least twice the smaller (the
peel) and the continuing output was traced onward. Steps linked through their continuing outputs form a
chain; chains of at least ``MIN_HOPS`` steps are summarised (first and last transaction, hops, amount in,
amount peeled, peeled amount per destination) instead of printed hop by hop.
"""

from __future__ import annotations

import numpy as np

from fundtrail.model.trace import PeelChain
from fundtrail.trace.taint import ENDPOINT, FOLLOWED, MIXER, STOP_DUST, STOP_HOPS, UNSPENT, UtxoOutcome

MIN_HOPS = 3
RATIO = 2


def peel_chains(graph, out: UtxoOutcome, labels, min_hops: int = MIN_HOPS) -> list[PeelChain]:
    D = out.done.astype(np.int64)
    if not len(D):
        return []
    o0 = graph.tx_out_ptr[D]
    nin = graph.tx_in_ptr[D + 1] - graph.tx_in_ptr[D]
    ok = ((graph.tx_out_ptr[D + 1] - o0) == 2) & (nin <= 2)
    D, o0 = D[ok], o0[ok]
    a, b = o0, o0 + 1
    va, vb = graph.out_value[a], graph.out_value[b]
    ok = (va > 0) & (vb > 0) & ~graph.out_opret[a] & ~graph.out_opret[b]
    big = np.where(va >= vb, a, b)
    small = np.where(va >= vb, b, a)
    ok &= (graph.out_value[big] >= RATIO * graph.out_value[small]) & (out.taint_of(small) > 0)
    steps: dict[int, tuple[int, int]] = dict(zip(D[ok].tolist(), zip(big[ok].tolist(), small[ok].tolist(),
                                                                      strict=True), strict=True))
    if not steps:
        return []
    nxt: dict[int, int] = {}
    has_prev: set[int] = set()
    followed = out.status_of(big[ok]) == FOLLOWED
    for (t, (cont, _small)), fol in zip(steps.items(), followed.tolist(), strict=True):
        if fol:
            t2 = int(graph.out_spent_tx[cont])
            if t2 in steps:
                nxt[t] = t2
                has_prev.add(t2)
    chains: list[PeelChain] = []
    for t in sorted(steps):
        if t in has_prev:
            continue
        seq = [t]
        while seq[-1] in nxt and len(seq) < 1_000_000:
            seq.append(nxt[seq[-1]])
        if len(seq) < min_hops:
            continue
        first = seq[0]
        i0, i1 = int(graph.tx_in_ptr[first]), int(graph.tx_in_ptr[first + 1])
        prev = graph.in_node[i0:i1]
        amount_in = int(out.taint_of(prev[prev >= 0]).sum())
        dest: dict[str, int] = {}
        peeled = 0
        for s in seq:
            small = steps[s][1]
            amt = int(out.taint_of(small))
            peeled += amt
            st = int(out.status_of(small))
            if st in (ENDPOINT, MIXER):
                lab = labels.get(int(graph.out_addr[small]))
                name = lab.entity if lab is not None else "attributed"
            elif st == UNSPENT:
                name = "unspent"
            elif st in (STOP_HOPS, STOP_DUST):
                name = "stopped"
            else:
                name = "unattributed"
            dest[name] = dest.get(name, 0) + amt
        chains.append(PeelChain(chain=graph.chain, asset="BTC", start_txid=graph.txid_of(seq[0]),
                                end_txid=graph.txid_of(seq[-1]), hops=len(seq), amount_in=amount_in, peeled=peeled,
                                decimals=8,
                                peels_by_destination=tuple(sorted(dest.items(), key=lambda kv: (-kv[1], kv[0])))))
    return chains
