"""Webhooks and their outbox: at-least-once delivery of every alert, signed, with a log of every attempt.

The outbox rows are written in the same transaction as their alert (monitor/alerts.py), so an alert that
exists has its deliveries. The dispatcher sends what is due, oldest first: a 2xx answer marks the delivery
delivered; anything else (an error status, a refused connection, a timeout) records the attempt and
schedules the next one with exponential backoff and jitter, for ``max_age`` (72 h by default, never less than
24 h) after which the delivery is marked failed (a manual redelivery starts it again). A crash between
sending and recording sends the same delivery again later, with the same ``X-Fundtrail-Delivery`` id,
which is what receivers deduplicate on.

Receivers are only contacted on the configured hosts (``allowed_hosts``): registering a webhook elsewhere
is refused, and the dispatcher checks again before it connects.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from fundtrail.errors import FieldError, NotFoundError
from fundtrail.monitor.alerts import KINDS, new_id, now_iso
from fundtrail.monitor.signing import headers

log = logging.getLogger("fundtrail.monitor")
MIN_MAX_AGE = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float = 5.0  # seconds before the second attempt
    factor: float = 2.0
    cap: float = 3600.0  # longest wait between two attempts
    jitter: float = 0.25  # +- this share of the wait, at random
    max_age: float = 72 * 3600.0  # retry for this long after the delivery was queued

    def delay(self, attempts: int, rnd: random.Random | None = None) -> float:
        r = rnd or random
        d = min(self.cap, self.base * self.factor ** max(0, attempts - 1))
        return max(0.0, d * (1 + r.uniform(-self.jitter, self.jitter)))


def parse_hosts(text: str | None) -> tuple[str, ...]:
    return tuple(sorted({h.strip().lower() for h in (text or "").split(",") if h.strip()}))


def check_url(url: str, allowed_hosts: tuple[str, ...], field: str = "url") -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FieldError(field, f"{url!r} is not an http(s) URL")
    if not allowed_hosts:
        raise FieldError(field, "no webhook host is configured: start the service with --webhook-host HOST")
    if parts.hostname.lower() not in allowed_hosts:
        raise FieldError(field, f"host {parts.hostname!r} is not a configured webhook host "
                                f"({', '.join(allowed_hosts)})")
    if parts.username or parts.password:
        raise FieldError(field, "credentials in the URL are not accepted (the signature authenticates us)")
    return url


class Webhooks:
    """Registered webhooks and their deliveries."""

    _WCOLS = ("webhook_id", "created", "url", "events", "key_name", "active")
    _DCOLS = ("delivery_id", "webhook_id", "alert_id", "event", "created", "status", "attempts", "next_attempt",
              "delivered", "last_error")

    def __init__(self, db: Any, allowed_hosts: tuple[str, ...] = ()) -> None:
        self.db = db
        self.allowed_hosts = allowed_hosts

    def add(self, url: str, secret: str, events: list[str] | None, by: str | None) -> dict[str, Any]:
        check_url(url, self.allowed_hosts)
        if len(secret) < 16:
            raise FieldError("secret", "must be at least 16 characters")
        ev = sorted(set(events or ["*"]))
        bad = [e for e in ev if e != "*" and e not in KINDS]
        if bad:
            raise FieldError("events", f"unknown event {bad[0]!r} (known: *, {', '.join(KINDS)})")
        wid = new_id("wh")
        self.db.execute("INSERT INTO webhooks (webhook_id, created, url, secret, events, key_name, active) "
                        "VALUES (?,?,?,?,?,?,1)", (wid, now_iso(), url, secret, "," + ",".join(ev) + ",", by))
        return self.get(wid)

    def _w(self, r: tuple) -> dict[str, Any]:
        d = dict(zip(self._WCOLS, r, strict=True))
        d["events"] = [e for e in d["events"].split(",") if e]
        d["active"] = bool(d["active"])
        return d

    def get(self, webhook_id: str) -> dict[str, Any]:
        rows = self.db.execute(f"SELECT {', '.join(self._WCOLS)} FROM webhooks WHERE webhook_id = ?", (webhook_id,))
        if not rows:
            raise NotFoundError(f"no webhook {webhook_id!r}")
        return self._w(rows[0])

    def list(self) -> list[dict[str, Any]]:
        rows = self.db.execute(f"SELECT {', '.join(self._WCOLS)} FROM webhooks ORDER BY webhook_id")
        return [self._w(r) for r in rows]

    def disable(self, webhook_id: str) -> dict[str, Any]:
        self.get(webhook_id)
        self.db.many([("UPDATE webhooks SET active = 0 WHERE webhook_id = ?", (webhook_id,)),
                      ("UPDATE deliveries SET status = 'cancelled' WHERE webhook_id = ? AND status = 'pending'",
                       (webhook_id,))])
        return self.get(webhook_id)

    def deliveries(self, webhook_id: str, after: str | None = None, limit: int = 100,
                   delivery_id: str | None = None) -> list[dict[str, Any]]:
        """Deliveries of a webhook (cursor: ``after`` a delivery id), each with its log of attempts."""
        self.get(webhook_id)
        cols = ", ".join(self._DCOLS)
        if delivery_id is not None:
            rows = self.db.execute(f"SELECT {cols} FROM deliveries WHERE webhook_id = ? AND delivery_id = ?",
                                   (webhook_id, delivery_id))
        else:
            rows = self.db.execute(f"SELECT {cols} FROM deliveries WHERE webhook_id = ? AND delivery_id > ? "
                                   "ORDER BY delivery_id LIMIT ?", (webhook_id, after or "", int(limit)))
        out = [dict(zip(self._DCOLS, r, strict=True)) for r in rows]
        if out:
            ids = [d["delivery_id"] for d in out]
            marks = ",".join("?" * len(ids))
            att = self.db.execute(f"SELECT delivery_id, time, attempt, status_code, error, duration_ms FROM "
                                  f"delivery_attempts WHERE delivery_id IN ({marks}) ORDER BY id", ids)
            by: dict[str, list] = {}
            for did, t, n, code, err, ms in att:
                by.setdefault(did, []).append({"time": t, "attempt": n, "status_code": code, "error": err,
                                               "duration_ms": round(float(ms), 2)})
            for d in out:
                d["next_attempt"] = (_iso(d["next_attempt"]) if d["status"] == "pending" else None)
                d["log"] = by.get(d["delivery_id"], [])
        return out

    def redeliver(self, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        rows = self.db.execute("SELECT status FROM deliveries WHERE delivery_id = ? AND webhook_id = ?",
                               (delivery_id, webhook_id))
        if not rows:
            raise NotFoundError(f"no delivery {delivery_id!r} of webhook {webhook_id!r}")
        now = time.time()
        self.db.execute("UPDATE deliveries SET status = 'pending', next_attempt = ?, created_epoch = ? "
                        "WHERE delivery_id = ?", (now, now, delivery_id))
        return self.deliveries(webhook_id, delivery_id=delivery_id)[0]


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(float(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Dispatcher:
    """Sends due deliveries; ``run`` loops until ``stop`` is set (``wake`` cuts a wait short)."""

    def __init__(self, db: Any, allowed_hosts: tuple[str, ...], backoff: Backoff = Backoff(), *,
                 timeout: float = 10.0, batch: int = 50, idle: float = 1.0) -> None:
        self.db = db
        self.allowed_hosts = allowed_hosts
        self.backoff = backoff
        self.batch = batch
        self.idle = idle
        self.wake = threading.Event()
        self.stop = threading.Event()
        self._http = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)
        self._rnd = random.Random()

    def close(self) -> None:
        self._http.close()

    def due(self, now: float) -> list[tuple]:
        return self.db.execute(
            "SELECT d.delivery_id, d.event, d.body, d.attempts, d.created_epoch, w.url, w.secret, w.active "
            "FROM deliveries d JOIN webhooks w ON w.webhook_id = d.webhook_id "
            "WHERE d.status = 'pending' AND d.next_attempt <= ? ORDER BY d.next_attempt, d.delivery_id LIMIT ?",
            (now, self.batch))

    def send_one(self, row: tuple) -> bool:
        did, event, body, attempts, window_start, url, secret, active = row
        attempt = int(attempts) + 1
        t0 = time.perf_counter()
        code: int | None = None
        err: str | None = None
        try:
            check_url(url, self.allowed_hosts)
        except FieldError as e:
            err = str(e)
        else:
            ts = str(int(time.time()))
            data = body.encode()
            try:
                r = self._http.post(url, content=data, headers=headers(secret, event, did, ts, data))
                code = r.status_code
                if not 200 <= code < 300:
                    err = f"HTTP {code}"
            except httpx.HTTPError as e:
                err = f"{type(e).__name__}: {e}"[:300]
        ms = (time.perf_counter() - t0) * 1000
        now = time.time()
        ok = err is None
        if ok:
            upd = ("UPDATE deliveries SET status = 'delivered', attempts = ?, delivered = ?, last_error = NULL "
                   "WHERE delivery_id = ?", (attempt, now_iso(), did))
        elif not active:
            upd = ("UPDATE deliveries SET status = 'cancelled', attempts = ?, last_error = ? WHERE delivery_id = ?",
                   (attempt, err, did))
        else:
            nxt = now + self.backoff.delay(attempt, self._rnd)
            max_age = max(self.backoff.max_age, MIN_MAX_AGE)
            status = "failed" if nxt - float(window_start) > max_age else "pending"
            upd = ("UPDATE deliveries SET status = ?, attempts = ?, next_attempt = ?, last_error = ? "
                   "WHERE delivery_id = ?", (status, attempt, nxt, err, did))
        self.db.many([("INSERT INTO delivery_attempts (delivery_id, time, attempt, status_code, error, duration_ms) "
                       "VALUES (?,?,?,?,?,?)", (did, now_iso(), attempt, code, err, ms)), upd])
        if not ok:
            log.info("delivery %s attempt %d failed: %s", did, attempt, err)
        return ok

    def run_once(self) -> int:
        """Send every due delivery; returns how many were attempted."""
        n = 0
        while not self.stop.is_set():
            rows = self.due(time.time())
            if not rows:
                break
            for r in rows:
                if self.stop.is_set():
                    break
                self.send_one(r)
                n += 1
            if len(rows) < self.batch:
                break
        return n

    def next_due(self) -> float | None:
        rows = self.db.execute("SELECT min(next_attempt) FROM deliveries WHERE status = 'pending'")
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.run_once()
                nd = self.next_due()
                wait = self.idle if nd is None else min(self.idle, max(0.0, nd - time.time()))
            except Exception as e:  # noqa: BLE001 - the database may be briefly unavailable: retry
                log.warning("webhook dispatch failed: %s", e)
                wait = self.idle
            self.wake.wait(wait)
            self.wake.clear()
