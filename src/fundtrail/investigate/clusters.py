"""A cluster: its size, members and why they were merged (the evidence rows), one page at a time; and the
cluster ids of addresses for the case graph when no screening index is loaded.

Members and merges are read with ``LIMIT`` / ``OFFSET`` on the cluster's rows, so an exchange's cluster of
millions of addresses costs one page; the member count is one ``count(*)``. ``cluster_ids`` resolves the
address strings through the address index (store/addrindex.py) and looks their ids up in the chain's
``cluster_members`` held in memory as two sorted arrays (16 bytes a clustered address), read once per
committed part list of the table.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from fundtrail.errors import NotFoundError
from fundtrail.investigate.conn import connection
from fundtrail.store import Workspace
from fundtrail.store.addrindex import index

PAGE = 50

_WHY = {"cospend": "spent together as inputs of one transaction (common-input ownership)",
        "deposit": "forwarded to the same service wallet (deposit-address reuse)"}


def why_text(heuristic: str) -> str:
    if heuristic.startswith("change:"):
        return "received the change of a transaction (" + heuristic[7:].replace("+", ", ") + ")"
    return _WHY.get(heuristic, heuristic)


def cluster_of(ws: Workspace, chain: str, address: str) -> int | None:
    with connection(ws) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "cluster_members" not in tables:
            return None
        r = con.execute("SELECT m.cluster_id FROM cluster_members m JOIN addresses a ON a.chain = m.chain AND "
                        "a.address_id = m.address_id WHERE m.chain = $c AND (a.address = $a OR a.address = lower($a))",
                        {"c": chain, "a": address.strip()}).fetchall()
        return int(r[0][0]) if r else None


def cluster_page(ws: Workspace, chain: str, cluster_id: int, *, page: int = 0, size: int = PAGE,
                 merges_page: int = 0) -> dict[str, Any]:
    with connection(ws) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "cluster_members" not in tables:
            raise NotFoundError(f"{chain} is not clustered yet: run `fundtrail cluster --chain {chain}`")
        p = {"c": chain, "k": int(cluster_id)}
        n = con.execute("SELECT count(*) FROM cluster_members WHERE chain = $c AND cluster_id = $k", p).fetchone()[0]
        if not n:
            raise NotFoundError(f"no cluster {cluster_id} on {chain}")
        members = [r[0] for r in con.execute(
            "SELECT a.address FROM cluster_members m JOIN addresses a ON a.chain = m.chain AND "
            "a.address_id = m.address_id WHERE m.chain = $c AND m.cluster_id = $k ORDER BY m.address_id "
            "LIMIT $n OFFSET $o", p | {"n": size + 1, "o": page * size}).fetchall()]
        by = con.execute(
            "SELECT e.heuristic, count(*) FROM cluster_evidence e JOIN cluster_members m ON m.chain = e.chain "
            "AND m.address_id = e.a_id WHERE e.chain = $c AND m.cluster_id = $k GROUP BY 1 ORDER BY 2 DESC", p
        ).fetchall() if "cluster_evidence" in tables else []
        merges = con.execute(
            "SELECT e.seq, aa.address, ab.address, e.heuristic, e.confidence, e.txid, e.height "
            "FROM cluster_evidence e JOIN cluster_members m ON m.chain = e.chain AND m.address_id = e.a_id "
            "JOIN addresses aa ON aa.chain = e.chain AND aa.address_id = e.a_id "
            "JOIN addresses ab ON ab.chain = e.chain AND ab.address_id = e.b_id "
            "WHERE e.chain = $c AND m.cluster_id = $k ORDER BY e.seq LIMIT $n OFFSET $o",
            p | {"n": size + 1, "o": merges_page * size}).fetchall() if "cluster_evidence" in tables else []
    return {"chain": chain, "cluster_id": int(cluster_id), "size": int(n), "members": members[:size],
            "page": page, "size_page": size, "more": len(members) > size,
            "merges_by_heuristic": [{"heuristic": h, "count": int(c), "why": why_text(h)} for h, c in by],
            "merges": [{"seq": int(s), "a": a, "b": b, "heuristic": h, "why": why_text(h), "confidence": float(cf),
                        "txid": t, "height": int(ht) if ht is not None else None}
                       for s, a, b, h, cf, t, ht in merges[:size]],
            "merges_page": merges_page, "merges_more": len(merges) > size}


_MEMBERS: dict[tuple[str, str], tuple[str, np.ndarray, np.ndarray]] = {}
_MEMBERS_LOCK = threading.Lock()


def _members(ws: Workspace, chain: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(address ids sorted, their cluster ids) of ``chain``'s ``cluster_members``; None when not clustered."""
    parts = ws.parts("cluster_members", chain)
    if not parts:
        return None
    key = json.dumps([[p.file, p.rows] for p in parts])
    ck = (str(ws.home), chain)
    with _MEMBERS_LOCK:
        hit = _MEMBERS.get(ck)
        if hit is not None and hit[0] == key:
            return hit[1], hit[2]
        t = ws.read("cluster_members", chain, columns=["address_id", "cluster_id"])
        a = t["address_id"].to_numpy().astype(np.int64, copy=False)
        c = t["cluster_id"].to_numpy().astype(np.int64, copy=False)
        o = np.argsort(a, kind="stable")
        _MEMBERS[ck] = (key, a[o], c[o])
        return a[o], c[o]


def cluster_ids(ws: Workspace, chain: str, addresses: Iterable[str]) -> dict[str, int]:
    """The cluster id of each of ``addresses`` the chain's clustering holds (others are left out)."""
    m = _members(ws, chain)
    idx = index(ws, chain) if m is not None else None
    if m is None or idx is None or not len(m[0]):
        return {}
    ids = idx.ids_of(list(addresses))
    if not ids:
        return {}
    a, c = m
    q = np.fromiter(ids.values(), np.int64, len(ids))
    r = np.minimum(np.searchsorted(a, q), len(a) - 1)
    hit = a[r] == q
    return {s: int(c[j]) for s, j, ok in zip(ids, r.tolist(), hit.tolist(), strict=True) if ok}


def cluster_labeler(ws: Workspace) -> Callable[[str, str], dict[str, Any] | None]:
    """A labeler for the graph expansion (investigate/graph.py) that gives an address its cluster id only:
    what "Group by cluster" needs, when the screening index (which also gives entities) is not loaded."""

    def label(chain: str, address: str) -> dict[str, Any] | None:
        cid = cluster_ids(ws, chain, [address]).get(address)
        return {"cluster": cid} if cid is not None else None

    return label
