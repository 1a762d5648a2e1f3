"""SHA-256 inside the background generator's compiled kernels: OpenSSL's SHA256_Init/Update/Final called
from numba through ctypes function pointers (the "hash args"), or the ingester's numba SHA-256 where
libcrypto is missing; SHA-256d and the Bitcoin merkle root on top."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from fundtrail.ingest.bitcoin.hashing import _sha256, _sha256d

# Hashing inside the kernels: OpenSSL's SHA256_Init/Update/Final (SHA-NI where the CPU has it) called from
# numba through ctypes function pointers, passed in as arguments ("hash args": sh, sw, ssl, hi, hu, hf, ctx)
# so the compiled kernels stay cacheable; without libcrypto (ssl = False) the ingester's numba SHA-256
# (fundtrail.ingest.bitcoin.hashing) with its scratch: sh (uint64[8], the state), sw (uint64[64], the
# message schedule). ctx: a uint8 scratch of CTX_BYTES: the SHA256_CTX (or the numba padding tail), then
# 32 bytes for the inner hash of SHA-256d.
CTX_BYTES = 256


@njit(cache=True, inline="always")
def _h(data, start, n, out, o, sh, sw, ssl, hi, hu, hf, ctx):  # noqa: ANN001, ANN202 - numba
    """SHA-256 of data[start:start+n] into out[o:o+32]."""
    if ssl:
        c = ctx.ctypes.data
        hi(c)
        hu(c, data.ctypes.data + start, n)
        hf(out.ctypes.data + o, c)
    else:
        _sha256(data, start, n, out, o, sh, sw, ctx)


@njit(cache=True, inline="always")
def _hd(data, start, n, out, o, sh, sw, ssl, hi, hu, hf, ctx):  # noqa: ANN001, ANN202 - numba
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
        _sha256d(data, start, n, out, o, sh, sw, ctx, ctx[CTX_BYTES - 32:])


@njit(cache=True)
def _merkle(hashes, level, out, sh, sw, ssl, hi, hu, hf, ctx):  # noqa: ANN001, ANN202 - numba
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
            _hd(level, 64 * i, 64, level, 32 * i, sh, sw, ssl, hi, hu, hf, ctx)
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
    """The hash args of the kernels: (sh, sw, ssl, init, update, final, ctx)."""
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
        return (*_scratch(), False, *funcs, np.zeros(CTX_BYTES, np.uint8))
    return (*_scratch(), True, *funcs, np.zeros(CTX_BYTES, np.uint8))


def _scratch() -> tuple[np.ndarray, np.ndarray]:
    """The numba SHA-256's state and message schedule."""
    return np.zeros(8, np.uint64), np.zeros(64, np.uint64)
