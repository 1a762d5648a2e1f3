"""Output-script classification and address encoding (docs/formats.md, "Script types").

The hot path works on whole batches: :func:`classify` (a numba kernel) gives every output its script type
and a fixed-width *address key* (kind, witness version, length, payload), so the address dictionary can
be looked up by key and only addresses never seen before are encoded to strings (:func:`encode_keys`,
numba base58check / bech32 / bech32m).

P2PK outputs are shown the way mainstream explorers (and Bitcoin Core before 0.?? / bitcoin-etl) show
them: as the P2PKH address of the public key (``hash160(pubkey)``). Bare multisig, OP_RETURN and
non-standard outputs have no address (null).
"""

from __future__ import annotations

import hashlib

import numba as nb
import numpy as np

from fundtrail.model.address import b58check_encode, segwit_encode
from fundtrail.model.chain import BitcoinNetwork

# script types (index into SCRIPT_TYPES)
ST_NONSTANDARD = 0
ST_P2PK = 1
ST_P2PKH = 2
ST_P2SH = 3
ST_P2WPKH = 4
ST_P2WSH = 5
ST_P2TR = 6
ST_MULTISIG = 7
ST_OP_RETURN = 8
ST_WITNESS_UNKNOWN = 9
SCRIPT_TYPES: tuple[str, ...] = (
    "nonstandard", "p2pk", "p2pkh", "p2sh", "p2wpkh", "p2wsh", "p2tr", "multisig", "op_return",
    "witness_unknown",
)
SCRIPT_TYPE_CODE = {name: i for i, name in enumerate(SCRIPT_TYPES)}

# address key: [kind, witness version, payload length, payload (<= 40 bytes), zero padding]
KEYW = 43
KIND_NONE = 0
KIND_PKH = 1  # base58check with the network's P2PKH prefix (P2PKH, and P2PK shown as P2PKH)
KIND_SH = 2  # base58check with the P2SH prefix
KIND_WIT = 3  # bech32 (v0) / bech32m (v1+) segwit address


@nb.njit(cache=True, inline="always")
def _is_pubkey(buf, p, ln):  # pragma: no cover - numba
    if ln == 33:
        return buf[p] == 2 or buf[p] == 3
    if ln == 65:
        return buf[p] == 4 or buf[p] == 6 or buf[p] == 7
    return False


@nb.njit(cache=True)
def classify_one(buf, p, ln):  # pragma: no cover - numba
    """Script type of the script buf[p:p+ln] (Bitcoin Core's Solver rules, see docs/formats.md)."""
    if ln == 25 and buf[p] == 0x76 and buf[p + 1] == 0xA9 and buf[p + 2] == 20 and buf[p + 23] == 0x88 \
            and buf[p + 24] == 0xAC:
        return ST_P2PKH
    if ln == 23 and buf[p] == 0xA9 and buf[p + 1] == 20 and buf[p + 22] == 0x87:
        return ST_P2SH
    if 4 <= ln <= 42:
        op = buf[p]
        if (op == 0 or 0x51 <= op <= 0x60) and buf[p + 1] == ln - 2:
            if op == 0:
                if ln == 22:
                    return ST_P2WPKH
                if ln == 34:
                    return ST_P2WSH
                return ST_NONSTANDARD
            if op == 0x51 and ln == 34:
                return ST_P2TR
            return ST_WITNESS_UNKNOWN
    if ln >= 1 and buf[p] == 0x6A:
        return ST_OP_RETURN
    if (ln == 35 or ln == 67) and buf[p] == ln - 2 and buf[p + ln - 1] == 0xAC and _is_pubkey(buf, p + 1, ln - 2):
        return ST_P2PK
    if ln >= 37 and buf[p + ln - 1] == 0xAE:
        m = buf[p]
        n = buf[p + ln - 2]
        if 0x51 <= m <= 0x60 and 0x51 <= n <= 0x60 and m <= n:
            keys = n - 0x50
            q = p + 1
            end = p + ln - 2
            k = 0
            while q < end:
                sz = buf[q]
                if (sz != 33 and sz != 65) or q + 1 + sz > end or not _is_pubkey(buf, q + 1, sz):
                    return ST_NONSTANDARD
                q += 1 + sz
                k += 1
            if q == end and k == keys:
                return ST_MULTISIG
    return ST_NONSTANDARD


@nb.njit(cache=True)
def classify(buf, offs, lens, types, keys):  # pragma: no cover - numba
    """Fill ``types[i]`` and ``keys[i]`` for each output script buf[offs[i]:offs[i]+lens[i]].

    P2PK keys are left for the caller (they need hash160 of the public key); their kind is KIND_PKH with
    payload length 0 until filled.
    """
    for i in range(offs.shape[0]):
        p = offs[i]
        ln = lens[i]
        t = classify_one(buf, p, ln)
        types[i] = t
        if t == ST_P2PKH:
            keys[i, 0] = KIND_PKH
            keys[i, 2] = 20
            for j in range(20):
                keys[i, 3 + j] = buf[p + 3 + j]
        elif t == ST_P2SH:
            keys[i, 0] = KIND_SH
            keys[i, 2] = 20
            for j in range(20):
                keys[i, 3 + j] = buf[p + 2 + j]
        elif t == ST_P2WPKH or t == ST_P2WSH or t == ST_P2TR or t == ST_WITNESS_UNKNOWN:
            keys[i, 0] = KIND_WIT
            op = buf[p]
            keys[i, 1] = 0 if op == 0 else op - 0x50
            plen = ln - 2
            keys[i, 2] = plen
            for j in range(plen):
                keys[i, 3 + j] = buf[p + 2 + j]
        elif t == ST_P2PK:
            keys[i, 0] = KIND_PKH


def fill_p2pk_keys(buf: np.ndarray, offs: np.ndarray, lens: np.ndarray, types: np.ndarray,
                   keys: np.ndarray) -> None:
    """Give P2PK outputs the key of the P2PKH address of their public key (hash160)."""
    idx = np.flatnonzero(types == ST_P2PK)
    if not len(idx):
        return
    cache: dict[bytes, bytes] = {}
    for i in idx.tolist():
        p = int(offs[i])
        pub = buf[p + 1:p + int(lens[i]) - 1].tobytes()
        h = cache.get(pub)
        if h is None:
            h = hashlib.new("ripemd160", hashlib.sha256(pub).digest()).digest()
            cache[pub] = h
        keys[i, 2] = 20
        keys[i, 3:23] = np.frombuffer(h, np.uint8)


def script_key(script: bytes) -> tuple[int, bytes]:
    """(script type, address key) of one script; the slow path for single scripts (RPC prevouts, seeds)."""
    buf = np.frombuffer(script, np.uint8) if script else np.zeros(1, np.uint8)
    offs = np.zeros(1, np.int64)
    lens = np.array([len(script)], np.int64)
    types = np.zeros(1, np.int8)
    keys = np.zeros((1, KEYW), np.uint8)
    classify(buf, offs, lens, types, keys)
    fill_p2pk_keys(buf, offs, lens, types, keys)
    return int(types[0]), keys[0].tobytes()


# --- address strings ----------------------------------------------------------------------------------

def encode_key_py(key: bytes, network: BitcoinNetwork) -> str | None:
    """The address string of one key (reference implementation; the batch path is :func:`encode_keys`)."""
    kind, ver, ln = key[0], key[1], key[2]
    payload = key[3:3 + ln]
    if kind == KIND_PKH:
        return b58check_encode(network.p2pkh_prefix, payload)
    if kind == KIND_SH:
        return b58check_encode(network.p2sh_prefix, payload)
    if kind == KIND_WIT:
        return segwit_encode(network.hrp, ver, payload)
    return None


def key_of_address(address: str, network: BitcoinNetwork) -> bytes | None:
    """The key of an address string (the inverse of :func:`encode_key_py`), or None if it is not one."""
    from fundtrail.model.address import b58check_decode, segwit_decode

    key = bytearray(KEYW)
    try:
        if address.lower().startswith(network.hrp + "1"):
            _, ver, prog = segwit_decode(address)
            key[0], key[1], key[2] = KIND_WIT, ver, len(prog)
            key[3:3 + len(prog)] = prog
            return bytes(key)
        version, payload = b58check_decode(address)
    except ValueError:
        return None
    if len(payload) != 20:
        return None
    if version == network.p2pkh_prefix:
        key[0] = KIND_PKH
    elif version == network.p2sh_prefix:
        key[0] = KIND_SH
    else:
        return None
    key[2] = 20
    key[3:23] = payload
    return bytes(key)


_B58 = np.frombuffer(b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", np.uint8).copy()
_B32 = np.frombuffer(b"qpzry9x8gf2tvdw0s3jn54khce6mua7l", np.uint8).copy()
_GEN = np.array([0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3], dtype=np.int64)
# bech32 polymod: the xor of the generators selected by the 5 bits shifted out, for each of the 32 values
_GEN32 = np.array([np.bitwise_xor.reduce(np.append(_GEN[[g for g in range(5) if (t >> g) & 1]], 0))
                   for t in range(32)], dtype=np.int64)


def _polymod_steps(c: int, steps: int) -> int:
    for _ in range(steps):
        c = ((c & 0x1FFFFFF) << 5) ^ int(_GEN32[c >> 25])
    return c


# two polymod steps at once (the polymod is linear): the contribution of the state's top 10 bits, so a pair of
# symbols costs one dependent table lookup instead of two
_GEN1024 = np.array([_polymod_steps(x << 20, 2) for x in range(1024)], dtype=np.int64)
OUTW = 96  # widest address string (bech32 limit is 90)


_B58_5 = 58 ** 5  # 656356768 < 2**32: base58 digits five at a time


@nb.njit(cache=True)
def _encode_keys(keys, chk, p2pkh, p2sh, hrp, out, offsets, B58, B32, GEN, GEN2):  # pragma: no cover - numba
    """Address strings of ``keys`` into one byte buffer ``out`` (string i is out[offsets[i]:offsets[i+1]]).

    ``chk``: (n, 32) SHA-256d of the 21-byte base58check payload of each key (only the first 4 bytes are
    used). Base58 divides 32-bit limbs by 58**5, five digits per pass (~50 divisions an address instead of
    ~850 with a digit at a time)."""
    raw = np.zeros(28, np.uint8)
    limbs = np.zeros(7, np.uint64)
    digits = np.zeros(48, np.uint8)
    data = np.zeros(80, np.int64)
    nh = hrp.shape[0]
    hx = np.zeros(2 * nh + 1, np.int64)  # the hrp expansion of the bech32 checksum
    for j in range(nh):
        hx[j] = hrp[j] >> 5
        hx[nh + 1 + j] = hrp[j] & 31
    hrp_state = np.int64(1)
    for j in range(2 * nh + 1):
        hrp_state = (((hrp_state & 0x1FFFFFF) << 5) ^ hx[j]) ^ GEN[hrp_state >> 25]
    pos = 0
    offsets[0] = 0
    for i in range(keys.shape[0]):
        kind = keys[i, 0]
        if kind == KIND_PKH or kind == KIND_SH:
            # 3 zero bytes | version | hash160 | checksum = 28 bytes = 7 big-endian 32-bit limbs
            raw[3] = p2pkh if kind == KIND_PKH else p2sh
            for j in range(20):
                raw[4 + j] = keys[i, 3 + j]
            for j in range(4):
                raw[24 + j] = chk[i, j]
            for k in range(7):
                limbs[k] = (np.uint64(raw[4 * k]) << np.uint64(24)) | (np.uint64(raw[4 * k + 1]) << np.uint64(16)) \
                    | (np.uint64(raw[4 * k + 2]) << np.uint64(8)) | np.uint64(raw[4 * k + 3])
            nd = 0
            first = 0
            while first < 7 and limbs[first] == 0:
                first += 1
            while first < 7:
                rem = np.uint64(0)
                for k in range(first, 7):
                    cur = (rem << np.uint64(32)) | limbs[k]
                    limbs[k] = cur // np.uint64(_B58_5)
                    rem = cur % np.uint64(_B58_5)
                for _k in range(5):
                    digits[nd] = rem % np.uint64(58)
                    rem //= np.uint64(58)
                    nd += 1
                while first < 7 and limbs[first] == 0:
                    first += 1
            while nd > 0 and digits[nd - 1] == 0:
                nd -= 1
            zeros = 0
            while zeros < 25 and raw[3 + zeros] == 0:
                zeros += 1
            for _j in range(zeros):
                out[pos] = B58[0]
                pos += 1
            for k in range(nd - 1, -1, -1):
                out[pos] = B58[digits[k]]
                pos += 1
        elif kind == KIND_WIT:
            ver = keys[i, 1]
            ln = keys[i, 2]
            nd = 0
            data[nd] = ver
            nd += 1
            acc = 0
            bits = 0
            for j in range(ln):
                acc = ((acc << 8) | keys[i, 3 + j]) & 0xFFFFFF
                bits += 8
                while bits >= 5:
                    bits -= 5
                    data[nd] = (acc >> bits) & 31
                    nd += 1
            if bits > 0:
                data[nd] = (acc << (5 - bits)) & 31
                nd += 1
            chk_ = hrp_state  # the polymod after the hrp expansion (the same for every address)
            for j in range(nd, nd + 6):  # the checksum's six zero symbols
                data[j] = 0
            m = nd + 6
            j = 0
            while j + 1 < m:  # two symbols a step (GEN2: the two steps' table)
                chk_ = ((chk_ & 0xFFFFF) << 10) ^ (data[j] << 5) ^ data[j + 1] ^ GEN2[chk_ >> 20]
                j += 2
            if j < m:
                chk_ = (((chk_ & 0x1FFFFFF) << 5) ^ data[j]) ^ GEN[chk_ >> 25]
            chk_ ^= 1 if ver == 0 else 0x2BC830A3
            for j in range(nh):
                out[pos] = hrp[j]
                pos += 1
            out[pos] = 49  # '1'
            pos += 1
            for j in range(nd):
                out[pos] = B32[data[j]]
                pos += 1
            for j in range(6):
                out[pos] = B32[(chk_ >> (5 * (5 - j))) & 31]
                pos += 1
        offsets[i + 1] = pos


def encode_keys(keys: np.ndarray, network: BitcoinNetwork):
    """Address strings (an Arrow string array, null for keyless outputs) of a (n, KEYW) key array."""
    import pyarrow as pa

    from fundtrail.ingest.bitcoin.hashing import sha256d_spans

    keys = np.ascontiguousarray(keys, np.uint8)
    n = keys.shape[0]
    b58 = np.flatnonzero((keys[:, 0] == KIND_PKH) | (keys[:, 0] == KIND_SH)) if n else np.zeros(0, np.int64)
    chk = np.zeros((n, 32), np.uint8)
    if len(b58):  # the base58check checksums, one batch hash: version byte | hash160
        payload = np.empty((len(b58), 21), np.uint8)
        payload[:, 0] = np.where(keys[b58, 0] == KIND_PKH, network.p2pkh_prefix, network.p2sh_prefix)
        payload[:, 1:] = keys[b58, 3:23]
        chk[b58] = sha256d_spans(payload.reshape(-1), np.arange(len(b58), dtype=np.int64) * 21, 21)
    out = np.empty(OUTW * n, np.uint8)
    offsets = np.zeros(n + 1, np.int32)
    hrp = np.frombuffer(network.hrp.encode(), np.uint8).copy()
    _encode_keys(keys, chk, network.p2pkh_prefix, network.p2sh_prefix, hrp, out, offsets, _B58, _B32, _GEN32,
                 _GEN1024)
    valid = keys[:, 0] != KIND_NONE
    validity = None
    nulls = int(n - valid.sum())
    if nulls:
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets),
                                                  pa.py_buffer(out[:int(offsets[-1])].copy())],
                                 null_count=nulls)


def strings_from_fixed(chars: np.ndarray, lengths: np.ndarray, valid: np.ndarray | None = None):
    """An Arrow string array from a (n, width) uint8 array of characters and their lengths."""
    import pyarrow as pa

    n = chars.shape[0]
    lengths = lengths.astype(np.int64)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    if n and lengths.min() == chars.shape[1]:
        data = np.ascontiguousarray(chars).reshape(-1)
    else:
        mask = np.arange(chars.shape[1])[None, :] < lengths[:, None]
        data = chars[mask]
    validity = None
    nulls = 0
    if valid is not None and not valid.all():
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
        nulls = int((~valid).sum())
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)],
                                 null_count=nulls)


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8).copy()


@nb.njit(cache=True)
def _hex(raw, reverse, out, HEX):  # pragma: no cover - numba
    n, w = raw.shape
    for i in range(n):
        q = 2 * w * i
        for j in range(w):
            v = raw[i, w - 1 - j] if reverse else raw[i, j]
            out[q + 2 * j] = HEX[v >> 4]
            out[q + 2 * j + 1] = HEX[v & 15]


def hex_strings(raw: np.ndarray, reverse: bool = True):
    """Hex strings (Arrow) of a (n, w) byte array; ``reverse`` for Bitcoin's display order of hashes."""
    import pyarrow as pa

    raw = np.ascontiguousarray(raw, np.uint8)
    n, w = raw.shape
    out = np.empty(2 * w * n, np.uint8)
    _hex(raw, reverse, out, _HEX)
    offsets = np.arange(0, 2 * w * n + 1, 2 * w, dtype=np.int64)
    if 2 * w * n < 2**31:
        return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets.astype(np.int32)),
                                                      pa.py_buffer(out)])
    return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out)]) \
        .cast(pa.string())


def op_return_data(script: bytes) -> bytes:
    """The data an OP_RETURN script carries: its pushes concatenated (small-int opcodes carry none).

    A script with any other opcode after OP_RETURN, or a push running past the end, gives the raw bytes
    after OP_RETURN.
    """
    out = bytearray()
    i = 1
    n = len(script)
    while i < n:
        op = script[i]
        i += 1
        if 1 <= op <= 0x4B:
            ln = op
        elif op == 0x4C and i + 1 <= n:
            ln = script[i]
            i += 1
        elif op == 0x4D and i + 2 <= n:
            ln = int.from_bytes(script[i:i + 2], "little")
            i += 2
        elif op == 0x4E and i + 4 <= n:
            ln = int.from_bytes(script[i:i + 4], "little")
            i += 4
        elif op == 0 or op == 0x4F or 0x51 <= op <= 0x60:
            continue
        else:
            return bytes(script[1:])
        if i + ln > n:
            return bytes(script[1:])
        out += script[i:i + ln]
        i += ln
    return bytes(out)
