"""The address dictionary: a dense int64 id per address string, per chain, append-only.

Kernels see only the ids. New ids are handed out in memory and become permanent when the batch that
introduced them commits (``flush_into``), in the same manifest commit as the rows that use them, so a
crash never leaves a row pointing at an id the dictionary lacks.

Memory: the book keeps a hash map of the chain's addresses (about 100 bytes an address); mainnet-scale
chains want the on-disk dictionary of the Spark engine.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fundtrail.store.workspace import Transaction, Workspace

NO_ADDRESS = -1


class AddressBook:
    def __init__(self, ws: Workspace, chain: str) -> None:
        self.chain = chain
        existing = ws.read("addresses", chain, columns=["address_id", "address"])
        ids = existing["address_id"].to_numpy()
        self._ids: dict[str, int] = dict(zip(existing["address"].to_pylist(), ids.tolist(), strict=True))
        self._next = int(ids.max()) + 1 if len(ids) else 0
        self._new_addr: list[str] = []
        self._new_type: list[str | None] = []
        self._by_id: list[str] | None = None

    def __len__(self) -> int:
        return self._next

    def ids(self, addresses: pa.Array | pa.ChunkedArray | list[str | None],
            script_types: pa.Array | pa.ChunkedArray | list[str | None] | None = None) -> np.ndarray:
        """The id of each address, assigning new ids to unseen ones; null gives ``NO_ADDRESS``."""
        arr = pa.array(addresses, pa.string()) if isinstance(addresses, list) else addresses
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if len(arr) == 0:
            return np.empty(0, np.int64)
        enc = pc.dictionary_encode(arr)
        uniques = enc.dictionary.to_pylist()
        types: list[str | None] | None = None
        if script_types is not None:
            st = pa.array(script_types, pa.string()) if isinstance(script_types, list) else script_types
            if isinstance(st, pa.ChunkedArray):
                st = st.combine_chunks()
            # the script type of each unique address: the first occurrence's
            first = pc.index_in(enc.dictionary, arr)  # position of first occurrence
            types = st.take(first).to_pylist()
        table = self._ids
        out = np.empty(len(uniques), np.int64)
        for i, a in enumerate(uniques):
            got = table.get(a)
            if got is None:
                got = self._next
                self._next += 1
                table[a] = got
                self._new_addr.append(a)
                self._new_type.append(types[i] if types is not None else None)
                self._by_id = None
            out[i] = got
        idx = enc.indices
        if len(out) == 0:  # every value null
            return np.full(len(arr), NO_ADDRESS, np.int64)
        res = out[idx.fill_null(0).to_numpy(zero_copy_only=False)]
        if idx.null_count:
            res[~idx.is_valid().to_numpy(zero_copy_only=False)] = NO_ADDRESS
        return res

    def lookup(self, addresses: list[str]) -> np.ndarray:
        """Ids of known addresses, ``NO_ADDRESS`` for unknown ones; assigns nothing."""
        return np.array([self._ids.get(a, NO_ADDRESS) for a in addresses], np.int64)

    def get(self, address: str) -> int | None:
        return self._ids.get(address)

    def address(self, address_id: int) -> str | None:
        if self._by_id is None:
            by_id: list[str] = [""] * self._next
            for a, i in self._ids.items():
                by_id[i] = a
            self._by_id = by_id
        return self._by_id[address_id] if 0 <= address_id < len(self._by_id) else None

    def pending(self) -> pa.Table:
        start = self._next - len(self._new_addr)
        return pa.table({
            "chain": pa.array([self.chain] * len(self._new_addr), pa.string()),
            "address_id": pa.array(np.arange(start, self._next, dtype=np.int64)),
            "address": pa.array(self._new_addr, pa.string()),
            "script_type": pa.array(self._new_type, pa.string()),
        })

    def flush_into(self, txn: Transaction) -> int:
        """Write the ids handed out since the last flush as part of ``txn``; returns how many."""
        n = len(self._new_addr)
        if n:
            txn.append("addresses", self.chain, self.pending())
            self._new_addr = []
            self._new_type = []
        return n
