"""Exposure on an EVM chain: all risk groups at once over the account ledger, haircut per (account, asset).

One pass over the ledger in processing order keeps every account's balance per asset; an account holding
taint of group g passes ``x * taint_g / balance`` of it on with an outflow x (integers, rounded down), the
receiver records it at one hop more, and keeps it unless it is a service or a pool (mixer, bridge): there
the funds stop, as in the trace. A group's own accounts pass on everything they send (hop 0 -> 1). Gas is
the sender's: its taint is dropped. The same pass over the time-reversed ledger (``reverse=True``, sender
and receiver swapped) gives the ``sent`` direction. Swaps and bridges are not crossed here (the exposure
stays in the asset received); incidents cross bridges through the trace (see index.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fundtrail.trace.graph import EvmLedger

KIND_FEE = EvmLedger.KINDS.index("fee")
MAX_PATH = 32


@dataclass(slots=True)
class _St:
    taint: dict[int, int] = field(default_factory=dict)  # gid -> amount
    hop: dict[int, int] = field(default_factory=dict)
    pred: dict[int, int] = field(default_factory=dict)  # gid -> entry that brought the most
    best: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class EvmHits:
    """Rows: (account, asset index, gid) -> [amount, hops, evidence entry]."""

    rows: dict[tuple[int, int, int], list[int]]
    paths: dict[tuple[int, int, int], list[str]]


def amounts(L: EvmLedger) -> list[int]:
    hi = L.hi.tolist()
    lo = L.lo.tolist()
    out = [(h << 62) | l_ for h, l_ in zip(hi, lo, strict=True)]
    for e, v in L.big.items():
        out[e] = v
    return out


def propagate(L: EvmLedger, members: dict[int, list[int]], since: dict[int, int], stop: dict[int, int],
              max_hops: int, injections: list[tuple[int, int, int, int]] | None = None,
              amts: list[int] | None = None, reverse: bool = False) -> EvmHits:
    """``members``: gid -> account ids; ``since``: gid -> unix seconds from which the group's accounts
    count; ``injections``: (entry, gid, amount, hop) taint put into the receiver of ``entry``."""
    amts = amts if amts is not None else amounts(L)
    src_groups: dict[int, list[int]] = {}
    for g, ids in members.items():
        for a in ids:
            src_groups.setdefault(int(a), []).append(g)
    inj: dict[int, list[tuple[int, int, int]]] = {}
    for e, g, amt, h in injections or []:
        inj.setdefault(int(e), []).append((g, amt, h))
    bal: dict[tuple[int, int], int] = {}
    states: dict[tuple[int, int], _St] = {}
    rows: dict[tuple[int, int, int], list[int]] = {}
    src = L.src.tolist()
    dst = L.dst.tolist()
    asset = L.asset.tolist()
    kind = L.kind.tolist()
    time = L.time.tolist()
    pred_of: dict[tuple[int, int, int], int] = {}  # (account, asset, gid) -> entry (paths)
    for e in range(L.n):
        s, d, a, x = src[e], dst[e], asset[e], amts[e]
        if x <= 0:
            continue
        ks = (s, a)
        b = bal.get(ks, 0)
        if b < x:
            b = x  # history the workspace lacks counts as clean
        st = states.get(ks)
        carry: dict[int, tuple[int, int]] | None = None
        if st is not None and st.taint:
            for g, t in list(st.taint.items()):
                share = min(t, t * x // b)
                if share <= 0:
                    continue
                st.taint[g] = t - share
                if kind[e] != KIND_FEE:
                    if carry is None:
                        carry = {}
                    prev = carry.get(g)
                    carry[g] = (share + (prev[0] if prev else 0), st.hop[g])
        if s in src_groups and kind[e] != KIND_FEE:
            for g in src_groups[s]:
                if time[e] >= since.get(g, -1):
                    if carry is None:
                        carry = {}
                    carry[g] = (x, 0)
        bal[ks] = b - x
        if kind[e] != KIND_FEE and d >= 0:
            kd = (d, a)
            bal[kd] = bal.get(kd, 0) + x
            if e in inj:
                if carry is None:
                    carry = {}
                for g, amt, h in inj[e]:
                    prev = carry.get(g)
                    carry[g] = (min(x, amt + (prev[0] if prev else 0)), h - 1)
            if carry:
                holds = stop.get(d) is None and d not in src_groups
                std = states.get(kd)
                for g, (share, h0) in carry.items():
                    h = h0 + 1
                    if h > max_hops:
                        continue
                    r = rows.get((d, a, g))
                    if r is None:
                        rows[(d, a, g)] = [share, h, e, share]
                    else:
                        r[0] += share
                        r[1] = min(r[1], h)
                        if share > r[3]:
                            r[2], r[3] = e, share
                    if holds:
                        if std is None:
                            std = states[kd] = _St()
                        std.taint[g] = std.taint.get(g, 0) + share
                        if g not in std.hop or h < std.hop[g]:
                            std.hop[g] = h
                        if share > std.best.get(g, -1):
                            std.best[g] = share
                            pred_of[(d, a, g)] = e
    paths: dict[tuple[int, int, int], list[str]] = {}
    for key, r in rows.items():
        a, g = key[1], key[2]
        chain_: list[str] = []
        e = r[2]
        for _ in range(MAX_PATH):
            chain_.append(L.txid_of(e))
            p = pred_of.get((src[e], a, g))
            if p is None or p == e:
                break
            e = p
        paths[key] = chain_ if reverse else chain_[::-1]
    return EvmHits({k: [v[0], v[1], v[2]] for k, v in rows.items()}, paths)


def totals(L: EvmLedger, amts: list[int]) -> dict[tuple[int, int], list[int]]:
    """(account, asset) -> [received, sent] over the ledger (gas counted as sent)."""
    out: dict[tuple[int, int], list[int]] = {}
    src, dst, asset, kind = L.src.tolist(), L.dst.tolist(), L.asset.tolist(), L.kind.tolist()
    for e in range(L.n):
        x = amts[e]
        if x <= 0:
            continue
        if src[e] >= 0:
            out.setdefault((src[e], asset[e]), [0, 0])[1] += x
        if dst[e] >= 0 and kind[e] != KIND_FEE:
            out.setdefault((dst[e], asset[e]), [0, 0])[0] += x
    return out


def entry_of_tx(L: EvmLedger, txid: str) -> list[int]:
    return list(L.tx_rows(txid))


__all__ = ["propagate", "totals", "amounts", "EvmHits", "entry_of_tx"]
