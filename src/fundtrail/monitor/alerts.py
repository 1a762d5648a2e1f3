"""Alerts: stored in the service database, paged by a stable cursor, acknowledged or resolved with a comment.

Raising an alert is one transaction with its outbox rows: the alert (unique on its ``dedupe_key``, so the
same event seen twice - a restart, a rescan - is stored once) and one pending delivery per active webhook
subscribed to its kind (monitor/outbox.py sends them). An alert raised on a block remembers the block's
chain, height and hash; when that block leaves the best chain the alert is *withdrawn* and a follow-up
``reorg`` alert names it.

The cursor is the alert's sequence number. Transactions that raise alerts are serialised (SQLite's
``BEGIN IMMEDIATE``; on PostgreSQL a transaction-scoped advisory lock taken before the insert), so sequence
numbers become visible in order and a reader that pages with ``since`` never skips one.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from fundtrail.errors import FieldError, NotFoundError

KINDS = ("decision_changed", "watched_funds_moved", "reorg")
STATUSES = ("open", "acknowledged", "resolved", "withdrawn")
ACTIONS = {"acknowledge": "acknowledged", "resolve": "resolved", "reopen": "open"}
SEVERITY_OF_DECISION = {"block": "high", "review": "medium", "allow": "low"}


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id(prefix: str) -> str:
    """A sortable unique id: time in microseconds (hex) and 6 random bytes."""
    t = int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)
    return f"{prefix}_{t:014x}{secrets.token_hex(6)}"


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str
    severity: str
    dedupe_key: str
    subject: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    verdict_before: dict[str, Any] | None = None
    verdict_after: dict[str, Any] | None = None
    chain: str | None = None  # the block the alert was raised on (withdrawn if it is orphaned)
    height: int | None = None
    block_hash: str | None = None
    alert_id: str = field(default_factory=lambda: new_id("al"))
    created: str = field(default_factory=now_iso)

    def to_json(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "kind": self.kind, "severity": self.severity, "created": self.created,
                "subject": self.subject, "verdict_before": self.verdict_before,
                "verdict_after": self.verdict_after, "details": self.details,
                "block": ({"chain": self.chain, "height": self.height, "hash": self.block_hash}
                          if self.block_hash else None)}


def insert_statements(alert: Alert) -> list[tuple[str, tuple]]:
    """The alert and its outbox rows (one per subscribed active webhook), for one transaction."""
    body = dumps(alert.to_json())
    now = dt.datetime.now(dt.UTC).timestamp()
    return [
        ("INSERT INTO alerts (alert_id, dedupe_key, kind, severity, created, status, chain, height, block_hash, body) "
         "VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (dedupe_key) DO NOTHING",
         (alert.alert_id, alert.dedupe_key, alert.kind, alert.severity, alert.created, "open", alert.chain,
          alert.height, alert.block_hash, body)),
        ("INSERT INTO deliveries (delivery_id, webhook_id, alert_id, event, body, created, created_epoch, status, "
         "attempts, next_attempt) "
         "SELECT 'dlv_' || a.alert_id || '_' || w.webhook_id, w.webhook_id, a.alert_id, a.kind, a.body, a.created, "
         "?, 'pending', 0, ? FROM webhooks w, alerts a "
         "WHERE a.alert_id = ? AND w.active = 1 AND (w.events = ',*,' OR w.events LIKE '%,' || a.kind || ',%')",
         (now, now, alert.alert_id)),
    ]


class AlertBook:
    """The alerts of one service database."""

    _COLS = "seq, alert_id, status, body"

    def __init__(self, db: Any) -> None:
        self.db = db

    def raise_(self, alerts: list[Alert], extra: list[tuple[str, tuple]] | None = None) -> None:
        """Store ``alerts`` (and ``extra`` statements) in one transaction, with their outbox rows."""
        stmts = list(extra or [])
        for a in alerts:
            stmts += insert_statements(a)
        if stmts:
            if alerts and getattr(self.db, "dialect", "") == "postgres":
                # sequence numbers must become visible in order (the cursor): one raiser at a time, until
                # commit (SQLite's BEGIN IMMEDIATE serialises writers already)
                stmts.insert(0, ("SELECT pg_advisory_xact_lock(7301016)", ()))
            self.db.many(stmts)

    @staticmethod
    def _row(r: tuple, actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        seq, _aid, status, body = r
        out = json.loads(body)
        out["cursor"] = str(seq)
        out["status"] = status
        if actions is not None:
            out["actions"] = actions
        return out

    def page(self, since: str | None = None, limit: int = 100, kind: str | None = None,
             status: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Alerts after the cursor ``since``, oldest first; returns them and the cursor to pass next."""
        try:
            after = int(since) if since not in (None, "") else 0
        except ValueError:
            raise FieldError("since", f"{since!r} is not a cursor (the 'cursor' of an alert)") from None
        where, params = ["seq > ?"], [after]
        if kind:
            where.append("kind = ?")
            params.append(kind)
        if status:
            where.append("status = ?")
            params.append(status)
        rows = self.db.execute(f"SELECT {self._COLS} FROM alerts WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
                               (*params, int(limit)))
        items = [self._row(r) for r in rows]
        nxt = items[-1]["cursor"] if items else (str(after) if after else None)
        return items, nxt

    def get(self, alert_id: str) -> dict[str, Any]:
        rows = self.db.execute(f"SELECT {self._COLS} FROM alerts WHERE alert_id = ?", (alert_id,))
        if not rows:
            raise NotFoundError(f"no alert {alert_id!r}")
        acts = self.db.execute("SELECT time, key_name, action, comment FROM alert_actions WHERE alert_id = ? "
                               "ORDER BY id", (alert_id,))
        return self._row(rows[0], [{"time": t, "by": k, "action": a, "comment": c} for t, k, a, c in acts])

    def act(self, alert_id: str, action: str, comment: str | None, by: str | None) -> dict[str, Any]:
        if action not in ACTIONS:
            raise FieldError("action", f"must be one of {', '.join(ACTIONS)}")
        cur = self.get(alert_id)
        if cur["status"] == "withdrawn":
            raise FieldError("action", f"alert {alert_id} was withdrawn (its block left the chain)")
        self.db.many([("UPDATE alerts SET status = ? WHERE alert_id = ?", (ACTIONS[action], alert_id)),
                      ("INSERT INTO alert_actions (alert_id, time, key_name, action, comment) VALUES (?,?,?,?,?)",
                       (alert_id, now_iso(), by, action, comment))])
        return self.get(alert_id)

    def on_blocks(self, chain: str, above: int) -> list[tuple[str, int, str, str]]:
        """Alerts not withdrawn raised on blocks of ``chain`` above ``above``: (alert_id, height, hash, kind)."""
        rows = self.db.execute("SELECT alert_id, height, block_hash, kind FROM alerts WHERE chain = ? AND height > ? "
                               "AND block_hash IS NOT NULL AND status <> 'withdrawn' ORDER BY seq",
                               (chain, int(above)))
        return [(a, int(h), b, k) for a, h, b, k in rows]

    def withdraw(self, orphaned: list[tuple[str, int, str, str]], chain: str, new_hashes: dict[int, str | None]
                 ) -> list[Alert]:
        """Mark alerts raised on orphaned blocks withdrawn, each with a follow-up ``reorg`` alert."""
        follow: list[Alert] = []
        stmts: list[tuple[str, tuple]] = []
        for aid, h, old_hash, kind in orphaned:
            stmts.append(("UPDATE alerts SET status = 'withdrawn' WHERE alert_id = ?", (aid,)))
            stmts.append(("INSERT INTO alert_actions (alert_id, time, key_name, action, comment) VALUES (?,?,?,?,?)",
                          (aid, now_iso(), None, "withdraw", f"block {h} {old_hash} of {chain} left the best chain")))
            follow.append(Alert(
                kind="reorg", severity="medium", dedupe_key=f"reorg:{aid}",
                subject={"alert_id": aid, "chain": chain},
                details={"withdrawn_alert_id": aid, "withdrawn_kind": kind, "chain": chain, "height": h,
                         "orphaned_hash": old_hash, "new_hash": new_hashes.get(h),
                         "text": f"alert {aid} was raised on block {h} of {chain}, which a reorganisation "
                                 "removed; it is withdrawn (a new alert follows if the event recurs)"}))
        self.raise_(follow, stmts)
        return follow
