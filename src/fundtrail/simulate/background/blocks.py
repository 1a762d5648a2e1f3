"""The block generator kernel: background transactions spending one or two coins of a user, paying
another user and returning change, serialised straight into a per-block buffer with their txids and wtxids.

Each user owns up to ``ADDRS`` addresses and at most ``SLOTS`` unspent coins (fixed arrays: memory stays
flat however many blocks are written); a co-spend of two coins joins their addresses in a union-find."""

from __future__ import annotations

import numpy as np
from numba import njit

from fundtrail.simulate.background.hashing import _hd
from fundtrail.simulate.background.scripts import _key, _script

SLOTS = 4
ADDRS = 8

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
              wtxids: np.ndarray, sh: np.ndarray, sw: np.ndarray, ssl: bool, hi, hu, hf,  # noqa: ANN001
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
        _script(seed, v, jv, tmp, q, scr, sh, sw, ssl, hi, hu, hf, ctx)
        q += 34
        if n_out == 2:
            q = _put_u64(tmp, q, change)
            tmp[q] = 34
            q += 1
            _script(seed, u, ju, tmp, q, scr, sh, sw, ssl, hi, hu, hf, ctx)
            q += 34
        body_end = q
        q = _put_u32(tmp, q, 0)
        _hd(tmp, 0, q, txids, count * 32, sh, sw, ssl, hi, hu, hf, ctx)
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
                _key(seed ^ 0x5A5A, u * 64 + ja, height % 251, script, 0, scr, sh, sw, ssl, hi, hu, hf, ctx)
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
                _key(seed, u, ja, script, 0, scr, sh, sw, ssl, hi, hu, hf, ctx)
                for b2 in range(32):
                    buf[p + 3 + b2] = script[b2]
                buf[p + 35] = 0xAC
                p += 36
        p = _put_u32(buf, p, 0)
        _hd(buf, offs[count], p - offs[count], wtxids, count * 32, sh, sw, ssl, hi, hu, hf, ctx)
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
