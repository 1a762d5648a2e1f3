"""Small worlds written straight into a workspace's stored tables, from a compact description.

Addresses and txids are derived from short names (``addr("thief")``, ``txid("t1")``) so tests read like
the story they tell; every amount is in base units.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa

from fundtrail.model.address import hash160, keccak256, segwit_encode
from fundtrail.model.evm_abi import encode
from fundtrail.store import GLOBAL, Workspace
from fundtrail.store.addresses import AddressBook
from fundtrail.trace import crossing as X

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def addr(name: str) -> str:
    """A valid regtest bech32 address for a name."""
    return segwit_encode("bcrt", 0, hash160(name.encode()))


def eaddr(name: str) -> str:
    return "0x" + keccak256(name.encode())[:20].hex()


def txid(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def txid_bytes(name: str) -> bytes:
    """The stored form of ``txid(name)`` (utxo_* tables keep txids as 32 bytes, display order)."""
    return bytes.fromhex(txid(name))


def word(n: int) -> str:
    return "0x" + n.to_bytes(32, "big").hex()


def topic_addr(a: str) -> str:
    return "0x" + "0" * 24 + a[2:]


@dataclass
class BtcWorld:
    chain: str = "regtest"
    txs: list[dict] = field(default_factory=list)
    tags: list[dict] = field(default_factory=list)
    clusters: list[list[str]] = field(default_factory=list)
    coinjoins: list[str] = field(default_factory=list)

    def tx(self, name: str, inputs: list[tuple[str, int]], outputs: list[tuple[str | None, int] | tuple[str | None,
           int, bytes]], height: int | None = None, coinbase: bool = False) -> str:
        """``inputs``: (tx name, output index); ``outputs``: (address name or None, value[, op_return])."""
        h = height if height is not None else len(self.txs) + 1
        self.txs.append({"name": name, "inputs": inputs, "outputs": outputs, "height": h,
                         "coinbase": coinbase or not inputs})
        return txid(name)

    def tag(self, name: str, category: str, entity: str, country: str | None = None, confidence: float = 1.0) -> None:
        self.tags.append({"chain": self.chain, "address": addr(name), "label": entity, "category": category,
                          "entity": entity, "country": country, "source": "test", "confidence": confidence})

    def write(self, ws: Workspace) -> None:
        book = AddressBook(ws, self.chain)
        values: dict[tuple[str, int], tuple[int, str | None]] = {}
        tx_rows, out_rows, in_rows = [], [], []
        per_height: dict[int, int] = {}
        for t in self.txs:
            idx = per_height.get(t["height"], 0)
            per_height[t["height"]] = idx + 1
            in_val = 0
            for n, (src, i) in enumerate(t["inputs"]):
                v, a = values[(src, i)]
                in_val += v
                in_rows.append({"chain": self.chain, "height": t["height"], "txid": txid_bytes(t["name"]), "n": n,
                                "prev_txid": txid_bytes(src), "prev_n": i, "value": v, "address": a})
            out_val = 0
            for n, o in enumerate(t["outputs"]):
                a = addr(o[0]) if o[0] is not None else None
                v = o[1]
                out_val += v
                values[(t["name"], n)] = (v, a)
                out_rows.append({"chain": self.chain, "height": t["height"], "txid": txid_bytes(t["name"]), "n": n,
                                 "value": v, "address": a, "script_type": "nulldata" if len(o) > 2 else "p2wpkh",
                                 "op_return": o[2] if len(o) > 2 else None})
            tx_rows.append({"chain": self.chain, "height": t["height"], "tx_index": idx,
                            "txid": txid_bytes(t["name"]),
                            "time": T0 + timedelta(minutes=10 * t["height"]),
                            "fee": 0 if t["coinbase"] else in_val - out_val, "is_coinbase": t["coinbase"],
                            "input_count": len(t["inputs"]), "output_count": len(t["outputs"]),
                            "input_value": in_val, "output_value": out_val})
        outs = pa.Table.from_pylist(out_rows)
        ins = pa.Table.from_pylist(in_rows) if in_rows else None
        out_ids = book.ids(outs["address"])
        outs = outs.drop(["address"]).append_column("address_id", pa.array(out_ids))
        if ins is not None:
            ins = ins.drop(["address"]).append_column("address_id", pa.array(book.ids(ins["address"])))
        members = []
        for group in self.clusters:
            ids = book.lookup([addr(g) for g in group]).tolist()
            root = min(i for i in ids if i >= 0)
            members += [{"chain": self.chain, "address_id": i, "cluster_id": root} for i in ids if i >= 0]
        with ws.transaction() as txn:
            txn.append("utxo_transactions", self.chain, pa.Table.from_pylist(tx_rows))
            txn.append("utxo_outputs", self.chain, outs)
            if ins is not None:
                txn.append("utxo_inputs", self.chain, ins)
            book.flush_into(txn)
            if self.tags:
                txn.append("tags", GLOBAL, pa.Table.from_pylist(self.tags))
            if members:
                txn.append("cluster_members", self.chain, pa.Table.from_pylist(members))
            if self.coinjoins:
                from fundtrail.store import schema as S
                if "coinjoin_txs" in S.SCHEMAS:
                    txn.append("coinjoin_txs", self.chain, pa.table({
                        "chain": [self.chain] * len(self.coinjoins), "txid": [txid(c) for c in self.coinjoins],
                        "height": [0] * len(self.coinjoins), "protocol": ["test"] * len(self.coinjoins),
                        "confidence": [1.0] * len(self.coinjoins)}))
            txn.set_chain(self.chain, kind="utxo", network="regtest", tip_height=max(
                (t["height"] for t in self.txs), default=0))


@dataclass
class EvmWorld:
    chain: str = "simeth"
    txs: list[dict] = field(default_factory=list)
    tags: list[dict] = field(default_factory=list)
    tokens: list[dict] = field(default_factory=list)

    def tx(self, name: str, sender: str, transfers: list[tuple], height: int | None = None,
           logs: list[dict] | None = None, fee: int = 0) -> str:
        """``transfers``: (from name, to name, asset, amount[, kind]); asset 'ETH' or a token name."""
        h = height if height is not None else len(self.txs) + 1
        self.txs.append({"name": name, "sender": sender, "transfers": transfers, "height": h, "logs": logs or [],
                         "fee": fee})
        return txid(name)

    def token(self, name: str, symbol: str, decimals: int) -> str:
        a = eaddr(name)
        self.tokens.append({"chain": self.chain, "address": a, "symbol": symbol, "name": name,
                            "decimals": decimals})
        return a

    def tag(self, name: str, category: str, entity: str, country: str | None = None) -> None:
        self.tags.append({"chain": self.chain, "address": eaddr(name), "label": entity, "category": category,
                          "entity": entity, "country": country, "source": "test", "confidence": 1.0})

    def bridge_deposit_log(self, bridge: str, dep_id: int, sender: str, token: str | None, amount: int,
                           dest_chain: str, dest_address: str) -> dict:
        return {"address": eaddr(bridge), "topic0": X.BRIDGE_DEPOSIT, "topic1": word(dep_id),
                "topic2": topic_addr(eaddr(sender)),
                "data": "0x" + encode(["address", "uint256", "string", "string"],
                                      [token or X.ZERO_ADDRESS, amount, dest_chain, dest_address]).hex()}

    def bridge_release_log(self, bridge: str, dep_id: int, recipient: str, token: str | None, amount: int,
                           src_chain: str, src_tx: str) -> dict:
        return {"address": eaddr(bridge), "topic0": X.BRIDGE_RELEASE, "topic1": word(dep_id),
                "topic2": topic_addr(eaddr(recipient)),
                "data": "0x" + encode(["address", "uint256", "string", "string"],
                                      [token or X.ZERO_ADDRESS, amount, src_chain, src_tx]).hex()}

    def mixer_withdrawal_log(self, pool: str, to: str, relayer: str, fee: int) -> dict:
        return {"address": eaddr(pool), "topic0": X.MIXER_WITHDRAWAL, "topic1": topic_addr(eaddr(relayer)),
                "data": "0x" + encode(["address", "bytes32", "uint256"], [eaddr(to), b"\1" * 32, fee]).hex()}

    def mixer_deposit_log(self, pool: str) -> dict:
        return {"address": eaddr(pool), "topic0": X.MIXER_DEPOSIT, "topic1": word(7),
                "data": "0x" + encode(["uint32", "uint256"], [0, 0]).hex()}

    def write(self, ws: Workspace) -> None:
        book = AddressBook(ws, self.chain)
        tr, txr, logs, blocks = [], [], [], {}
        per_height: dict[int, int] = {}
        tok = {t["name"]: t["address"] for t in self.tokens}
        for t in self.txs:
            idx = per_height.get(t["height"], 0)
            per_height[t["height"]] = idx + 1
            when = T0 + timedelta(seconds=12 * t["height"])
            blocks[t["height"]] = when
            txr.append({"chain": self.chain, "height": t["height"], "tx_index": idx, "txid": txid(t["name"]),
                        "time": when, "from": eaddr(t["sender"]), "fee": t["fee"], "status": 1})
            seq = 0
            for f in t["transfers"]:
                src, dst, asset, amount = f[:4]
                kind = f[4] if len(f) > 4 else ("call" if asset == "ETH" else "token")
                tr.append({"chain": self.chain, "height": t["height"], "time": when, "txid": txid(t["name"]),
                           "tx_index": idx, "seq": seq, "from": eaddr(src) if src else None,
                           "to": eaddr(dst) if dst else None, "asset": asset if asset == "ETH" else tok[asset],
                           "amount": amount, "kind": kind})
                seq += 1
            if t["fee"]:
                tr.append({"chain": self.chain, "height": t["height"], "time": when, "txid": txid(t["name"]),
                           "tx_index": idx, "seq": seq, "from": eaddr(t["sender"]), "to": None, "asset": "ETH",
                           "amount": t["fee"], "kind": "fee"})
            for li, lg in enumerate(t["logs"]):
                logs.append({"chain": self.chain, "height": t["height"], "txid": txid(t["name"]), "tx_index": idx,
                             "log_index": li, **lg})
        amounts = [r.pop("amount") for r in tr]
        trt = pa.Table.from_pylist(tr).append_column(
            "amount", pa.array([Decimal(int(v)) for v in amounts], pa.decimal128(38, 0)))
        frm = book.ids(trt["from"])
        to = book.ids(trt["to"])
        trt = trt.drop(["from", "to"]).append_column("from_id", pa.array(frm)).append_column("to_id", pa.array(to))
        fees = [r.pop("fee") for r in txr]
        txt = pa.Table.from_pylist(txr).append_column(
            "fee", pa.array([Decimal(int(v)) for v in fees], pa.decimal128(38, 0)))
        txt = txt.drop(["from"]).append_column("from_id", pa.array(book.ids(txt["from"])))
        with ws.transaction() as txn:
            txn.append("evm_transfers", self.chain, trt)
            txn.append("evm_transactions", self.chain, txt)
            txn.append("evm_blocks", self.chain, pa.table({
                "chain": [self.chain] * len(blocks), "height": list(blocks), "time": list(blocks.values())}))
            if logs:
                txn.append("evm_logs", self.chain, pa.Table.from_pylist(logs))
            if self.tokens:
                txn.append("tokens", self.chain, pa.Table.from_pylist(self.tokens))
            book.flush_into(txn)
            if self.tags:
                txn.append("tags", GLOBAL, pa.Table.from_pylist(self.tags))
            txn.set_chain(self.chain, kind="evm", chain_id=31337, tip_height=max(blocks, default=0))
