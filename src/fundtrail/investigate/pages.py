"""What one address, cluster or entity page shows, in one call each (the UI renders; /v1 serves the parts)."""

from __future__ import annotations

from typing import Any

from fundtrail.attribution.resolve import address_tags
from fundtrail.investigate import activity as A
from fundtrail.investigate import clusters as K
from fundtrail.investigate.conn import connection
from fundtrail.investigate.peels import peel_flags
from fundtrail.store import Workspace

PAGE = 50


def _tags(t: Any) -> list[dict[str, Any]]:
    keep = ("chain", "label", "category", "entity", "country", "source", "confidence", "valid_from", "valid_to",
            "valid_now", "sanctioned", "dataset")
    rows = t.to_pylist() if t.num_rows else []
    out = []
    for r in rows:
        d = {k: r.get(k) for k in keep}
        for k in ("valid_from", "valid_to"):
            d[k] = d[k].date().isoformat() if d[k] is not None else None
        out.append(d)
    return out


def coinjoin_flags(ws: Workspace, chain: str, address_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """CoinJoin transactions the address took part in (as input or output), newest first."""
    with connection(ws) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "coinjoin_txs" not in tables or "utxo_outputs" not in tables:
            return []
        rows = con.execute(f"""
            WITH mine AS (SELECT lower(hex(txid)) AS t FROM utxo_outputs WHERE chain = $c AND address_id = {address_id}
                          UNION SELECT lower(hex(txid)) FROM utxo_inputs WHERE chain = $c AND address_id = {address_id})
            SELECT j.txid, j.protocol, j.confidence, j.height FROM coinjoin_txs j JOIN mine ON mine.t = j.txid
            WHERE j.chain = $c ORDER BY j.height DESC LIMIT {int(limit)}""", {"c": chain}).fetchall()
    return [{"txid": t, "protocol": p, "confidence": float(c), "height": int(h)} for t, p, c, h in rows]


def address_page(ws: Workspace, chain: str, address: str, *, page: int = 0, cp_page: int = 0,
                 size: int = PAGE) -> dict[str, Any]:
    act = A.activity(ws, chain, address, page=page, size=size)
    cps = A.counterparties(ws, chain, act["address"], page=cp_page, size=size)
    cid = K.cluster_of(ws, chain, act["address"])
    size_c = None
    if cid is not None:
        with connection(ws) as con:
            size_c = int(con.execute("SELECT count(*) FROM cluster_members WHERE chain = $c AND cluster_id = $k",
                                     {"c": chain, "k": cid}).fetchone()[0])
    return {**act, "counterparties": cps["counterparties"], "cp_page": cp_page, "cp_more": cps["more"],
            "tags": _tags(address_tags(ws, act["address"], chain=chain)), "cluster_id": cid, "cluster_size": size_c,
            "coinjoin": coinjoin_flags(ws, chain, act["address_id"]) if act["kind"] == "utxo" else [],
            "peel": peel_flags(ws, chain, act["address_id"]) if act["kind"] == "utxo" else None}


def entity_page(ws: Workspace, name: str, *, page: int = 0, size: int = PAGE) -> dict[str, Any]:
    """The tags naming an entity (valid now or not), one page, with the count per chain."""
    with connection(ws) as con:
        p = {"e": name}
        by = con.execute("SELECT chain, count(DISTINCT address), any_value(category), any_value(country), "
                         "bool_or(coalesce(sanctioned, false)) FROM tags WHERE entity = $e GROUP BY chain ORDER BY chain",
                         p).fetchall()
        rows = con.execute("SELECT chain, address, label, category, country, source, confidence, valid_from, "
                           "valid_to FROM tags WHERE entity = $e ORDER BY chain, address, source LIMIT $n OFFSET $o",
                           p | {"n": size + 1, "o": page * size}).fetchall()
    cols = ("chain", "address", "label", "category", "country", "source", "confidence", "valid_from", "valid_to")
    tags = []
    for r in rows[:size]:
        d = dict(zip(cols, r, strict=True))
        for k in ("valid_from", "valid_to"):
            d[k] = d[k].date().isoformat() if d[k] is not None else None
        tags.append(d)
    return {"name": name, "chains": [{"chain": c, "addresses": int(n), "category": cat, "country": cc,
                                      "sanctioned": bool(s)} for c, n, cat, cc, s in by],
            "tags": tags, "page": page, "more": len(rows) > size}
