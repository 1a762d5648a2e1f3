"""An index of the address dictionary (``addresses``): string -> id and id -> string per chain, without a scan.

The dictionary is a table of Parquet parts (append-only, ids dense per chain). Resolving a few address strings
by querying it reads every part (the strings are in no order the row-group statistics could skip by), which
costs 0.1-0.4 s per lookup on a world of a few million addresses. The index answers the same in microseconds:

- ``hash.npy`` (uint64, sorted) and ``hid.npy`` (int64): a 64-bit hash of every address string with its id,
  ordered by hash; a lookup is a binary search, each candidate checked against the string itself (so a hash
  collision can never give a wrong id);
- ``strings.arrow``: the address strings ordered by id (an Arrow IPC file, memory-mapped: only the pages a
  lookup touches are read), with ``ids.npy`` when the ids are not exactly ``0..n-1``;
- ``meta.json``: the format version, the part files the index covers, rows and the manifest generation it
  was built at.

Files: ``HOME/index/addresses/CHAIN/KEY/`` where ``KEY`` names the chain's committed ``addresses`` part list
(its file names and row counts): a commit that adds address parts gives a new key, and the index is built
again once (lazily, on the first lookup, or ahead of time by :func:`ensure`; the web UI does that when the
service starts). A commit that adds no addresses (tags, clusters) keeps the index. The index is derived data
outside the manifest: deleting ``HOME/index`` is always safe. A workspace the process may not write gets its
index in the temporary directory instead (``TMP/fundtrail-addresses-UID/``).

The hash is a polynomial over the UTF-8 bytes with a 64-bit finaliser (splitmix64), computed with NumPy over
whole Arrow batches when building and in plain Python for the few strings of a lookup: both give the same
value, independent of any library's version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fundtrail.store.derived import chain_dir, derived_root
from fundtrail.store.workspace import Workspace

VERSION = 1
_M64 = (1 << 64) - 1
_P = 0x100000001B3  # the FNV prime, as the polynomial's base
_C = 0x9E3779B97F4A7C15
BATCH = 1 << 17  # rows hashed at a time while building (bounds the temporary arrays to ~50 MB)


# --- the hash ----------------------------------------------------------------------------------------------

def _mix(h: int) -> int:
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & _M64
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & _M64
    return h ^ (h >> 31)


def hash_one(s: str) -> int:
    """The 64-bit hash of one address string (the same value :func:`hash_array` gives)."""
    b = s.encode("utf-8")
    h = 0
    p = 1
    for x in b:
        h = (h + x * p) & _M64
        p = (p * _P) & _M64
    return _mix(h ^ ((len(b) * _C) & _M64))


_POW: np.ndarray | None = None


def _powers(n: int) -> np.ndarray:
    global _POW
    if _POW is None or len(_POW) < n:
        out = np.empty(max(n, 256), np.uint64)
        p = 1
        for i in range(len(out)):
            out[i] = p
            p = (p * _P) & _M64
        _POW = out
    return _POW


def hash_array(arr: pa.Array) -> np.ndarray:
    """The hash of every string of an Arrow string array (nulls hash as the empty string)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type == pa.large_string():
        odt = np.int64
    else:
        arr = arr.cast(pa.string())
        odt = np.int32
    n = len(arr)
    if n == 0:
        return np.empty(0, np.uint64)
    bufs = arr.buffers()
    offs = np.frombuffer(bufs[1], odt, n + 1, arr.offset * np.dtype(odt).itemsize).astype(np.int64)
    if arr.null_count:
        valid = np.asarray(arr.is_valid(), np.bool_)
        offs_end = np.where(valid, offs[1:], offs[:-1])
    else:
        offs_end = offs[1:]
    data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
    starts = offs[:-1]
    lens = offs_end - starts
    total = int(lens.sum())
    with np.errstate(over="ignore"):
        if total:
            # position of every byte inside its string, and the byte's weight P^position
            owner = np.repeat(np.arange(n), lens)
            first = np.cumsum(lens) - lens
            pos = np.arange(total, dtype=np.int64) - first[owner]
            src = np.repeat(starts, lens) + pos
            vals = data[src].astype(np.uint64) * _powers(int(lens.max()))[pos]
            h = np.zeros(n, np.uint64)
            nz = lens > 0
            h[nz] = np.add.reduceat(vals, first[nz])
        else:
            h = np.zeros(n, np.uint64)
        h ^= lens.astype(np.uint64) * np.uint64(_C)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


# --- the index ---------------------------------------------------------------------------------------------

@dataclass(slots=True)
class AddressIndex:
    chain: str
    key: str
    hashes: np.ndarray  # uint64, sorted
    hids: np.ndarray  # int64, the id of each hash
    strings: list[pa.Array]  # chunks of the strings, ordered by id
    starts: np.ndarray  # int64: the row of the first string of each chunk
    ids: np.ndarray | None  # the id of each row when the ids are not 0..n-1
    rows: int

    def _row_of(self, ids: np.ndarray) -> np.ndarray:
        if self.ids is None:
            ok = (ids >= 0) & (ids < self.rows)
            return np.where(ok, ids, -1)
        r = np.searchsorted(self.ids, ids)
        r = np.minimum(r, max(self.rows - 1, 0))
        return np.where((self.rows > 0) & (self.ids[r] == ids), r, -1)

    def _string_at(self, row: int) -> str | None:
        c = int(np.searchsorted(self.starts, row, side="right")) - 1
        return self.strings[c][row - int(self.starts[c])].as_py()

    def strings_of(self, ids: Any) -> dict[int, str]:
        """The strings of ``ids`` (ids the dictionary lacks are left out)."""
        ids = np.unique(np.asarray(ids, np.int64))
        out: dict[int, str] = {}
        for i, r in zip(ids.tolist(), self._row_of(ids).tolist(), strict=True):
            if r >= 0:
                s = self._string_at(r)
                if s is not None:
                    out[i] = s
        return out

    def ids_of(self, addresses: list[str]) -> dict[str, int]:
        """The ids of ``addresses`` (strings the dictionary lacks are left out)."""
        out: dict[str, int] = {}
        for a in addresses:
            if a is None:
                continue
            h = np.uint64(hash_one(a))
            lo = int(np.searchsorted(self.hashes, h, side="left"))
            hi = int(np.searchsorted(self.hashes, h, side="right"))
            for j in range(lo, hi):
                i = int(self.hids[j])
                r = int(self._row_of(np.array([i], np.int64))[0])
                if r >= 0 and self._string_at(r) == a:
                    out[a] = i
                    break
        return out


_KEYS: dict[tuple[str, str, Any], tuple[str, list[str], int]] = {}


def _key(ws: Workspace, chain: str) -> tuple[str, list[str], int]:
    """The key of the chain's committed ``addresses`` part list (memoised per manifest generation)."""
    mk = (str(ws.home), chain, ws.generation)
    hit = _KEYS.get(mk)
    if hit is None:
        if len(_KEYS) > 256:
            _KEYS.clear()
        hit = _KEYS[mk] = _part_key(ws, chain)
    return hit


def _part_key(ws: Workspace, chain: str) -> tuple[str, list[str], int]:
    parts = ws.parts("addresses", chain)
    names = [p.file for p in parts]
    h = hashlib.sha256(json.dumps([[p.file, p.rows] for p in parts]).encode()).hexdigest()[:24]
    return f"v{VERSION}-{h}", names, sum(p.rows for p in parts)


def _root(ws: Workspace) -> Path:
    return derived_root(ws, "addresses")


def _mkdirs(p: Path) -> None:
    p.mkdir(mode=0o700, parents=True, exist_ok=True)


def build(ws: Workspace, chain: str, target: Path) -> None:
    """Write the index of ``chain``'s address dictionary into the new directory ``target``."""
    key, names, rows = _key(ws, chain)
    tmp = target.parent / f".build-{uuid.uuid4().hex}"
    _mkdirs(tmp)
    try:
        hashes: list[np.ndarray] = []
        idparts: list[np.ndarray] = []
        batches: list[pa.RecordBatch] = []
        for p in ws.part_paths("addresses", chain):
            f = pq.ParquetFile(p)
            for b in f.iter_batches(batch_size=BATCH, columns=["address_id", "address"]):
                addr = b.column(b.schema.get_field_index("address"))
                ids = np.asarray(b.column(b.schema.get_field_index("address_id")).fill_null(-1), np.int64)
                hashes.append(hash_array(addr))
                idparts.append(ids)
                batches.append(pa.record_batch({"address": addr.cast(pa.string())}))
        ids = np.concatenate(idparts) if idparts else np.empty(0, np.int64)
        h = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
        n = len(ids)
        dense = bool(n == 0 or (ids[0] == 0 and np.all(np.diff(ids) == 1)))
        order_by_id = None
        if not dense and n and not np.all(np.diff(ids) > 0):
            order_by_id = np.argsort(ids, kind="stable")
        o = np.argsort(h, kind="stable")
        np.save(tmp / "hash.npy", h[o])
        np.save(tmp / "hid.npy", ids[o])
        del o, h
        schema = pa.schema([("address", pa.string())])
        with pa.OSFile(str(tmp / "strings.arrow"), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
            if order_by_id is None:
                for b in batches:
                    w.write_batch(b)
            else:
                col = pa.concat_arrays([b.column(0) for b in batches]) if batches else pa.array([], pa.string())
                for s in range(0, n, BATCH):
                    w.write_batch(pa.record_batch({"address": col.take(pa.array(order_by_id[s:s + BATCH]))}))
        if not dense:
            np.save(tmp / "ids.npy", ids if order_by_id is None else ids[order_by_id])
        (tmp / "meta.json").write_text(json.dumps({"version": VERSION, "chain": chain, "key": key, "parts": names,
                                                  "rows": rows, "generation": str(ws.generation)}))
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "meta.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load(d: Path, chain: str, key: str) -> AddressIndex:
    meta = json.loads((d / "meta.json").read_text())
    hashes = np.load(d / "hash.npy", mmap_mode="r")
    hids = np.load(d / "hid.npy", mmap_mode="r")
    reader = pa.ipc.open_file(pa.memory_map(str(d / "strings.arrow"), "r"))
    chunks = [reader.get_batch(i).column(0) for i in range(reader.num_record_batches)]
    sizes = np.array([len(c) for c in chunks], np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if len(chunks) else np.zeros(1, np.int64)
    ids = np.load(d / "ids.npy", mmap_mode="r") if (d / "ids.npy").exists() else None
    return AddressIndex(chain, key, hashes, hids, chunks, starts, ids, int(meta["rows"]))


_CACHE: dict[tuple[str, str], AddressIndex] = {}
_LOCK = threading.Lock()
_BUILDING: dict[tuple[str, str], threading.Lock] = {}


def index(ws: Workspace, chain: str, *, build_missing: bool = True) -> AddressIndex | None:
    """The index of ``chain``'s address dictionary as the workspace now holds it: from memory, from its
    files, or built now (``build_missing``; else None when it is not built yet). None for a chain without
    addresses."""
    key, _names, rows = _key(ws, chain)
    if rows == 0:
        return None
    ck = (str(ws.home), chain)
    with _LOCK:
        hit = _CACHE.get(ck)
        if hit is not None and hit.key == key:
            return hit
        lock = _BUILDING.setdefault(ck, threading.Lock())
    with lock:  # one build per chain at a time in this process
        with _LOCK:
            hit = _CACHE.get(ck)
            if hit is not None and hit.key == key:
                return hit
        d = chain_dir(_root(ws), chain)
        target = d / key
        if not (target / "meta.json").exists():
            if not build_missing:
                return None
            _mkdirs(d)
            build(ws, chain, target)
            for old in d.iterdir():  # indexes of earlier part lists (files open elsewhere stay readable)
                if old.name != key and not old.name.startswith(".build-"):
                    shutil.rmtree(old, ignore_errors=True)
        idx = _load(target, chain, key)
        with _LOCK:
            _CACHE[ck] = idx
        return idx


def ensure(ws: Workspace, chains: list[str] | None = None) -> list[str]:
    """Build (or load) the index of every chain with addresses; returns the chains indexed."""
    out = []
    for chain in chains if chains is not None else ws.table_chains("addresses"):
        if index(ws, chain) is not None:
            out.append(chain)
    return out


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
