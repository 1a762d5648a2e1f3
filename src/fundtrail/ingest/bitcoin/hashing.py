"""SHA-256d over a whole batch in numba kernels: txids, merkle roots, block hashes, without a Python call
per hash.

hashlib costs about 1 µs of interpreter overhead per call (four calls per txid, three per merkle node),
which dominated the ingest profile. The kernels here hash straight out of the batch buffer with OpenSSL's
low-level ``SHA256_Init/Update/Final`` (libcrypto, the library hashlib itself uses; SHA-NI where the CPU
has it), passed to the kernels as first-class function arguments so the compiled kernels stay cacheable.
Where libcrypto or those symbols are missing, the same kernels run on a plain numba SHA-256 (FIPS 180-4,
several times slower). Both are checked against hashlib in tests/ingest/bitcoin/test_hashing.py.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numba as nb
import numpy as np

_K = np.array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
], dtype=np.uint64)
_H0 = np.array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19], dtype=np.uint64)
_M = np.uint64(0xFFFFFFFF)


@nb.njit(cache=True, inline="always")
def _rotr(x, n):  # pragma: no cover - numba
    return ((x >> np.uint64(n)) | (x << np.uint64(32 - n))) & _M


@nb.njit(cache=True)
def _compress(h, src, p, w):  # pragma: no cover - numba
    """One SHA-256 compression of the 64 bytes src[p:p+64] into the state h (uint64[8])."""
    for t in range(16):
        q = p + 4 * t
        w[t] = (np.uint64(src[q]) << np.uint64(24)) | (np.uint64(src[q + 1]) << np.uint64(16)) | \
            (np.uint64(src[q + 2]) << np.uint64(8)) | np.uint64(src[q + 3])
    for t in range(16, 64):
        x = w[t - 15]
        y = w[t - 2]
        s0 = _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> np.uint64(3))
        s1 = _rotr(y, 17) ^ _rotr(y, 19) ^ (y >> np.uint64(10))
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) & _M
    a = h[0]
    b = h[1]
    c = h[2]
    d = h[3]
    e = h[4]
    f = h[5]
    g = h[6]
    hh = h[7]
    for t in range(64):
        s1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
        ch = (e & f) ^ ((~e & _M) & g)
        t1 = (hh + s1 + ch + _K[t] + w[t]) & _M
        s0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
        mj = (a & b) ^ (a & c) ^ (b & c)
        t2 = (s0 + mj) & _M
        hh = g
        g = f
        f = e
        e = (d + t1) & _M
        d = c
        c = b
        b = a
        a = (t1 + t2) & _M
    h[0] = (h[0] + a) & _M
    h[1] = (h[1] + b) & _M
    h[2] = (h[2] + c) & _M
    h[3] = (h[3] + d) & _M
    h[4] = (h[4] + e) & _M
    h[5] = (h[5] + f) & _M
    h[6] = (h[6] + g) & _M
    h[7] = (h[7] + hh) & _M


@nb.njit(cache=True)
def _sha256(src, p, n, out, q, h, w, tail):  # pragma: no cover - numba
    """SHA-256 of src[p:p+n] into out[q:q+32]; h, w, tail (uint8[128]) are scratch."""
    for i in range(8):
        h[i] = _H0[i]
    full = n // 64
    for k in range(full):
        _compress(h, src, p + 64 * k, w)
    r = n - 64 * full
    for i in range(128):
        tail[i] = 0
    for i in range(r):
        tail[i] = src[p + 64 * full + i]
    tail[r] = 0x80
    tl = 64 if r < 56 else 128
    bits = np.uint64(n) * np.uint64(8)
    for i in range(8):
        tail[tl - 1 - i] = (bits >> np.uint64(8 * i)) & np.uint64(0xFF)
    _compress(h, tail, 0, w)
    if tl == 128:
        _compress(h, tail, 64, w)
    for i in range(8):
        out[q + 4 * i] = (h[i] >> np.uint64(24)) & np.uint64(0xFF)
        out[q + 4 * i + 1] = (h[i] >> np.uint64(16)) & np.uint64(0xFF)
        out[q + 4 * i + 2] = (h[i] >> np.uint64(8)) & np.uint64(0xFF)
        out[q + 4 * i + 3] = h[i] & np.uint64(0xFF)


@nb.njit(cache=True)
def _sha256d(src, p, n, out, q, h, w, tail, mid):  # pragma: no cover - numba
    _sha256(src, p, n, mid, 0, h, w, tail)
    _sha256(mid, 0, 32, out, q, h, w, tail)


@nb.njit(cache=True)
def _txids(buf, tx_start, tx_end, tx_body, tx_wit, tx_seg, out, scratch):  # pragma: no cover - numba
    h = np.empty(8, np.uint64)
    w = np.empty(64, np.uint64)
    tail = np.empty(128, np.uint8)
    mid = np.empty(32, np.uint8)
    for t in range(tx_start.shape[0]):
        s = tx_start[t]
        e = tx_end[t]
        if tx_seg[t]:  # version | inputs, outputs | locktime (marker, flag and witnesses stripped)
            bo = tx_body[t]
            wi = tx_wit[t]
            k = 0
            for i in range(4):
                scratch[k] = buf[s + i]
                k += 1
            for i in range(bo, wi):
                scratch[k] = buf[i]
                k += 1
            for i in range(e - 4, e):
                scratch[k] = buf[i]
                k += 1
            _sha256d(scratch, 0, k, out, 32 * t, h, w, tail, mid)
        else:
            _sha256d(buf, s, e - s, out, 32 * t, h, w, tail, mid)


@nb.njit(cache=True)
def _merkle_roots(txids, first, count, out):  # pragma: no cover - numba
    h = np.empty(8, np.uint64)
    w = np.empty(64, np.uint64)
    tail = np.empty(128, np.uint8)
    mid = np.empty(32, np.uint8)
    mx = 1
    for b in range(first.shape[0]):
        mx = max(mx, count[b])
    level = np.empty(32 * (mx + 1), np.uint8)
    for b in range(first.shape[0]):
        n = count[b]
        f = first[b]
        for i in range(n):
            for j in range(32):
                level[32 * i + j] = txids[f + i, j]
        while n > 1:
            if n % 2:
                for j in range(32):
                    level[32 * n + j] = level[32 * (n - 1) + j]
                n += 1
            for i in range(n // 2):  # in place: node i reads 2i, 2i+1 (>= i), writes i
                _sha256d(level, 64 * i, 64, level, 32 * i, h, w, tail, mid)
            n //= 2
        for j in range(32):
            out[b, j] = level[j]


@nb.njit(cache=True)
def _hash_spans(buf, starts, size, out):  # pragma: no cover - numba
    h = np.empty(8, np.uint64)
    w = np.empty(64, np.uint64)
    tail = np.empty(128, np.uint8)
    mid = np.empty(32, np.uint8)
    for i in range(starts.shape[0]):
        _sha256d(buf, starts[i], size, out, 32 * i, h, w, tail, mid)


# --- OpenSSL-backed kernels ------------------------------------------------------------------------------

def _load_openssl():
    names = [ctypes.util.find_library("crypto"), "libcrypto.so.3", "libcrypto.so"]
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            init, update, final = lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final
        except (OSError, AttributeError):
            continue
        vp = ctypes.c_void_p
        init.restype = ctypes.c_int
        init.argtypes = [vp]
        update.restype = ctypes.c_int
        update.argtypes = [vp, vp, ctypes.c_size_t]
        final.restype = ctypes.c_int
        final.argtypes = [vp, vp]
        return init, update, final
    return None


_SSL = _load_openssl()
CTX_BYTES = 256  # >= sizeof(SHA256_CTX) (112)


@nb.njit(cache=True, inline="always")
def _ssl_d(init, upd, fin, c, m, p, n, out):  # pragma: no cover - numba
    """SHA-256d of n bytes at address p into address out; c: context, m: 32-byte scratch."""
    init(c)
    upd(c, p, n)
    fin(m, c)
    init(c)
    upd(c, m, 32)
    fin(out, c)


@nb.njit(cache=True)
def _ssl_txids(init, upd, fin, buf, tx_start, tx_end, tx_body, tx_wit, tx_seg, out, ctx):  # pragma: no cover
    bp = buf.ctypes.data
    op = out.ctypes.data
    c = ctx.ctypes.data
    m = c + CTX_BYTES - 32
    for t in range(tx_start.shape[0]):
        s = tx_start[t]
        e = tx_end[t]
        if tx_seg[t]:  # version | inputs, outputs | locktime (marker, flag and witnesses stripped)
            init(c)
            upd(c, bp + s, 4)
            upd(c, bp + tx_body[t], tx_wit[t] - tx_body[t])
            upd(c, bp + e - 4, 4)
            fin(m, c)
            init(c)
            upd(c, m, 32)
            fin(op + 32 * t, c)
        else:
            _ssl_d(init, upd, fin, c, m, bp + s, e - s, op + 32 * t)


@nb.njit(cache=True)
def _ssl_merkle_roots(init, upd, fin, txids, first, count, out, ctx):  # pragma: no cover - numba
    c = ctx.ctypes.data
    m = c + CTX_BYTES - 32
    mx = 1
    for b in range(first.shape[0]):
        mx = max(mx, count[b])
    level = np.empty(32 * (mx + 1), np.uint8)
    lp = level.ctypes.data
    for b in range(first.shape[0]):
        n = count[b]
        f = first[b]
        for i in range(n):
            for j in range(32):
                level[32 * i + j] = txids[f + i, j]
        while n > 1:
            if n % 2:
                for j in range(32):
                    level[32 * n + j] = level[32 * (n - 1) + j]
                n += 1
            for i in range(n // 2):  # in place: node i reads 2i, 2i+1 (>= i) before writing i
                _ssl_d(init, upd, fin, c, m, lp + 64 * i, 64, lp + 32 * i)
            n //= 2
        for j in range(32):
            out[b, j] = level[j]


@nb.njit(cache=True)
def _ssl_spans(init, upd, fin, buf, starts, size, out, ctx):  # pragma: no cover - numba
    bp = buf.ctypes.data
    op = out.ctypes.data
    c = ctx.ctypes.data
    m = c + CTX_BYTES - 32
    for i in range(starts.shape[0]):
        _ssl_d(init, upd, fin, c, m, bp + starts[i], size, op + 32 * i)


def _ctx() -> np.ndarray:
    return np.zeros(CTX_BYTES, np.uint8)


def txids(buf: np.ndarray, tx_start: np.ndarray, tx_end: np.ndarray, tx_body: np.ndarray,
          tx_wit: np.ndarray, tx_seg: np.ndarray, *, use_openssl: bool = True) -> np.ndarray:
    """SHA-256d of each transaction without its witness, (ntx, 32) in internal byte order."""
    n = len(tx_start)
    out = np.empty(32 * n, np.uint8)
    if n:
        if _SSL is not None and use_openssl:
            _ssl_txids(*_SSL, buf, tx_start, tx_end, tx_body, tx_wit, tx_seg, out, _ctx())
        else:
            stripped = np.where(tx_seg, tx_wit - tx_body + 8, 0)
            scratch = np.empty(int(stripped.max()) + 1, np.uint8)
            _txids(buf, tx_start, tx_end, tx_body, tx_wit, tx_seg, out, scratch)
    return out.reshape(n, 32)


def merkle_roots(txids: np.ndarray, first: np.ndarray, count: np.ndarray, *, use_openssl: bool = True) -> np.ndarray:
    """The merkle root (internal byte order) of each block's txids txids[first[b]:first[b]+count[b]]."""
    out = np.zeros((len(first), 32), np.uint8)
    if len(first):
        args = (np.ascontiguousarray(txids), np.asarray(first, np.int64), np.asarray(count, np.int64), out)
        if _SSL is not None and use_openssl:
            _ssl_merkle_roots(*_SSL, *args, _ctx())
        else:
            _merkle_roots(*args)
    return out


def sha256d_spans(buf: np.ndarray, starts: np.ndarray, size: int, *, use_openssl: bool = True) -> np.ndarray:
    """SHA-256d of buf[s:s+size] for each s (e.g. 80-byte block headers), (n, 32)."""
    out = np.empty(32 * len(starts), np.uint8)
    if len(starts):
        if _SSL is not None and use_openssl:
            _ssl_spans(*_SSL, buf, np.asarray(starts, np.int64), int(size), out, _ctx())
        else:
            _hash_spans(buf, np.asarray(starts, np.int64), int(size), out)
    return out.reshape(-1, 32)
