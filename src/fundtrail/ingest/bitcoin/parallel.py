"""Parse-ahead worker processes for ``ingest bitcoin --jobs N``.

The per-batch work that depends on nothing committed before it (read the block bytes, parse, txids, merkle
check, script classification) runs in ``N`` worker processes, up to ``N`` batches ahead of the batch being
committed. Everything that depends on order (address ids, the UTXO index, the rows and the commit) stays in
the ingesting process, which takes the results strictly in chain order: the tables are the ones a
``--jobs 1`` run writes, and crash safety is that of the serial path, because workers never write to the
workspace.

Workers are forked when the ingest starts, before it runs any thread of its own (so they start in
milliseconds with the compiled kernels already loaded; a ``spawn``ed worker cost ~2 CPU-seconds to import and
load them). Each first closes its copies of the workspace's lock and reader-pin descriptors (``flock``s
belong to the open file description: a worker holding a copy would keep the writer lease after its parent
died), then asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``), so a SIGKILLed ingest
leaves no worker behind and its lease is free at once. A batch a worker cannot
parse or verify comes back as ``None``; the ingesting process then parses it itself, so a bad block is
reported and the blocks before it committed exactly as without workers.

Hand-over through shared memory: a parsed batch is ~2× its bytes in arrays (the bytes, offsets, txids,
script keys). Pickled back through the pool's pipe, receiving and unpickling it cost the ingesting process
2-3× the CPU of parsing it itself (measured: 125-160 ms against 41-77 ms for a 33 MB batch), which is why
``--jobs 2`` used to be slower than ``--jobs 1``. So the workers read the blocks into, and leave the
parsed arrays in, a slot of one anonymous shared mapping (``MAP_SHARED``) made before they are forked:
only the arrays' offsets, types and shapes travel through the pipe, and the ingesting process maps them
without a copy. A slot is reused only after the batch in it has been committed (the generator resumes
then); ``jobs + 2`` slots cover the batches in flight. The mapping has no name and no file, so a
SIGKILL leaves nothing behind. A batch too large for its slot (or no mapping, if the system refuses it)
goes back pickled as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import mmap
import multiprocessing as mp
import os
import signal
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from fundtrail.ingest.bitcoin import blockfiles as BF
from fundtrail.ingest.bitcoin.parse import ParsedBatch, ParseFailure, merkle_roots, parse_blocks
from fundtrail.ingest.bitcoin.rows import OutputInfo, classify_outputs

_PR_SET_PDEATHSIG = 1
_ALIGN = 64
# the shared slots of the current ParseAhead: set before its workers fork, so they inherit the mapping
_ARENA: mmap.mmap | None = None
SLOT_BYTES_MAX = 512 << 20


def default_jobs() -> int:
    """The cores this process may run on (``--jobs 0``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch parsed, verified and classified by a worker (its bytes are ``batch.buf``)."""

    batch: ParsedBatch
    info: OutputInfo


@dataclass(frozen=True, slots=True)
class _Job:
    paths: tuple[str, ...]  # plain (decompressed) block files the batch reads
    xor_key: np.ndarray | None
    file: np.ndarray  # per block: index into paths
    offset: np.ndarray
    size: np.ndarray
    verify_merkle: bool
    slot: int = -1  # the slot of the shared arena to leave the result in (-1: none, pickle it)
    slot_bytes: int = 0


# (field name, offset in the slot, dtype, shape) of each array of a prepared batch
_Layout = tuple[tuple[str, int, str, tuple[int, ...]], ...]


@dataclass(frozen=True, slots=True)
class _Shared:
    """A prepared batch left in slot ``slot`` of the shared arena: its bytes at the slot's start, then the
    arrays at the offsets of ``batch`` and ``info``."""

    slot: int
    nbytes: int
    batch: _Layout
    info: _Layout


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _place(arena: mmap.mmap, base: int, pos: int, limit: int, obj: Any, skip: str = "") -> tuple[_Layout, int] | None:
    """Copy the arrays of a dataclass into the arena from ``base + pos``; None if they do not fit."""
    out = []
    for f in fields(obj):
        if f.name == skip:
            continue
        a = getattr(obj, f.name)
        if pos + a.nbytes > limit:
            return None
        dst = np.frombuffer(arena, a.dtype, a.size, base + pos).reshape(a.shape)
        dst[...] = a
        out.append((f.name, pos, a.dtype.str, tuple(a.shape)))
        pos = _aligned(pos + a.nbytes)
    return tuple(out), pos


def _view(arena: mmap.mmap, base: int, layout: _Layout) -> dict[str, np.ndarray]:
    return {name: np.frombuffer(arena, np.dtype(dt), math.prod(shape), base + off).reshape(shape)
            for name, off, dt, shape in layout}


def _init_worker(home: str, parent: int) -> None:  # pragma: no cover - runs in the worker process
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    # the writer lease (HOME/lock) and reader pins (HOME/readers/*) stay with the parent alone
    held = (os.path.join(home, "lock"), os.path.join(home, "readers") + os.sep)
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError, ValueError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target == held[0] or target.startswith(held[1]):
                os.close(int(fd))
    with contextlib.suppress(Exception):
        import pyarrow as pa

        pa.set_cpu_count(1)


def _warm() -> int:  # pragma: no cover - runs in the worker process
    """Load the compiled kernels (numba's cache) before the first batch arrives."""
    # a zero header and one transaction (1 input, 1 output with an empty script): 141 bytes
    tx = bytes(4) + b"\x01" + bytes(36) + b"\x00" + bytes(4) + b"\x01" + bytes(8) + b"\x00" + bytes(4)
    buf = np.frombuffer(bytes(80) + b"\x01" + tx, np.uint8)
    b = parse_blocks(buf, np.array([0]), np.array([len(buf)]))
    merkle_roots(b)
    classify_outputs(b)
    return os.getpid()


def _prepare(job: _Job) -> Prepared | _Shared | None:  # pragma: no cover - runs in the worker process
    src = BF.BlockSource([Path(p) for p in job.paths], job.xor_key)
    arena = _ARENA
    try:
        ends = np.cumsum(job.size)
        starts = ends - job.size
        total = int(ends[-1]) if len(ends) else 0
        shared = arena is not None and job.slot >= 0 and total <= job.slot_bytes
        base = job.slot * job.slot_bytes
        buf = np.frombuffer(arena, np.uint8, total, base) if shared else np.empty(total, np.uint8)
        for k in range(len(job.size)):
            src.read(int(job.file[k]), int(job.offset[k]), int(job.size[k]), buf[starts[k]:ends[k]])
    except Exception:
        return None  # the parent reads it again and reports what is wrong
    finally:
        src.close()
    try:
        b = parse_blocks(buf, starts, ends)
    except ParseFailure:
        return None
    if job.verify_merkle and len(starts):
        roots = merkle_roots(b)
        stored = b.buf[b.blk_start[:, None] + np.arange(36, 68)[None, :]]
        if (roots != stored).any():
            return None
    info = classify_outputs(b)
    if shared:
        limit = job.slot_bytes
        placed = _place(arena, base, _aligned(total), limit, b, skip="buf")
        if placed is not None:
            placed_info = _place(arena, base, placed[1], limit, info)
            if placed_info is not None:
                return _Shared(job.slot, total, placed[0], placed_info[0])
    return Prepared(b, info)  # pickled (its bytes copied out of the slot)


class ParseAhead:
    """Batches of chain rows, parsed by ``jobs`` worker processes, handed back in order.

    ``for pos, prepared in ParseAhead(...).run(batches)``: ``prepared`` is ``None`` when the worker could
    not read, parse or verify the batch, or had not started on it when it was due (the caller then does it
    itself, and reports the error if there is one). The workers start (and load the compiled kernels) as soon
    as the object is made, while the caller scans the block files."""

    def __init__(self, jobs: int, src: BF.BlockSource, verify_merkle: bool, home: Path, *,
                 batch_bytes: int = 32 << 20) -> None:
        global _ARENA
        self.jobs = max(1, jobs)
        self.src = src
        self.index: BF.BlockIndex | None = None
        self.verify_merkle = verify_merkle
        # a slot holds a batch's bytes and its arrays (~2x the bytes; 4x for the smallest transactions)
        self.slots = self.jobs + 2
        self.slot_bytes = _aligned(min(4 * batch_bytes + (16 << 20), SLOT_BYTES_MAX))
        self._arena: mmap.mmap | None = None
        try:  # anonymous and shared: inherited by the forked workers, gone when the last process exits
            self._arena = mmap.mmap(-1, self.slots * self.slot_bytes, flags=mmap.MAP_SHARED)
        except (OSError, ValueError, OverflowError):
            self._arena = None  # results come back pickled
        _ARENA = self._arena
        self._free = list(range(self.slots)) if self._arena is not None else []
        self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            self.jobs, mp_context=mp.get_context("fork"), initializer=_init_worker,
            initargs=(str(Path(home).resolve()), os.getpid()))
        for _ in range(self.jobs):
            self._pool.submit(_warm)  # forks the workers now, with the arena mapped

    def close(self) -> None:
        global _ARENA
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._arena is not None:
            if _ARENA is self._arena:
                _ARENA = None
            with contextlib.suppress(BufferError):  # arrays still viewing it: freed with the last of them
                self._arena.close()
            self._arena = None

    def _job(self, rows: np.ndarray, slot: int = -1) -> _Job:
        assert self.index is not None
        files = self.index.file[rows]
        uniq, local = np.unique(files, return_inverse=True)
        paths = tuple(str(self.src.data_path(int(i))) for i in uniq)  # a .bz2 is inflated here, once
        return _Job(paths, self.src.xor_key, local.astype(np.int64), self.index.offset[rows].astype(np.int64),
                    self.index.size[rows].astype(np.int64), self.verify_merkle, slot, self.slot_bytes)

    def _attach(self, got: _Shared) -> Prepared:
        """The batch a worker left in the arena, as arrays viewing it (no copy)."""
        assert self._arena is not None
        base = got.slot * self.slot_bytes
        buf = np.frombuffer(self._arena, np.uint8, got.nbytes, base)
        return Prepared(ParsedBatch(buf=buf, **_view(self._arena, base, got.batch)),
                        OutputInfo(**_view(self._arena, base, got.info)))

    def run(self, index: BF.BlockIndex, batches: Iterator[np.ndarray],
            rows: np.ndarray) -> Iterator[tuple[np.ndarray, Prepared | None]]:
        assert self._pool is not None
        self.index = index
        pending: deque[tuple[np.ndarray, Future, int]] = deque()
        it = iter(batches)
        try:
            while True:
                while len(pending) < self.jobs + 1:  # the workers busy, and one batch ready
                    pos = next(it, None)
                    if pos is None:
                        break
                    slot = self._free.pop() if self._free else -1
                    pending.append((pos, self._pool.submit(_prepare, self._job(rows[pos], slot)), slot))
                if not pending:
                    return
                pos, fut, slot = pending.popleft()
                if fut.cancel():  # no worker has started on it (they are still starting): do it here
                    got = None
                else:
                    try:
                        got = fut.result()
                    except Exception:  # a worker died (e.g. out of memory): the caller parses this batch itself
                        got = None
                if isinstance(got, _Shared):
                    got = self._attach(got)
                yield pos, got
                # the caller is done with this batch (committed or failed): its slot takes a new one
                got = None
                if slot >= 0:
                    self._free.append(slot)
        finally:
            for _, f, _slot in pending:
                f.cancel()
            self.close()
