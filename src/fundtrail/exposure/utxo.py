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

from fundtrail.trace.graph import UtxoGraph
from fundtrail.trace.taint import S_MIXER, S_NONE, S_SERVICE, run_utxo

MAX_PATH = 32


@dataclass(slots=True)
class Hits:
    """Per (address, group, direction): amount, min hops, the evidence node (largest share)."""

    address_id: np.ndarray
    amount: np.ndarray  # int64 base units
    hops: np.ndarray
    node: np.ndarray  # the output carrying the most (its path is the evidence)
    paths: list[list[str]]


def stop_array(graph: UtxoGraph, stop: dict[int, int]) -> np.ndarray:
    size = max(int(graph.out_addr.max(initial=-1)) + 1, max(stop, default=-1) + 1)
    arr = np.full(size, S_NONE, np.int8)
    for a, k in stop.items():
        arr[a] = S_SERVICE if k == 1 else S_MIXER
    return arr


def _path(graph: UtxoGraph, out, node: int, forward: bool) -> list[str]:
    """The txids from the group to ``node`` (forward) or from ``node`` to the group (backward)."""
    txs: list[str] = []
    cur = int(node)
    for _ in range(MAX_PATH):
        if forward:
            t = int(graph.out_tx[cur])
        else:
            t = int(graph.out_spent_tx[cur])
        if t < 0 or out.tx_hop[t] < 0:
            break
        txs.append(graph.txid_of(t))
        cur = int(out.tx_best[t])
        if cur < 0 or out.hop[cur] == 0:
            break
    return txs[::-1] if forward else txs


def propagate(graph: UtxoGraph, addr_stop: np.ndarray, seed_nodes: np.ndarray, seed_taint: np.ndarray,
              max_hops: int, forward: bool, include_seeds: bool = False) -> Hits:
    """Run the haircut kernel from the seeds and aggregate what each address holds (forward) or sent
    (backward) per address."""
    nocj = np.zeros(graph.ntx, np.bool_)
    out = run_utxo(graph, "haircut", forward, nocj, addr_stop, seed_nodes, seed_taint, max_hops, 0)
    nodes = out.nodes()
    nodes = nodes[(out.taint[nodes] > 0) & (graph.out_addr[nodes] >= 0)]
    if not include_seeds:
        nodes = nodes[out.hop[nodes] > 0]
    if not len(nodes):
        e = np.empty(0, np.int64)
        return Hits(e, e, e, e, [])
    addr = graph.out_addr[nodes]
    order = np.lexsort((-out.taint[nodes], addr))
    nodes, addr = nodes[order], addr[order]
    first = np.flatnonzero(np.r_[True, addr[1:] != addr[:-1]])
    amount = np.add.reduceat(out.taint[nodes], first)
    hops = np.minimum.reduceat(out.hop[nodes].astype(np.int64), first)
    best = nodes[first]
    paths = [_path(graph, out, int(n), forward) for n in best.tolist()]
    return Hits(addr[first].astype(np.int64), amount.astype(np.int64), hops, best.astype(np.int64), paths)


def seeds_of(graph: UtxoGraph, ids: list[int], since: int | None, txids: list[str]) -> np.ndarray:
    """The outputs a group holds: every output paid to its addresses (after ``since``) and the outputs of
    its seed transactions."""
    nodes = np.empty(0, np.int64)
    if ids:
        mask = np.isin(graph.out_addr, np.asarray(sorted(set(ids)), np.int64))
        if since is not None:
            mask &= graph.tx_time[graph.out_tx] >= since
        nodes = np.flatnonzero(mask)
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
