"""Per-key token buckets shared by all the worker processes of a service.

The buckets live in a small memory-mapped file (``HOME/service/ratelimit.bin``, 128 KiB): an open-addressed
table of 4,096 slots, each ``(key hash, tokens, last refill)`` as ``<qdd`` plus padding. A take locks the file
(``flock``, held for a few microseconds: read the slot, refill, take, write back), so every worker sees the
same bucket and a key's rate holds for the whole service however its requests are spread over the workers.
The refill clock is ``CLOCK_MONOTONIC``, shared by the processes of one machine. A bucket holds one second
of the key's rate (at least one request). A key that finds no free slot within 64 probes takes the slot that
was used longest ago (that key's bucket starts full again). Workers on different machines (several servers
in front of one PostgreSQL store) each enforce the rate on their own.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import mmap
import os
import struct
import threading
import time
from pathlib import Path

SLOTS = 4096
PROBES = 64
_SLOT = struct.Struct("<qdd8x")  # key hash, tokens, last refill (monotonic seconds)
SIZE = SLOTS * _SLOT.size


def _hash(key: str) -> int:
    h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little", signed=True)
    return h or 1  # 0 marks a free slot


class RateLimiter:
    """``take(key, rate)``: 0 when a request of ``key`` may go now, else the seconds until one may."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if os.fstat(self._fd).st_size < SIZE:
                os.ftruncate(self._fd, SIZE)  # zero-filled: every slot free
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._m = mmap.mmap(self._fd, SIZE)
        self._lock = threading.Lock()  # flock does not exclude the threads of one process
        self._slot: dict[int, int] = {}  # key hash -> slot index, as last found here

    def _find(self, h: int) -> int:
        """The slot of ``h`` (under the lock): its own, a free one, or the one used longest ago."""
        m = self._m
        s = self._slot.get(h)
        if s is not None and _SLOT.unpack_from(m, s * _SLOT.size)[0] == h:
            return s
        start = h % SLOTS
        oldest, oldest_t = start, math.inf
        for i in range(PROBES):
            s = (start + i) % SLOTS
            k, _tokens, last = _SLOT.unpack_from(m, s * _SLOT.size)
            if k == h or k == 0:
                break
            if last < oldest_t:
                oldest, oldest_t = s, last
        else:
            s = oldest
        self._slot[h] = s
        return s

    def take(self, key: str, rate: float) -> float:
        r = max(float(rate), 1e-3)
        cap = max(r, 1.0)
        h = _hash(key)
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                now = time.monotonic()
                s = self._find(h)
                off = s * _SLOT.size
                k, tokens, last = _SLOT.unpack_from(self._m, off)
                if k != h:  # a new (or evicted) bucket starts full
                    tokens, last = cap, now
                tokens = min(cap, tokens + max(0.0, now - last) * r)
                if tokens >= 1.0:
                    _SLOT.pack_into(self._m, off, h, tokens - 1.0, now)
                    return 0.0
                _SLOT.pack_into(self._m, off, h, tokens, now)
                return (1.0 - tokens) / r
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            try:
                self._m.close()
            finally:
                os.close(self._fd)

    @staticmethod
    def retry_after(wait: float) -> str:
        return str(max(1, math.ceil(wait)))
