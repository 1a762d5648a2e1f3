"""Group commit: the writes of concurrent requests committed together, each request answered after its
own writes are on disk.

A request hands its statements (verdicts, a transfer, its audit record) to the worker's writer thread and
awaits a future; the thread takes everything queued, runs it in one transaction and resolves the futures.
With several workers on one SQLite file this turns many small lock acquisitions (each of which may wait in
SQLite's busy handler) into few; the event loop never blocks on the database. If a batch fails, its items
are retried one by one, so one bad request fails alone.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from typing import Any

from fundtrail.service.store import Store

MAX_BATCH = 256


class Writer:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._q: queue.Queue[tuple[list, Future] | None] = queue.Queue()
        self._t = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._t.start()

    def submit(self, statements: list[tuple[str, Any]]) -> Future:
        f: Future = Future()
        self._q.put((statements, f))
        return f

    async def write(self, statements: list[tuple[str, Any]]) -> None:
        await asyncio.wrap_future(self.submit(statements))

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
            try:
                self.store.many([s for stmts, _ in batch for s in stmts])
                for _, f in batch:
                    f.set_result(None)
            except Exception:  # noqa: BLE001 - retry one by one so only the bad request fails
                for stmts, f in batch:
                    try:
                        self.store.many(stmts)
                        f.set_result(None)
                    except Exception as e:  # noqa: BLE001 - handed to the request
                        f.set_exception(e)

    def close(self) -> None:
        self._q.put(None)
        self._t.join(timeout=10)
