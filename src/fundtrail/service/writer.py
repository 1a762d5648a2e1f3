"""Group commit: the writes of concurrent requests committed together, each request answered after its
own writes are committed.

A request hands its statements (verdicts, a transfer, its audit record) to the worker's writer and awaits
it; the writer takes everything queued, runs it in one transaction (one ``executemany`` per statement kind)
and then answers every waiting request. If a batch fails, its items are retried one by one, so one bad
request fails alone.

Two ways of running it, by store:
- **SQLite** (``inline``): the commit runs on the event loop itself, scheduled with ``call_soon`` after the
  first write of a loop iteration, so every request that became ready in that iteration joins it. A commit
  is a WAL append (``synchronous=NORMAL``: no fsync; it survives a SIGKILL of the server, not a power loss)
  and takes tens of microseconds, so blocking the loop for it is cheaper than waking a thread: on a busy
  machine every thread wake-up is a trip through the scheduler's queue, and the answer would need two (the
  writer thread, then the loop again). The workers take turns at the database through the store's
  ``flock`` (store.py).
- **PostgreSQL**: a writer thread, since a commit there waits for the server over the network; the loop
  goes on serving meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any

from fundtrail.service.store import Store

MAX_BATCH = 256
CHECKPOINT_EVERY = 1.0  # seconds
log = logging.getLogger("fundtrail.service")
Statements = list[tuple[str, Any]]


def commit(store: Store, batch: list[Statements]) -> list[BaseException | None]:
    """Commit ``batch`` (the statements of several requests) together; the outcome of each request."""
    by_sql: dict[str, list] = {}  # one executemany per statement kind (the order within a kind kept)
    for stmts in batch:
        for st in stmts:
            by_sql.setdefault(st[0], []).append(st)
    try:
        store.many([st for group in by_sql.values() for st in group])
        return [None] * len(batch)
    except Exception:  # noqa: BLE001 - retry one by one so only the bad request fails
        out: list[BaseException | None] = []
        for stmts in batch:
            try:
                store.many(stmts)
                out.append(None)
            except Exception as e:  # noqa: BLE001 - handed to the request
                out.append(e)
        return out


class Writer:
    def __init__(self, store: Store, inline: bool | None = None) -> None:
        self.store = store
        self.inline = store.dialect == "sqlite" if inline is None else inline
        self._pending: list[tuple[Statements, asyncio.Future]] = []
        self._scheduled = False
        self._q: queue.Queue[tuple[Statements, Future] | None] = queue.Queue()
        self._stop = threading.Event()
        self._deferred = False
        if not self.inline:
            self._t = threading.Thread(target=self._run, name="store-writer", daemon=True)
        else:
            self._t = threading.Thread(target=self._checkpoints, name="store-checkpoint", daemon=True)
        self._t.start()

    async def write(self, statements: Statements) -> None:
        if not self.inline:
            f: Future = Future()
            self._q.put((statements, f))
            await asyncio.wrap_future(f)
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((statements, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        await fut

    def _checkpoints(self) -> None:
        """SQLite: the write-ahead log copied into the database every second, off the event loop (the
        loop's commits skip the automatic checkpoint, which would stall every request waiting on them)."""
        while not self._stop.wait(CHECKPOINT_EVERY):
            try:
                self.store.checkpoint()
            except Exception as e:  # noqa: BLE001 - retried next time; the log only grows meanwhile
                log.warning("checkpoint failed: %s", e)
        self.store.close()

    def _flush(self) -> None:
        self._scheduled = False
        if not self._deferred:
            self._deferred = True
            self.store.defer_checkpoints()
        batch, self._pending = self._pending, []
        for i in range(0, len(batch), MAX_BATCH):
            part = batch[i:i + MAX_BATCH]
            for (_, fut), err in zip(part, commit(self.store, [s for s, _ in part]), strict=True):
                if fut.done():
                    continue  # the request was cancelled (client gone); its rows are committed all the same
                if err is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(err)

    def _run(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._q.put(None)
                    break
                batch.append(nxt)
            for (_, f), err in zip(batch, commit(self.store, [s for s, _ in batch]), strict=True):
                if err is None:
                    f.set_result(None)
                else:
                    f.set_exception(err)

    def close(self) -> None:
        self._stop.set()
        self._q.put(None)
        self._t.join(timeout=10)
