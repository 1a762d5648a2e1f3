"""What the workspace (or an as-of view of it) says about transactions and blocks: height, block hash,
time, and the values a transaction moved. Shared by export (to write the paths) and verify (to check them)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from fundtrail.store import Workspace


@dataclass(frozen=True, slots=True)
class TxPlace:
    """Where a transaction is: chain, height, block hash, time; ``values`` are a Bitcoin transaction's
    output values by ``n``; for EVM, (from, to, value) of the transaction."""

    chain: str
    txid: str
    height: int | None
    block_hash: str | None
    time: datetime | None
    values: tuple[int, ...] = ()
    evm: tuple[str | None, str | None, int | None] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"chain": self.chain, "txid": self.txid, "height": self.height, "block_hash": self.block_hash,
                "time": self.time.strftime("%Y-%m-%dT%H:%M:%SZ") if self.time else None}


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def locate(ws: Workspace, txids: Iterable[str]) -> dict[str, TxPlace]:
    """Every txid the workspace holds (Bitcoin: 64 hex digits; EVM: 0x + 64), with its block."""
    want = sorted({t.lower() for t in txids if t})
    btc = [t for t in want if len(t) == 64 and not t.startswith("0x")]
    evm = [t for t in want if t.startswith("0x")]
    out: dict[str, TxPlace] = {}
    con = ws.connect()
    try:
        if btc:
            con.register("w", pa.table({"txid": pa.array([bytes.fromhex(t) for t in btc], pa.binary(32))}))
            rows = con.sql("""
                SELECT t.chain, lower(hex(t.txid)) AS txid, t.height, b.hash, t.time,
                       (SELECT list(o.value ORDER BY o.n) FROM utxo_outputs o
                        WHERE o.chain = t.chain AND o.txid = t.txid) AS vals
                FROM utxo_transactions t JOIN w ON w.txid = t.txid
                LEFT JOIN utxo_blocks b ON b.chain = t.chain AND b.height = t.height""").fetchall()
            for chain, txid, h, bh, tm, vals in rows:
                out[txid] = TxPlace(chain, txid, h, bh, tm, tuple(int(v) for v in vals or ()))
        if evm:
            rows = con.sql(f"""
                SELECT t.chain, t.txid, t.height, b.hash, t.time, f.address, o.address, t.value
                FROM evm_transactions t
                LEFT JOIN evm_blocks b ON b.chain = t.chain AND b.height = t.height
                LEFT JOIN addresses f ON f.chain = t.chain AND f.address_id = t.from_id
                LEFT JOIN addresses o ON o.chain = t.chain AND o.address_id = t.to_id
                WHERE t.txid IN ({_sql_list(evm)})""").fetchall()
            for chain, txid, h, bh, tm, fa, ta, v in rows:
                out[txid.lower()] = TxPlace(chain, txid.lower(), h, (bh or "").lower() or None, tm,
                                            evm=(fa, ta, int(v) if v is not None else None))
    finally:
        con.close()
    return out


def block_hash(ws: Workspace, chain: str, height: int) -> tuple[str | None, datetime | None]:
    """(hash, time) of the block at ``height`` of ``chain``, or (None, None)."""
    con = ws.connect()
    try:
        row = con.execute("SELECT hash, time FROM blocks WHERE chain = ? AND height = ?", [chain, height]).fetchone()
    finally:
        con.close()
    return (str(row[0]).lower(), row[1]) if row else (None, None)


__all__ = ["TxPlace", "block_hash", "locate"]
