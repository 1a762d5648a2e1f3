"""Peel chains: a long run of transactions each sending a small "peel" off and the rest onward.

A peel step is a traced transaction with at most two tainted inputs and exactly two value-carrying outputs
that both received taint, where the larger (the continuing output) is at least twice the smaller (the
peel) and the continuing output was traced onward. Steps linked through their continuing outputs form a
chain; chains of at least ``MIN_HOPS`` steps are summarised (first and last transaction, hops, amount in,
amount peeled, peeled amount per destination) instead of printed hop by hop.
"""

from __future__ import annotations

from fundtrail.model.trace import PeelChain
from fundtrail.trace.taint import ENDPOINT, FOLLOWED, MIXER, STOP_DUST, STOP_HOPS, UNSPENT, UtxoOutcome

MIN_HOPS = 3
RATIO = 2


def peel_chains(graph, out: UtxoOutcome, labels, min_hops: int = MIN_HOPS) -> list[PeelChain]:
    steps: dict[int, tuple[int, int]] = {}
    taint, status = out.taint, out.status
    for t in out.done.tolist():
        o0, o1 = int(graph.tx_out_ptr[t]), int(graph.tx_out_ptr[t + 1])
        outs = [o for o in range(o0, o1) if graph.out_value[o] > 0 and not graph.out_opret[o]]
        if len(outs) != 2:
            continue
        i0, i1 = int(graph.tx_in_ptr[t]), int(graph.tx_in_ptr[t + 1])
        if i1 - i0 > 2:
            continue
        a, b = outs
        big, small = (a, b) if graph.out_value[a] >= graph.out_value[b] else (b, a)
        if graph.out_value[big] < RATIO * graph.out_value[small] or taint[small] <= 0:
            continue
        steps[t] = (big, small)
    if not steps:
        return []
    nxt: dict[int, int] = {}
    has_prev: set[int] = set()
    for t, (big, _small) in steps.items():
        if status[big] == FOLLOWED:
            t2 = int(graph.out_spent_tx[big])
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
        amount_in = int(sum(int(taint[p]) for p in graph.in_node[i0:i1].tolist() if p >= 0))
        dest: dict[str, int] = {}
        peeled = 0
        for s in seq:
            small = steps[s][1]
            amt = int(taint[small])
            peeled += amt
            st = int(status[small])
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
