"""Bulk ordinary Bitcoin traffic for small and large worlds, generated and serialised by compiled kernels.

A fixed population of background users (``user:b<N>``) each owns up to ``ADDRS`` addresses (P2TR key-path
and P2WSH 1-of-1 scripts, alternating, so every script derives with SHA-256 alone) and at most ``SLOTS``
unspent coins. Each transaction spends one or two coins of one user (two coins of the same user: a co-spend
the truth records in a per-user union-find), pays another user, and returns change (to a fresh address, or
reusing one once the user has ``ADDRS``). Coins live in fixed arrays, so memory stays flat however many
blocks are written; transactions are serialised straight into a per-block buffer with their txids and
wtxids (double SHA-256, computed by the numba SHA-256 below) and never kept.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from fundtrail.ingest.bitcoin.hashing import _H0 as _SHA_H0
from fundtrail.ingest.bitcoin.hashing import _K as _SHA_K
from fundtrail.model.chain import BitcoinNetwork

SLOTS = 4
ADDRS = 8

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
def _key(seed, u, j, out, o, scr, K, H0, ssl, hi, hu, hf, ctx):  # noqa: ANN001, ANN202 - numba
    """The 32-byte key of background user u's j-th address into out[o:o+32]: sha256(seed, u, j).
    ``scr``: a scratch of >= 17 bytes."""
    for i in range(8):
        scr[i] = (seed >> (8 * i)) & 0xFF
    for i in range(8):
        scr[8 + i] = (u >> (8 * i)) & 0xFF
    scr[16] = j
    _h(scr, 0, 17, out, o, K, H0, ssl, hi, hu, hf, ctx)


@njit(cache=True)
def _script(seed, u, j, out, o, scr, K, H0, ssl, hi, hu, hf, ctx):  # noqa: ANN001, ANN202 - numba
    """Write the 34-byte scriptPubKey of (u, j): P2TR for even u+j, P2WSH(<02||key> OP_CHECKSIG) else.
    ``scr``: a scratch of >= 64 bytes."""
    if (u + j) % 2 == 0:
        out[o] = 0x51
        out[o + 1] = 0x20
        _key(seed, u, j, out, o + 2, scr, K, H0, ssl, hi, hu, hf, ctx)
    else:
        # witness script <0x21 0x02 key 0xac> at scr[24:59], the key written in place
        _key(seed, u, j, scr, 26, scr, K, H0, ssl, hi, hu, hf, ctx)
        scr[24] = 0x21
        scr[25] = 0x02
        scr[58] = 0xAC
        out[o] = 0x00
        out[o + 1] = 0x20
        _h(scr, 24, 35, out, o + 2, K, H0, ssl, hi, hu, hf, ctx)


@njit(cache=True, inline="always")
def _rng(s: np.uint64) -> tuple[np.uint64, np.int64]:
    """xorshift64*: the next state and a non-negative 63-bit draw."""
    s ^= s >> np.uint64(12)
    s ^= s << np.uint64(25)
    s ^= s >> np.uint64(27)
    return s, np.int64((s * np.uint64(2685821657736338717)) >> np.uint64(1))


@njit(cache=True)
def _put_u32(buf: np.ndarray, p: int, v: int) -> int:
    for i in range(4):
        buf[p + i] = (v >> (8 * i)) & 0xFF
    return p + 4


@njit(cache=True)
def _put_u64(buf: np.ndarray, p: int, v: int) -> int:
    for i in range(8):
        buf[p + i] = (v >> (8 * i)) & 0xFF
    return p + 8


@njit(cache=True)
def _find(par: np.ndarray, x: int) -> int:
    while par[x] != x:
        par[x] = par[par[x]]
        x = par[x]
    return x


@njit(cache=True)
def gen_block(seed: int, height: int, n_tx: int, rng_state: np.ndarray, slot_value: np.ndarray,
              slot_txid: np.ndarray, slot_vout: np.ndarray, slot_addr: np.ndarray, next_addr: np.ndarray,
              uf: np.ndarray, funded: np.ndarray, buf: np.ndarray, offs: np.ndarray, txids: np.ndarray,
              wtxids: np.ndarray, K: np.ndarray, H0: np.ndarray, ssl: bool, hi, hu, hf,  # noqa: ANN001
              ctx: np.ndarray) -> tuple[int, int]:
    """Generate up to ``n_tx`` background transactions into ``buf``; return (count, fees)."""
    U = slot_value.shape[0] // 4
    nf = funded.shape[0]
    tmp = np.empty(400, np.uint8)
    script = np.empty(34, np.uint8)
    scr = np.empty(64, np.uint8)
    ins = np.empty(2, np.int64)
    p = 0
    fees = 0
    count = 0
    s = rng_state[0]
    for _t in range(n_tx):
        # xorshift64*
        u = -1
        for _try in range(24):
            s, r = _rng(s)
            if _try % 2 == 0:
                cand = int(r % (U))
            else:
                cand = funded[int(r % (nf))]
            ok = False
            for k in range(4):
                if slot_value[cand * 4 + k] > 3000:
                    ok = True
            if ok:
                u = cand
                break
        if u < 0:
            continue
        s, r = _rng(s)
        # inputs: one coin, or two when the user has two (a co-spend)
        nin = 0
        for k in range(4):
            if slot_value[u * 4 + k] > 3000 and nin < 2:
                ins[nin] = u * 4 + k
                nin += 1
        if nin == 2 and (r >> 7) % (10) >= 3:
            nin = 1
        total = 0
        for i in range(nin):
            total += slot_value[ins[i]]
        fee = 150 + 110 * nin
        # recipient with a free slot
        v = -1
        for _try in range(8):
            s, r2 = _rng(s)
            cand = int(r2 % (U))
            if cand == u:
                continue
            for k in range(4):
                if slot_value[cand * 4 + k] == 0:
                    v = cand
                    break
            if v >= 0:
                break
        self_send = v < 0
        if self_send:
            v = u  # nobody with room to receive: the user moves the coins to a fresh address of its own
        frac = 10 + int((r >> 20) % (60))
        pay = (total - fee) * frac // 100
        change = total - fee - pay
        if total - fee < 1000:
            continue
        n_out = 2 if (change >= 1000 and pay >= 1000 and not self_send) else 1
        if n_out == 1:
            pay = total - fee
            change = 0
        # addresses: recipient's fresh or reused, change fresh (until ADDRS) else reused
        jv = next_addr[v]
        if jv > 0 and (jv >= 8 or (r >> 40) % (4) == 0):
            jv = int((r >> 33) % (min(8, next_addr[v])))
        else:
            next_addr[v] += 1
        ju = next_addr[u]
        if ju >= 8 or (r >> 44) % (5) == 0:
            ju = slot_addr[ins[0]]
        else:
            next_addr[u] += 1
        # co-spend evidence for the truth: the two input addresses of one user
        if nin == 2:
            a = _find(uf, u * 8 + slot_addr[ins[0]])
            b = _find(uf, u * 8 + slot_addr[ins[1]])
            if a != b:
                uf[b] = a
        # --- serialise: non-witness first (for the txid) into tmp
        q = 0
        q = _put_u32(tmp, q, 2)
        tmp[q] = nin
        q += 1
        for i in range(nin):
            for b2 in range(32):
                tmp[q + b2] = slot_txid[ins[i], b2]
            q += 32
            q = _put_u32(tmp, q, slot_vout[ins[i]])
            tmp[q] = 0
            q += 1
            q = _put_u32(tmp, q, 0xFFFFFFFD)
        tmp[q] = n_out
        q += 1
        q = _put_u64(tmp, q, pay)
        tmp[q] = 34
        q += 1
        _script(seed, v, jv, tmp, q, scr, K, H0, ssl, hi, hu, hf, ctx)
        q += 34
        if n_out == 2:
            q = _put_u64(tmp, q, change)
            tmp[q] = 34
            q += 1
            _script(seed, u, ju, tmp, q, scr, K, H0, ssl, hi, hu, hf, ctx)
            q += 34
        body_end = q
        q = _put_u32(tmp, q, 0)
        _hd(tmp, 0, q, txids, count * 32, K, H0, ssl, hi, hu, hf, ctx)
        # full serialisation into buf: version, marker/flag, body, witnesses, locktime
        offs[count] = p
        for i in range(4):
            buf[p + i] = tmp[i]
        buf[p + 4] = 0
        buf[p + 5] = 1
        p += 6
        for i in range(4, body_end):
            buf[p] = tmp[i]
            p += 1
        for i in range(nin):
            ja = slot_addr[ins[i]]
            if (u + ja) % 2 == 0:  # P2TR key path: one 64-byte signature
                buf[p] = 1
                buf[p + 1] = 64
                p += 2
                _key(seed ^ 0x5A5A, u * 64 + ja, height % 251, script, 0, scr, K, H0, ssl, hi, hu, hf, ctx)
                for b2 in range(32):
                    buf[p + b2] = script[b2]
                    buf[p + 32 + b2] = txids[count * 32 + b2]
                p += 64
            else:  # P2WSH: signature, witness script <02||key> OP_CHECKSIG
                buf[p] = 2
                buf[p + 1] = 71
                p += 2
                buf[p] = 0x30
                buf[p + 1] = 0x44
                buf[p + 2] = 0x02
                buf[p + 3] = 0x20
                for b2 in range(32):
                    buf[p + 4 + b2] = txids[count * 32 + b2] & 0x7F
                buf[p + 36] = 0x02
                buf[p + 37] = 0x20
                for b2 in range(32):
                    buf[p + 38 + b2] = slot_txid[ins[i], b2] & 0x7F
                buf[p + 70] = 0x01
                p += 71
                buf[p] = 35
                buf[p + 1] = 0x21
                buf[p + 2] = 0x02
                _key(seed, u, ja, script, 0, scr, K, H0, ssl, hi, hu, hf, ctx)
                for b2 in range(32):
                    buf[p + 3 + b2] = script[b2]
                buf[p + 35] = 0xAC
                p += 36
        p = _put_u32(buf, p, 0)
        _hd(buf, offs[count], p - offs[count], wtxids, count * 32, K, H0, ssl, hi, hu, hf, ctx)
        # state: spend inputs, create outputs
        for i in range(nin):
            slot_value[ins[i]] = 0
        for k in range(4):
            if slot_value[v * 4 + k] == 0:
                sl = v * 4 + k
                slot_value[sl] = pay
                slot_vout[sl] = 0
                slot_addr[sl] = jv
                for b2 in range(32):
                    slot_txid[sl, b2] = txids[count * 32 + b2]
                break
        if n_out == 2:
            for k in range(4):
                if slot_value[u * 4 + k] == 0:
                    sl = u * 4 + k
                    slot_value[sl] = change
                    slot_vout[sl] = 1
                    slot_addr[sl] = ju
                    for b2 in range(32):
                        slot_txid[sl, b2] = txids[count * 32 + b2]
                    break
        fees += fee
        count += 1
    offs[count] = p
    rng_state[0] = s
    return count, fees


@njit(cache=True)
def _scripts_of(seed, users, idx, K, H0, ssl, hi, hu, hf, ctx):  # noqa: ANN001, ANN202 - numba
    out = np.empty((users.shape[0], 34), np.uint8)
    row = np.empty(34, np.uint8)
    scr = np.empty(64, np.uint8)
    for i in range(users.shape[0]):
        _script(seed, users[i], idx[i], row, 0, scr, K, H0, ssl, hi, hu, hf, ctx)
        for b in range(34):
            out[i, b] = row[b]
    return out


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


def scripts_of(seed: int, users: np.ndarray, idx: np.ndarray, *, use_openssl: bool = True) -> np.ndarray:
    """The (n, 34) scriptPubKeys of background addresses (users[i], idx[i])."""
    return _scripts_of(seed, np.asarray(users, np.int64), np.asarray(idx, np.int64), *hash_args(use_openssl))


class Background:
    """The background economy of one world (see the module docstring)."""

    def __init__(self, seed: int, users: int, per_block: int, net: BitcoinNetwork, *,
                 use_openssl: bool = True) -> None:
        self.seed = seed
        self.hash = hash_args(use_openssl)
        self.U = users
        self.per_block = per_block
        self.net = net
        self.hrp = net.hrp
        self.slot_value = np.zeros(users * SLOTS, np.int64)
        self.slot_txid = np.zeros((users * SLOTS, 32), np.uint8)
        self.slot_vout = np.zeros(users * SLOTS, np.int32)
        self.slot_addr = np.zeros(users * SLOTS, np.int64)
        self.next_addr = np.zeros(users, np.int64)
        self.uf = np.arange(users * ADDRS, dtype=np.int64)
        self.rng = np.array([np.uint64(seed * 0x9E3779B97F4A7C15 % (1 << 64) or 1)], np.uint64)
        self.funded = np.arange(users, dtype=np.int64)
        cap = per_block * 420 + 1024
        self.buf = np.zeros(cap, np.uint8)
        self.offs = np.zeros(per_block + 1, np.int64)
        self.txids = np.zeros(per_block * 32, np.uint8)
        self.wtxids = np.zeros(per_block * 32, np.uint8)
        self.tx_total = 0
        self._gen: Any = None
        self._merkle: Any = None
        self._root = np.zeros(32, np.uint8)

    def merkle_root(self, hashes: np.ndarray) -> bytes:
        """The merkle root of an (n, 32) uint8 array of hashes (txids or wtxids, internal order)."""
        if not len(hashes):
            return b"\x00" * 32
        args = (np.ascontiguousarray(hashes, np.uint8), np.empty(32 * (len(hashes) + 1), np.uint8), self._root,
                *self.hash)
        if self._merkle is None:
            self._merkle = _entry(_merkle, args)
        self._merkle(*args)
        return self._root.tobytes()

    def funding_scripts(self, n: int) -> tuple[np.ndarray, list[bytes]]:
        users = np.arange(n, dtype=np.int64) * max(1, self.U // n)
        idx = np.zeros(n, np.int64)
        self.next_addr[users] = 1
        sc = _scripts_of(self.seed, users, idx, *self.hash)
        return users, [bytes(r) for r in sc]

    def fund(self, users: np.ndarray, txid: bytes, first_n: int, values: list[int]) -> None:
        for i, u in enumerate(users):
            sl = int(u) * SLOTS
            self.slot_value[sl] = values[i]
            self.slot_txid[sl] = np.frombuffer(txid, np.uint8)
            self.slot_vout[sl] = first_n + i
            self.slot_addr[sl] = 0

    def block(self, height: int, time: int) -> tuple[bytes, np.ndarray, np.ndarray, int]:
        """The block's background transactions: (their serialisations back to back, txids (n, 32),
        wtxids (n, 32), fees)."""
        args = (self.seed, height, self.per_block, self.rng, self.slot_value, self.slot_txid, self.slot_vout,
                self.slot_addr, self.next_addr, self.uf, self.funded, self.buf, self.offs, self.txids,
                self.wtxids, *self.hash)
        if self._gen is None:
            self._gen = _entry(gen_block, args)
        n, fees = self._gen(*args)
        self.tx_total += n
        return (self.buf[:self.offs[n]].tobytes(), self.txids[:n * 32].reshape(n, 32),
                self.wtxids[:n * 32].reshape(n, 32), fees)

    # --- truth ------------------------------------------------------------------------------------------
    # Everything below works on chunks of users with vectorised address encoding (the ingester's numba
    # bech32/bech32m encoder straight into an Arrow string array), so the truth of a large world is written
    # with flat memory: no per-address Python object outlives its chunk.
    OWNER_CHUNK_USERS = 1 << 14

    def _used(self, lo: int = 0, hi: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(user, address index) of every address in use for users lo..hi, ordered by user then index."""
        hi = self.U if hi is None else hi
        n_used = np.minimum(self.next_addr[lo:hi], ADDRS)
        users = np.repeat(np.arange(lo, hi, dtype=np.int64), n_used)
        starts = np.cumsum(n_used) - n_used
        idx = np.arange(len(users), dtype=np.int64) - np.repeat(starts, n_used)
        return users, idx

    def _chunks(self):  # noqa: ANN202 - generator of (users, idx)
        for lo in range(0, self.U, self.OWNER_CHUNK_USERS):
            users, idx = self._used(lo, min(self.U, lo + self.OWNER_CHUNK_USERS))
            if len(users):
                yield users, idx

    def address_count(self) -> int:
        return int(np.minimum(self.next_addr, ADDRS).sum())

    def address_array(self, users: np.ndarray, idx: np.ndarray):  # noqa: ANN201 - pa.StringArray
        """The address strings of (users, idx) as one Arrow string array (numba bech32/bech32m)."""
        from fundtrail.ingest.bitcoin.script import KEYW, KIND_WIT, encode_keys

        sc = _scripts_of(self.seed, users, idx, *self.hash)
        keys = np.zeros((len(users), KEYW), np.uint8)
        keys[:, 0] = KIND_WIT
        keys[:, 1] = sc[:, 0] == 0x51  # OP_1: taproot (v1), else v0 (P2WSH)
        keys[:, 2] = 32
        keys[:, 3:35] = sc[:, 2:34]
        return encode_keys(keys, self.net)

    def _addresses(self, users: np.ndarray, idx: np.ndarray) -> list[str]:
        return self.address_array(users, idx).to_pylist()

    def roots(self, users: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """The true co-spend group of each address: the flat index (user * ADDRS + j) of its group's root."""
        return _roots(self.uf, users * ADDRS + idx)

    def inline_owners(self) -> bool:
        return self.address_count() <= 400_000

    def owners(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for users, idx in self._chunks():
            out.update(zip(self._addresses(users, idx), [f"user:b{u}" for u in users.tolist()], strict=True))
        return out

    def cluster_groups(self) -> list[list[str]]:
        if not self.inline_owners():
            return []
        roots: dict[int, list[str]] = {}
        for users, idx in self._chunks():
            for a, r in zip(self._addresses(users, idx), self.roots(users, idx).tolist(), strict=True):
                roots.setdefault(r, []).append(a)
        return sorted((sorted(g) for g in roots.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))

    def write_owners(self, path: Path) -> str:
        """Large worlds: owners and true co-spend clusters of background addresses as Parquet
        (address, owner, cluster) instead of inline JSON, written one row group per chunk of users."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        schema = pa.schema([("address", pa.string()), ("owner", pa.string()), ("cluster", pa.int64())])
        with pq.ParquetWriter(path, schema) as wr:
            for users, idx in self._chunks():
                owner = pc.binary_join_element_wise("user:b", pc.cast(pa.array(users), pa.string()), "")
                wr.write_table(pa.Table.from_arrays(
                    [self.address_array(users, idx), owner, pa.array(self.roots(users, idx))], schema=schema))
        return path.name


@njit(cache=True)
def _roots(uf: np.ndarray, flat: np.ndarray) -> np.ndarray:
    out = np.empty(flat.shape[0], np.int64)
    for i in range(flat.shape[0]):
        x = flat[i]
        while uf[x] != x:
            x = uf[x]
        out[i] = x
    return out


def attach_background(w: Any) -> None:
    """Give a world its background economy: funded from the mining pool once the premine has matured,
    then ``per_block`` transactions in every activity block."""
    from fundtrail.simulate.btc import TxOut, finish_tx  # noqa: F401

    sc = w.sc
    bg = Background(w.seed, sc.background_users, sc.background_tx_per_block, w.ledger.net)
    w.background_gen = bg
    orig_premine = w.premine

    def premine_and_fund() -> None:
        orig_premine()
        n = min(bg.U, 20_000)
        users, scripts = bg.funding_scripts(n)
        budget = min(1_500 * 100_000_000, w.pool.balance() * 9 // 10)
        each = budget // n
        for i in range(0, n, 2_000):
            chunk = list(range(i, min(n, i + 2_000)))
            tx = w.ledger.external_payment(w.pool, [(scripts[j], each) for j in chunk],
                                           [f"user:b{int(users[j])}" for j in chunk], "background funding")
            bg.fund(users[chunk], tx.txid, 0, [each] * len(chunk))
        bg.funded = np.unique(users)
        w.ledger.background = bg.block
        w.ledger.merkle_array = bg.merkle_root
    w.premine = premine_and_fund
    _ = hashlib
