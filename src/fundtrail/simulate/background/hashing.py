"""SHA-256 inside the background generator's compiled kernels: OpenSSL's SHA256_Init/Update/Final called
from numba through ctypes function pointers (the "hash args"), or a numba SHA-256 where libcrypto is
missing; SHA-256d and the Bitcoin merkle root on top."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from fundtrail.ingest.bitcoin.hashing import _H0 as _SHA_H0
from fundtrail.ingest.bitcoin.hashing import _K as _SHA_K

# the SHA-256 round constants and initial state, shared with the ingester's kernels (uint32 here)
_K = _SHA_K.astype(np.uint32)
_H0 = _SHA_H0.astype(np.uint32)


@njit(cache=True, inline="always")
def _rotr(x: np.uint32, n: int) -> np.uint32:
    return np.uint32((x >> np.uint32(n)) | (x << np.uint32(32 - n)))


@njit(cache=True)
def _compress(h: np.ndarray, blk: np.ndarray, w: np.ndarray, K: np.ndarray) -> None:
    for i in range(16):
        w[i] = (np.uint32(blk[4 * i]) << np.uint32(24)) | (np.uint32(blk[4 * i + 1]) << np.uint32(16)) | \
            (np.uint32(blk[4 * i + 2]) << np.uint32(8)) | np.uint32(blk[4 * i + 3])
    for i in range(16, 64):
        x = w[i - 15]
        y = w[i - 2]
        s0 = _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> np.uint32(3))
        s1 = _rotr(y, 17) ^ _rotr(y, 19) ^ (y >> np.uint32(10))
        w[i] = np.uint32(w[i - 16] + s0 + w[i - 7] + s1)
    a, b, c, d, e, f, g, hh = h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
    for i in range(64):
        S1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
        ch = (e & f) ^ (~e & g)
        t1 = np.uint32(hh + S1 + ch + K[i] + w[i])
        S0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
        mj = (a & b) ^ (a & c) ^ (b & c)
        t2 = np.uint32(S0 + mj)
        hh = g
        g = f
        f = e
        e = np.uint32(d + t1)
        d = c
        c = b
        b = a
        a = np.uint32(t1 + t2)
    h[0] += a
    h[1] += b
    h[2] += c
    h[3] += d
    h[4] += e
    h[5] += f
    h[6] += g
    h[7] += hh


@njit(cache=True)
def sha256_into(data: np.ndarray, start: int, n: int, out: np.ndarray, o: int, K: np.ndarray,
                H0: np.ndarray) -> None:
    """SHA-256 of data[start:start+n] written to out[o:o+32]."""
    h = H0.copy()
    w = np.empty(64, np.uint32)
    blk = np.empty(64, np.uint8)
    full = n // 64
    for b in range(full):
        for i in range(64):
            blk[i] = data[start + 64 * b + i]
        _compress(h, blk, w, K)
    rem = n - 64 * full
    for i in range(64):
        blk[i] = 0
    for i in range(rem):
        blk[i] = data[start + 64 * full + i]
    blk[rem] = 0x80
    if rem >= 56:
        _compress(h, blk, w, K)
        for i in range(64):
            blk[i] = 0
    bits = np.uint64(n) * np.uint64(8)
    for i in range(8):
        blk[63 - i] = np.uint8((bits >> np.uint64(8 * i)) & np.uint64(0xFF))
    _compress(h, blk, w, K)
    for i in range(8):
        out[o + 4 * i] = np.uint8(h[i] >> np.uint32(24))
        out[o + 4 * i + 1] = np.uint8((h[i] >> np.uint32(16)) & np.uint32(0xFF))
        out[o + 4 * i + 2] = np.uint8((h[i] >> np.uint32(8)) & np.uint32(0xFF))
        out[o + 4 * i + 3] = np.uint8(h[i] & np.uint32(0xFF))


@njit(cache=True)
def sha256d_into(data: np.ndarray, start: int, n: int, out: np.ndarray, o: int, K: np.ndarray,
                 H0: np.ndarray) -> None:
    tmp = np.empty(32, np.uint8)
    sha256_into(data, start, n, tmp, 0, K, H0)
    sha256_into(tmp, 0, 32, out, o, K, H0)


# Hashing inside the kernels: OpenSSL's SHA256_Init/Update/Final (SHA-NI where the CPU has it) called from
# numba through ctypes function pointers, passed in as arguments ("hash args": K, H0, ssl, hi, hu, hf, ctx)
# so the compiled kernels stay cacheable; without libcrypto (ssl = False) the numba SHA-256 above.
# ctx: a uint8 scratch of CTX_BYTES: the SHA256_CTX, then 32 bytes for the inner hash of SHA-256d.
CTX_BYTES = 256


@njit(cache=True, inline="always")
def _h(data, start, n, out, o, K, H0, ssl, hi, hu, hf, ctx):  # noqa: ANN001, ANN202 - numba
    """SHA-256 of data[start:start+n] into out[o:o+32]."""
    if ssl:
        c = ctx.ctypes.data
        hi(c)
        hu(c, data.ctypes.data + start, n)
        hf(out.ctypes.data + o, c)
    else:
        sha256_into(data, start, n, out, o, K, H0)


@njit(cache=True, inline="always")
def _hd(data, start, n, out, o, K, H0, ssl, hi, hu, hf, ctx):  # noqa: ANN001, ANN202 - numba
    """SHA-256d of data[start:start+n] into out[o:o+32]."""
    if ssl:
        c = ctx.ctypes.data
        m = c + CTX_BYTES - 32
        hi(c)
        hu(c, data.ctypes.data + start, n)
        hf(m, c)
        hi(c)
        hu(c, m, 32)
        hf(out.ctypes.data + o, c)
    else:
        sha256d_into(data, start, n, out, o, K, H0)


@njit(cache=True)
def _merkle(hashes, level, out, K, H0, ssl, hi, hu, hf, ctx):  # noqa: ANN001, ANN202 - numba
    """The merkle root of the (n, 32) ``hashes`` into out[0:32] (Bitcoin's: odd levels duplicate their last
    hash); ``level``: a scratch of 32 * (n + 1) bytes."""
    n = hashes.shape[0]
    for i in range(n):
        for j in range(32):
            level[32 * i + j] = hashes[i, j]
    while n > 1:
        if n % 2:
            for j in range(32):
                level[32 * n + j] = level[32 * (n - 1) + j]
            n += 1
        for i in range(n // 2):  # in place: node i reads 2i, 2i+1 (>= i) before writing i
            _hd(level, 64 * i, 64, level, 32 * i, K, H0, ssl, hi, hu, hf, ctx)
        n //= 2
    for j in range(32):
        out[j] = level[j]


def _entry(dispatcher: Any, args: tuple[Any, ...]) -> Any:
    """The compiled entry point of ``dispatcher`` for the types of ``args``. Calling it skips the
    dispatcher's type resolution, which is slow (~0.7 ms a call) for ctypes function arguments."""
    sig = tuple(dispatcher.typeof_pyval(a) for a in args)
    cres = dispatcher.overloads.get(sig)
    if cres is None:
        dispatcher.compile(sig)
        cres = dispatcher.overloads[sig]
    return cres.entry_point


_SSL_FUNCS: Any = None


def hash_args(use_openssl: bool = True) -> tuple[Any, ...]:
    """The hash args of the kernels: (K, H0, ssl, init, update, final, ctx)."""
    global _SSL_FUNCS
    if _SSL_FUNCS is None:
        from fundtrail.ingest.bitcoin.hashing import _load_openssl

        _SSL_FUNCS = _load_openssl() or ()
    funcs = _SSL_FUNCS if use_openssl else ()
    if not funcs:  # never called (ssl = False), but the kernels need functions of the same shape
        from numba import cfunc, types

        vp = types.voidptr
        funcs = (cfunc(types.int32(vp))(lambda c: 0).ctypes,
                 cfunc(types.int32(vp, vp, types.uintp))(lambda c, p, n: 0).ctypes,
                 cfunc(types.int32(vp, vp))(lambda m, c: 0).ctypes)
        return (_K, _H0, False, *funcs, np.zeros(CTX_BYTES, np.uint8))
    return (_K, _H0, True, *funcs, np.zeros(CTX_BYTES, np.uint8))
