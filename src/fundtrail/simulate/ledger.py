"""The Bitcoin side of a simulated world as it is played: wallets, coins, transactions of the story (every
one recorded for the truth), block assembly and writing.

Story transactions (exchanges, users, CoinJoin, bridge, theft) are built here in Python and kept as small
records for the truth; the bulk background traffic of large worlds comes from ``background`` and is written
straight to the block files (never held in memory).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fundtrail.model.chain import BitcoinNetwork
from fundtrail.simulate.btc import (
    BlockFileWriter,
    Key,
    Owned,
    RawTx,
    TxIn,
    TxOut,
    block_header,
    coinbase_tx,
    finish_tx,
    make_owned,
    merkle_root,
    merkle_root_array,
    op_return_script,
    regtest_genesis,
    varint,
)

MATURITY = 100


def _segwit_addresses(scripts: list[bytes], net: BitcoinNetwork) -> list[str]:
    """The addresses of 34-byte segwit v0 / v1 scripts (P2WSH, P2TR), encoded in one batch."""
    from fundtrail.ingest.bitcoin.script import KEYW, KIND_WIT, encode_keys

    sc = np.frombuffer(b"".join(scripts), np.uint8).reshape(len(scripts), 34)
    keys = np.zeros((len(scripts), KEYW), np.uint8)
    keys[:, 0] = KIND_WIT
    keys[:, 1] = sc[:, 0] == 0x51
    keys[:, 2] = 32
    keys[:, 3:35] = sc[:, 2:]
    return encode_keys(keys, net).to_pylist()


def _rows(hashes: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(hashes), np.uint8).reshape(len(hashes), 32)


@dataclass(slots=True)
class Coin:
    value: int
    owned: Owned
    cb_height: int = -1  # height of the coinbase that created it, -1 otherwise
    height: int = 0


@dataclass(slots=True)
class StoryOut:
    value: int
    address: str | None  # None for OP_RETURN
    owner: str | None
    script_type: str
    data: bytes | None = None


@dataclass(slots=True)
class StoryTx:
    """A story transaction as the truth needs it."""

    txid: str
    height: int
    time: int
    inputs: list[tuple[str, int, int, str, str]]  # prev_txid, prev_n, value, address, owner
    outputs: list[StoryOut]
    label: str
    coinjoin: bool = False

    @property
    def fee(self) -> int:
        return sum(i[2] for i in self.inputs) - sum(o.value for o in self.outputs)


class Wallet:
    """A party's keys and coins on the Bitcoin side."""

    def __init__(self, ledger: Ledger, owner: str, kinds: tuple[str, ...] = ("p2wpkh",), name: str = "") -> None:
        self.ledger = ledger
        self.owner = owner
        self.name = name or owner
        self.kinds = kinds
        self.coins: dict[tuple[bytes, int], Coin] = {}
        self.addresses: list[Owned] = []

    def new_address(self, kind: str | None = None) -> Owned:
        kind = kind or self.kinds[len(self.addresses) % len(self.kinds)]
        secret = hashlib.sha256(f"{self.ledger.seed}/{self.name}/{len(self.addresses)}".encode()).digest()
        o = make_owned(Key(secret), kind, self.ledger.net)
        self.addresses.append(o)
        self.ledger.register(o, self)
        return o

    def address(self, i: int = 0) -> Owned:
        while len(self.addresses) <= i:
            self.new_address()
        return self.addresses[i]

    def balance(self, mature_at: int | None = None) -> int:
        return sum(c.value for c in self.spendable(mature_at))

    def spendable(self, height: int | None = None) -> list[Coin]:
        h = self.ledger.height if height is None else height
        return [c for c in self.coins.values() if c.cb_height < 0 or h - c.cb_height >= MATURITY]

    def outpoints(self, height: int | None = None) -> list[tuple[bytes, int]]:
        h = self.ledger.height if height is None else height
        return [op for op, c in self.coins.items() if c.cb_height < 0 or h - c.cb_height >= MATURITY]

    def select(self, amount: int, largest: bool = True) -> list[tuple[bytes, int]]:
        """Outpoints covering ``amount`` (largest first by default; oldest first otherwise)."""
        ops = self.outpoints()
        if largest:
            ops.sort(key=lambda op: -self.coins[op].value)
        got = 0
        chosen = []
        for op in ops:
            chosen.append(op)
            got += self.coins[op].value
            if got >= amount:
                return chosen
        raise InsufficientFunds(f"{self.owner} has {got} sat spendable, needs {amount}")

    def pay(self, payments: list[tuple[Owned, int]], *, feerate: int = 5, change: Owned | None = None,
            label: str = "payment", reuse_change: bool = False, extra_inputs: list[tuple[bytes, int]] = (),
            op_return: bytes | None = None) -> RawTx:
        """Pay ``payments`` from this wallet's coins with a change output (a fresh address unless
        ``change`` or ``reuse_change``)."""
        total = sum(v for _, v in payments)
        n_out = len(payments) + 1 + (op_return is not None)
        est_fee = feerate * (11 + 31 * n_out + 68 * 2)
        ops = list(extra_inputs)
        have = sum(self.ledger.coin(op).value for op in ops)
        if have < total + est_fee:
            more = [op for op in self.select(total + est_fee - have + 68 * feerate) if op not in ops]
            ops += more
        fee = feerate * (11 + 31 * n_out + 68 * len(ops))
        have = sum(self.ledger.coin(op).value for op in ops)
        rest = have - total - fee
        if rest < 0:
            extra = [op for op in self.select(total + fee + 68 * feerate * 4) if op not in ops]
            ops += extra
            have = sum(self.ledger.coin(op).value for op in ops)
            fee = feerate * (11 + 31 * n_out + 68 * len(ops))
            rest = have - total - fee
            if rest < 0:
                raise InsufficientFunds(f"{self.owner}: cannot pay {total} + fee {fee}")
        outs: list[tuple[Owned | bytes, int]] = list(payments)
        if op_return is not None:
            outs.append((op_return_script(op_return), 0))
        if rest >= 546:
            if change is None:
                change = self.addresses[-1] if (reuse_change and self.addresses) else self.new_address()
            outs.append((change, rest))
        return self.ledger.transact(ops, outs, label)


class InsufficientFunds(RuntimeError):
    pass


class Ledger:
    """The Bitcoin chain being played: the coins of story wallets, pending transactions and block output."""

    def __init__(self, net: BitcoinNetwork, seed: int, blocks_dir: Path, *, keep_story: bool = True) -> None:
        self.net = net
        self.seed = seed
        self.writer = BlockFileWriter(blocks_dir, net.magic)
        self.by_script: dict[bytes, Wallet] = {}
        self.coins: dict[tuple[bytes, int], Coin] = {}
        self.pending: list[RawTx] = []
        self.story: list[StoryTx] = []
        self.keep_story = keep_story
        self.owners: dict[str, str] = {}
        self.script_types: dict[str, str] = {}
        self.coinjoin_txids: set[str] = set()
        self.time = 0
        genesis, gh = regtest_genesis()
        self.writer.write(genesis)
        self.prev = gh
        self.height = 0
        self.tx_count = 1
        self.block_times: list[int] = []
        # the background generator hooks in here: called with (height, time) -> list of (raw, txid, wtxid)
        # (height, time) -> (raw transactions back to back, txids (n, 32), wtxids (n, 32), fees)
        self.background: Callable[[int, int], tuple[bytes, np.ndarray, np.ndarray, int]] | None = None
        self.merkle_array: Callable[[np.ndarray], bytes] = merkle_root_array  # merkle root of (n, 32)

    # --- registry --------------------------------------------------------------------------------------
    def register(self, o: Owned, w: Wallet) -> None:
        self.by_script[o.script] = w
        self.owners[o.address] = w.owner
        self.script_types[o.address] = o.kind

    def coin(self, op: tuple[bytes, int]) -> Coin:
        return self.coins[op]

    # --- transactions ------------------------------------------------------------------------------------
    def transact(self, inputs: list[tuple[bytes, int]], outputs: list[tuple[Owned | bytes, int]], label: str,
                 *, coinjoin: bool = False, version: int = 2, locktime: int = 0) -> RawTx:
        """Build, record and queue a transaction spending ``inputs`` (story coins) to ``outputs``
        ((Owned, value) or (raw script, value) for OP_RETURN)."""
        vin = []
        ins_rec = []
        total_in = 0
        for txid, n in inputs:
            c = self.coins.pop((txid, n))
            w = self.by_script[c.owned.script]
            del w.coins[(txid, n)]
            ss, wit = c.owned.spend(txid + n.to_bytes(4, "little") + label.encode())
            vin.append(TxIn(txid, n, ss, wit, 0xFFFFFFFD))
            ins_rec.append((txid[::-1].hex(), n, c.value, c.owned.address, w.owner))
            total_in += c.value
        vout = []
        outs_rec = []
        for dest, value in outputs:
            if isinstance(dest, bytes):
                vout.append(TxOut(value, dest))
                outs_rec.append(StoryOut(value, None, None, "op_return", dest[2:]))
            else:
                vout.append(TxOut(value, dest.script))
                w = self.by_script[dest.script]
                outs_rec.append(StoryOut(value, dest.address, w.owner, dest.kind))
        total_out = sum(o.value for o in vout)
        if total_out > total_in or any(o.value < 0 for o in vout):
            raise RuntimeError(f"simulated world bug: {label} spends {total_in}, pays {total_out}")
        tx = finish_tx(version, vin, vout, locktime)
        for n, (dest, value) in enumerate(outputs):
            if not isinstance(dest, bytes):
                c = Coin(value, dest, -1, self.height + 1)
                self.coins[(tx.txid, n)] = c
                self.by_script[dest.script].coins[(tx.txid, n)] = c
        self.pending.append(tx)
        txid_hex = tx.txid_hex
        if coinjoin:
            self.coinjoin_txids.add(txid_hex)
        if self.keep_story:
            self.story.append(StoryTx(txid_hex, self.height + 1, 0, ins_rec, outs_rec, label, coinjoin))
        return tx

    def external_payment(self, payer: Wallet, outputs: list[tuple[bytes, int]], owners: list[str], label: str
                         ) -> RawTx:
        """``payer`` pays outputs locked to scripts it does not model (the background economy's), with
        change back to itself; the outputs are recorded for the truth but not tracked as story coins."""
        total = sum(v for _s, v in outputs)
        fee = 2 * (11 + 43 * (len(outputs) + 1) + 68 * 4)
        ops = payer.select(total + fee + 68 * 2 * 20)
        fee = 2 * (11 + 43 * (len(outputs) + 1) + 68 * len(ops))
        have = sum(self.coins[op].value for op in ops)
        change = payer.new_address()
        vout = [TxOut(v, sc) for sc, v in outputs] + [TxOut(have - total - fee, change.script)]
        vin = []
        ins_rec = []
        for txid, n in ops:
            c = self.coins.pop((txid, n))
            del payer.coins[(txid, n)]
            ss, wit = c.owned.spend(txid + n.to_bytes(4, "little"))
            vin.append(TxIn(txid, n, ss, wit, 0xFFFFFFFD))
            ins_rec.append((txid[::-1].hex(), n, c.value, c.owned.address, payer.owner))
        tx = finish_tx(2, vin, vout, 0)
        c = Coin(have - total - fee, change, -1, self.height + 1)
        self.coins[(tx.txid, len(outputs))] = c
        payer.coins[(tx.txid, len(outputs))] = c
        outs_rec = []
        for (sc, v), owner, addr in zip(outputs, owners, _segwit_addresses([sc for sc, _v in outputs], self.net),
                                        strict=True):
            self.owners[addr] = owner
            outs_rec.append(StoryOut(v, addr, owner, "p2tr" if sc[0] == 0x51 else "p2wsh"))
        outs_rec.append(StoryOut(c.value, change.address, payer.owner, change.kind))
        self.pending.append(tx)
        if self.keep_story:
            self.story.append(StoryTx(tx.txid_hex, self.height + 1, 0, ins_rec, outs_rec, label))
        return tx

    # --- blocks ------------------------------------------------------------------------------------------
    def subsidy(self, height: int) -> int:
        halvings = height // 150  # regtest halving interval
        return (50 * 100_000_000) >> halvings if halvings < 64 else 0

    def mine(self, time: int, payee: Wallet) -> None:
        """Assemble the next block: coinbase to ``payee``, the pending story transactions, background."""
        height = self.height + 1
        time = max(time, self.time + 1)
        txs = self.pending
        self.pending = []
        fees = 0
        start = len(self.story) - len(txs) if self.keep_story else 0
        if self.keep_story:
            for st in self.story[start:]:
                st.time = time
                st.height = height
                fees += st.fee
        else:
            fees = self._pending_fees
        self._pending_fees = 0
        raws = [t.raw for t in txs]
        txids = [t.txid for t in txs]
        wtxids = [t.wtxid for t in txs]
        pay = payee.new_address() if len(payee.addresses) < 4 else payee.addresses[height % 4]
        if self.background is None:
            value = self.subsidy(height) + fees
            cb = coinbase_tx(height, [TxOut(value, pay.script)], wtxids)
            root = merkle_root([cb.txid] + txids)
            tail = raws
            n_tx = len(raws) + 1
        else:
            # the background's transactions come as one buffer with (n, 32) txid / wtxid arrays: the merkle
            # roots are computed in one compiled call each, and nothing per transaction touches Python
            blob, btxids, bwtxids, bfee = self.background(height, time)
            fees += bfee
            value = self.subsidy(height) + fees
            zero = np.zeros((1, 32), np.uint8)
            wroot = self.merkle_array(np.concatenate([zero, _rows(wtxids), bwtxids]))
            cb = coinbase_tx(height, [TxOut(value, pay.script)], None, witness_root=wroot)
            root = self.merkle_array(np.concatenate([_rows([cb.txid]), _rows(txids), btxids]))
            tail = [*raws, blob]
            n_tx = len(raws) + 1 + len(btxids)
        c = Coin(value, pay, height, height)
        self.coins[(cb.txid, 0)] = c
        payee.coins[(cb.txid, 0)] = c
        if self.keep_story:
            self.story.append(StoryTx(cb.txid_hex, height, time, [], [StoryOut(value, pay.address, payee.owner,
                                                                                pay.kind)], "coinbase"))
        head, bh = block_header(0x20000000, self.prev, root, time)
        self.writer.write(b"".join([head, varint(n_tx), cb.raw, *tail]))
        self.prev = bh
        self.height = height
        self.time = time
        self.tx_count += n_tx
        self.block_times.append(time)

    _pending_fees = 0

    def close(self) -> None:
        self.writer.close()


@dataclass(slots=True)
class Exchange:
    """An exchange on the Bitcoin side: a hot wallet (tagged) and one deposit address per customer, swept
    together with a hot-wallet coin (co-spend links them), withdrawals paid from the hot wallet."""

    entity: str
    hot: Wallet
    deposits: Wallet
    deposit_kind: str
    customer_addr: dict[str, Owned] = field(default_factory=dict)

    def deposit_address(self, customer: str) -> Owned:
        a = self.customer_addr.get(customer)
        if a is None:
            a = self.deposits.new_address(self.deposit_kind)
            self.customer_addr[customer] = a
        return a

    def sweep(self, ledger: Ledger, max_inputs: int = 60) -> RawTx | None:
        ops = ledger_spendable(self.deposits)[:max_inputs]
        if not ops:
            return None
        hot_ops = self.hot.outpoints()
        if not hot_ops:
            return None
        hot_op = min(hot_ops, key=lambda op: self.hot.coins[op].value)
        inputs = ops + [hot_op]
        total = sum(ledger.coin(op).value for op in inputs)
        fee = 3 * (11 + 31 + 68 * len(inputs))
        return ledger.transact(inputs, [(self.hot.address(0), total - fee)], f"sweep {self.entity}")

    def withdraw(self, ledger: Ledger, to: Owned, amount: int) -> RawTx:
        return self.hot.pay([(to, amount)], feerate=4, change=self.hot.address(1), label=f"withdrawal {self.entity}")


def ledger_spendable(w: Wallet) -> list[tuple[bytes, int]]:
    return w.outpoints()
