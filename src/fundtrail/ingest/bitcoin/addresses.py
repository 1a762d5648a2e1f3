"""The Bitcoin side of the address dictionary, keyed by address *key* instead of address string.

An output's key (script.KEYW bytes: kind, witness version, length, payload) is reduced to a 128-bit
fingerprint (two independent 64-bit hashes of its bytes) and looked up in an on-disk index of sorted runs
(:mod:`fundtrail.ingest.bitcoin.runs`: records fingerprint -> id, 24 bytes each, the newest in RAM up to a
memory budget, older ones read from disk block by block). Only keys never seen before get a new id, in
order of first appearance, and only those are encoded to address strings (numba base58check / bech32).
New ids become permanent in the same workspace commit as the rows using them: the ``addresses`` rows and
the index's new run are written by the same transaction.

Two distinct addresses would share an id only if their 128-bit fingerprints collided: about n^2 / 2^129,
below 10^-20 for a billion addresses. The keys are themselves hash outputs (hash160, sha256, x-only keys),
so the fingerprint's inputs are already uniform.

Addresses other writers put into ``addresses`` (for example tags for addresses not yet seen) are found by
decoding their strings to keys when the index opens: every id at or above the index's ``next_id`` that
the index does not hold.
"""

from __future__ import annotations

from pathlib import Path

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fundtrail.ingest.bitcoin import script as S
from fundtrail.ingest.bitcoin.runs import RunSet, sort_order
from fundtrail.model.chain import BitcoinNetwork
from fundtrail.store.workspace import Transaction, Workspace

GROUP = "address_index"
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_F1 = np.uint64(0xFF51AFD7ED558CCD)
_F2 = np.uint64(0xC4CEB9FE1A85EC53)


@nb.njit(cache=True, inline="always")
def _fmix(h):  # pragma: no cover - numba
    h ^= h >> np.uint64(33)
    h *= _F1
    h ^= h >> np.uint64(33)
    h *= _F2
    h ^= h >> np.uint64(33)
    return h


@nb.njit(cache=True)
def fingerprints(keys, h1, h2):  # pragma: no cover - numba
    """Two independent 64-bit hashes of each key's 3 + length bytes (0, 0 for kind 0: no address)."""
    for i in range(keys.shape[0]):
        if keys[i, 0] == 0:
            h1[i] = 0
            h2[i] = 0
            continue
        n = 3 + np.int64(keys[i, 2])
        a = np.uint64(0x243F6A8885A308D3) ^ np.uint64(n)
        b = np.uint64(0x13198A2E03707344) ^ (np.uint64(n) * _M2)
        j = 0
        while j < n:
            w = np.uint64(0)
            for k in range(8):
                if j + k < n:
                    w |= np.uint64(keys[i, j + k]) << np.uint64(8 * k)
            a = _fmix(a ^ w) * _M1
            b = _fmix(b + w * _M2) ^ (b >> np.uint64(31))
            j += 8
        h1[i] = _fmix(a)
        h2[i] = _fmix(b ^ a * _M2)


@nb.njit(cache=True)
def _unique_sorted(a1, a2, order, u1, u2, firsts, group):  # pragma: no cover - numba
    """The distinct keys of (a1, a2) in ``order`` (a stable sort): each one's key into u1/u2 and its first
    row into ``firsts``, and for every row the index of its key (``group``). Returns how many."""
    m = 0
    for i in range(order.shape[0]):
        j = order[i]
        if i == 0 or a1[j] != u1[m - 1] or a2[j] != u2[m - 1]:
            u1[m] = a1[j]
            u2[m] = a2[j]
            firsts[m] = j
            m += 1
        group[j] = m - 1
    return m


def key_fingerprints(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys = np.ascontiguousarray(keys, np.uint8)
    h1 = np.empty(len(keys), np.uint64)
    h2 = np.empty(len(keys), np.uint64)
    if len(keys):
        fingerprints(keys, h1, h2)
    return h1, h2


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


def _max_id(path: Path) -> int:
    """The largest address_id of a Parquet part, from its footer's statistics where it has them."""
    md = pq.ParquetFile(path).metadata
    col = md.schema.names.index("address_id")
    best = -1
    for g in range(md.num_row_groups):
        st = md.row_group(g).column(col).statistics
        if st is None or not st.has_min_max:
            m = pc.max(pq.read_table(path, columns=["address_id"])["address_id"]).as_py()
            return -1 if m is None else int(m)
        best = max(best, int(st.max))
    return best


# Parquet writer options of the dictionary table: zstd level 1 (the address strings shrink to about half;
# lz4 would keep 80 % of them); dictionary only on the low-cardinality columns; statistics only on the id;
# the ids of a part ascend one by one, which DELTA_BINARY_PACKED stores in almost nothing, cheaper than
# zstd over plain int64s
WRITE_OPTIONS = {
    "addresses": dict(compression="zstd", compression_level=1, use_dictionary=["chain", "script_type"],
                      write_statistics=["address_id"], column_encoding={"address_id": "DELTA_BINARY_PACKED"}),
}


class AddressIndex:
    """Address key -> dense int64 id for one Bitcoin-like chain (see the module docstring)."""

    def __init__(self, ws: Workspace, chain: str, network: BitcoinNetwork, *, memory: int = 128 << 20) -> None:
        self.ws = ws
        self.chain = chain
        self.network = network
        self.index = RunSet(ws, GROUP, chain, 1, deletes=False, memory=memory)
        state = ws.chain(chain) or {}
        self.next_id = int(state.get("address_index_next", 0))
        self._pending_keys: list[np.ndarray] = []
        self._pending_first = self.next_id
        self._adopt_other_writers()

    def _adopt_other_writers(self) -> None:
        """Index the addresses other writers gave ids at or above next_id (decoded from their strings)."""
        ids_all: list[np.ndarray] = []
        strings: list[str | None] = []
        # every writer hands out max id + 1, so id ranges grow along the part list: walk it from the end
        # and stop at the first part wholly below next_id (read from its footer: O(1) parts, not O(parts))
        for path in reversed(self.ws.part_paths("addresses", self.chain)):
            if _max_id(path) < self.next_id:
                break
            t = pq.read_table(path, columns=["address_id", "address"],
                              filters=pc.field("address_id") >= self.next_id)
            if t.num_rows:
                ids_all.insert(0, t["address_id"].to_numpy())
                strings[0:0] = t["address"].to_pylist()
        if not ids_all:
            return
        ids = np.concatenate(ids_all)
        keys = np.zeros((len(ids), S.KEYW), np.uint8)
        for j, a in enumerate(strings):
            k = S.key_of_address(a, self.network) if a is not None else None
            if k is not None:
                keys[j] = np.frombuffer(k, np.uint8)
        ok = keys[:, 0] != 0
        h1, h2 = key_fingerprints(keys[ok])
        found, vals = self.index.lookup(h1, h2)
        found &= vals[:, 0] >= 0  # a tombstone (see forget_from) is not an id
        if (~found).any():
            self.index.add(h1[~found], h2[~found], ids[ok][~found].reshape(-1, 1))
        self.next_id = max(self.next_id, int(ids.max()) + 1)
        self._pending_first = self.next_id
        self._adopted = True

    def __len__(self) -> int:
        return len(self.index)

    def ids(self, keys: np.ndarray) -> np.ndarray:
        """Address id of each (n, KEYW) key, -1 where the key is empty (no address); unknown keys get the
        next ids in order of first appearance."""
        keys = np.ascontiguousarray(keys, np.uint8)
        n = len(keys)
        out = np.full(n, -1, np.int64)
        if n == 0:
            return out
        h1, h2 = key_fingerprints(keys)
        valid = np.flatnonzero(keys[:, 0] != 0)
        if len(valid) == 0:
            return out
        a1, a2 = h1[valid], h2[valid]
        order = sort_order(a1, a2)  # stable: the first row of each key comes first
        nv = len(valid)
        u1, u2 = np.empty(nv, np.uint64), np.empty(nv, np.uint64)
        firsts = np.empty(nv, np.int64)  # row (within valid) of each unique key's first appearance
        group = np.empty(nv, np.int64)  # unique key of each row
        m = _unique_sorted(a1, a2, order, u1, u2, firsts, group)
        u1, u2, firsts = u1[:m], u2[:m], firsts[:m]
        found, vals = self.index.lookup(u1, u2)
        found &= vals[:, 0] >= 0  # a tombstone (see forget_from) is not an id
        uid = vals[:, 0].copy()
        new_k = np.flatnonzero(~found)  # in key order
        if len(new_k):
            # in order of first appearance: the first rows are distinct positions, so a scatter sorts them
            at = np.full(len(valid), -1, np.int64)
            at[firsts[new_k]] = new_k
            new = at[at >= 0]
            uid[new] = np.arange(self.next_id, self.next_id + len(new), dtype=np.int64)
            self.next_id += len(new)
            self.index.add(u1[new_k], u2[new_k], uid[new_k].reshape(-1, 1), order=np.arange(len(new_k)))
            self._pending_keys.append(keys[valid[firsts[new]]])
        out[valid] = uid[group]
        return out

    def pending_count(self) -> int:
        return self.next_id - self._pending_first

    def flush_into(self, txn: Transaction) -> int:
        """Write the ids handed out since the last flush (``addresses`` rows and the index run) in ``txn``
        and record next_id in the chain's state; returns how many."""
        lo, hi = self._pending_first, self.next_id
        if self._pending_keys:
            keys = np.concatenate(self._pending_keys)
            ids = np.arange(lo, hi, dtype=np.int64)
            strings = S.encode_keys(keys, self.network)
            chain = pa.array([self.chain], pa.string()).take(pa.array(np.zeros(len(ids), np.int64)))
            txn.append("addresses", self.chain, pa.table({
                "chain": chain, "address_id": ids, "address": strings, "script_type": address_types(keys)}),
                **WRITE_OPTIONS["addresses"])
        self.index.flush_into(txn)
        txn.set_chain(self.chain, address_index_next=hi)
        self._pending_keys = []
        self._pending_first = hi
        return hi - lo

    def forget_from(self, first_id: int, txn: Transaction) -> int:
        """Drop the ids ``first_id`` and above (a reorganisation rolled back the batches that handed them
        out): their ``addresses`` rows go, and the index gets a tombstone (value -1) for each of their keys,
        newer than the stale record, so they are unknown again and get the next ids when seen on the
        final chain, as in a clean ingest. Returns how many ids were dropped."""
        if self._pending_keys:
            raise RuntimeError("forget_from with ids not yet flushed")
        t = self.ws.read("addresses", self.chain, columns=["address_id", "address"],
                         filter=pc.field("address_id") >= first_id)
        keys = np.zeros((t.num_rows, S.KEYW), np.uint8)
        for j, a in enumerate(t["address"].to_pylist()):
            k = S.key_of_address(a, self.network) if a is not None else None
            if k is not None:
                keys[j] = np.frombuffer(k, np.uint8)
        keys = keys[keys[:, 0] != 0]
        if len(keys):
            h1, h2 = key_fingerprints(keys)
            self.index.add(h1, h2, np.full((len(keys), 1), -1, np.int64))
        txn.truncate_column_above("addresses", self.chain, "address_id", first_id - 1)
        self.index.flush_into(txn)
        txn.set_chain(self.chain, address_index_next=first_id)
        self.next_id = self._pending_first = first_id
        return t.num_rows

    def discard_pending(self) -> None:
        """Forget ids handed out since the last flush (their batch did not commit)."""
        self.index.reload()
        self.next_id = self._pending_first = int((self.ws.chain(self.chain) or {}).get("address_index_next", 0))
        self._pending_keys = []
        self._adopt_other_writers()
