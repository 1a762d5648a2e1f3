"""The Bitcoin side of the address dictionary, keyed by address *key* instead of address string.

Every output's key (script.KEYW bytes: kind, witness version, length, payload) is hashed to 64 bits in a
numba kernel; the batch is de-duplicated on the hashes (verified byte for byte), only the unique keys are
looked up in the dictionary, and only keys never seen before are encoded to address strings (numba
base58check / bech32). New ids become permanent in the same workspace commit as the rows using them
(tables ``addresses`` and ``utxo_address_keys``).

Addresses other writers put into ``addresses`` (for example tags for addresses not yet seen) are found by
decoding their strings to keys when the index opens, so one address never gets two ids.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pyarrow as pa

from fundtrail.ingest.bitcoin import script as S
from fundtrail.model.chain import BitcoinNetwork
from fundtrail.store.workspace import Transaction, Workspace


@nb.njit(cache=True)
def _hash_rows(keys, out):  # pragma: no cover - numba
    for i in range(keys.shape[0]):
        h = np.uint64(0xCBF29CE484222325)
        for j in range(3 + keys[i, 2]):
            h = (h ^ np.uint64(keys[i, j])) * np.uint64(0x100000001B3)
        h ^= h >> np.uint64(29)
        out[i] = h


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


class AddressIndex:
    def __init__(self, ws: Workspace, chain: str, network: BitcoinNetwork) -> None:
        self.chain = chain
        self.network = network
        kt = ws.read("utxo_address_keys", chain, columns=["address_id", "key"])
        keys = [k.rstrip(b"\0") for k in kt["key"].to_pylist()]
        self._ids: dict[bytes, int] = dict(zip(keys, kt["address_id"].to_pylist(), strict=True))
        at = ws.read("addresses", chain, columns=["address_id", "address"])
        ids = at["address_id"].to_numpy()
        self._next = int(ids.max()) + 1 if len(ids) else 0
        if len(ids) != len(self._ids):
            known = set(self._ids.values())
            for i, a in zip(ids.tolist(), at["address"].to_pylist(), strict=True):
                if i not in known and a is not None:
                    k = S.key_of_address(a, network)
                    if k is not None:
                        self._ids.setdefault(k.rstrip(b"\0"), i)
        self._pending: list[tuple[np.ndarray, np.ndarray, pa.Array]] = []  # (ids, keys, strings)

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self, keys: np.ndarray) -> np.ndarray:
        """Address id of each (n, KEYW) key, -1 where the key is empty (no address)."""
        n = keys.shape[0]
        out = np.full(n, -1, np.int64)
        valid = keys[:, 0] != 0
        if not valid.any():
            return out
        vk = np.ascontiguousarray(keys[valid])
        h = np.empty(len(vk), np.uint64)
        _hash_rows(vk, h)
        _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
        if not np.array_equal(vk, vk[first[inverse]]):  # a 64-bit hash collision inside the batch
            as_bytes = vk.view(f"S{S.KEYW}").ravel()
            _, first, inverse = np.unique(as_bytes, return_index=True, return_inverse=True)
        uk = vk[first]
        ukb = uk.view(f"S{S.KEYW}").ravel().tolist()  # bytes, trailing zeros stripped
        table = self._ids
        got = np.fromiter((table.get(k, -1) for k in ukb), np.int64, len(ukb))
        new = np.flatnonzero(got < 0)
        if len(new):
            new = new[np.argsort(first[new], kind="stable")]  # ids in order of first appearance
            ids = np.arange(self._next, self._next + len(new), dtype=np.int64)
            self._next += len(new)
            got[new] = ids
            for k, i in zip((ukb[j] for j in new.tolist()), ids.tolist(), strict=True):
                table[k] = i
            nk = uk[new]
            self._pending.append((ids, nk, S.encode_keys(nk, self.network)))
        out[valid] = got[inverse.reshape(-1)]
        return out

    def pending_count(self) -> int:
        return sum(len(p[0]) for p in self._pending)

    def flush_into(self, txn: Transaction) -> int:
        if not self._pending:
            return 0
        ids = np.concatenate([p[0] for p in self._pending])
        keys = np.concatenate([p[1] for p in self._pending])
        strings = pa.concat_arrays([p[2] for p in self._pending])
        chain = pa.array([self.chain], pa.string()).take(pa.array(np.zeros(len(ids), np.int64)))
        txn.append("addresses", self.chain, pa.table({
            "chain": chain, "address_id": ids, "address": strings, "script_type": address_types(keys)}))
        kb = pa.array(np.ascontiguousarray(keys).view(f"S{S.KEYW}").ravel().tolist(), pa.binary())
        txn.append("utxo_address_keys", self.chain, pa.table({"chain": chain, "address_id": ids, "key": kb}))
        self._pending = []
        return len(ids)

    def discard_pending(self) -> None:
        """Forget ids handed out since the last flush (their batch did not commit)."""
        for ids, keys, _ in self._pending:
            for k in keys.view(f"S{S.KEYW}").ravel().tolist():
                self._ids.pop(k, None)
            self._next = min(self._next, int(ids[0]))
        self._pending = []
