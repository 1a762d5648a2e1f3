"""Small hand-built chains written straight into a workspace through its transactions (the same stored
tables the ingesters write), for the clustering tests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa

from fundtrail.store.addresses import AddressBook
from fundtrail.store.workspace import GLOBAL, Workspace

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _txid(i: int) -> str:
    return hashlib.sha256(f"tx{i}".encode()).hexdigest()


@dataclass
class Tx:
    txid: str
    height: int
    inputs: list[tuple[str, int]]  # (prev_txid, prev_n)
    outputs: list[tuple[str | None, int, str]]  # (address, value, script_type)
    coinbase: bool = False
    version: int = 2
    locktime: int = 0


@dataclass
class UtxoWorld:
    """Transactions by height; ``commit`` writes the blocks not yet written."""

    chain: str = "regtest"
    txs: list[Tx] = field(default_factory=list)
    outs: dict[tuple[str, int], tuple[str | None, int, str]] = field(default_factory=dict)
    written: int = -1

    def tx(self, height: int, inputs: list[tuple[str, int]], outputs: list[tuple[str | None, int] |
           tuple[str | None, int, str]], *, version: int = 2, locktime: int = 0) -> str:
        txid = _txid(len(self.txs))
        outs = [(o[0], o[1], o[2] if len(o) > 2 else ("op_return" if o[0] is None else "p2wpkh"))
                for o in outputs]
        self.txs.append(Tx(txid, height, list(inputs), outs, False, version, locktime))
        for n, o in enumerate(outs):
            self.outs[(txid, n)] = o
        return txid

    def fund(self, height: int, address: str, value: int, script_type: str = "p2wpkh") -> tuple[str, int]:
        txid = _txid(len(self.txs))
        self.txs.append(Tx(txid, height, [], [(address, value, script_type)], True))
        self.outs[(txid, 0)] = (address, value, script_type)
        return (txid, 0)

    def heights(self) -> list[int]:
        return sorted({t.height for t in self.txs})

    def commit(self, ws: Workspace, upto: int | None = None) -> None:
        upto = max(self.heights()) if upto is None else upto
        todo = [t for t in self.txs if self.written < t.height <= upto]
        book = AddressBook(ws, self.chain)
        blocks, txs, outs, ins = [], [], [], []
        for h in sorted({t.height for t in todo}):
            blocks.append({"chain": self.chain, "height": h, "hash": f"{h:064x}",
                           "time": T0 + timedelta(minutes=10 * h), "tx_count": 0})
        by_h: dict[int, int] = {}
        for t in todo:
            idx = by_h.get(t.height, 0)
            by_h[t.height] = idx + 1
            in_vals = [self.outs[p][1] for p in t.inputs]
            txs.append({"chain": self.chain, "height": t.height, "tx_index": idx, "txid": bytes.fromhex(t.txid),
                        "time": T0 + timedelta(minutes=10 * t.height),
                        "fee": 0 if t.coinbase else sum(in_vals) - sum(o[1] for o in t.outputs),
                        "is_coinbase": t.coinbase, "version": t.version, "locktime": t.locktime,
                        "input_count": len(t.inputs), "output_count": len(t.outputs)})
            for n, (a, v, st) in enumerate(t.outputs):
                outs.append({"chain": self.chain, "height": t.height, "txid": bytes.fromhex(t.txid), "n": n, "value": v,
                             "address": a, "script_type": st,
                             "op_return": b"\x00" if st == "op_return" else None})
            for n, (pt, pn) in enumerate(t.inputs):
                a, v, st = self.outs[(pt, pn)]
                ins.append({"chain": self.chain, "height": t.height, "txid": bytes.fromhex(t.txid), "n": n,
                            "prev_txid": bytes.fromhex(pt), "prev_n": pn, "value": v, "address": a, "script_type": st,
                            "sequence": 0xFFFFFFFD})
        with ws.transaction() as txn:
            for rows, table in ((outs, "utxo_outputs"), (ins, "utxo_inputs")):
                if not rows:
                    continue
                t = pa.Table.from_pylist(rows)
                ids = book.ids(t["address"], t["script_type"])
                t = t.drop(["address"]).append_column("address_id", pa.array(ids))
                txn.append(table, self.chain, t)
            txn.append("utxo_transactions", self.chain, pa.Table.from_pylist(txs))
            txn.append("utxo_blocks", self.chain, pa.Table.from_pylist(blocks))
            book.flush_into(txn)
            txn.set_chain(self.chain, kind="utxo", network="regtest", tip_height=upto)
        self.written = upto


def add_tags(ws: Workspace, rows: list[dict]) -> None:
    with ws.transaction() as txn:
        txn.append("tags", GLOBAL, pa.Table.from_pylist(rows))


def write_evm(ws: Workspace, chain: str, transfers: list[dict]) -> None:
    """transfers: dicts with from, to, amount, time (seconds after T0), txid, height, asset (ETH default)."""
    book = AddressBook(ws, chain)
    rows = []
    for i, t in enumerate(transfers):
        rows.append({"chain": chain, "height": t.get("height", i), "time": T0 + timedelta(seconds=t["time"]),
                     "txid": t.get("txid", f"0x{i:064x}"), "tx_index": 0, "seq": i, "from": t["from"],
                     "to": t["to"], "asset": t.get("asset", "ETH"), "amount": Decimal(t["amount"]),
                     "kind": t.get("kind", "call")})
    tab = pa.Table.from_pylist(rows)
    fr = book.ids(tab["from"])
    to = book.ids(tab["to"])
    tab = tab.drop(["from", "to"]).append_column("from_id", pa.array(fr)).append_column("to_id", pa.array(to))
    with ws.transaction() as txn:
        txn.append("evm_transfers", chain, tab)
        book.flush_into(txn)
        txn.set_chain(chain, kind="evm", chain_id=1, tip_height=max(r["height"] for r in rows))
