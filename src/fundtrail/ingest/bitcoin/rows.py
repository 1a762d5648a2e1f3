"""Arrow rows of the stored tables (utxo_blocks, utxo_transactions, utxo_outputs, utxo_inputs) from a
parsed batch, vectorised: no Python loop per output or input (OP_RETURN payloads excepted).

Txid columns are 32-byte binary in display order (the bytes of the usual hex txid), built straight from
the parsed byte matrices; block hashes stay hex strings (one row per block)."""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import pyarrow as pa

from fundtrail.ingest.bitcoin import script as S
from fundtrail.ingest.bitcoin.parse import ParsedBatch, gather_spans
from fundtrail.store.schema import TS, TXID

_TYPES = pa.array(S.SCRIPT_TYPES, pa.string())


def _const(value: str, n: int) -> pa.Array:
    """A string column repeating one value, built from its buffers (no index array, no take)."""
    v = value.encode()
    if n * len(v) >= 2**31:
        return pa.repeat(pa.scalar(value, pa.string()), n)
    offsets = np.arange(0, (n + 1) * len(v), len(v), dtype=np.int32) if v else np.zeros(n + 1, np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(v * n)])


def _binary32(raw: np.ndarray) -> pa.Array:
    """A fixed_size_binary(32) column over the rows of a contiguous (n, 32) uint8 matrix (no copy)."""
    raw = np.ascontiguousarray(raw, np.uint8)
    return pa.FixedSizeBinaryArray.from_buffers(TXID, len(raw), [None, pa.py_buffer(raw)])


@nb.njit(cache=True)
def _gather_words(raw, idx, out):  # pragma: no cover - numba
    for i in range(idx.shape[0]):
        j = idx[i]
        for k in range(raw.shape[1]):
            out[i, k] = raw[j, k]


def _rows32(raw: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """raw[idx] for a contiguous (n, 32) uint8 matrix, copying each row as four 64-bit words."""
    raw = np.ascontiguousarray(raw, np.uint8)
    out = np.empty((len(idx), 4), np.uint64)
    if len(idx):
        _gather_words(raw.view(np.uint64), np.ascontiguousarray(idx, np.int64), out)
    return out.view(np.uint8).reshape(len(idx), 32)


@nb.njit(cache=True)
def _gather_reversed(buf, offs, out):  # pragma: no cover - numba
    w = out.shape[1]
    for i in range(offs.shape[0]):
        p = offs[i] + w - 1
        for j in range(w):
            out[i, j] = buf[p - j]


def display_txids(buf: np.ndarray, offs: np.ndarray) -> np.ndarray:
    """(n, 32) display-order copies of the internal-order hashes at ``buf[o:o+32]`` (e.g. previous txids)."""
    out = np.empty((len(offs), 32), np.uint8)
    if len(offs):
        _gather_reversed(buf, np.ascontiguousarray(offs, np.int64), out)
    return out


def _u32_at(buf: np.ndarray, offs: np.ndarray) -> np.ndarray:
    b = buf[offs[:, None] + np.arange(4)[None, :]].astype(np.int64)
    return b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)


def _segment_sums(values: np.ndarray, first: np.ndarray, count: np.ndarray) -> np.ndarray:
    cs = np.zeros(len(values) + 1, np.int64)
    np.cumsum(values, out=cs[1:])
    return cs[first + count] - cs[first]


@dataclass(slots=True)
class OutputInfo:
    types: np.ndarray  # int8 script type codes
    keys: np.ndarray  # (n, KEYW)


def classify_outputs(b: ParsedBatch) -> OutputInfo:
    n = len(b.out_val)
    types = np.zeros(n, np.int8)
    keys = np.zeros((n, S.KEYW), np.uint8)
    S.classify(b.buf, b.out_off, b.out_len, types, keys)
    S.fill_p2pk_keys(b.buf, b.out_off, b.out_len, types, keys)
    return OutputInfo(types, keys)


def block_rows(chain: str, b: ParsedBatch, heights: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """(utxo_blocks rows, block times as int64 seconds)."""
    from fundtrail.ingest.bitcoin.parse import block_hashes

    st = b.blk_start
    nb_ = len(st)
    hashes = block_hashes(b.buf, st)
    hdr = gather_spans(b.buf, st, 80)
    words = np.ascontiguousarray(hdr[:, 68:80]).view("<u4")
    times = words[:, 0].astype(np.int64)
    version = np.ascontiguousarray(hdr[:, 0:4]).view("<i4")[:, 0].astype(np.int64)
    table = pa.table({
        "chain": _const(chain, nb_),
        "height": pa.array(heights, pa.int64()),
        "hash": S.hex_strings(hashes),
        "prev_hash": S.hex_strings(np.ascontiguousarray(hdr[:, 4:36])),
        "time": pa.array(times, pa.int64()).cast(TS),
        "tx_count": pa.array(b.blk_ntx.astype(np.int32)),
        "size": pa.array(b.blk_end - b.blk_start),
        "version": pa.array(version),
        "merkle_root": S.hex_strings(np.ascontiguousarray(hdr[:, 36:68])),
        "bits": pa.array(words[:, 1].astype(np.int64)),
        "nonce": pa.array(words[:, 2].astype(np.int64)),
    })
    return table, times


@dataclass(slots=True)
class BatchRows:
    blocks: pa.Table
    transactions: pa.Table
    outputs: pa.Table
    inputs: pa.Table
    unresolved: int


def build_rows(chain: str, b: ParsedBatch, heights: np.ndarray, info: OutputInfo, out_addr: np.ndarray,
               in_value: np.ndarray, in_addr: np.ndarray, in_type: np.ndarray, in_found: np.ndarray,
               in_mask: np.ndarray, prev_display: np.ndarray | None = None) -> BatchRows:
    """``in_*``: resolution of the non-coinbase inputs (``in_mask`` selects them among all inputs);
    ``prev_display``: their previous txids in display order when the caller has them already."""
    blocks, btimes = block_rows(chain, b, heights)
    nt = len(b.tx_start)
    tx_h = heights[b.tx_blk]
    tx_time = pa.array(btimes[b.tx_blk], TS)
    tx_index = np.arange(nt, dtype=np.int64) - b.blk_ftx[b.tx_blk]
    coinbase = tx_index == 0
    txid = np.ascontiguousarray(b.txid[:, ::-1])  # display order
    size = b.tx_end - b.tx_start
    stripped = np.where(b.tx_seg, (b.tx_wit - b.tx_body) + 8, size)
    vsize = (stripped * 3 + size + 3) // 4
    out_sum = _segment_sums(b.out_val, b.tx_fout, b.tx_nout)

    # inputs (without the coinbase inputs)
    ni_all = len(b.in_prev)
    in_tx = b.in_tx[in_mask]
    nin = len(in_tx)
    val_full = np.zeros(nin, np.int64)
    val_full[in_found] = in_value[in_found]
    in_count = np.bincount(in_tx, minlength=nt)  # in_tx is ascending: each tx's inputs are contiguous
    in_sum = _segment_sums(val_full, np.cumsum(in_count) - in_count, in_count)
    missing = np.bincount(in_tx[~in_found], minlength=nt) if nin else np.zeros(nt, np.int64)
    tx_nin = np.where(coinbase, 0, b.tx_nin)
    ok = (missing == 0) & ~coinbase
    fee = np.where(ok, in_sum - out_sum, 0)
    fee_valid = ok | coinbase
    version = b.tx_ver.astype(np.uint32).view(np.int32).astype(np.int64)
    transactions = pa.table({
        "chain": _const(chain, nt),
        "height": pa.array(tx_h),
        "tx_index": pa.array(tx_index.astype(np.int32)),
        "txid": _binary32(txid),
        "time": tx_time,
        "fee": pa.array(fee, mask=~fee_valid),
        "is_coinbase": pa.array(coinbase),
        "version": pa.array(version),
        "locktime": pa.array(b.tx_lock),
        "size": pa.array(size.astype(np.int32)),
        "vsize": pa.array(vsize.astype(np.int32)),
        "input_count": pa.array(tx_nin.astype(np.int32)),
        "output_count": pa.array(b.tx_nout.astype(np.int32)),
        "input_value": pa.array(np.where(coinbase, 0, in_sum), mask=~fee_valid),
        "output_value": pa.array(out_sum),
        "has_witness": pa.array(b.tx_seg),
    })

    no = len(b.out_val)
    out_n = np.arange(no, dtype=np.int64) - b.tx_fout[b.out_tx]
    opr = np.flatnonzero(info.types == S.ST_OP_RETURN)
    if len(opr):
        data: list[bytes | None] = [None] * no
        buf = b.buf
        for i in opr.tolist():
            p = int(b.out_off[i])
            data[i] = S.op_return_data(buf[p:p + int(b.out_len[i])].tobytes())
        op_return = pa.array(data, pa.binary())
    else:
        op_return = pa.nulls(no, pa.binary())
    outputs = pa.table({
        "chain": _const(chain, no),
        "height": pa.array(tx_h[b.out_tx]),
        "txid": _binary32(_rows32(txid, b.out_tx)),
        "n": pa.array(out_n.astype(np.int32)),
        "value": pa.array(b.out_val),
        "address_id": pa.array(out_addr, mask=out_addr < 0),
        "script_type": _TYPES.take(pa.array(info.types)),
        "op_return": op_return,
    })

    sel = np.flatnonzero(in_mask) if nin != ni_all else np.arange(ni_all)
    in_n = sel - b.tx_fin[in_tx]
    # script type of the spent output, null where it is not known (a null index takes a null)
    missing_in = None if in_found.all() else ~in_found
    types = _TYPES.take(pa.array(np.where(in_found, in_type, 0).astype(np.int8), mask=missing_in))
    inputs = pa.table({
        "chain": _const(chain, nin),
        "height": pa.array(tx_h[in_tx]),
        "txid": _binary32(_rows32(txid, in_tx)),
        "n": pa.array(in_n.astype(np.int32)),
        "prev_txid": _binary32(display_txids(b.buf, b.in_prev[sel]) if prev_display is None else prev_display),
        "prev_n": pa.array(b.in_n[sel]),
        "value": pa.array(np.where(in_found, in_value, 0), mask=~in_found),
        "address_id": pa.array(np.where(in_found, in_addr, -1), mask=~in_found | (in_addr < 0)),
        "script_type": types,
        "sequence": pa.array(b.in_seq[sel]),
    })
    return BatchRows(blocks, transactions, outputs, inputs, int((~in_found).sum()))
