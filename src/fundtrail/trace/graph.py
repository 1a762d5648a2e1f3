"""The graphs a trace walks, built once per chain from the stored tables (DuckDB -> Arrow -> NumPy).

Bitcoin (output level, :class:`UtxoGraph`)
    Nodes are outputs, numbered in chain order (transactions by ``(height, tx_index)``, outputs by ``n``),
    so the outputs of transaction ``t`` are the contiguous range ``tx_out_ptr[t]:tx_out_ptr[t+1]``.
    A transaction's inputs are a CSR list ``tx_in_ptr`` / ``tx_in_node`` (the spent output's node, in
    input order; -1 for a coinbase input or an output the workspace does not hold) with the input values
    beside them. ``out_spent_tx`` links an output to the transaction that spends it (-1: unspent).
    Following taint forward is then "output -> spending tx -> its output range"; backward is
    "output -> creating tx -> its input list". Everything is int64 / int32 arrays: about 60 bytes per
    output and 40 per transaction.

EVM (account level, :class:`EvmLedger`)
    Every value movement of ``evm_transfers`` (ETH calls, internal calls, token transfers, fees, …) in
    processing order ``(height, tx_index, phase, seq)``; ``phase`` puts the gas fee first (it is bought
    before the transaction runs) and the out-legs of a swap after its in-legs (see crossing.py). Amounts are exact: a DECIMAL(38,0) is split into ``hi`` / ``lo`` int64
    words (``amount = hi * 2**62 + lo``) so the arrays stay numeric; :meth:`EvmLedger.amount` gives the
    Python int. Each account's entries (as sender or receiver) form a CSR list in processing order, so a
    trace touches only the ledgers of the accounts it reaches.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from fundtrail.store import Workspace

LO_BITS = 62
LO_MASK = (1 << LO_BITS) - 1


def _np(col: pa.ChunkedArray | pa.Array, dtype: Any, fill: Any = None) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if fill is not None and col.null_count:
        col = col.fill_null(fill)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=dtype)


def _time_seconds(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("s", tz="UTC")).cast(pa.int64())
    return _np(col, np.int64, 0)


@dataclass(slots=True)
class UtxoGraph:
    chain: str
    txid: pa.Array  # string, by tx number
    tx_height: np.ndarray  # int64
    tx_time: np.ndarray  # int64 unix seconds
    tx_fee: np.ndarray  # int64
    tx_coinbase: np.ndarray  # bool
    tx_out_ptr: np.ndarray  # int64 [ntx+1]
    tx_in_ptr: np.ndarray  # int64 [ntx+1]
    in_node: np.ndarray  # int64 [nin]: spent output node or -1
    in_value: np.ndarray  # int64 [nin]
    out_value: np.ndarray  # int64 [nout]
    out_addr: np.ndarray  # int64 [nout]: address id or -1
    out_n: np.ndarray  # int32 [nout]
    out_tx: np.ndarray  # int64 [nout]
    out_spent_tx: np.ndarray  # int64 [nout]: spending tx or -1
    out_opret: np.ndarray  # bool [nout]
    op_return: dict[int, bytes] = field(default_factory=dict)  # node -> data, OP_RETURN outputs with data
    _txindex: tuple[np.ndarray, np.ndarray] | dict[str, int] | None = None

    @property
    def ntx(self) -> int:
        return len(self.tx_height)

    @property
    def nout(self) -> int:
        return len(self.out_value)

    def tx_number(self, txid: str) -> int | None:
        """The number of a transaction: binary search over 64-bit txid keys (16 bytes a transaction)."""
        if self._txindex is None:
            self._txindex = txid_index(self.txid)
        if isinstance(self._txindex, dict):
            return self._txindex.get(txid)
        keys, order = self._txindex
        kk = txid_key(txid) if len(txid) >= 16 else None
        if kk is None:
            return None
        k = np.uint64(kk)
        i = int(np.searchsorted(keys, k))
        while i < len(keys) and keys[i] == k:
            t = int(order[i])
            if self.txid[t].as_py() == txid:
                return t
            i += 1
        return None

    def txid_of(self, t: int) -> str:
        return self.txid[int(t)].as_py()

    def nbytes(self) -> int:
        return sum(v.nbytes for v in (self.tx_height, self.tx_time, self.tx_fee, self.tx_coinbase, self.tx_out_ptr,
                                      self.tx_in_ptr, self.in_node, self.in_value, self.out_value, self.out_addr,
                                      self.out_n, self.out_tx, self.out_spent_tx, self.out_opret)) + self.txid.nbytes


_HEX = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def _hex64(arr: pa.Array, start: int) -> np.ndarray | None:
    """The 16 hex digits at ``start`` (negative: from the end) of every string, as uint64; None if not hex."""
    import pyarrow.compute as pc

    n = len(arr)
    lengths = pc.utf8_length(arr).to_numpy(zero_copy_only=False)
    if n == 0 or arr.null_count or lengths.min() < 16:
        return None
    head = pc.utf8_slice_codeunits(arr, start, start + 16 if start >= 0 else (start + 16 or None))
    if isinstance(head, pa.ChunkedArray):
        head = head.combine_chunks()
    offsets = np.frombuffer(head.buffers()[1], np.int32, n + 1, head.offset * 4)
    data = np.frombuffer(head.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    if len(data) != 16 * n:
        return None
    nib = _HEX[data.reshape(n, 16)]
    if (nib == 255).any():
        return None
    keys = np.zeros(n, np.uint64)
    for j in range(16):
        keys = (keys << np.uint64(4)) | nib[:, j].astype(np.uint64)
    return keys


def txid_key(txid: str) -> int | None:
    try:
        return int(txid[:16], 16) ^ int(txid[-16:], 16)
    except ValueError:
        return None


def txid_index(txids: pa.Array) -> tuple[np.ndarray, np.ndarray] | dict[str, int]:
    """Sorted 64-bit keys of txids (first 16 hex digits XOR last 16) and the tx numbers in that order."""
    if isinstance(txids, pa.ChunkedArray):
        txids = txids.combine_chunks()
    a, b = _hex64(txids, 0), _hex64(txids, -16)
    if a is None or b is None:
        return {t: i for i, t in enumerate(txids.to_pylist())}
    keys = a ^ b
    order = np.argsort(keys, kind="stable")
    return keys[order], order.astype(np.int64)


def build_utxo_graph(ws: Workspace, chain: str) -> UtxoGraph:
    """The output-level graph of a Bitcoin chain (see the module docstring)."""
    con = ws.connect()
    try:
        con.execute("SET preserve_insertion_order = true")
        con.execute("""
            CREATE TEMP TABLE tx AS
            SELECT (row_number() OVER (ORDER BY height, tx_index, txid) - 1)::BIGINT AS t, txid, height,
                   epoch(time)::BIGINT AS time, coalesce(fee, 0) AS fee, coalesce(is_coinbase, false) AS cb
            FROM utxo_transactions WHERE chain = ?""", [chain])
        txs = con.sql("SELECT txid, height, time, fee, cb FROM tx ORDER BY t").to_arrow_table()
        con.execute("""
            CREATE TEMP TABLE o AS
            SELECT (row_number() OVER (ORDER BY tx.t, u.n) - 1)::BIGINT AS node, tx.t, u.txid, u.n, u.value,
                   coalesce(u.address_id, -1) AS address_id, u.op_return,
                   (u.script_type = 'nulldata' OR u.op_return IS NOT NULL) AS opret
            FROM utxo_outputs u JOIN tx ON tx.txid = u.txid WHERE u.chain = ?""", [chain])
        outs = con.sql("SELECT t, n, value, address_id, opret FROM o ORDER BY node").to_arrow_table()
        oprets = con.sql("SELECT node, op_return FROM o WHERE op_return IS NOT NULL").to_arrow_table()
        ins = con.sql("""
            SELECT tx.t AS t, i.n, coalesce(o.node, -1) AS node, coalesce(i.value, o.value, 0) AS value
            FROM utxo_inputs i JOIN tx ON tx.txid = i.txid
            LEFT JOIN o ON o.txid = i.prev_txid AND o.n = i.prev_n
            WHERE i.chain = ? ORDER BY tx.t, i.n""", params=[chain]).to_arrow_table()
    finally:
        con.close()
    ntx = txs.num_rows
    out_tx = _np(outs["t"], np.int64)
    in_tx = _np(ins["t"], np.int64)
    tx_out_ptr = np.zeros(ntx + 1, np.int64)
    np.cumsum(np.bincount(out_tx, minlength=ntx), out=tx_out_ptr[1:])
    tx_in_ptr = np.zeros(ntx + 1, np.int64)
    np.cumsum(np.bincount(in_tx, minlength=ntx), out=tx_in_ptr[1:])
    in_node = _np(ins["node"], np.int64)
    nout = outs.num_rows
    out_spent = np.full(nout, -1, np.int64)
    ok = in_node >= 0
    out_spent[in_node[ok]] = in_tx[ok]
    op_return = {int(n): (d or b"") for n, d in zip(oprets["node"].to_pylist(), oprets["op_return"].to_pylist(),
                                                     strict=True)}
    return UtxoGraph(
        chain=chain,
        txid=txs["txid"].combine_chunks(),
        tx_height=_np(txs["height"], np.int64, 0),
        tx_time=_np(txs["time"], np.int64, 0),
        tx_fee=_np(txs["fee"], np.int64, 0),
        tx_coinbase=_np(txs["cb"], np.bool_, False),
        tx_out_ptr=tx_out_ptr,
        tx_in_ptr=tx_in_ptr,
        in_node=in_node,
        in_value=_np(ins["value"], np.int64, 0),
        out_value=_np(outs["value"], np.int64, 0),
        out_addr=_np(outs["address_id"], np.int64, -1),
        out_n=_np(outs["n"], np.int32),
        out_tx=out_tx,
        out_spent_tx=out_spent,
        out_opret=_np(outs["opret"], np.bool_, False),
        op_return=op_return,
    )


# --- EVM ---------------------------------------------------------------------------------------------

@dataclass(slots=True)
class EvmLedger:
    chain: str
    txid: pa.Array  # string per entry
    height: np.ndarray  # int64
    time: np.ndarray  # int64 unix seconds
    tx_index: np.ndarray  # int32
    seq: np.ndarray  # int32
    src: np.ndarray  # int64 address id or -1
    dst: np.ndarray  # int64 address id or -1
    asset: np.ndarray  # int32 index into assets
    assets: list[str]
    hi: np.ndarray  # int64
    lo: np.ndarray  # int64
    kind: np.ndarray  # int8 index into KINDS
    acct_ptr: np.ndarray  # int64 [nacct+1] CSR of ledger entries per account, in processing order
    acct_entry: np.ndarray  # int64
    tx_sender: dict[str, int] = field(default_factory=dict)  # txid -> evm_transactions.from_id
    _txrows: dict[str, tuple[int, int]] | None = None
    big: dict[int, int] = field(default_factory=dict)  # entry -> amount, for amounts beyond DECIMAL(38)
    swaps: dict[str, Any] = field(default_factory=dict)  # txid -> crossing.SwapLegs (rows in this order)

    KINDS = ("call", "internal", "create", "selfdestruct", "token", "withdrawal", "fee", "reward", "other")

    @property
    def n(self) -> int:
        return len(self.src)

    def amount(self, e: int) -> int:
        b = self.big.get(e)
        if b is not None:
            return b
        return (int(self.hi[e]) << LO_BITS) | int(self.lo[e])

    def kind_of(self, e: int) -> str:
        return self.KINDS[int(self.kind[e])]

    def asset_of(self, e: int) -> str:
        return self.assets[int(self.asset[e])]

    def txid_of(self, e: int) -> str:
        return self.txid[int(e)].as_py()

    def entries(self, account: int) -> np.ndarray:
        if account < 0 or account + 1 >= len(self.acct_ptr):
            return np.empty(0, np.int64)
        return self.acct_entry[self.acct_ptr[account]:self.acct_ptr[account + 1]]

    def tx_rows(self, txid: str) -> range:
        """The ledger entries of one transaction (contiguous in processing order)."""
        if self._txrows is None:
            idx: dict[str, tuple[int, int]] = {}
            for i, t in enumerate(self.txid.to_pylist()):
                lo_hi = idx.get(t)
                idx[t] = (i, i + 1) if lo_hi is None else (lo_hi[0], i + 1)
            self._txrows = idx
        lo_hi = self._txrows.get(txid)
        return range(*lo_hi) if lo_hi else range(0)

    def nbytes(self) -> int:
        return sum(v.nbytes for v in (self.height, self.time, self.tx_index, self.seq, self.src, self.dst,
                                      self.asset, self.hi, self.lo, self.kind, self.acct_ptr,
                                      self.acct_entry)) + self.txid.nbytes


def build_evm_ledger(ws: Workspace, chain: str, reverse: bool = False) -> EvmLedger:
    """The per-account transfer ledgers of an EVM chain (see the module docstring).

    ``reverse`` gives the time-reversed ledger backward tracing walks: the entries in reverse order with
    sender and receiver swapped (so "where did it come from" runs the forward rules unchanged).
    """
    from fundtrail.trace.crossing import find_swaps, swap_phases  # crossing knows what a swap is

    con = ws.connect()
    try:
        rows = con.sql("""
            SELECT txid, height, epoch(time)::BIGINT AS time, coalesce(tx_index, 0) AS tx_index,
                   coalesce(seq, 0) AS seq, coalesce(from_id, -1) AS src, coalesce(to_id, -1) AS dst,
                   lower(asset) AS asset, kind,
                   (CAST(amount AS HUGEINT) >> 62)::BIGINT AS hi,
                   (CAST(amount AS HUGEINT) & 4611686018427387903)::BIGINT AS lo,
                   amount IS NULL AS isbig, amount_raw
            FROM evm_transfers WHERE chain = ?
            ORDER BY height, tx_index, seq""", params=[chain]).to_arrow_table()
        senders = con.sql("SELECT txid, from_id FROM evm_transactions WHERE chain = ?",
                          params=[chain]).to_arrow_table()
    finally:
        con.close()
    tx_sender = {t: (-1 if f is None else int(f)) for t, f in zip(senders["txid"].to_pylist(),
                                                                    senders["from_id"].to_pylist(), strict=True)}
    n = rows.num_rows
    assets_raw = rows["asset"].to_pylist()
    # native asset written upper-case (ETH), tokens lower-case contract addresses
    assets_norm = [a.upper() if a is not None and not a.startswith("0x") else a for a in assets_raw]
    names: dict[str, int] = {}
    asset = np.empty(n, np.int32)
    for i, a in enumerate(assets_norm):
        asset[i] = names.setdefault(a or "ETH", len(names))
    kinds = {k: i for i, k in enumerate(EvmLedger.KINDS)}
    kind = np.array([kinds.get(k or "other", len(kinds) - 1) for k in rows["kind"].to_pylist()], np.int8)
    src = _np(rows["src"], np.int64, -1)
    dst = _np(rows["dst"], np.int64, -1)
    if reverse:
        src, dst = dst, src
    height = _np(rows["height"], np.int64, 0)
    tx_index = _np(rows["tx_index"], np.int32, 0)
    seq = _np(rows["seq"], np.int32, 0)
    txid = rows["txid"].combine_chunks()
    hi = _np(rows["hi"], np.int64, 0)
    lo = _np(rows["lo"], np.int64, 0)
    big: dict[int, int] = {}
    isbig = _np(rows["isbig"], np.bool_, False)
    if isbig.any():
        raws = rows["amount_raw"].to_pylist()
        for i in np.nonzero(isbig)[0].tolist():
            try:
                big[i] = int(raws[i]) if raws[i] is not None else 0
            except ValueError:
                big[i] = 0
    # swaps: the out-legs go after the in-legs of their transaction
    phase = swap_phases(txid, src, dst, asset, kind, tx_sender)
    # the gas fee is bought before the transaction runs: fee rows first within their transaction
    phase = np.where(kind == EvmLedger.KINDS.index("fee"), np.int8(-1), phase).astype(np.int8)
    if reverse:
        order = np.lexsort((-seq.astype(np.int64), phase, -tx_index.astype(np.int64), -height))
    else:
        order = np.lexsort((seq, phase, tx_index, height))
    perm = lambda a: a[order]  # noqa: E731
    src, dst, asset, kind, height, tx_index, seq, hi, lo = map(perm, (src, dst, asset, kind, height, tx_index,
                                                                      seq, hi, lo))
    time = perm(_time_seconds(rows["time"]))
    txid = txid.take(pa.array(order))
    if big:
        inv = np.empty(n, np.int64)
        inv[order] = np.arange(n)
        big = {int(inv[i]): v for i, v in big.items()}
    swaps = find_swaps(txid, src, dst, asset, kind, tx_sender)[1] if (phase > 0).any() else {}
    # per-account CSR: each entry under its sender and its receiver (once when they are the same)
    e = np.arange(n, dtype=np.int64)
    same = src == dst
    accts = np.concatenate([src, dst[~same]])
    ents = np.concatenate([e, e[~same]])
    keep = accts >= 0
    accts, ents = accts[keep], ents[keep]
    o = np.lexsort((ents, accts))
    accts, ents = accts[o], ents[o]
    nacct = int(max(src.max(initial=-1), dst.max(initial=-1))) + 1
    acct_ptr = np.zeros(nacct + 1, np.int64)
    np.cumsum(np.bincount(accts, minlength=nacct), out=acct_ptr[1:])
    return EvmLedger(chain=chain, txid=txid, height=height, time=time, tx_index=tx_index, seq=seq, src=src,
                     dst=dst, asset=asset, assets=list(names), hi=hi, lo=lo, kind=kind, acct_ptr=acct_ptr,
                     acct_entry=ents, tx_sender=tx_sender, big=big, swaps=swaps)


# --- cache ------------------------------------------------------------------------------------------

_CACHE: dict[tuple[str, str, str], tuple[int, Any]] = {}
_LOCK = threading.Lock()


def cached(ws: Workspace, chain: str, what: str, build: Any) -> Any:
    """``build(ws, chain)`` once per workspace generation (graphs are rebuilt after every commit)."""
    key = (str(ws.home.resolve()), chain, what)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] == ws.generation:
            return hit[1]
    value = build(ws, chain)
    with _LOCK:
        _CACHE[key] = (ws.generation, value)
    return value


def utxo_graph(ws: Workspace, chain: str) -> UtxoGraph:
    return cached(ws, chain, "utxo_graph", build_utxo_graph)


def evm_ledger(ws: Workspace, chain: str, reverse: bool = False) -> EvmLedger:
    if reverse:
        return cached(ws, chain, "evm_ledger_reversed", lambda w, c: build_evm_ledger(w, c, reverse=True))
    return cached(ws, chain, "evm_ledger", build_evm_ledger)


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
