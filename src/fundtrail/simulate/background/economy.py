"""The background economy of one world (:class:`Background`): its users' coins and addresses, one block of
transactions at a time, and the truth about them (owners, true co-spend clusters); and
:func:`attach_background`, which gives a world its background economy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from fundtrail.model.chain import BitcoinNetwork
from fundtrail.simulate.background.blocks import ADDRS, SLOTS, gen_block
from fundtrail.simulate.background.hashing import _entry, _merkle, hash_args
from fundtrail.simulate.background.scripts import _scripts_of


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
