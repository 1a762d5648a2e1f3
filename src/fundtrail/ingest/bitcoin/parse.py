"""Parse serialized blocks into flat offset/value arrays (a numba kernel over a whole batch).

Input: one uint8 buffer holding the batch's blocks back to back, with each block's start and end. Output
(:class:`ParsedBatch`): per block, per transaction, per input and per output arrays of values and of
offsets into the buffer (scripts, previous txids). Transaction ids are SHA-256d over slices of the buffer
(the witness stripped for segwit transactions), computed in one kernel per batch (hashing.py).

Two passes over the bytes: the first counts transactions, inputs and outputs (so the arrays are allocated
once, at their exact size), the second fills them. A malformed block stops the kernel with an error code
and the byte offset where it went wrong; :func:`parse_blocks` raises :class:`DecodeError` with it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numba as nb
import numpy as np

from fundtrail.errors import DecodeError
from fundtrail.ingest.bitcoin import hashing

ERRORS = {
    1: "block shorter than its 80-byte header",
    2: "truncated varint",
    3: "transaction runs past the end of the block",
    4: "bytes left over after the last transaction",
    5: "count too large for the block",
    6: "block has no transactions",
    7: "segwit marker with a zero flag",
}


@nb.njit(cache=True, inline="always")
def _varint(buf, p, end):  # pragma: no cover - numba
    """(value, new position); position -1 when truncated."""
    if p >= end:
        return 0, -1
    b = buf[p]
    if b < 0xFD:
        return np.int64(b), p + 1
    if b == 0xFD:
        if p + 3 > end:
            return 0, -1
        return np.int64(buf[p + 1]) | (np.int64(buf[p + 2]) << 8), p + 3
    if b == 0xFE:
        if p + 5 > end:
            return 0, -1
        v = np.int64(0)
        for i in range(4):
            v |= np.int64(buf[p + 1 + i]) << (8 * i)
        return v, p + 5
    if p + 9 > end:
        return 0, -1
    v = np.int64(0)
    for i in range(8):
        v |= np.int64(buf[p + 1 + i]) << (8 * i)
    if v < 0:  # >= 2^63 does not fit int64: a count or length no block can hold (callers bound it)
        v = np.int64(1) << 62
    return v, p + 9


@nb.njit(cache=True, inline="always")
def _u32(buf, p):  # pragma: no cover - numba
    return np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8) | (np.int64(buf[p + 2]) << 16) | \
        (np.int64(buf[p + 3]) << 24)


@nb.njit(cache=True)
def _walk(buf, starts, ends, fill, blk_ntx, tx_start, tx_end, tx_body, tx_wit, tx_ver, tx_lock, tx_seg,
          tx_nin, tx_nout, tx_fin, tx_fout, in_prev, in_n, in_seq, in_tx, out_val, out_off, out_len,
          out_tx, counts):  # pragma: no cover - numba
    """Walk every block; count (fill=False) or fill the arrays. Returns (error code, byte offset)."""
    nt = 0
    ni = 0
    no = 0
    for b in range(starts.shape[0]):
        p = starts[b]
        end = ends[b]
        if end - p < 80:
            return 1, p
        p += 80
        ntx, p = _varint(buf, p, end)
        if p < 0:
            return 2, starts[b] + 80
        if ntx == 0:
            return 6, starts[b] + 80
        if ntx > (end - p) // 10 + 1:
            return 5, starts[b] + 80
        if fill:
            blk_ntx[b] = ntx
        for _t in range(ntx):
            t0 = p
            if p + 4 > end:
                return 3, p
            ver = _u32(buf, p)
            p += 4
            seg = False
            if p + 2 <= end and buf[p] == 0:
                if buf[p + 1] == 0:
                    return 7, p
                seg = True
                p += 2
            body = p
            nin, p = _varint(buf, p, end)
            if p < 0:
                return 2, body
            if nin > (end - p) // 41 + 1:
                return 5, body
            if fill:
                tx_fin[nt] = ni
            for _i in range(nin):
                if p + 36 > end:
                    return 3, p
                if fill:
                    in_prev[ni] = p
                    in_n[ni] = _u32(buf, p + 32)
                    in_tx[ni] = nt
                q = p + 36
                sl, p = _varint(buf, q, end)
                if p < 0:
                    return 2, q
                p += sl
                if p + 4 > end:
                    return 3, p
                if fill:
                    in_seq[ni] = _u32(buf, p)
                p += 4
                ni += 1
            q = p
            nout, p = _varint(buf, p, end)
            if p < 0:
                return 2, q
            if nout > (end - p) // 9 + 1:
                return 5, q
            if fill:
                tx_fout[nt] = no
            for _o in range(nout):
                if p + 8 > end:
                    return 3, p
                if fill:
                    v = np.int64(0)
                    for k in range(8):
                        v |= np.int64(buf[p + k]) << (8 * k)
                    out_val[no] = v
                    out_tx[no] = nt
                q = p + 8
                sl, p = _varint(buf, q, end)
                if p < 0:
                    return 2, q
                if p + sl > end:
                    return 3, p
                if fill:
                    out_off[no] = p
                    out_len[no] = sl
                p += sl
                no += 1
            wit = p
            if seg:
                for _i in range(nin):
                    q = p
                    nitems, p = _varint(buf, p, end)
                    if p < 0:
                        return 2, q
                    for _k in range(nitems):
                        q = p
                        il, p = _varint(buf, p, end)
                        if p < 0:
                            return 2, q
                        p += il
                        if p > end:
                            return 3, q
            if p + 4 > end:
                return 3, p
            if fill:
                tx_start[nt] = t0
                tx_body[nt] = body
                tx_wit[nt] = wit
                tx_end[nt] = p + 4
                tx_ver[nt] = ver
                tx_lock[nt] = _u32(buf, p)
                tx_seg[nt] = seg
                tx_nin[nt] = nin
                tx_nout[nt] = nout
            p += 4
            nt += 1
        if p != end:
            return 4, p
    counts[0] = nt
    counts[1] = ni
    counts[2] = no
    return 0, 0


@dataclass(slots=True)
class ParsedBatch:
    """Flat arrays of one batch of blocks; offsets point into ``buf``."""

    buf: np.ndarray
    blk_start: np.ndarray
    blk_end: np.ndarray
    blk_ntx: np.ndarray
    blk_ftx: np.ndarray  # index of each block's first transaction
    tx_start: np.ndarray
    tx_end: np.ndarray
    tx_body: np.ndarray  # after version (and the segwit marker and flag)
    tx_wit: np.ndarray  # start of the witness section (= start of locktime for legacy transactions)
    tx_ver: np.ndarray
    tx_lock: np.ndarray
    tx_seg: np.ndarray
    tx_nin: np.ndarray
    tx_nout: np.ndarray
    tx_fin: np.ndarray
    tx_fout: np.ndarray
    tx_blk: np.ndarray
    txid: np.ndarray  # (ntx, 32) internal byte order
    in_prev: np.ndarray  # offset of the previous txid
    in_n: np.ndarray
    in_seq: np.ndarray
    in_tx: np.ndarray
    out_val: np.ndarray
    out_off: np.ndarray
    out_len: np.ndarray
    out_tx: np.ndarray


class ParseFailure(Exception):
    def __init__(self, code: int, offset: int) -> None:
        self.code = code
        self.offset = offset
        super().__init__(f"{ERRORS.get(code, 'malformed block')} at buffer offset {offset}")


def parse_blocks(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> ParsedBatch:
    """Parse the blocks buf[starts[i]:ends[i]]; raises :class:`ParseFailure` (offset into ``buf``)."""
    starts = np.ascontiguousarray(starts, np.int64)
    ends = np.ascontiguousarray(ends, np.int64)
    nb_ = starts.shape[0]
    counts = np.zeros(3, np.int64)
    e0 = np.zeros(0, np.int64)
    e1 = np.zeros(0, np.bool_)
    code, off = _walk(buf, starts, ends, False, e0, e0, e0, e0, e0, e0, e0, e1, e0, e0, e0, e0, e0, e0,
                      e0, e0, e0, e0, e0, e0, counts)
    if code:
        raise ParseFailure(int(code), int(off))
    nt, ni, no = (int(x) for x in counts)
    i64 = lambda n: np.empty(n, np.int64)  # noqa: E731
    blk_ntx = i64(nb_)
    tx = [i64(nt) for _ in range(6)]
    tx_seg = np.empty(nt, np.bool_)
    txn = [i64(nt) for _ in range(4)]
    ins = [i64(ni) for _ in range(4)]
    outs = [i64(no) for _ in range(4)]
    code, off = _walk(buf, starts, ends, True, blk_ntx, tx[0], tx[1], tx[2], tx[3], tx[4], tx[5], tx_seg,
                      txn[0], txn[1], txn[2], txn[3], ins[0], ins[1], ins[2], ins[3], outs[0], outs[1],
                      outs[2], outs[3], counts)
    if code:  # pragma: no cover - the count pass would have failed first
        raise ParseFailure(int(code), int(off))
    blk_ftx = np.zeros(nb_, np.int64)
    if nb_:
        np.cumsum(blk_ntx[:-1], out=blk_ftx[1:])
    tx_blk = np.repeat(np.arange(nb_, dtype=np.int64), blk_ntx)
    batch = ParsedBatch(buf, starts, ends, blk_ntx, blk_ftx, tx[0], tx[1], tx[2], tx[3], tx[4], tx[5],
                        tx_seg, txn[0], txn[1], txn[2], txn[3], tx_blk, np.empty((nt, 32), np.uint8),
                        ins[0], ins[1], ins[2], ins[3], outs[0], outs[1], outs[2], outs[3])
    batch.txid = txids(batch)
    return batch


def txids(b: ParsedBatch) -> np.ndarray:
    """SHA-256d of each transaction without its witness, (ntx, 32) in internal byte order."""
    return hashing.txids(b.buf, b.tx_start, b.tx_end, b.tx_body, b.tx_wit, b.tx_seg)


@nb.njit(cache=True)
def _gather(buf, offs, out):  # pragma: no cover - numba
    w = out.shape[1]
    for i in range(offs.shape[0]):
        p = offs[i]
        for j in range(w):
            out[i, j] = buf[p + j]


def gather_spans(buf: np.ndarray, offs: np.ndarray, width: int) -> np.ndarray:
    """(n, width) copy of buf[o:o+width] for each offset o (e.g. the previous txids of inputs)."""
    out = np.empty((len(offs), width), np.uint8)
    if len(offs):
        _gather(buf, np.ascontiguousarray(offs, np.int64), out)
    return out


def block_hashes(buf: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return hashing.sha256d_spans(buf, starts, 80)


def merkle_roots(b: ParsedBatch) -> np.ndarray:
    """The merkle root (internal byte order) of every block of the batch, (nblocks, 32)."""
    return hashing.merkle_roots(b.txid, b.blk_ftx, b.blk_ntx)


def merkle_root(txids_internal: np.ndarray) -> bytes:
    """The merkle root (internal byte order) of a block's txids."""
    level = [bytes(r) for r in txids_internal]
    sha = hashlib.sha256
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha(sha(level[i] + level[i + 1]).digest()).digest() for i in range(0, len(level), 2)]
    return level[0]


def decode_error(f: ParseFailure, where: str | None = None, offset_base: int = 0, **ctx: object) -> DecodeError:
    return DecodeError(ERRORS.get(f.code, "malformed block"), path=where, offset=offset_base + f.offset,
                       **ctx)  # type: ignore[arg-type]
