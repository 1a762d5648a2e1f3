"""Per-key token buckets (in each worker: a key's rate is shared out over the workers)."""

from __future__ import annotations

import math
import threading
import time


class RateLimiter:
    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, int(workers))
        self._b: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, rate: float) -> float:
        """0 when allowed, else the seconds until a request would be."""
        r = max(float(rate) / self.workers, 1e-3)
        cap = max(r, 1.0)
        now = time.monotonic()
        with self._lock:
            b = self._b.get(key)
            if b is None:
                b = self._b[key] = [cap, now]
            tokens = min(cap, b[0] + (now - b[1]) * r)
            b[1] = now
            if tokens >= 1.0:
                b[0] = tokens - 1.0
                return 0.0
            b[0] = tokens
            return (1.0 - tokens) / r

    @staticmethod
    def retry_after(wait: float) -> str:
        return str(max(1, math.ceil(wait)))
