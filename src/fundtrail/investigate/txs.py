"""One transaction: inputs and outputs (Bitcoin) or value movements (EVM), with its CoinJoin verdict."""

from __future__ import annotations

from typing import Any

from fundtrail.errors import NotFoundError
from fundtrail.investigate.activity import _decimals, _kind
from fundtrail.investigate.conn import connection
from fundtrail.model.amount import format_units
from fundtrail.store import Workspace


def transaction(ws: Workspace, chain: str, txid: str) -> dict[str, Any]:
    kind = _kind(ws, chain)
    t = txid.strip().lower()
    with connection(ws) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if kind == "utxo":
            h = t.removeprefix("0x")
            head = con.execute("SELECT height, time, fee, is_coinbase, input_count, output_count FROM "
                               "utxo_transactions WHERE chain = $c AND txid = from_hex($t)", {"c": chain, "t": h}
                               ).fetchall()
            if not head:
                raise NotFoundError(f"no transaction {txid} on {chain}")
            height, time, fee, cb, nin, nout = head[0]
            ins = con.execute("SELECT i.n, a.address, i.value FROM utxo_inputs i LEFT JOIN addresses a ON "
                              "a.chain = i.chain AND a.address_id = i.address_id WHERE i.chain = $c AND "
                              "i.txid = from_hex($t) ORDER BY i.n LIMIT 1000", {"c": chain, "t": h}).fetchall()
            outs = con.execute("SELECT o.n, a.address, o.value FROM utxo_outputs o LEFT JOIN addresses a ON "
                               "a.chain = o.chain AND a.address_id = o.address_id WHERE o.chain = $c AND "
                               "o.txid = from_hex($t) ORDER BY o.n LIMIT 1000", {"c": chain, "t": h}).fetchall()
            cj = con.execute("SELECT protocol, confidence, reason FROM coinjoin_txs WHERE chain = $c AND txid = $t",
                             {"c": chain, "t": h}).fetchall() if "coinjoin_txs" in tables else []
            return {"chain": chain, "txid": h, "kind": kind, "height": int(height),
                    "time": time.isoformat() if time else None,
                    "fee": format_units(int(fee), 8) if fee is not None else None, "coinbase": bool(cb),
                    "inputs": [{"n": int(n), "address": a, "amount": format_units(int(v or 0), 8), "asset": "BTC"}
                               for n, a, v in ins],
                    "outputs": [{"n": int(n), "address": a, "amount": format_units(int(v), 8), "asset": "BTC"}
                                for n, a, v in outs],
                    "input_count": int(nin or 0), "output_count": int(nout or 0),
                    "coinjoin": [{"protocol": p, "confidence": float(c), "reason": r} for p, c, r in cj]}
        t = t if t.startswith("0x") else "0x" + t
        head = con.execute("SELECT height, time, fee, status FROM evm_transactions WHERE chain = $c AND txid = $t",
                           {"c": chain, "t": t}).fetchall()
        if not head:
            raise NotFoundError(f"no transaction {txid} on {chain}")
        height, time, fee, status = head[0]
        rows = con.execute("SELECT x.seq, x.kind, af.address, at.address, x.asset, x.amount FROM evm_transfers x "
                           "LEFT JOIN addresses af ON af.chain = x.chain AND af.address_id = x.from_id "
                           "LEFT JOIN addresses at ON at.chain = x.chain AND at.address_id = x.to_id "
                           "WHERE x.chain = $c AND x.txid = $t ORDER BY x.seq LIMIT 1000", {"c": chain, "t": t}
                           ).fetchall()
        moves = []
        for seq, k, f, to, asset, amt in rows:
            dec, sym = _decimals(con, chain, asset)
            moves.append({"seq": int(seq), "kind": k, "from": f, "to": to, "asset": asset, "symbol": sym,
                          "amount": format_units(int(amt or 0), dec)})
        return {"chain": chain, "txid": t, "kind": kind, "height": int(height),
                "time": time.isoformat() if time else None,
                "fee": format_units(int(fee), 18) if fee is not None else None, "status": status,
                "transfers": moves, "coinjoin": []}
