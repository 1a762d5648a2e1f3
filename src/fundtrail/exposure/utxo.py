"""Exposure on a UTXO chain: every risk group propagated over the output graph with the haircut kernel.

Forward (``received``): the group's outputs are seeds; an output the kernel reaches at hop h carries the
share of the group's funds it holds; the address owning it received that share at h hops (1 = straight
from the group: ``direct``). Backward (``sent``): the outputs the group received are seeds of the reverse
kernel; a spent output reached at hop h is a coin its owner sent that reached the group within h hops.
Both stop at services and pools (``addr_stop``), as the trace does: an exchange's withdrawals are not its
deposits' funds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from fundtrail.trace.graph import UtxoGraph
from fundtrail.trace.taint import S_MIXER, S_NONE, S_SERVICE, UNSPENT, peel_big, run_utxo

MAX_PATH = 32


@dataclass(slots=True)
class Hits:
    """Per (address, group, direction): amount, min hops, the evidence node (largest share)."""

    address_id: np.ndarray
    amount: np.ndarray  # int64 base units
    hops: np.ndarray
    node: np.ndarray  # the output carrying the most (its path is the evidence)
    paths: list[list[str]]
    best: np.ndarray  # the taint of that output (ties between addresses' best outputs: the lower node)


def stop_array(graph: UtxoGraph, stop: dict[int, int]) -> np.ndarray:
    size = max(int(graph.out_addr.max(initial=-1)) + 1, max(stop, default=-1) + 1)
    arr = np.full(size, S_NONE, np.int8)
    for a, k in stop.items():
        arr[a] = S_SERVICE if k == 1 else S_MIXER
    return arr


def paths_of(graph: UtxoGraph, out, nodes: np.ndarray, forward: bool) -> list[list[str]]:
    """The evidence path of every node: the txids from the group to the node (forward) or from the node to
    the group (backward), following each processed transaction's best (largest) tainted predecessor; at most
    ``MAX_PATH`` txids, the nearest ones. All nodes step together (NumPy), the txids are made text once."""
    nodes = np.asarray(nodes, np.int64)
    steps: list[np.ndarray] = []  # per step: the tx number of each node's path at that step, -1 when ended
    cur = nodes.copy()
    alive = np.ones(len(nodes), np.bool_)
    link = graph.out_tx if forward else graph.out_spent_tx
    for _ in range(MAX_PATH):
        if not alive.any():
            break
        t = np.where(alive, link[np.maximum(cur, 0)], -1).astype(np.int64)
        ok = alive & (t >= 0)
        ok[ok] = out.tx_hop_of(t[ok]) >= 0
        t[~ok] = -1
        steps.append(t)
        alive = ok
        nxt = np.full(len(nodes), -1, np.int64)
        nxt[ok] = out.tx_best_of(t[ok])
        alive &= nxt >= 0
        alive[alive] = out.hop_of(nxt[alive]) != 0
        cur = nxt
    if not steps:
        return [[] for _ in range(len(nodes))]
    mat = np.stack(steps, axis=1)  # nodes x steps (nearest first)
    used = np.unique(mat[mat >= 0])
    text = dict(zip(used.tolist(), (graph.txid_of(int(t)) for t in used.tolist()), strict=True))
    out_paths = []
    for row in mat.tolist():
        txs = [text[t] for t in row if t >= 0]
        out_paths.append(txs[::-1] if forward else txs)
    return out_paths


PEEL_RUN = 2  # consecutive peel steps that make a free hop (trace.taint.peel_link's min_run)
UNLIMITED_PEEL = 1 << 62  # free transactions allowed along peel chains: no limit


def run(graph: UtxoGraph, addr_stop: np.ndarray, seed_nodes: np.ndarray, seed_taint: np.ndarray, max_hops: int,
        forward: bool):
    """The haircut kernel from the seeds (no CoinJoin rule, no dust). Peel chains: two consecutive peel steps
    (payments to other owners) make a free hop, with no allowance (``PEEL_RUN``): the trace's rule also looks
    ahead of a step, which an index brought up to date block by block cannot (delta.py), and its allowance
    depends on the walk's order."""
    nocj = np.zeros(graph.ntx, np.bool_)
    return run_utxo(graph, "haircut", forward, nocj, addr_stop, seed_nodes, seed_taint, max_hops, 0,
                    peel_txs=UNLIMITED_PEEL, peel_run=PEEL_RUN)


def hits_of(graph: UtxoGraph, out, forward: bool, include_seeds: bool = False) -> Hits:
    """Aggregate what each address holds (forward) or sent (backward) after a kernel run."""
    nodes, taint, hop = out.nodes, out.node_taint, out.node_hop
    keep = (taint > 0) & (graph.out_addr[nodes] >= 0)
    if not include_seeds:
        keep &= hop > 0
    nodes, taint, hop = nodes[keep], taint[keep], hop[keep]
    if not len(nodes):
        e = np.empty(0, np.int64)
        return Hits(e, e, e, e, [], e)
    addr = graph.out_addr[nodes]
    order = np.lexsort((-taint, addr))
    nodes, addr, taint, hop = nodes[order], addr[order], taint[order], hop[order]
    first = np.flatnonzero(np.r_[True, addr[1:] != addr[:-1]])
    amount = np.add.reduceat(taint, first)
    hops = np.minimum.reduceat(hop.astype(np.int64), first)
    best = nodes[first]
    paths = paths_of(graph, out, best, forward)
    return Hits(addr[first].astype(np.int64), amount.astype(np.int64), hops, best.astype(np.int64), paths,
                taint[first].astype(np.int64))


def propagate(graph: UtxoGraph, addr_stop: np.ndarray, seed_nodes: np.ndarray, seed_taint: np.ndarray,
              max_hops: int, forward: bool, include_seeds: bool = False) -> Hits:
    """Run the haircut kernel from the seeds and aggregate what each address holds (forward) or sent
    (backward) per address."""
    return hits_of(graph, run(graph, addr_stop, seed_nodes, seed_taint, max_hops, forward), forward, include_seeds)


@njit(cache=True)
def _peel_flags(nodes: np.ndarray, out_tx: np.ndarray, tx_out_ptr: np.ndarray, tx_in_ptr: np.ndarray,
                in_node: np.ndarray, out_value: np.ndarray, out_addr: np.ndarray, out_opret: np.ndarray) -> np.ndarray:
    res = np.zeros(len(nodes), np.bool_)
    for i in range(len(nodes)):
        res[i] = peel_big(out_tx[nodes[i]], tx_out_ptr, tx_in_ptr, in_node, out_value, out_addr, out_opret) == nodes[i]
    return res


@dataclass(slots=True)
class Frontier:
    """The outputs a forward run reached that are still unspent: where a later block's spends continue
    it. ``peel``: the output is the continuing output of a peel step (its spender, if a peel step too, costs
    no hop); ``path``: its evidence path."""

    txid: np.ndarray  # (k, 32) uint8: the creating transaction
    n: np.ndarray  # int64 output index
    value: np.ndarray  # int64
    taint: np.ndarray  # int64
    hop: np.ndarray  # int64
    address_id: np.ndarray  # int64
    peel: np.ndarray  # bool
    path: list[list[str]]

    def __len__(self) -> int:
        return len(self.n)


def frontier_of(graph: UtxoGraph, out) -> Frontier:
    """The unspent outputs a forward run reached (status UNSPENT)."""
    sel = out.node_status == UNSPENT
    nodes = out.nodes[sel]
    return Frontier(graph.txid.raw[graph.out_tx[nodes]], graph.out_n[nodes].astype(np.int64),
                    graph.out_value[nodes].astype(np.int64), out.node_taint[sel].astype(np.int64),
                    out.node_hop[sel].astype(np.int64), graph.out_addr[nodes].astype(np.int64),
                    _peel_flags(nodes, graph.out_tx, graph.tx_out_ptr, graph.tx_in_ptr, graph.in_node,
                                graph.out_value, graph.out_addr, graph.out_opret),
                    paths_of(graph, out, nodes, True))


def seeds_of(graph: UtxoGraph, ids: list[int], since: int | None, txids: list[str]) -> np.ndarray:
    """The outputs a group holds: every output paid to its addresses (after ``since``) and the outputs of
    its seed transactions."""
    nodes = np.empty(0, np.int64)
    if ids:
        nodes = graph.outputs_of_many(ids)
        if since is not None:
            nodes = nodes[graph.tx_time[graph.out_tx[nodes]] >= since]
    if txids:
        ts = graph.tx_numbers(txids)
        extra = [np.arange(graph.tx_out_ptr[t], graph.tx_out_ptr[t + 1]) for t in ts.tolist() if t >= 0]
        if extra:
            nodes = np.union1d(nodes, np.concatenate(extra))
    return nodes[~graph.out_opret[nodes]] if len(nodes) else nodes


def totals(graph: UtxoGraph) -> tuple[np.ndarray, np.ndarray]:
    """Per address id: total received and total sent (spent outputs), in base units."""
    size = int(graph.out_addr.max(initial=-1)) + 1
    ok = graph.out_addr >= 0
    recv = np.bincount(graph.out_addr[ok], weights=graph.out_value[ok], minlength=size)
    spent = ok & (graph.out_spent_tx >= 0)
    sent = np.bincount(graph.out_addr[spent], weights=graph.out_value[spent], minlength=size)
    return recv, sent
