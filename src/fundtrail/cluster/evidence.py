"""Why two addresses are in one cluster: the chain of recorded merges joining them.

Every merge the union-find made is one ``cluster_evidence`` row (an edge between two addresses, with the
transaction, heuristic and confidence behind it). The rows of a cluster form a spanning tree of it, so
between two members there is exactly one path through evidence edges: that path, read in order, is the
explanation (``fundtrail cluster why A B``). Its confidence is the product of the steps' confidences.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import duckdb

from fundtrail.errors import AddressError, NotFoundError
from fundtrail.store.workspace import Workspace


@dataclass(frozen=True, slots=True)
class MergeStep:
    from_address: str
    to_address: str
    txid: str | None
    heuristic: str
    confidence: float
    height: int | None
    seq: int


@dataclass(frozen=True, slots=True)
class CoinJoinNote:
    """A multi-party verdict on a transaction the addresses spent in: why its inputs were not merged."""

    txid: str
    height: int | None
    kind: str  # the protocol column of coinjoin_txs
    confidence: float
    reasons: tuple[str, ...]
    addresses: tuple[str, ...]  # which of the asked addresses (or cluster members) spent in it


@dataclass(frozen=True, slots=True)
class Explanation:
    chain: str
    address_a: str
    address_b: str
    cluster_a: int | None
    cluster_b: int | None
    steps: tuple[MergeStep, ...]
    coinjoins: tuple[CoinJoinNote, ...] = ()  # flagged transactions both spent in: kept apart

    @property
    def same_cluster(self) -> bool:
        return self.cluster_a is not None and self.cluster_a == self.cluster_b

    @property
    def confidence(self) -> float:
        c = 1.0
        for s in self.steps:
            c *= s.confidence
        return c if self.same_cluster else 0.0


def _normalize(chain: str, address: str) -> str:
    try:
        from fundtrail.model.address import normalize

        return normalize(chain, address)
    except (AddressError, Exception):  # an unknown chain name or a form normalize does not know
        return address.strip()


def _lookup(con: duckdb.DuckDBPyConnection, chain: str, address: str) -> tuple[int, str]:
    for cand in dict.fromkeys((_normalize(chain, address), address.strip(), address.strip().lower())):
        row = con.execute("SELECT address_id, address FROM addresses WHERE chain = $c AND address = $a",
                          {"c": chain, "a": cand}).fetchall()
        row = row[0] if row else None
        if row is not None:
            return int(row[0]), row[1]
    raise NotFoundError(f"address {address!r} is not in the workspace for chain {chain!r}")


def guess_chain(ws: Workspace, address: str) -> str:
    """The one chain of the workspace knowing ``address`` (for commands given no --chain)."""
    con = ws.connect()
    try:
        rows = con.execute("SELECT DISTINCT chain FROM addresses WHERE address = $a OR address = lower($a)",
                           {"a": address.strip()}).fetchall()
    finally:
        con.close()
    if len(rows) == 1:
        return rows[0][0]
    if not rows:
        raise NotFoundError(f"address {address!r} is in no chain of the workspace")
    raise NotFoundError(f"address {address!r} is on several chains ({', '.join(sorted(r[0] for r in rows))}); "
                        "pass --chain")


def why(ws: Workspace, chain: str, address_a: str, address_b: str) -> Explanation:
    """The merges joining two addresses (no steps when they are in different clusters)."""
    con = ws.connect()
    try:
        ida, a = _lookup(con, chain, address_a)
        idb, b = _lookup(con, chain, address_b)
        cl = dict(con.execute("SELECT address_id, cluster_id FROM cluster_members WHERE chain = $c "
                              "AND address_id IN ($a, $b)", {"c": chain, "a": ida, "b": idb}).fetchall())
        ca, cb = cl.get(ida), cl.get(idb)
        if ca is None or ca != cb or ida == idb:
            notes = coinjoin_notes(con, chain, [ida, idb], both=True)
            return Explanation(chain, a, b, ca, cb, (), notes)
        rows = con.execute("""
            SELECT e.seq, e.a_id, e.b_id, e.txid, e.heuristic, e.confidence, e.height
            FROM cluster_evidence e JOIN cluster_members m ON m.chain = e.chain AND m.address_id = e.a_id
            WHERE e.chain = $c AND m.cluster_id = $k""", {"c": chain, "k": ca}).fetchall()
        adj: dict[int, list[tuple[int, int]]] = {}
        for i, r in enumerate(rows):
            adj.setdefault(r[1], []).append((r[2], i))
            adj.setdefault(r[2], []).append((r[1], i))
        prev: dict[int, tuple[int, int]] = {ida: (-1, -1)}
        queue = deque([ida])
        while queue and idb not in prev:
            x = queue.popleft()
            for y, i in adj.get(x, ()):
                if y not in prev:
                    prev[y] = (x, i)
                    queue.append(y)
        if idb not in prev:
            raise NotFoundError(f"{a} and {b} share cluster {ca} but no evidence path joins them; "
                                "the evidence is incomplete: run `fundtrail cluster --full`")
        path: list[tuple[int, int, int]] = []
        y = idb
        while y != ida:
            x, i = prev[y]
            path.append((x, y, i))
            y = x
        path.reverse()
        ids = sorted({v for p in path for v in p[:2]})
        names = dict(con.execute("SELECT address_id, address FROM addresses WHERE chain = $c "
                                 "AND list_contains($ids, address_id)", {"c": chain, "ids": ids}).fetchall())
    finally:
        con.close()
    steps = tuple(MergeStep(names.get(x, str(x)), names.get(y, str(y)), rows[i][3], rows[i][4],
                            float(rows[i][5]), rows[i][6], int(rows[i][0])) for x, y, i in path)
    return Explanation(chain, a, b, ca, cb, steps)


def show(ws: Workspace, chain: str, address: str, limit: int = 50) -> dict:
    """The cluster of an address: its id, size, a sample of members and how its evidence splits by
    heuristic."""
    con = ws.connect()
    try:
        aid, a = _lookup(con, chain, address)
        row = con.execute("SELECT cluster_id FROM cluster_members WHERE chain = $c AND address_id = $a",
                          {"c": chain, "a": aid}).fetchall()
        row = row[0] if row else None
        if row is None:
            raise NotFoundError(f"{a} is not clustered yet: run `fundtrail cluster --chain {chain}`")
        k = int(row[0])
        size = con.execute("SELECT count(*) FROM cluster_members WHERE chain = $c AND cluster_id = $k",
                           {"c": chain, "k": k}).fetchall()[0][0]
        members = [r[0] for r in con.execute(
            "SELECT a.address FROM cluster_members m JOIN addresses a ON a.chain = m.chain "
            "AND a.address_id = m.address_id WHERE m.chain = $c AND m.cluster_id = $k ORDER BY m.address_id "
            "LIMIT $n", {"c": chain, "k": k, "n": limit}).fetchall()]
        by = dict(con.execute(
            "SELECT e.heuristic, count(*) FROM cluster_evidence e JOIN cluster_members m ON m.chain = e.chain "
            "AND m.address_id = e.a_id WHERE e.chain = $c AND m.cluster_id = $k GROUP BY 1 ORDER BY 1",
            {"c": chain, "k": k}).fetchall())
        ids = [int(r[0]) for r in con.execute(
            "SELECT address_id FROM cluster_members WHERE chain = $c AND cluster_id = $k LIMIT 100000",
            {"c": chain, "k": k}).fetchall()]
        notes = coinjoin_notes(con, chain, ids, limit=limit)
    finally:
        con.close()
    return {"chain": chain, "address": a, "cluster_id": k, "size": int(size), "members": members,
            "merges_by_heuristic": by,
            "coinjoins": [{"txid": n.txid, "height": n.height, "kind": n.kind, "confidence": n.confidence,
                           "reasons": list(n.reasons), "addresses": list(n.addresses)} for n in notes]}


def coinjoin_notes(con: duckdb.DuckDBPyConnection, chain: str, address_ids: list[int], *, both: bool = False,
                   limit: int = 50) -> tuple[CoinJoinNote, ...]:
    """The multi-party verdicts (``coinjoin_txs``) on transactions in which these addresses spent coins
    (``both``: only those in which every one of them did), newest first. Empty when the chain has no
    verdicts stored (the table is written by ``fundtrail cluster``)."""
    from fundtrail.cluster.coinjoin import NOT_MULTI_PARTY

    if not address_ids:
        return ()
    try:
        rows = con.execute("""
            WITH s AS (
                SELECT lower(hex(txid)) AS txid, list(DISTINCT address_id) AS ids FROM utxo_inputs
                WHERE chain = $c AND list_contains($ids, address_id) GROUP BY 1)
            SELECT cj.txid, cj.height, cj.protocol, cj.confidence, cj.reason, s.ids
            FROM coinjoin_txs cj JOIN s ON s.txid = cj.txid
            WHERE cj.chain = $c AND NOT list_contains($single, cj.protocol)
              AND (NOT $both OR len(s.ids) = $n)
            ORDER BY cj.height DESC, cj.txid LIMIT $lim""",
            {"c": chain, "ids": address_ids, "single": sorted(NOT_MULTI_PARTY), "both": both,
             "n": len(set(address_ids)), "lim": limit}).fetchall()
    except duckdb.CatalogException:  # no coinjoin_txs / utxo_inputs on this workspace (an EVM-only one)
        return ()
    all_ids = sorted({int(i) for r in rows for i in r[5]})
    names = dict(con.execute("SELECT address_id, address FROM addresses WHERE chain = $c "
                             "AND list_contains($ids, address_id)", {"c": chain, "ids": all_ids}).fetchall()) \
        if all_ids else {}
    return tuple(CoinJoinNote(r[0], r[1], r[2], float(r[3]), tuple(x for x in (r[4] or "").split("; ") if x),
                              tuple(sorted(names.get(int(i), str(i)) for i in r[5]))) for r in rows)
