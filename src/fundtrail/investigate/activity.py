"""An address's activity: totals received and sent, balance over time, transactions and counterparties.

Every query filters on the address id and pages in SQL (``LIMIT`` / ``OFFSET``), so an exchange's hot wallet
with millions of transactions costs one page. Bitcoin: received = outputs paying the address, sent = inputs
spending its outputs; counterparties are the other side's addresses of those transactions (the inputs of a
transaction that paid it, the outputs of one it spent in). EVM: the rows of ``evm_transfers`` with the address
as payer or payee, per asset (fees included as sent).
"""

from __future__ import annotations

from typing import Any

from fundtrail.errors import NotFoundError
from fundtrail.investigate.conn import connection
from fundtrail.model.amount import format_units
from fundtrail.store import Workspace

PAGE = 50


def _kind(ws: Workspace, chain: str) -> str:
    c = ws.chain(chain)
    if c is not None and c.get("kind") in ("utxo", "evm"):
        return c["kind"]
    if ws.parts("utxo_transactions", chain):
        return "utxo"
    if ws.parts("evm_transfers", chain):
        return "evm"
    raise NotFoundError(f"no chain {chain!r} in the workspace")


def _id(con: Any, chain: str, address: str) -> tuple[int, str]:
    r = con.execute("SELECT address_id, address FROM addresses WHERE chain = $c AND (address = $a OR address = "
                    "lower($a)) LIMIT 1", {"c": chain, "a": address.strip()}).fetchall()
    if not r:
        raise NotFoundError(f"the address {address} was not seen on {chain}")
    return int(r[0][0]), r[0][1]


def _utxo_flows(aid: int) -> str:
    # one row per (tx, direction) with the address's amount in it
    return f"""
        SELECT o.txid, o.height, 'received' AS dir, sum(o.value)::HUGEINT AS amount, 'BTC' AS asset
        FROM utxo_outputs o WHERE o.chain = $c AND o.address_id = {aid} GROUP BY o.txid, o.height
        UNION ALL
        SELECT i.txid, i.height, 'sent', sum(i.value)::HUGEINT, 'BTC'
        FROM utxo_inputs i WHERE i.chain = $c AND i.address_id = {aid} GROUP BY i.txid, i.height"""


def _evm_flows(aid: int) -> str:
    return f"""
        SELECT t.txid, t.height, CASE WHEN t.to_id = {aid} THEN 'received' ELSE 'sent' END AS dir,
               sum(t.amount)::HUGEINT AS amount, t.asset
        FROM evm_transfers t WHERE t.chain = $c AND (t.to_id = {aid} OR t.from_id = {aid})
          AND NOT (t.to_id = {aid} AND t.from_id = {aid})
        GROUP BY t.txid, t.height, dir, t.asset"""


def _decimals(con: Any, chain: str, asset: str) -> tuple[int, str]:
    if asset in ("BTC",):
        return 8, "BTC"
    if not asset.startswith("0x"):
        return 18, asset
    try:
        r = con.execute("SELECT decimals, symbol FROM tokens WHERE chain = $c AND address = $a LIMIT 1",
                        {"c": chain, "a": asset}).fetchall()
    except Exception:  # noqa: BLE001 - no tokens table in this workspace
        r = []
    return (int(r[0][0] or 18), r[0][1] or asset) if r else (18, asset)


def activity(ws: Workspace, chain: str, address: str, *, page: int = 0, size: int = PAGE) -> dict[str, Any]:
    """Totals, monthly series and a page of transactions of ``address`` on ``chain``."""
    kind = _kind(ws, chain)
    with connection(ws) as con:
        aid, addr = _id(con, chain, address)
        flows = _utxo_flows(aid) if kind == "utxo" else _evm_flows(aid)
        blocks = "utxo_blocks" if kind == "utxo" else "evm_blocks"
        con.execute(f"CREATE OR REPLACE TEMP TABLE f AS SELECT f.*, b.time FROM ({flows}) f "
                    f"LEFT JOIN {blocks} b ON b.chain = $c AND b.height = f.height", {"c": chain})
        totals = []
        for asset, rec, sent, n, first, last in con.execute(
                "SELECT asset, sum(amount) FILTER (WHERE dir = 'received'), sum(amount) FILTER (WHERE dir = 'sent'), "
                "count(DISTINCT txid), min(time), max(time) FROM f GROUP BY asset ORDER BY asset").fetchall():
            dec, sym = _decimals(con, chain, asset)
            rec, sent = int(rec or 0), int(sent or 0)
            totals.append({"asset": asset, "symbol": sym, "decimals": dec, "received": format_units(rec, dec),
                           "sent": format_units(sent, dec), "balance": format_units(rec - sent, dec),
                           "transactions": int(n), "first_seen": first.isoformat() if first else None,
                           "last_seen": last.isoformat() if last else None})
        series = []
        dec_of = {t["asset"]: t["decimals"] for t in totals}
        bal: dict[str, int] = {}
        for month, asset, rec, sent in con.execute(
                "SELECT strftime(date_trunc('month', time), '%Y-%m') AS m, asset, "
                "sum(amount) FILTER (WHERE dir = 'received'), sum(amount) FILTER (WHERE dir = 'sent') "
                "FROM f GROUP BY m, asset ORDER BY m, asset").fetchall():
            rec, sent = int(rec or 0), int(sent or 0)
            bal[asset] = bal.get(asset, 0) + rec - sent
            d = dec_of.get(asset, 8)
            series.append({"month": month, "asset": asset, "received": format_units(rec, d),
                           "sent": format_units(sent, d), "balance": format_units(bal[asset], d)})
        txid = "lower(hex(txid))" if kind == "utxo" else "txid"
        rows = con.execute(f"SELECT {txid}, height, time, dir, asset, amount FROM f ORDER BY height DESC, "
                           f"txid, dir LIMIT $n OFFSET $o", {"n": int(size) + 1, "o": int(page) * int(size)}
                           ).fetchall()
        con.execute("DROP TABLE f")
        txs = [{"txid": t, "height": int(h), "time": tm.isoformat() if tm else None, "direction": d,
                "asset": a, "amount": format_units(int(v), dec_of.get(a, 8))} for t, h, tm, d, a, v in rows[:size]]
        return {"chain": chain, "address": addr, "address_id": aid, "kind": kind, "totals": totals,
                "series": series, "transactions": txs, "page": page, "size": size, "more": len(rows) > size}


def counterparties(ws: Workspace, chain: str, address: str, *, page: int = 0, size: int = PAGE) -> dict[str, Any]:
    """Who paid the address and whom it paid, with amounts, largest first (one page)."""
    kind = _kind(ws, chain)
    with connection(ws) as con:
        aid, addr = _id(con, chain, address)
        if kind == "utxo":
            sql = f"""
                WITH rx AS (SELECT DISTINCT txid FROM utxo_outputs WHERE chain = $c AND address_id = {aid}),
                     tx AS (SELECT DISTINCT txid FROM utxo_inputs WHERE chain = $c AND address_id = {aid}),
                     cp AS (
                    SELECT i.address_id AS other, 'from' AS dir, 'BTC' AS asset, sum(i.value)::HUGEINT AS amount,
                           count(DISTINCT i.txid) AS n
                    FROM utxo_inputs i JOIN rx USING (txid) WHERE i.chain = $c AND i.address_id <> {aid}
                    GROUP BY 1, 2, 3
                    UNION ALL
                    SELECT o.address_id, 'to', 'BTC', sum(o.value)::HUGEINT, count(DISTINCT o.txid)
                    FROM utxo_outputs o JOIN tx USING (txid) WHERE o.chain = $c AND o.address_id <> {aid}
                    GROUP BY 1, 2, 3)"""
        else:
            sql = f"""
                WITH cp AS (
                    SELECT CASE WHEN to_id = {aid} THEN from_id ELSE to_id END AS other,
                           CASE WHEN to_id = {aid} THEN 'from' ELSE 'to' END AS dir, asset,
                           sum(amount)::HUGEINT AS amount, count(DISTINCT txid) AS n
                    FROM evm_transfers WHERE chain = $c AND (to_id = {aid} OR from_id = {aid})
                      AND kind <> 'fee' AND from_id IS NOT NULL AND to_id IS NOT NULL AND from_id <> to_id
                    GROUP BY 1, 2, 3)"""
        rows = con.execute(sql + """
            SELECT a.address, cp.dir, cp.asset, cp.amount, cp.n FROM cp
            JOIN addresses a ON a.chain = $c AND a.address_id = cp.other
            ORDER BY cp.amount DESC, a.address LIMIT $n OFFSET $o""",
                           {"c": chain, "n": int(size) + 1, "o": int(page) * int(size)}).fetchall()
        out = []
        for other, d, asset, amt, n in rows[:size]:
            dec, sym = _decimals(con, chain, asset)
            out.append({"address": other, "direction": d, "asset": asset, "symbol": sym,
                        "amount": format_units(int(amt), dec), "transactions": int(n)})
        return {"chain": chain, "address": addr, "counterparties": out, "page": page, "size": size,
                "more": len(rows) > size}
