"""The addresses of background users: user u's j-th address is derived from sha256(seed, u, j), as a
P2TR key-path or a P2WSH 1-of-1 script (alternating), so every script derives with SHA-256 alone."""

from __future__ import annotations

import numpy as np
from numba import njit

from fundtrail.simulate.background.hashing import _h, hash_args


@njit(cache=True)
def _key(seed, u, j, out, o, scr, sh, sw, ssl, hi, hu, hf, ctx):  # noqa: ANN001, ANN202 - numba
    """The 32-byte key of background user u's j-th address into out[o:o+32]: sha256(seed, u, j).
    ``scr``: a scratch of >= 17 bytes."""
    for i in range(8):
        scr[i] = (seed >> (8 * i)) & 0xFF
    for i in range(8):
        scr[8 + i] = (u >> (8 * i)) & 0xFF
    scr[16] = j
    _h(scr, 0, 17, out, o, sh, sw, ssl, hi, hu, hf, ctx)


@njit(cache=True)
def _script(seed, u, j, out, o, scr, sh, sw, ssl, hi, hu, hf, ctx):  # noqa: ANN001, ANN202 - numba
    """Write the 34-byte scriptPubKey of (u, j): P2TR for even u+j, P2WSH(<02||key> OP_CHECKSIG) else.
    ``scr``: a scratch of >= 64 bytes."""
    if (u + j) % 2 == 0:
        out[o] = 0x51
        out[o + 1] = 0x20
        _key(seed, u, j, out, o + 2, scr, sh, sw, ssl, hi, hu, hf, ctx)
    else:
        # witness script <0x21 0x02 key 0xac> at scr[24:59], the key written in place
        _key(seed, u, j, scr, 26, scr, sh, sw, ssl, hi, hu, hf, ctx)
        scr[24] = 0x21
        scr[25] = 0x02
        scr[58] = 0xAC
        out[o] = 0x00
        out[o + 1] = 0x20
        _h(scr, 24, 35, out, o + 2, sh, sw, ssl, hi, hu, hf, ctx)


@njit(cache=True)
def _scripts_of(seed, users, idx, sh, sw, ssl, hi, hu, hf, ctx):  # noqa: ANN001, ANN202 - numba
    out = np.empty((users.shape[0], 34), np.uint8)
    row = np.empty(34, np.uint8)
    scr = np.empty(64, np.uint8)
    for i in range(users.shape[0]):
        _script(seed, users[i], idx[i], row, 0, scr, sh, sw, ssl, hi, hu, hf, ctx)
        for b in range(34):
            out[i, b] = row[b]
    return out


def scripts_of(seed: int, users: np.ndarray, idx: np.ndarray, *, use_openssl: bool = True) -> np.ndarray:
    """The (n, 34) scriptPubKeys of background addresses (users[i], idx[i])."""
    return _scripts_of(seed, np.asarray(users, np.int64), np.asarray(idx, np.int64), *hash_args(use_openssl))
