"""Sorted runs: an on-disk key -> values index with a bounded memory budget (a small log-structured merge
tree), used by the Bitcoin ingester for the address dictionary and the unspent outputs.

Records are fixed size: a 128-bit key as two uint64 (``k1``, ``k2``) and ``V`` int64 values. A *run* is an
immutable file of records sorted by (k1, k2)::

    [records: n x (16 + 8 V) bytes][fences: k1 of every FENCE-th record, uint64][footer: 32 bytes]

Each batch adds one run (its new records), so nothing a batch adds is ever rewritten in place; a run's
deletions (UTXO spends) are a bitmap in memory, saved beside it as a ``*_file`` of its entry. Runs are
merged when a run is not much smaller than the one before it (sizes stay geometric, so a chain of N
records has O(log N) runs and each record is rewritten O(log N) times); merging streams both runs in
bounded chunks and drops deleted records.

Memory: the newest runs are kept in RAM up to ``memory`` bytes; older runs stay on disk, where a lookup
reads only the blocks (FENCE records) that can hold its keys, found from the fences (8 bytes per FENCE
records: 32 MB for a billion records), with ``pread`` into a bounded buffer (no mmap, so the process's
resident memory does not grow with the index). Deletion bitmaps take 1 bit per record.

Consistency: run files and bitmaps are written inside the caller's workspace transaction
(:meth:`RunSet.flush_into`) and listed in the manifest with the batch's rows, so the committed index always
matches the committed tables; a batch that fails is undone with :meth:`RunSet.reload`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numba as nb
import numpy as np

from fundtrail.errors import WorkspaceError
from fundtrail.store.workspace import Transaction, Workspace

FENCE = 256  # records per block (the unit of a disk read)
MAGIC = b"FTRUNS1\0"
_FOOTER = 32
READ_CHUNK = 8 << 20  # bytes per pread (disk lookups) and per merge step


def _words(v: int) -> int:
    """uint64 words per record: k1, k2 and the V values (int64 stored as their uint64 bits)."""
    return 2 + v


# --- kernels -------------------------------------------------------------------------------------------------

@nb.njit(cache=True)
def _probe(recs, dead, base, qk1, qk2, qs, found, vals, delete):  # pragma: no cover - numba
    """For each query index q in qs not yet found: the first live record of ``recs`` (sorted (m, W)
    records, the first being record ``base`` of its run) with key (qk1[q], qk2[q]) -> found[q] and its
    values in vals[q]. ``delete``: mark the record deleted at once, so a later query for the same key finds
    the next live copy. Queries in key order are answered in one forward pass (galloping from the previous
    answer). Returns the number of records deleted."""
    n = recs.shape[0]
    check = dead.shape[0] > 0
    nv = vals.shape[1]
    ndel = 0
    prev_lo = 0
    started = False
    p1 = np.uint64(0)
    p2 = np.uint64(0)
    for t in range(qs.shape[0]):
        q = qs[t]
        if found[q]:
            continue
        a = qk1[q]
        b = qk2[q]
        if started and (a > p1 or (a == p1 and b >= p2)):
            lo = prev_lo  # keys ascend: the answer is at or after the previous one; gallop to bracket it
            step = 1
            hi = lo
            while hi < n and (recs[hi, 0] < a or (recs[hi, 0] == a and recs[hi, 1] < b)):
                lo = hi + 1
                hi = lo + step
                step <<= 1
            if hi > n:
                hi = n
        else:
            lo = 0
            hi = n
        while lo < hi:
            mid = (lo + hi) >> 1
            if recs[mid, 0] < a or (recs[mid, 0] == a and recs[mid, 1] < b):
                lo = mid + 1
            else:
                hi = mid
        started = True
        prev_lo = lo
        p1 = a
        p2 = b
        j = lo
        while j < n and recs[j, 0] == a and recs[j, 1] == b:
            p = base + j
            if check and (dead[p >> 3] >> (p & 7)) & 1:
                j += 1
                continue
            found[q] = True
            for c in range(nv):
                vals[q, c] = np.int64(recs[j, 2 + c])
            if delete:
                dead[p >> 3] |= np.uint8(1 << (p & 7))
                ndel += 1
            break
    return ndel


@nb.njit(cache=True)
def _block_span(fences, qk1, lo_b, hi_b):  # pragma: no cover - numba
    """Blocks [lo_b[i], hi_b[i]] (inclusive) that can hold key qk1[i]; hi_b < lo_b when none can."""
    nf = fences.shape[0]
    for i in range(qk1.shape[0]):
        a = qk1[i]
        lo = 0
        hi = nf
        while lo < hi:  # first fence >= a
            mid = (lo + hi) >> 1
            if fences[mid] < a:
                lo = mid + 1
            else:
                hi = mid
        first = lo - 1 if lo > 0 else 0
        lo2 = lo
        hi = nf
        while lo2 < hi:  # first fence > a
            mid = (lo2 + hi) >> 1
            if fences[mid] <= a:
                lo2 = mid + 1
            else:
                hi = mid
        lo_b[i] = first
        hi_b[i] = lo2 - 1


@nb.njit(cache=True)
def _is_sorted(k1, k2):  # pragma: no cover - numba
    for i in range(1, k1.shape[0]):
        if k1[i] < k1[i - 1] or (k1[i] == k1[i - 1] and k2[i] < k2[i - 1]):
            return False
    return True


@nb.njit(cache=True)
def _gather_rows(k1, k2, v, order, out):  # pragma: no cover - numba
    nv = v.shape[1]
    for i in range(order.shape[0]):
        j = order[i]
        out[i, 0] = k1[j]
        out[i, 1] = k2[j]
        for c in range(nv):
            out[i, 2 + c] = np.uint64(v[j, c])


@nb.njit(cache=True)
def _merge_step(a, ia, b, ib, out, io):  # pragma: no cover - numba
    """Merge sorted records a[ia:] and b[ib:] (b newer: first on equal keys) into out[io:] until one of
    them or out is exhausted; returns the new (ia, ib, io)."""
    na = a.shape[0]
    nb_ = b.shape[0]
    no = out.shape[0]
    w = a.shape[1]
    while ia < na and ib < nb_ and io < no:
        if b[ib, 0] < a[ia, 0] or (b[ib, 0] == a[ia, 0] and b[ib, 1] <= a[ia, 1]):
            for c in range(w):
                out[io, c] = b[ib, c]
            ib += 1
        else:
            for c in range(w):
                out[io, c] = a[ia, c]
            ia += 1
        io += 1
    return ia, ib, io


@nb.njit(cache=True)
def _fix_ties(k1s, k2, order):  # pragma: no cover - numba
    """Sort each group of equal k1 (``order`` sorted by k1; k1s = k1[order]) by (k2, original position),
    in place: insertion sort for small groups (usually already in order), a merge sort for large ones."""
    n = order.shape[0]
    i = 0
    while i < n:
        j = i + 1
        while j < n and k1s[j] == k1s[i]:
            j += 1
        m = j - i
        if m > 64:
            pos = np.sort(order[i:j])  # by position, then stably by k2
            kk = np.empty(m, np.uint64)
            for t in range(m):
                kk[t] = k2[pos[t]]
            o2 = np.argsort(kk, kind="mergesort")
            for t in range(m):
                order[i + t] = pos[o2[t]]
        elif m > 1:
            for t in range(i + 1, j):
                pp = order[t]
                kk = k2[pp]
                u = t - 1
                while u >= i and (k2[order[u]] > kk or (k2[order[u]] == kk and order[u] > pp)):
                    order[u + 1] = order[u]
                    u -= 1
                order[u + 1] = pp
        i = j


@nb.njit(cache=True)
def _bucket_sort(k1, k2, shift, nbuckets, order):  # pragma: no cover - numba
    """The stable (k1, k2, position) order of the records into ``order``: a counting sort on the top bits
    of k1 (``k1 >> shift``, ``nbuckets`` buckets; keys are hash outputs, so buckets hold a few records
    each), then an insertion sort inside each bucket, or a merge sort and :func:`_fix_ties` where a
    bucket is large (the outputs of one transaction share k1; skewed keys fall back to this too)."""
    n = k1.shape[0]
    start = np.zeros(nbuckets + 1, np.int64)
    for i in range(n):
        start[(k1[i] >> shift) + np.uint64(1)] += 1
    for b in range(nbuckets):
        start[b + 1] += start[b]
    fill = start[:nbuckets].copy()
    for i in range(n):  # in position order: each bucket lists its records by position (stable)
        b = k1[i] >> shift
        order[fill[b]] = i
        fill[b] += 1
    for b in range(nbuckets):
        s = start[b]
        e = start[b + 1]
        m = e - s
        if m > 64:
            seg = order[s:e].copy()
            kk = np.empty(m, np.uint64)
            for t in range(m):
                kk[t] = k1[seg[t]]
            o = np.argsort(kk, kind="mergesort")
            sub = np.empty(m, np.int64)
            ks = np.empty(m, np.uint64)
            for t in range(m):
                sub[t] = seg[o[t]]
                ks[t] = kk[o[t]]
            _fix_ties(ks, k2, sub)
            for t in range(m):
                order[s + t] = sub[t]
        elif m > 1:
            for t in range(s + 1, e):
                pp = order[t]
                a1 = k1[pp]
                a2 = k2[pp]
                u = t - 1
                while u >= s:
                    q = order[u]
                    if k1[q] > a1 or (k1[q] == a1 and (k2[q] > a2 or (k2[q] == a2 and q > pp))):
                        order[u + 1] = q
                        u -= 1
                    else:
                        break
                order[u + 1] = pp


def sort_order(k1: np.ndarray, k2: np.ndarray) -> np.ndarray:
    """The stable order sorting by (k1, k2) (equal keys keep their positions' order): a counting sort on
    the top bits of k1 and small sorts inside the buckets (:func:`_bucket_sort`), linear for the
    uniformly spread hash keys of both indexes."""
    n = len(k1)
    if n < 2:
        return np.arange(n, dtype=np.int64)
    bits = min(max(int(n).bit_length() - 2, 1), 22)  # about 4 records a bucket, at most 4 M buckets
    order = np.empty(n, np.int64)
    _bucket_sort(np.ascontiguousarray(k1, np.uint64), np.ascontiguousarray(k2, np.uint64), np.uint64(64 - bits),
                 1 << bits, order)
    return order


# --- runs ----------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class Run:
    n: int
    fences: np.ndarray  # uint64
    file: str | None = None  # relative to HOME; None until flushed
    recs: np.ndarray | None = None  # (n, W) uint64 records, when held in memory
    dead: np.ndarray | None = None  # packed deletion bits (runs that can lose records)
    ndead: int = 0
    dead_file: str | None = None
    dirty: bool = False  # dead bits changed since they were saved

    @property
    def live(self) -> int:
        return self.n - self.ndead


class RunSet:
    """One index: runs oldest -> newest (newer runs win on equal keys)."""

    def __init__(self, ws: Workspace, group: str, chain: str, values: int, *, deletes: bool,
                 memory: int = 128 << 20) -> None:
        self.ws = ws
        self.group = group
        self.chain = chain
        self.V = values
        self.W = _words(values)
        self.rec = 8 * self.W  # bytes per record
        self.deletes = deletes
        self.memory = int(memory)
        self.runs: list[Run] = []
        self.reload()

    # --- loading ---------------------------------------------------------------------------------------
    def reload(self) -> None:
        """(Re)load the committed runs, dropping uncommitted changes."""
        self.runs = []
        for e in self.ws.files(self.group, self.chain):
            path = self.ws.home / e["file"]
            try:
                with open(path, "rb") as fh:
                    fh.seek(0, os.SEEK_END)
                    size = fh.tell()
                    fh.seek(max(size - _FOOTER, 0))
                    foot = fh.read(_FOOTER)
                    if size < _FOOTER or foot[:8] != MAGIC:
                        raise WorkspaceError(f"{path}: not a run file of this version (footer)")
                    n, v, nf = (int(x) for x in np.frombuffer(foot[8:], "<u8"))
                    if v != self.V or n != e["n"] or size != n * self.rec + nf * 8 + _FOOTER:
                        raise WorkspaceError(f"{path}: run file does not match its manifest entry")
                    fh.seek(n * self.rec)
                    fences = np.fromfile(fh, "<u8", nf)
            except OSError as err:
                raise WorkspaceError(f"{path}: cannot read run file ({err})") from err
            run = Run(n=n, fences=fences, file=e["file"], ndead=int(e.get("ndead", 0)),
                      dead_file=e.get("dead_file"))
            if self.deletes:
                nbytes = (n + 7) >> 3
                if run.dead_file:
                    run.dead = np.fromfile(self.ws.home / run.dead_file, np.uint8)
                    if len(run.dead) != nbytes:
                        raise WorkspaceError(f"{self.ws.home / run.dead_file}: deletion bitmap has the wrong size")
                else:
                    run.dead = np.zeros(nbytes, np.uint8)
            self.runs.append(run)
        self._fit_memory()

    def _fit_memory(self) -> None:
        """Hold the newest runs in RAM up to the budget; the rest is read from disk when needed."""
        budget = self.memory
        for run in reversed(self.runs):
            size = run.n * self.rec
            if size <= budget:
                if run.recs is None and run.file is not None:
                    run.recs = np.fromfile(self.ws.home / run.file, "<u8", run.n * self.W).reshape(run.n, self.W)
                budget -= size
            elif run.file is not None:
                run.recs = None
            # an unflushed run stays in memory whatever the budget (it is one batch)

    def __len__(self) -> int:
        return sum(r.live for r in self.runs)

    def memory_bytes(self) -> int:
        return sum((r.recs.nbytes if r.recs is not None else 0) + r.fences.nbytes +
                   (r.dead.nbytes if r.dead is not None else 0) for r in self.runs)

    # --- adding ---------------------------------------------------------------------------------------
    def add(self, k1: np.ndarray, k2: np.ndarray, v: np.ndarray, *, order: np.ndarray | None = None) -> Run:
        """Append a new (uncommitted) run of these records (none when empty); ``v``: (n, V) int64.
        ``order``: a stable (k1, k2) sort order of the records when the caller has one."""
        k1 = np.ascontiguousarray(k1, np.uint64)
        k2 = np.ascontiguousarray(k2, np.uint64)
        v = np.ascontiguousarray(np.asarray(v, np.int64).reshape(len(k1), self.V))
        if order is None:
            order = sort_order(k1, k2)
        recs = np.empty((len(order), self.W), np.uint64)
        _gather_rows(k1, k2, v, order.astype(np.int64), recs)
        run = Run(n=len(recs), fences=recs[::FENCE, 0].copy(), recs=recs,
                  dead=np.zeros((len(recs) + 7) >> 3, np.uint8) if self.deletes else None)
        if run.n:
            self.runs.append(run)
        return run

    # --- lookups --------------------------------------------------------------------------------------
    def lookup(self, qk1: np.ndarray, qk2: np.ndarray, *, delete: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(found, values (n, V) int64) of each query key, newest run first. ``delete``: mark what is found
        deleted (each record at most once: a second query for the same key finds the next live copy)."""
        nq = len(qk1)
        found = np.zeros(nq, np.bool_)
        vals = np.zeros((nq, self.V), np.int64)
        if nq == 0:
            return found, vals
        qk1 = np.ascontiguousarray(qk1, np.uint64)
        qk2 = np.ascontiguousarray(qk2, np.uint64)
        order = np.arange(nq) if _is_sorted(qk1, qk2) else sort_order(qk1, qk2)
        for run in reversed(self.runs):
            dead = run.dead if run.dead is not None else np.zeros(0, np.uint8)
            if run.recs is not None:
                nd = _probe(run.recs, dead, 0, qk1, qk2, order, found, vals, delete and run.dead is not None)
            else:
                nd = self._probe_disk(run, dead, qk1, qk2, order[~found[order]], found, vals,
                                      delete and run.dead is not None)
            if nd:
                run.ndead += nd
                run.dirty = True
            if found.all():
                break
        return found, vals

    def _probe_disk(self, run: Run, dead, qk1, qk2, todo, found, vals, delete: bool) -> int:
        """The lookup in a run on disk: read only the blocks that can hold the queried keys."""
        if len(todo) == 0:
            return 0
        q1 = qk1[todo]  # ascending (todo is in key order)
        lo_b = np.empty(len(todo), np.int64)
        hi_b = np.empty(len(todo), np.int64)
        _block_span(run.fences, q1, lo_b, hi_b)
        ok = hi_b >= lo_b
        if not ok.any():
            return 0
        todo, lo_b, hi_b = todo[ok], lo_b[ok], hi_b[ok]
        nblocks = len(run.fences)
        need = np.zeros(nblocks + 1, np.int64)
        np.add.at(need, lo_b, 1)
        np.add.at(need, hi_b + 1, -1)
        needed = np.cumsum(need[:-1]) > 0
        edges = np.flatnonzero(np.diff(np.concatenate(([0], needed.astype(np.int8), [0]))))
        starts, stops = edges[0::2], edges[1::2]
        per_read = max(READ_CHUNK // (FENCE * self.rec), 1)
        nd = 0
        with open(self.ws.home / run.file, "rb") as fh:
            fd = fh.fileno()
            for s0, e0 in zip(starts.tolist(), stops.tolist(), strict=True):
                for s in range(s0, e0, per_read):
                    e = min(s + per_read, e0)
                    first, last = s * FENCE, min(e * FENCE, run.n)
                    buf = np.empty((last - first, self.W), np.uint64)
                    got = os.preadv(fd, [memoryview(buf).cast("B")], first * self.rec)
                    if got != buf.nbytes:
                        raise WorkspaceError(f"{self.ws.home / run.file}: short read at record {first}")
                    # the queries whose block span meets [s, e)
                    a = int(np.searchsorted(hi_b, s, side="left"))
                    b = int(np.searchsorted(lo_b, e, side="left"))
                    if b > a:
                        nd += _probe(buf, dead, first, qk1, qk2, todo[a:b], found, vals, delete)
        return nd

    # --- committing -----------------------------------------------------------------------------------
    def flush_into(self, txn: Transaction) -> None:
        """Write the new runs and changed bitmaps, merge runs as the size rule asks, and make the result
        the group's committed list in ``txn``."""
        self.runs = [r for r in self.runs if r.live > 0]
        for run in self.runs:
            if run.file is None:
                if run.ndead:  # records created and deleted before they reached disk: drop them
                    assert run.recs is not None and run.dead is not None
                    live = np.unpackbits(run.dead, bitorder="little", count=run.n) == 0
                    run.recs = run.recs[live]
                    run.n = len(run.recs)
                    run.fences = run.recs[::FENCE, 0].copy()
                    run.dead = np.zeros((run.n + 7) >> 3, np.uint8)
                    run.ndead = 0
                    run.dirty = False
                self._write_run(txn, run)
        while len(self.runs) >= 2 and self.runs[-2].live <= 2 * max(self.runs[-1].live, 1):
            b = self.runs.pop()
            a = self.runs.pop()
            self.runs.append(self._merge(txn, a, b))
        for run in self.runs:
            if run.dead is not None and (run.dirty or (run.ndead and run.dead_file is None)):
                dead = run.dead
                run.dead_file = txn.write_file(self.group, self.chain, lambda p, d=dead: d.tofile(p), ".del")
                run.dirty = False
        txn.set_files(self.group, self.chain, [
            {"file": r.file, "n": r.n, "ndead": r.ndead, "dead_file": r.dead_file if r.ndead else None}
            for r in self.runs])
        self._fit_memory()

    def _footer(self, n: int, fences: np.ndarray) -> bytes:
        return fences.astype("<u8").tobytes() + MAGIC + np.array([n, self.V, len(fences)], "<u8").tobytes()

    def _write_run(self, txn: Transaction, run: Run) -> None:
        recs = run.recs
        assert recs is not None

        def write(p: Path) -> None:
            with open(p, "wb") as fh:
                fh.write(memoryview(np.ascontiguousarray(recs)).cast("B"))
                fh.write(self._footer(run.n, run.fences))

        run.file = txn.write_file(self.group, self.chain, write, ".run")

    def _chunks(self, run: Run):
        """The live records of a run in key order, in chunks of bounded size."""
        step = max(READ_CHUNK // self.rec // FENCE, 1) * FENCE  # a multiple of 8: whole bitmap bytes
        fh = open(self.ws.home / run.file, "rb") if run.recs is None else None
        try:
            for s in range(0, run.n, step):
                e = min(s + step, run.n)
                if run.recs is not None:
                    recs = run.recs[s:e]
                else:
                    recs = np.empty((e - s, self.W), np.uint64)
                    os.preadv(fh.fileno(), [memoryview(recs).cast("B")], s * self.rec)
                if run.dead is not None and run.ndead:
                    bits = np.unpackbits(run.dead[s >> 3:(e + 7) >> 3], bitorder="little")[:e - s]
                    recs = recs[bits == 0]
                yield np.ascontiguousarray(recs)
        finally:
            if fh is not None:
                fh.close()

    def _merge(self, txn: Transaction, a: Run, b: Run) -> Run:
        """Merge run ``a`` (older) and ``b`` (newer) into one file, live records only, streaming in
        bounded chunks."""
        fences: list[np.ndarray] = []
        count = 0
        empty = np.zeros((0, self.W), np.uint64)

        def write(p: Path) -> None:
            nonlocal count
            out = np.empty((max(READ_CHUNK // self.rec // FENCE, 1) * FENCE, self.W), np.uint64)
            with open(p, "wb") as fh:
                def emit(rows: np.ndarray) -> None:
                    nonlocal count
                    if len(rows):
                        fences.append(rows[(-count) % FENCE::FENCE, 0].copy())
                        fh.write(memoryview(np.ascontiguousarray(rows)).cast("B"))
                        count += len(rows)

                ita, itb = self._chunks(a), self._chunks(b)
                ca, cb = next(ita, empty), next(itb, empty)
                ia = ib = 0
                while True:
                    if ia == len(ca):
                        ca, ia = next(ita, None), 0
                        if ca is None:
                            emit(cb[ib:])
                            for rest in itb:
                                emit(rest)
                            break
                        continue
                    if ib == len(cb):
                        cb, ib = next(itb, None), 0
                        if cb is None:
                            emit(ca[ia:])
                            for rest in ita:
                                emit(rest)
                            break
                        continue
                    ia, ib, io = _merge_step(ca, ia, cb, ib, out, 0)
                    emit(out[:io])
                f = np.concatenate(fences) if fences else np.zeros(0, np.uint64)
                fh.write(self._footer(count, f))

        rel = txn.write_file(self.group, self.chain, write, ".run")
        fence_arr = np.concatenate(fences) if fences else np.zeros(0, np.uint64)
        return Run(n=count, fences=fence_arr, file=rel,
                   dead=np.zeros((count + 7) >> 3, np.uint8) if self.deletes else None)
