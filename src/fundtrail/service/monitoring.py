"""The monitor inside the service (``serve --follow``) or alone (``fundtrail follow``).

It composes the monitor (monitor/: follower, watches, re-screening, alerts, the webhook outbox) with this
service's runtime: the service database, and the screening of the loaded exposure index and policy. Exactly
one process per workspace runs it: the holder of the lock file ``HOME/service/monitor.lock``; the other
workers keep trying, so one of them takes over within seconds when the holder dies. The follower writes
the workspace only through the ingest services (their own workspace transactions); everything else it
writes goes to the service database.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from typing import Any

from fundtrail.monitor.follower import Follower, Screening
from fundtrail.monitor.outbox import Backoff, Dispatcher, parse_hosts
from fundtrail.monitor.sources import parse_sources
from fundtrail.service.runtime import Runtime

log = logging.getLogger("fundtrail.monitor")


class Monitor:
    def __init__(self, rt: Runtime, *, poll: float | None = None) -> None:
        cfg = rt.config
        self.rt = rt
        self.hosts = parse_hosts(cfg.webhook_hosts)
        self.dispatcher = Dispatcher(rt.store, self.hosts, Backoff(base=cfg.webhook_base_delay))
        self.follower = Follower(rt.ws, rt.store, parse_sources(cfg.sources), screening=self.screening,
                                 refresh=lambda: self.screening(sync=True),
                                 on_alerts=lambda _a: self.dispatcher.wake.set(),
                                 poll=poll if poll is not None else min(cfg.poll, 0.5))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock_fd: int | None = None
        self.active = False

    def screening(self, sync: bool = False) -> Screening | None:
        """The screening loaded now; with ``sync``, after bringing the index and the policy up to date."""
        rt = self.rt
        if sync:
            try:
                rt.sync()
            except Exception as e:  # noqa: BLE001 - keep the index we have
                log.warning("index refresh failed: %s", e)
            rt.refresh_policy()
        s = rt.screener
        if s is None:
            return None

        def entity(chain: str, address: str) -> dict[str, Any] | None:
            p = s.index.profile(chain, address)
            if p.label is None:
                return None
            return {"name": p.label.entity, "category": p.label.category, "country": p.label.country,
                    "sanctioned": p.label.sanctioned}

        return Screening(version=(s.index.version, s.policy.version, s.policy.digest),
                         screen_transfer=lambda req: s.screen_transfer(req).to_json(), entity=entity,
                         as_of=s.index.as_of)

    def try_lock(self) -> bool:
        path = self.rt.ws.home / "service" / "monitor.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        return True

    def _run(self) -> None:
        while not self._stop.is_set() and not self.try_lock():
            self._stop.wait(2.0)
        if self._stop.is_set():
            return
        self.active = True
        log.info("monitor running in process %d", os.getpid())
        t = threading.Thread(target=self.dispatcher.run, name="webhook-dispatch", daemon=True)
        t.start()
        self._threads.append(t)
        self.follower.run()

    def start(self) -> None:
        t = threading.Thread(target=self._run, name="monitor", daemon=True)
        t.start()
        self._threads.append(t)

    def run_forever(self) -> None:
        """Run in the calling thread until ``stop`` (``fundtrail follow``)."""
        self._run()

    def stop(self) -> None:
        self._stop.set()
        self.follower.stop.set()
        self.dispatcher.stop.set()
        self.dispatcher.wake.set()
        for t in self._threads:
            t.join(timeout=10)
        self.dispatcher.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
