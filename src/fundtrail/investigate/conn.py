"""A DuckDB connection over the workspace per thread, kept while the workspace's generation stays the same.

``Workspace.connect()`` creates a view per stored table each time (tens of milliseconds, more under load);
the pages ask several small questions per request, so each worker thread keeps its connection and makes a
new one when the workspace has committed since (the trace's cached graphs follow the same rule).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fundtrail.store import Workspace

_local = threading.local()


@contextmanager
def connection(ws: Workspace) -> Iterator[Any]:
    cache: dict[str, tuple[int, Any]] | None = getattr(_local, "cons", None)
    if cache is None:
        cache = _local.cons = {}
    key = str(ws.home)
    hit = cache.get(key)
    if hit is None or hit[0] != ws.generation:
        if hit is not None:
            hit[1].close()
        hit = (ws.generation, ws.connect())
        cache[key] = hit
    yield hit[1]
