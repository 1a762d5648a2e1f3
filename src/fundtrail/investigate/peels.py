"""Peel-chain flags of one Bitcoin address: the peel chains its outputs belong to or its coins were spent into.

A peel step is the trace's (trace/peel.py): a transaction with at most two inputs and exactly two
value-carrying outputs, the larger (continuing) at least ``RATIO`` times the smaller (the peel). Here the
steps are found on the transaction graph alone (the trace's cached :class:`~fundtrail.trace.graph.UtxoGraph`,
no taint needed): from each transaction that paid the address, and each that spent from it, the run of steps
is walked backward and forward through the continuing outputs. A run of at least ``MIN_HOPS`` steps is a
peel chain, and the address is flagged with its role in it:

- ``continuing``: the address received a chain's continuing output (the chain runs through it);
- ``peel``: the address received a peel off a chain;
- ``spent into``: the address's coins were spent into a chain (the chain starts with that spend).

One row per chain (the first role in that order when the address has several).

At most ``MAX_TXS`` transactions of the address are examined (the page says when there were more).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fundtrail.model.amount import format_units
from fundtrail.store import Workspace
from fundtrail.trace.graph import UtxoGraph, utxo_graph
from fundtrail.trace.peel import MIN_HOPS, RATIO

MAX_TXS = 200
ORDER = ("continuing", "peel", "spent into")
MAX_AT = 20  # the address's own transactions listed per chain
MAX_STEPS = 100_000


def _step(g: UtxoGraph, t: int) -> tuple[int, int] | None:
    """(continuing output, peel output) of transaction ``t`` when it is a peel step, else None."""
    if t < 0 or t >= g.ntx:
        return None
    if int(g.tx_in_ptr[t + 1] - g.tx_in_ptr[t]) > 2 or bool(g.tx_coinbase[t]):
        return None
    o0 = int(g.tx_out_ptr[t])
    if int(g.tx_out_ptr[t + 1]) - o0 != 2:
        return None
    a, b = o0, o0 + 1
    va, vb = int(g.out_value[a]), int(g.out_value[b])
    if va <= 0 or vb <= 0 or bool(g.out_opret[a]) or bool(g.out_opret[b]):
        return None
    big, small = (a, b) if va >= vb else (b, a)
    if int(g.out_value[big]) < RATIO * int(g.out_value[small]):
        return None
    return big, small


def _prev_step(g: UtxoGraph, t: int) -> int:
    """The step whose continuing output transaction ``t`` spends, or -1."""
    for i in range(int(g.tx_in_ptr[t]), int(g.tx_in_ptr[t + 1])):
        p = int(g.in_node[i])
        if p < 0:
            continue
        t0 = int(g.out_tx[p])
        s = _step(g, t0)
        if s is not None and s[0] == p:
            return t0
    return -1


def _run(g: UtxoGraph, t: int) -> list[int]:
    """The whole run of peel steps through step ``t``, first to last."""
    back: list[int] = []
    x = _prev_step(g, t)
    while x >= 0 and len(back) < MAX_STEPS:
        back.append(x)
        x = _prev_step(g, x)
    seq = back[::-1] + [t]
    while len(seq) < MAX_STEPS:
        s = _step(g, seq[-1])
        nxt = int(g.out_spent_tx[s[0]]) if s is not None else -1
        if nxt < 0 or _step(g, nxt) is None:
            break
        seq.append(nxt)
    return seq


def peel_flags(ws: Workspace, chain: str, address_id: int) -> dict[str, Any]:
    """The peel chains the address takes part in: ``{"chains": [...], "examined": n, "more": bool}``, each
    chain ``{role, hops, start_txid, end_txid, peeled, peeled_base, symbol, at_txids}`` (``at_txids``: the
    address's transactions in the chain, at most ``MAX_AT``)."""
    g = utxo_graph(ws, chain)
    outs = g.outputs_of(int(address_id))
    received = np.unique(g.out_tx[outs].astype(np.int64))
    spent = np.unique(g.out_spent_tx[outs].astype(np.int64))
    spent = spent[spent >= 0]
    todo: list[tuple[int, str]] = []
    mine = set(outs.tolist())
    for t in received.tolist():
        s = _step(g, t)
        if s is not None:
            todo.append((t, "continuing" if s[0] in mine else "peel"))
    todo += [(t, "spent into") for t in spent.tolist() if _step(g, t) is not None]
    more = len(todo) > MAX_TXS
    seen: dict[int, dict[str, Any]] = {}
    chain_of: dict[int, int] = {}  # every step of a chain found -> its first step (walk each chain once)
    for t, role in todo[:MAX_TXS]:
        first = chain_of.get(t)
        if first is None:
            seq = _run(g, t)
            for x in seq:
                chain_of[x] = seq[0] if len(seq) >= MIN_HOPS else -1
            if len(seq) < MIN_HOPS:
                continue
            first = seq[0]
            peeled = sum(int(g.out_value[_step(g, x)[1]]) for x in seq)  # type: ignore[index]
            seen[first] = {"role": role, "hops": len(seq), "start_txid": g.txid_of(seq[0]),
                           "end_txid": g.txid_of(seq[-1]), "peeled": format_units(peeled, 8),
                           "peeled_base": peeled, "symbol": "BTC", "at_txids": []}
        elif first < 0:
            continue
        hit = seen[first]
        if ORDER.index(role) < ORDER.index(hit["role"]):  # one row per chain: "continuing" says the most
            hit["role"] = role
        if len(hit["at_txids"]) < MAX_AT:
            hit["at_txids"].append(g.txid_of(t))
    chains = sorted(seen.values(), key=lambda c: (-c["hops"], c["start_txid"], c["role"]))
    return {"chains": chains, "examined": min(len(todo), MAX_TXS), "more": more}


def address_peel_chains(ws: Workspace, chain: str, address: str) -> dict[str, Any]:
    """:func:`peel_flags` of an address string (NotFoundError when the chain's dictionary lacks it); an
    account chain (EVM) has no peel chains of this kind: its answer is empty."""
    from fundtrail.errors import NotFoundError
    from fundtrail.model.address import normalize
    from fundtrail.trace.crossing import address_ids

    c = ws.chain(chain)
    if c is None:
        raise NotFoundError(f"chain {chain!r} is not in the workspace")
    addr = normalize(chain, address)
    if c.get("kind") == "evm":
        return {"chain": chain, "address": addr, "chains": [], "examined": 0, "more": False}
    ids = address_ids(ws, chain, [addr])
    if addr not in ids:
        raise NotFoundError(f"address {addr} has no transactions in chain {chain!r}")
    return {"chain": chain, "address": addr, **peel_flags(ws, chain, ids[addr])}
