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
from numba import njit

from fundtrail.store import Workspace
from fundtrail.trace import graphstore

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


class TxIds:
    """Transaction ids by tx number as one (n, 32) byte matrix: the stored binary txids (display order, so
    ``raw[t].hex()`` is the usual txid); no Python or Arrow strings. Lookups go through a 64-bit key (the XOR
    of the 8-byte words), sorted once (12 bytes a transaction), then compare all 32 bytes."""

    __slots__ = ("raw", "_keys", "_order")

    def __init__(self, raw: np.ndarray) -> None:
        self.raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1, 32)
        self._keys: np.ndarray | None = None
        self._order: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.raw)

    @property
    def nbytes(self) -> int:
        extra = 0 if self._keys is None else self._keys.nbytes + self._order.nbytes
        return self.raw.nbytes + extra

    @classmethod
    def from_hex(cls, arr: Any) -> TxIds:
        """From hex txids (an Arrow string array or a list of str); every one must be 64 hex digits."""
        raw, ok = hex_ids(arr)
        if not ok.all():
            raise ValueError(f"{int((~ok).sum())} txid(s) are not 64 hex digits")
        return cls(raw)

    def text(self, t: int) -> str:
        return self.raw[int(t)].tobytes().hex()

    def _index(self) -> tuple[np.ndarray, np.ndarray]:
        if self._keys is None:
            keys = _key64(self.raw)
            order = np.argsort(keys, kind="stable")
            self._keys = keys[order]
            self._order = order.astype(np.int32 if len(order) < 2**31 else np.int64)
        return self._keys, self._order

    def lookup(self, q: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """The tx number of every row of ``q`` ((m, 32) bytes, from :func:`binary_ids` / :func:`hex_ids`),
        -1 when absent."""
        keys, order = self._index()
        m, n = len(q), len(keys)
        res = np.full(m, -1, np.int64)
        if m == 0 or n == 0:
            return res
        qk = _key64(q)
        pos = np.searchsorted(keys, qk)
        act = np.flatnonzero(pos < n) if valid is None else np.flatnonzero(valid & (pos < n))
        while len(act):
            p = pos[act]
            act = act[keys[p] == qk[act]]
            if not len(act):
                break
            p = pos[act]
            cand = order[p].astype(np.int64)
            same = (self.raw[cand] == q[act]).all(axis=1)
            res[act[same]] = cand[same]
            act = act[~same]  # an 8-byte key shared by different ids: try the next one
            pos[act] += 1
            act = act[pos[act] < n]
        return res

    def number(self, txid: str) -> int | None:
        q, ok = hex_ids([txid])
        t = int(self.lookup(q, ok)[0])
        return t if t >= 0 else None


_HEXL = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEXL[_c] = _i


def _key64(raw: np.ndarray) -> np.ndarray:
    """A 64-bit key per row: the XOR of its 8-byte words (so ids sharing a prefix still spread)."""
    w = raw.shape[1] // 8
    key = np.zeros(len(raw), np.uint64)
    for j in range(w):
        key ^= raw[:, 8 * j:8 * j + 8].copy().view("<u8").reshape(-1)
    return key


def _var_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (int64, len+1, relative to data) and the data bytes of a string/binary array."""
    if pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.string())
    elif pa.types.is_binary_view(arr.type):
        arr = arr.cast(pa.binary())
    large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    n = len(arr)
    bufs = arr.buffers()
    if n == 0 or bufs[1] is None:
        return np.zeros(n + 1, np.int64), np.zeros(0, np.uint8)
    off = np.frombuffer(bufs[1], np.int64 if large else np.int32, n + 1, arr.offset * (8 if large else 4))
    data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return off.astype(np.int64), data


def _valid(arr: pa.Array) -> np.ndarray:
    if not arr.null_count:
        return np.ones(len(arr), np.bool_)
    return ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False))


def binary_ids(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 32) rows of a column of stored txids (32-byte binary, fixed-size or not, as DuckDB returns a BLOB)
    and whether each row is one (a null or another length matches no transaction: zeros, ``ok`` False)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    ok = _valid(arr)
    if pa.types.is_fixed_size_binary(arr.type):
        if arr.type.byte_width != 32:
            return np.zeros((n, 32), np.uint8), np.zeros(n, np.bool_)
        if n == 0:
            return np.zeros((0, 32), np.uint8), ok
        data = np.frombuffer(arr.buffers()[1], np.uint8, n * 32, arr.offset * 32).reshape(n, 32)
        out = data.copy()
        out[~ok] = 0
        return out, ok
    off, data = _var_buffers(arr)
    ok &= np.diff(off) == 32
    if ok.all() and off[-1] - off[0] == 32 * n:
        return data[off[0]:off[-1]].reshape(n, 32).copy(), ok
    out = np.zeros((n, 32), np.uint8)
    rows = np.flatnonzero(ok)
    if len(rows):
        out[rows] = data[off[rows][:, None] + np.arange(32)]
    return out, ok


def hex_ids(arr: Any) -> tuple[np.ndarray, np.ndarray]:
    """(n, 32) rows of lower-case hex txids (records, normalised user input: an Arrow string array or a list
    of str) and whether each row is one (nulls, other text or lengths: zeros, ``ok`` False)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not isinstance(arr, pa.Array):
        arr = pa.array([None if t is None else str(t) for t in arr], pa.string())
    n = len(arr)
    off, data = _var_buffers(arr)
    ok = _valid(arr) & (np.diff(off) == 64)
    out = np.zeros((n, 32), np.uint8)
    if ok.any():
        if ok.all() and off[-1] - off[0] == 64 * n:
            digits = data[off[0]:off[-1]].reshape(n, 64)
        else:
            rows = np.flatnonzero(ok)
            digits = np.zeros((n, 64), np.uint8)
            digits[rows] = data[off[rows][:, None] + np.arange(64)]
        nib = _HEXL[digits]
        ok &= ~(nib == 255).any(axis=1)
        out[:] = (nib[:, 0::2] << 4) | nib[:, 1::2]
        out[~ok] = 0
    return out, ok


@dataclass(slots=True)
class UtxoGraph:
    chain: str
    txid: Any  # TxIds (hex txids given here are converted), by tx number
    tx_height: np.ndarray  # int64
    tx_time: np.ndarray  # int64 unix seconds
    tx_fee: np.ndarray  # int64
    tx_coinbase: np.ndarray  # bool
    tx_out_ptr: np.ndarray  # int64 [ntx+1]
    tx_in_ptr: np.ndarray  # int64 [ntx+1]
    in_node: np.ndarray  # int32/int64 [nin]: spent output node or -1
    in_value: np.ndarray  # int64 [nin]
    out_value: np.ndarray  # int64 [nout]
    out_addr: np.ndarray  # int64 [nout]: address id or -1
    out_n: np.ndarray  # int32 [nout]
    out_tx: np.ndarray  # int32/int64 [nout]
    out_spent_tx: np.ndarray  # int32/int64 [nout]: spending tx or -1
    out_opret: np.ndarray  # bool [nout]
    op_return: dict[int, bytes] = field(default_factory=dict)  # node -> data, OP_RETURN outputs with data
    # what a process derives from the arrays and keeps with the graph (the address -> outputs index, the
    # trace kernel's scratch pool); never stored
    aux: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.txid, TxIds):
            self.txid = TxIds.from_hex(self.txid)

    @property
    def ntx(self) -> int:
        return len(self.tx_height)

    @property
    def nout(self) -> int:
        return len(self.out_value)

    def tx_number(self, txid: str) -> int | None:
        """The number of a transaction (binary search over 64-bit keys, then an exact compare)."""
        return self.txid.number(txid)

    def tx_numbers(self, txids: list[str]) -> np.ndarray:
        """Tx numbers of many txids at once (-1 where absent)."""
        q, ok = hex_ids(list(txids))
        return self.txid.lookup(q, ok)

    def txid_of(self, t: int) -> str:
        return self.txid.text(t)

    def address_index(self) -> tuple[np.ndarray, np.ndarray]:
        """The address -> outputs index (:func:`address_index`): stored with the graph (graphstore), else
        built on first use and kept with the graph."""
        idx = self.aux.get("addr_index")
        if idx is None:
            with _AUX_LOCK:
                idx = self.aux.get("addr_index")
                if idx is None:
                    idx = self.aux["addr_index"] = address_index(self.out_addr)
        return idx

    def outputs_of(self, address_id: int) -> np.ndarray:
        """The outputs paid to ``address_id``, in output order (int64): ``flatnonzero(out_addr == address_id)``
        without scanning the outputs (:meth:`address_index`)."""
        ptr, order = self.address_index()
        a = int(address_id)
        if a < 0 or a + 1 >= len(ptr):
            return np.empty(0, np.int64)
        return order[ptr[a]:ptr[a + 1]].astype(np.int64)

    def outputs_of_many(self, address_ids: Any) -> np.ndarray:
        """The outputs paid to any of ``address_ids``, sorted (``flatnonzero(isin(out_addr, ids))``)."""
        parts = [self.outputs_of(a) for a in sorted({int(a) for a in np.asarray(address_ids).tolist()})]
        return np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)

    def nbytes(self) -> int:
        return sum(v.nbytes for v in (self.tx_height, self.tx_time, self.tx_fee, self.tx_coinbase, self.tx_out_ptr,
                                      self.tx_in_ptr, self.in_node, self.in_value, self.out_value, self.out_addr,
                                      self.out_n, self.out_tx, self.out_spent_tx, self.out_opret)) + self.txid.nbytes


_AUX_LOCK = threading.Lock()


@njit(cache=True)
def _count_addresses(out_addr: np.ndarray, ptr: np.ndarray) -> None:
    for i in range(len(out_addr)):
        a = out_addr[i]
        if a >= 0:
            ptr[a + 1] += 1
    for a in range(1, len(ptr)):
        ptr[a] += ptr[a - 1]


@njit(cache=True)
def _place_outputs(out_addr: np.ndarray, ptr: np.ndarray, order: np.ndarray) -> None:
    nxt = ptr[:-1].copy()
    for i in range(len(out_addr)):
        a = out_addr[i]
        if a >= 0:
            order[nxt[a]] = i
            nxt[a] += 1


def address_index(out_addr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The outputs of every address as a CSR list: ``order[ptr[a]:ptr[a+1]]`` are the outputs paid to
    address ``a``, ascending. A counting sort (two passes over ``out_addr``), not an argsort."""
    size = int(out_addr.max(initial=-1)) + 2
    ptr = np.zeros(size, np.int64)
    _count_addresses(out_addr, ptr)
    order = np.empty(int(ptr[-1]), np.int32 if len(out_addr) < 2**31 else np.int64)
    _place_outputs(out_addr, ptr, order)
    return ptr, order


# DuckDB while building a graph: a bounded pool, results streamed in batches of BATCH_ROWS
DUCKDB_MEMORY_LIMIT = "256MB"
DUCKDB_THREADS = 2
BATCH_ROWS = 1 << 17


def _connect_bounded(ws: Workspace) -> Any:
    con = ws.connect()
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    con.execute(f"SET threads = {DUCKDB_THREADS}")
    con.execute("SET preserve_insertion_order = false")
    return con


def _batches(con: Any, sql: str, params: list[Any]):
    yield from con.sql(sql, params=params).to_arrow_reader(BATCH_ROWS)


def _col(b: pa.RecordBatch, name: str, dtype: Any) -> np.ndarray:
    return np.asarray(b.column(name).to_numpy(zero_copy_only=False), dtype=dtype)


def release_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps large freed blocks otherwise); no-op elsewhere."""
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    try:
        pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed batches otherwise
    except Exception:  # noqa: BLE001 - best effort
        pass
    if _TRIM:
        _TRIM(0)


_TRIM: Any = None


def build_utxo_graph(ws: Workspace, chain: str) -> UtxoGraph:
    """The output-level graph of a Bitcoin chain (see the module docstring).

    DuckDB only scans (no joins, no sorts, a 256 MB pool): the rows stream in record batches into
    preallocated NumPy arrays; transactions are ordered and outputs/inputs matched to them in NumPy.
    """
    con = _connect_bounded(ws)
    try:
        ntx_cap = con.execute("SELECT count(*) FROM utxo_transactions WHERE chain = ?", [chain]).fetchall()[0][0]
        raw = np.zeros((ntx_cap, 32), np.uint8)
        height = np.empty(ntx_cap, np.int64)
        tx_index = np.empty(ntx_cap, np.int64)
        tx_time = np.empty(ntx_cap, np.int64)
        tx_fee = np.empty(ntx_cap, np.int64)
        tx_cb = np.empty(ntx_cap, np.bool_)
        big = np.iinfo(np.int64).max
        i = 0
        for b in _batches(con, f"""
                SELECT txid, coalesce(height, {big}) AS height, coalesce(tx_index::BIGINT, {big}) AS tx_index,
                       coalesce(epoch(time)::BIGINT, 0) AS time, coalesce(fee, 0) AS fee,
                       coalesce(is_coinbase, false) AS cb
                FROM utxo_transactions WHERE chain = ?""", [chain]):
            m = b.num_rows
            if i + m > ntx_cap:  # appended meanwhile: cannot happen within one workspace generation
                raise RuntimeError("utxo_transactions changed while the graph was built")
            raw[i:i + m], _ok = binary_ids(b.column("txid"))
            height[i:i + m] = _col(b, "height", np.int64)
            tx_index[i:i + m] = _col(b, "tx_index", np.int64)
            tx_time[i:i + m] = _col(b, "time", np.int64)
            tx_fee[i:i + m] = _col(b, "fee", np.int64)
            tx_cb[i:i + m] = _col(b, "cb", np.bool_)
            i += m
        ntx = i
        # chain order: (height, tx_index, txid), nulls last (as DuckDB orders them)
        words = raw[:ntx].view(">u8")
        keys = [words[:, j].astype(np.uint64) for j in range(words.shape[1] - 1, -1, -1)]
        order = np.lexsort((*keys, tx_index[:ntx], height[:ntx]))
        del keys, words, tx_index
        txids = TxIds(raw[order])
        del raw
        tx_height = np.where(height[order] == big, 0, height[order])
        del height
        tx_time, tx_fee, tx_cb = tx_time[order], tx_fee[order], tx_cb[order]
        del order
        tdt = np.int32 if ntx < 2**31 - 1 else np.int64

        # outputs: matched to their transaction, numbered by (tx, n)
        nout_cap = con.execute("SELECT count(*) FROM utxo_outputs WHERE chain = ?", [chain]).fetchall()[0][0]
        o_t = np.empty(nout_cap, np.int64)
        o_n = np.empty(nout_cap, np.int64)
        o_v = np.empty(nout_cap, np.int64)
        o_a = np.empty(nout_cap, np.int64)
        o_r = np.empty(nout_cap, np.bool_)
        i = 0
        for b in _batches(con, """
                SELECT txid, n, coalesce(value, 0) AS value, coalesce(address_id, -1) AS address_id,
                       coalesce(script_type = 'nulldata' OR op_return IS NOT NULL, false) AS opret
                FROM utxo_outputs WHERE chain = ?""", [chain]):
            m = b.num_rows
            if i + m > nout_cap:
                raise RuntimeError("utxo_outputs changed while the graph was built")
            q, ok = binary_ids(b.column("txid"))
            o_t[i:i + m] = txids.lookup(q, ok)
            o_n[i:i + m] = _col(b, "n", np.int64)
            o_v[i:i + m] = _col(b, "value", np.int64)
            o_a[i:i + m] = _col(b, "address_id", np.int64)
            o_r[i:i + m] = _col(b, "opret", np.bool_)
            i += m
        o_t, o_n = o_t[:i], o_n[:i]
        keep = np.flatnonzero(o_t >= 0)
        okey = (o_t[keep] << 32) | (o_n[keep] & 0xFFFFFFFF)
        order = keep[np.argsort(okey, kind="stable")]
        okey.sort(kind="stable")
        del keep
        out_tx = o_t[order].astype(tdt)
        del o_t
        out_n = o_n[order].astype(np.int32)
        del o_n
        out_value = o_v[order]
        del o_v
        out_addr = o_a[order]
        del o_a
        out_opret = o_r[order]
        del o_r, order
        nout = len(out_tx)
        ndt = np.int32 if nout < 2**31 - 1 else np.int64
        tx_out_ptr = np.zeros(ntx + 1, np.int64)
        np.cumsum(np.bincount(out_tx, minlength=ntx), out=tx_out_ptr[1:])

        def node_of(t: np.ndarray, n: np.ndarray, okey: np.ndarray) -> np.ndarray:
            k = (t << 32) | (n & 0xFFFFFFFF)
            p = np.searchsorted(okey, k)
            p[p >= nout] = max(nout - 1, 0)
            hit = (t >= 0) & (n >= 0) & (n < 2**32) & (okey[p] == k) if nout else np.zeros(len(t), np.bool_)
            return np.where(hit, p, -1)

        op_return: dict[int, bytes] = {}
        for b in _batches(con, "SELECT txid, n, op_return FROM utxo_outputs WHERE chain = ? AND op_return IS NOT NULL",
                          [chain]):
            q, ok = binary_ids(b.column("txid"))
            nodes = node_of(txids.lookup(q, ok), _col(b, "n", np.int64), okey)
            for nd, d in zip(nodes.tolist(), b.column("op_return").to_pylist(), strict=True):
                if nd >= 0:
                    op_return[int(nd)] = d or b""

        # inputs: matched to their transaction and to the output they spend
        nin_cap = con.execute("SELECT count(*) FROM utxo_inputs WHERE chain = ?", [chain]).fetchall()[0][0]
        i_t = np.empty(nin_cap, np.int64)
        i_n = np.empty(nin_cap, np.int64)
        i_node = np.empty(nin_cap, np.int64)
        i_v = np.empty(nin_cap, np.int64)
        i = 0
        for b in _batches(con, """
                SELECT txid, n, prev_txid, coalesce(prev_n, -1) AS prev_n, coalesce(value, -1) AS value,
                       value IS NULL AS novalue
                FROM utxo_inputs WHERE chain = ?""", [chain]):
            m = b.num_rows
            if i + m > nin_cap:
                raise RuntimeError("utxo_inputs changed while the graph was built")
            q, ok = binary_ids(b.column("txid"))
            i_t[i:i + m] = txids.lookup(q, ok)
            i_n[i:i + m] = _col(b, "n", np.int64)
            q, ok = binary_ids(b.column("prev_txid"))
            nd = node_of(txids.lookup(q, ok), _col(b, "prev_n", np.int64), okey)
            i_node[i:i + m] = nd
            i_v[i:i + m] = _col(b, "value", np.int64)
            # coalesce(input value, spent output's value, 0)
            fill = np.flatnonzero(_col(b, "novalue", np.bool_))
            if len(fill):
                src = nd[fill]
                i_v[i + fill] = np.where(src >= 0, out_value[np.maximum(src, 0)], 0) if nout else 0
            i += m
        del okey
    finally:
        con.close()
    i_t, i_n = i_t[:i], i_n[:i]
    keep = np.flatnonzero(i_t >= 0)
    order = keep[np.lexsort((i_n[keep], i_t[keep]))]
    del keep, i_n
    in_tx = i_t[order]
    del i_t
    in_node = i_node[order].astype(ndt)
    del i_node
    in_value = i_v[order]
    del i_v, order
    tx_in_ptr = np.zeros(ntx + 1, np.int64)
    np.cumsum(np.bincount(in_tx, minlength=ntx), out=tx_in_ptr[1:])
    out_spent = np.full(nout, -1, tdt)
    ok = in_node >= 0
    out_spent[in_node[ok]] = in_tx[ok]
    del in_tx, ok
    txids._index()
    g = UtxoGraph(chain=chain, txid=txids, tx_height=tx_height, tx_time=tx_time, tx_fee=tx_fee,
                  tx_coinbase=tx_cb, tx_out_ptr=tx_out_ptr, tx_in_ptr=tx_in_ptr, in_node=in_node,
                  in_value=in_value, out_value=out_value, out_addr=out_addr, out_n=out_n, out_tx=out_tx,
                  out_spent_tx=out_spent, out_opret=out_opret, op_return=op_return)
    release_memory()
    return g


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


def _stored_utxo_graph(ws: Workspace, chain: str) -> UtxoGraph:
    def make(txid: np.ndarray, **fields: Any) -> UtxoGraph:
        return UtxoGraph(txid=TxIds(txid), **fields)

    return graphstore.open_or_build(ws, chain, build_utxo_graph, make)


def utxo_graph(ws: Workspace, chain: str) -> UtxoGraph:
    """The chain's graph: in memory per workspace generation, on disk per block-table part list (graphstore)."""
    return cached(ws, chain, "utxo_graph", _stored_utxo_graph)


def evm_ledger(ws: Workspace, chain: str, reverse: bool = False) -> EvmLedger:
    if reverse:
        return cached(ws, chain, "evm_ledger_reversed", lambda w, c: build_evm_ledger(w, c, reverse=True))
    return cached(ws, chain, "evm_ledger", build_evm_ledger)


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
