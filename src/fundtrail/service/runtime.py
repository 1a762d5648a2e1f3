"""What a worker holds: the workspace, the store, the loaded exposure index and the policy, kept current.

A background thread polls (every ``poll`` seconds) the workspace's inputs (heights, tags, incidents,
clusters): when they changed, it loads the newest index version if that one matches, otherwise brings the
index up to date under a file lock (one builder across all workers and processes; the others load its
result on a later poll): incrementally when only blocks were appended (exposure/update.py), by a full
build otherwise. The new version is swapped in without a restart; requests in flight keep the version
they started with. A ``tags import``, ``incident create`` or ingest by another process is therefore
answered from within ``poll`` + update time (well under a second for a new block; a full build takes
seconds on the demo world).
"""

from __future__ import annotations

import fcntl
import gc
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fundtrail.exposure.index import (
    DEFAULT_MAX_HOPS,
    ExposureIndex,
    current_version,
    input_digest,
    load_index,
)
from fundtrail.exposure.update import update_index
from fundtrail.screen.policy import Policy
from fundtrail.service.policies import current_policy
from fundtrail.service.screening import Screener, load_prices
from fundtrail.service.store import Store, open_store
from fundtrail.store import Workspace

log = logging.getLogger("fundtrail.service")


@dataclass(slots=True)
class Config:
    home: Path
    db: str | None = None
    workers: int = 1
    poll: float = 2.0
    max_body: int = 2 << 20
    max_hops: int = DEFAULT_MAX_HOPS
    build: bool = True  # build the index when it is missing or stale
    follow: bool = False  # run the monitor (service/monitoring.py) in one worker
    sources: tuple[str, ...] = ()  # what the monitor ingests from (monitor/sources.py)
    webhook_hosts: str = ""  # comma-separated hosts webhook receivers may live on
    webhook_base_delay: float = 5.0  # seconds before the second delivery attempt (doubling after)

    @classmethod
    def from_env(cls) -> Config:
        from fundtrail.store import default_home

        return cls(home=Path(os.environ.get("FUNDTRAIL_HOME") or default_home()),
                   db=os.environ.get("FUNDTRAIL_DB") or None,
                   workers=int(os.environ.get("FUNDTRAIL_WORKERS", "1")),
                   poll=float(os.environ.get("FUNDTRAIL_POLL", "2")),
                   max_body=int(os.environ.get("FUNDTRAIL_MAX_BODY", str(2 << 20))),
                   max_hops=int(os.environ.get("FUNDTRAIL_MAX_HOPS", str(DEFAULT_MAX_HOPS))),
                   build=os.environ.get("FUNDTRAIL_BUILD", "1") != "0",
                   follow=os.environ.get("FUNDTRAIL_FOLLOW", "0") == "1",
                   sources=tuple(s for s in os.environ.get("FUNDTRAIL_SOURCES", "").split("\n") if s),
                   webhook_hosts=os.environ.get("FUNDTRAIL_WEBHOOK_HOSTS", ""),
                   webhook_base_delay=float(os.environ.get("FUNDTRAIL_WEBHOOK_BASE_DELAY", "5")))

    def to_env(self) -> dict[str, str]:
        env = {"FUNDTRAIL_HOME": str(self.home), "FUNDTRAIL_WORKERS": str(self.workers),
               "FUNDTRAIL_POLL": str(self.poll), "FUNDTRAIL_MAX_BODY": str(self.max_body),
               "FUNDTRAIL_MAX_HOPS": str(self.max_hops), "FUNDTRAIL_BUILD": "1" if self.build else "0",
               "FUNDTRAIL_FOLLOW": "1" if self.follow else "0", "FUNDTRAIL_SOURCES": "\n".join(self.sources),
               "FUNDTRAIL_WEBHOOK_HOSTS": self.webhook_hosts,
               "FUNDTRAIL_WEBHOOK_BASE_DELAY": str(self.webhook_base_delay)}
        if self.db:
            env["FUNDTRAIL_DB"] = self.db
        return env


@dataclass
class Runtime:
    config: Config
    store: Store
    ws: Workspace
    screener: Screener | None = None
    policy: Policy | None = None
    error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, config: Config) -> Runtime:
        ws = Workspace(config.home)
        store = open_store(config.db, Path(config.home))
        rt = cls(config, store, ws)
        rt.policy = current_policy(store)
        return rt

    @property
    def index(self) -> ExposureIndex | None:
        s = self.screener
        return s.index if s is not None else None

    def ready(self) -> bool:
        return self.screener is not None

    def refresh_policy(self) -> Policy:
        p = current_policy(self.store)
        with self._lock:
            self.policy = p
            if self.screener is not None:
                self.screener = Screener(self.screener.index, p, self.screener.prices)
        return p

    def _set_index(self, ix: ExposureIndex) -> None:
        prices = load_prices(self.ws)
        with self._lock:
            self.screener = Screener(ix, self.policy or current_policy(self.store), prices)
        # the index's objects live until the next version: out of the cycle collector's way, whose full
        # passes over them took 130 ms on the large world (a stall of every request in flight); they are
        # still freed by reference counting when the index is replaced
        gc.freeze()
        log.info("exposure index version %s loaded", ix.version)

    def load_current(self) -> bool:
        """Load the newest built version as it is (fast; the refresh thread brings it up to date)."""
        d = current_version(self.ws)
        if d is None:
            return False
        self._set_index(ExposureIndex(d))
        return True

    def sync(self) -> bool:
        """Bring the index up to date; True when a new one was loaded."""
        want = input_digest(self.ws)["digest"]
        cur = self.index
        if cur is not None and cur.meta.get("digest") == want:
            return False
        d = current_version(self.ws)
        if d is not None and (cur is None or d.name != cur.path.name):
            ix = ExposureIndex(d)
            if ix.meta.get("digest") == want or not self.config.build:
                self._set_index(ix)
                return True
        if not self.config.build:
            return False
        lock_path = self.ws.home / "exposure" / ".build.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # another process is building: load its result on a later poll
            try:
                d = current_version(self.ws)
                if d is not None:
                    ix = ExposureIndex(d)
                    if ix.meta.get("digest") == want:
                        self._set_index(ix)
                        return True
                made = update_index(self.ws, max_hops=self.config.max_hops)
                if json.loads((made / "meta.json").read_text()).get("update", {}).get("mode") != "incremental":
                    from fundtrail.trace.graph import clear_cache, release_memory

                    clear_cache()  # a full build's graphs are rebuilt for the next one anyway: give the memory back
                    release_memory()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        self._set_index(load_index(self.ws))
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
                self.refresh_policy()
                self.error = None
            except Exception as e:  # noqa: BLE001 - keep serving the index we have; report on /v1/ready
                self.error = f"{type(e).__name__}: {e}"
                log.warning("index refresh failed: %s", self.error)
            self._stop.wait(self.config.poll)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="index-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.store.close()

    def index_age(self) -> float | None:
        ix = self.index
        return None if ix is None else time.time() - ix.loaded_at

    def info(self) -> dict[str, Any]:
        ix = self.index
        return {"ready": ix is not None, "index_version": ix.version if ix else None,
                "as_of": ix.as_of if ix else None, "error": self.error,
                "policy": {"id": self.policy.id, "version": self.policy.version} if self.policy else None}
