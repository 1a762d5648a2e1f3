"""The Bitcoin side of the address dictionary, keyed by address *key* instead of address string.

An output's key (script.KEYW bytes: kind, witness version, length, payload) is looked up in a numba
open-addressing hash table (:class:`KeyTable`): 64-bit hash of the key's words, linear probing, every hit
verified against the full key bytes. Only keys never seen before get a new id, and only those are encoded
to address strings (numba base58check / bech32, at flush time). New ids become permanent in the same
workspace commit as the rows using them (tables ``addresses`` and ``utxo_address_keys``).

Memory per address (the one structure that grows with the chain rather than with the batch): the key
bytes in an arena (3 + payload length: 23 bytes for P2PKH/P2SH/P2WPKH, 35 for P2WSH/P2TR), an int64 arena
offset, an int64 id, and one int64 slot at a load factor between 1/4 and 1/2 (16-32 bytes): about
55-85 bytes an address (~60 for a P2PKH/P2WPKH-heavy chain), against ~200 in a Python dict of bytes.
Growing an array doubles it, so for a moment old and new copies coexist.

Addresses other writers put into ``addresses`` (for example tags for addresses not yet seen) are found by
decoding their strings to keys when the index opens, so one address never gets two ids.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fundtrail.ingest.bitcoin import script as S
from fundtrail.model.chain import BitcoinNetwork
from fundtrail.store.workspace import Transaction, Workspace

_EMPTY = -1
_MIX = np.uint64(0x9E3779B97F4A7C15)


@nb.njit(cache=True, inline="always")
def _key_hash(keys, i):  # pragma: no cover - numba
    """64-bit hash of keys[i, :3 + keys[i, 2]] (words of 8 bytes, multiply-xorshift)."""
    n = 3 + np.int64(keys[i, 2])
    h = np.uint64(0xCBF29CE484222325) ^ np.uint64(n)
    j = 0
    while j < n:
        w = np.uint64(0)
        for k in range(8):
            if j + k < n:
                w |= np.uint64(keys[i, j + k]) << np.uint64(8 * k)
        h = (h ^ w) * _MIX
        h ^= h >> np.uint64(29)
        j += 8
    return h


@nb.njit(cache=True, inline="always")
def _arena_hash(arena, p):  # pragma: no cover - numba
    n = 3 + np.int64(arena[p + 2])
    h = np.uint64(0xCBF29CE484222325) ^ np.uint64(n)
    j = 0
    while j < n:
        w = np.uint64(0)
        for k in range(8):
            if j + k < n:
                w |= np.uint64(arena[p + j + k]) << np.uint64(8 * k)
        h = (h ^ w) * _MIX
        h ^= h >> np.uint64(29)
        j += 8
    return h


@nb.njit(cache=True)
def _upsert(keys, ids_in, slots, arena, e_off, e_id, state, out):  # pragma: no cover - numba
    """Id of each key (out[i]; -1 for kind 0). Unknown keys are added: with ids_in[i] when ids_in is
    non-empty, else with the next id (state[2]) in order of first appearance. state = [entries, arena
    bytes, next id]; the caller guarantees room for keys.shape[0] more entries. Returns the entries added."""
    mask = np.uint64(slots.shape[0] - 1)
    ne = state[0]
    na = state[1]
    nxt = state[2]
    added = 0
    explicit = ids_in.shape[0] > 0
    for i in range(keys.shape[0]):
        if keys[i, 0] == 0:
            out[i] = -1
            continue
        n = 3 + np.int64(keys[i, 2])
        s = _key_hash(keys, i) & mask
        while True:
            e = slots[s]
            if e == _EMPTY:
                for j in range(n):
                    arena[na + j] = keys[i, j]
                e_off[ne] = na
                na += n
                if explicit:
                    e_id[ne] = ids_in[i]
                else:
                    e_id[ne] = nxt
                    nxt += 1
                slots[s] = ne
                out[i] = e_id[ne]
                ne += 1
                added += 1
                break
            p = e_off[e]
            same = True
            for j in range(n):
                if arena[p + j] != keys[i, j]:
                    same = False
                    break
            if same:
                out[i] = e_id[e]
                break
            s = (s + np.uint64(1)) & mask
    state[0] = ne
    state[1] = na
    state[2] = nxt
    return added


@nb.njit(cache=True)
def _rehash(slots, arena, e_off, n):  # pragma: no cover - numba
    mask = np.uint64(slots.shape[0] - 1)
    for e in range(n):
        s = _arena_hash(arena, e_off[e]) & mask
        while slots[s] != _EMPTY:
            s = (s + np.uint64(1)) & mask
        slots[s] = e


@nb.njit(cache=True)
def _unpack(arena, e_off, lo, hi, keys):  # pragma: no cover - numba
    """keys[k] = the zero-padded key of entry lo + k."""
    for e in range(lo, hi):
        p = e_off[e]
        n = 3 + np.int64(arena[p + 2])
        for j in range(n):
            keys[e - lo, j] = arena[p + j]


@nb.njit(cache=True)
def _pad_binary(data, offsets, keys):  # pragma: no cover - numba
    """Zero-padded (n, KEYW) keys from a binary column (stored keys may lack trailing zero bytes)."""
    for i in range(keys.shape[0]):
        a = offsets[i]
        b = min(offsets[i + 1], a + keys.shape[1])
        for j in range(b - a):
            keys[i, j] = data[a + j]


class KeyTable:
    """Address key -> id, in flat NumPy arrays (see the module docstring for the bytes per address)."""

    def __init__(self, entries: int = 1 << 15) -> None:
        """``entries``: how many keys to make room for up front (it grows by doubling beyond)."""
        entries = max(int(entries), 16)
        self.slots = np.full(1 << (2 * entries - 1).bit_length(), _EMPTY, np.int64)
        self.arena = np.zeros(entries * 36, np.uint8)
        self.e_off = np.zeros(entries, np.int64)
        self.e_id = np.zeros(entries, np.int64)
        self.state = np.zeros(3, np.int64)  # entries, arena bytes used, next id

    def __len__(self) -> int:
        return int(self.state[0])

    @property
    def next_id(self) -> int:
        return int(self.state[2])

    @next_id.setter
    def next_id(self, value: int) -> None:
        self.state[2] = value

    def nbytes(self) -> int:
        return self.slots.nbytes + self.arena.nbytes + self.e_off.nbytes + self.e_id.nbytes

    def _reserve(self, more: int) -> None:
        ne, na = int(self.state[0]), int(self.state[1])
        need = ne + more
        if need > len(self.e_off):
            size = max(need, 2 * len(self.e_off))
            self.e_off = np.resize(self.e_off, size)
            self.e_id = np.resize(self.e_id, size)
        if na + more * S.KEYW > len(self.arena):
            self.arena = np.resize(self.arena, max(na + more * S.KEYW, 2 * len(self.arena)))
        if 2 * need > len(self.slots):
            cap = len(self.slots)
            while 2 * need > cap:
                cap *= 2
            self.slots = np.full(cap, _EMPTY, np.int64)
            _rehash(self.slots, self.arena, self.e_off, ne)

    def upsert(self, keys: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
        """Ids of (n, KEYW) keys (-1 where kind is 0); unknown keys are added (with ``ids`` if given)."""
        keys = np.ascontiguousarray(keys, np.uint8)
        out = np.empty(len(keys), np.int64)
        if len(keys):
            self._reserve(len(keys))
            ids_in = np.ascontiguousarray(ids, np.int64) if ids is not None else np.zeros(0, np.int64)
            _upsert(keys, ids_in, self.slots, self.arena, self.e_off, self.e_id, self.state, out)
        return out

    def keys(self, lo: int, hi: int) -> np.ndarray:
        """The zero-padded keys of entries lo..hi-1 (in insertion order)."""
        keys = np.zeros((max(hi - lo, 0), S.KEYW), np.uint8)
        if hi > lo:
            _unpack(self.arena, self.e_off, lo, hi, keys)
        return keys

    def ids(self, lo: int, hi: int) -> np.ndarray:
        return self.e_id[lo:hi].copy()

    def truncate(self, n: int) -> None:
        """Forget the entries added after the first ``n`` (rebuilds the slots)."""
        if n >= len(self):
            return
        self.state[0] = n
        self.state[1] = int(self.e_off[n]) if n < len(self.e_off) else self.state[1]
        self.slots.fill(_EMPTY)
        _rehash(self.slots, self.arena, self.e_off, n)


def address_types(keys: np.ndarray) -> pa.Array:
    """The address type of each key: p2pkh, p2sh, p2wpkh, p2wsh, p2tr or witness_unknown."""
    kind, ver, ln = keys[:, 0], keys[:, 1], keys[:, 2]
    code = np.full(len(keys), S.ST_WITNESS_UNKNOWN, np.int8)
    code[kind == S.KIND_PKH] = S.ST_P2PKH
    code[kind == S.KIND_SH] = S.ST_P2SH
    wit = kind == S.KIND_WIT
    code[wit & (ver == 0) & (ln == 20)] = S.ST_P2WPKH
    code[wit & (ver == 0) & (ln == 32)] = S.ST_P2WSH
    code[wit & (ver == 1) & (ln == 32)] = S.ST_P2TR
    return pa.array(S.SCRIPT_TYPES, pa.string()).take(pa.array(code))


def _binary_of_keys(keys: np.ndarray) -> pa.Array:
    """Keys as a binary column of their 3 + length bytes."""
    lens = 3 + keys[:, 2].astype(np.int64)
    offsets = np.zeros(len(keys) + 1, np.int32)
    np.cumsum(lens, out=offsets[1:])
    data = keys[np.arange(keys.shape[1])[None, :] < lens[:, None]]
    return pa.Array.from_buffers(pa.binary(), len(keys), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


# Parquet writer options of the two dictionary tables: zstd level 1; dictionary only on the low-cardinality
# columns; statistics only on the id
WRITE_OPTIONS = {
    "addresses": dict(compression="zstd", compression_level=1, use_dictionary=["chain", "script_type"],
                      write_statistics=["address_id"]),
    "utxo_address_keys": dict(compression="zstd", compression_level=1, use_dictionary=["chain"],
                              write_statistics=["address_id"]),
}


class AddressIndex:
    def __init__(self, ws: Workspace, chain: str, network: BitcoinNetwork) -> None:
        self.chain = chain
        self.network = network
        n_keys = ws.row_count("utxo_address_keys", chain)
        self.table = KeyTable(max(n_keys + (n_keys >> 3), 1 << 15))
        # part by part, so loading needs the table plus one part, not every key of the chain at once
        key_ids = []
        for path in ws.part_paths("utxo_address_keys", chain):
            kt = pq.read_table(path, columns=["address_id", "key"])
            ids = kt["address_id"].to_numpy()
            key_ids.append(ids)
            col = kt["key"].combine_chunks()
            offsets = np.frombuffer(col.buffers()[1], np.int32)[col.offset:col.offset + len(col) + 1]
            data = np.frombuffer(col.buffers()[2], np.uint8) if col.buffers()[2] is not None \
                else np.zeros(1, np.uint8)
            step = 1 << 20
            for lo in range(0, len(col), step):
                hi = min(lo + step, len(col))
                keys = np.zeros((hi - lo, S.KEYW), np.uint8)
                _pad_binary(data, offsets[lo:hi + 1].astype(np.int64), keys)
                self.table.upsert(keys, ids[lo:hi])
        nxt = 0
        other_parts = []
        if ws.row_count("addresses", chain) != n_keys:  # addresses from other writers: decode them to keys
            known = np.concatenate(key_ids) if key_ids else np.zeros(0, np.int64)
            for path in ws.part_paths("addresses", chain):
                at = pq.read_table(path, columns=["address_id", "address"])
                ids = at["address_id"].to_numpy()
                if len(ids):
                    nxt = max(nxt, int(ids.max()) + 1)
                other = ~np.isin(ids, known)
                if other.any():
                    other_parts.append((ids[other], at["address"].filter(pa.array(other)).to_pylist()))
        else:
            for ids in key_ids:
                if len(ids):
                    nxt = max(nxt, int(ids.max()) + 1)
        for oids, addrs in other_parts:
            keys = np.zeros((len(addrs), S.KEYW), np.uint8)
            for j, a in enumerate(addrs):
                k = S.key_of_address(a, network) if a is not None else None
                if k is not None:
                    keys[j] = np.frombuffer(k, np.uint8)
            self.table.upsert(keys, oids)  # an address already known by key keeps its id
        self.table.next_id = nxt
        self._flushed = len(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def ids(self, keys: np.ndarray) -> np.ndarray:
        """Address id of each (n, KEYW) key, -1 where the key is empty (no address)."""
        return self.table.upsert(keys)

    def pending_count(self) -> int:
        return len(self.table) - self._flushed

    def flush_into(self, txn: Transaction) -> int:
        lo, hi = self._flushed, len(self.table)
        if hi == lo:
            return 0
        ids = self.table.ids(lo, hi)
        keys = self.table.keys(lo, hi)
        strings = S.encode_keys(keys, self.network)
        chain = pa.array([self.chain], pa.string()).take(pa.array(np.zeros(len(ids), np.int64)))
        txn.append("addresses", self.chain, pa.table({
            "chain": chain, "address_id": ids, "address": strings, "script_type": address_types(keys)}),
            **WRITE_OPTIONS["addresses"])
        txn.append("utxo_address_keys", self.chain, pa.table({"chain": chain, "address_id": ids,
                                                              "key": _binary_of_keys(keys)}),
                   **WRITE_OPTIONS["utxo_address_keys"])
        self._flushed = hi
        return hi - lo

    def discard_pending(self) -> None:
        """Forget ids handed out since the last flush (their batch did not commit)."""
        lo, hi = self._flushed, len(self.table)
        if hi > lo:
            first = int(self.table.e_id[lo])
            self.table.truncate(lo)
            self.table.next_id = min(self.table.next_id, first)
