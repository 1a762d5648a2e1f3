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
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fundtrail.ingest.bitcoin import blockfiles as BF
from fundtrail.ingest.bitcoin.parse import ParsedBatch, ParseFailure, merkle_roots, parse_blocks
from fundtrail.ingest.bitcoin.rows import OutputInfo, classify_outputs

_PR_SET_PDEATHSIG = 1


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


def _prepare(job: _Job) -> Prepared | None:  # pragma: no cover - runs in the worker process
    src = BF.BlockSource([Path(p) for p in job.paths], job.xor_key)
    try:
        ends = np.cumsum(job.size)
        starts = ends - job.size
        buf = np.empty(int(ends[-1]) if len(ends) else 0, np.uint8)
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
    return Prepared(b, classify_outputs(b))


class ParseAhead:
    """Batches of chain rows, parsed by ``jobs`` worker processes, handed back in order.

    ``for pos, prepared in ParseAhead(...).run(batches)``: ``prepared`` is ``None`` when the worker could
    not read, parse or verify the batch, or had not started on it when it was due (the caller then does it
    itself, and reports the error if there is one). The workers start (and load the compiled kernels) as soon
    as the object is made, while the caller scans the block files."""

    def __init__(self, jobs: int, src: BF.BlockSource, verify_merkle: bool, home: Path) -> None:
        self.jobs = max(1, jobs)
        self.src = src
        self.index: BF.BlockIndex | None = None
        self.verify_merkle = verify_merkle
        self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            self.jobs, mp_context=mp.get_context("fork"), initializer=_init_worker,
            initargs=(str(Path(home).resolve()), os.getpid()))
        for _ in range(self.jobs):
            self._pool.submit(_warm)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _job(self, rows: np.ndarray) -> _Job:
        assert self.index is not None
        files = self.index.file[rows]
        uniq, local = np.unique(files, return_inverse=True)
        paths = tuple(str(self.src.data_path(int(i))) for i in uniq)  # a .bz2 is inflated here, once
        return _Job(paths, self.src.xor_key, local.astype(np.int64), self.index.offset[rows].astype(np.int64),
                    self.index.size[rows].astype(np.int64), self.verify_merkle)

    def run(self, index: BF.BlockIndex, batches: Iterator[np.ndarray],
            rows: np.ndarray) -> Iterator[tuple[np.ndarray, Prepared | None]]:
        assert self._pool is not None
        self.index = index
        pending: deque[tuple[np.ndarray, Future]] = deque()
        it = iter(batches)
        try:
            while True:
                while len(pending) < self.jobs + 1:  # the workers busy, and one batch ready
                    pos = next(it, None)
                    if pos is None:
                        break
                    pending.append((pos, self._pool.submit(_prepare, self._job(rows[pos]))))
                if not pending:
                    return
                pos, fut = pending.popleft()
                if fut.cancel():  # no worker has started on it (they are still starting): do it here
                    yield pos, None
                    continue
                try:
                    got = fut.result()
                except Exception:  # a worker died (e.g. out of memory): the caller parses this batch itself
                    got = None
                yield pos, got
        finally:
            for _, f in pending:
                f.cancel()
            self.close()
