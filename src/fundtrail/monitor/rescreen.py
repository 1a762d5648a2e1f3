"""Re-screening the registered transfers: a new verdict, and a ``decision_changed`` alert, when the decision
changes after new blocks, tags, incidents or a new policy.

``screen`` is the screening service's transfer screening (a request dict in, a verdict dict out), given
by the edge that owns it; unchanged decisions write nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fundtrail.monitor.alerts import SEVERITY_OF_DECISION, Alert, AlertBook, dumps, now_iso

log = logging.getLogger("fundtrail.monitor")
_TCOLS = ("transfer_id", "chain", "direction", "address", "counterparty", "txid", "vout", "asset", "amount", "time",
          "verdict_id", "decision", "external_id", "customer_id")


def verdict_row(v: dict[str, Any], key_name: str | None) -> tuple[str, tuple]:
    return ("INSERT INTO verdicts (verdict_id, created, chain, address, decision, policy_version, index_version, "
            "key_name, body) VALUES (?,?,?,?,?,?,?,?,?)",
            (v["verdict_id"], now_iso(), v["chain"], v["address"], v["decision"], v["policy"]["version"],
             v["as_of"].get("index_version"), key_name, json.dumps(v, separators=(",", ":"))))


def _brief(v: dict[str, Any] | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {k: v.get(k) for k in ("verdict_id", "decision", "risk", "score", "reasons", "policy", "as_of", "entity")}


def rescreen_transfers(db: Any, screen: Callable[[dict[str, Any]], dict[str, Any]], cause: dict[str, Any],
                       *, page: int = 500) -> list[Alert]:
    """Screen every registered transfer again; store and alert the changed decisions."""
    book = AlertBook(db)
    raised: list[Alert] = []
    after = ""
    while True:
        rows = db.execute(f"SELECT {', '.join(_TCOLS)} FROM transfers WHERE transfer_id > ? ORDER BY transfer_id "
                          "LIMIT ?", (after, int(page)))
        if not rows:
            break
        after = rows[-1][0]
        for r in rows:
            t = dict(zip(_TCOLS, r, strict=True))
            req = {k: t[k] for k in ("chain", "direction", "address", "counterparty", "txid", "vout", "asset",
                                     "amount", "time")}
            try:
                v = screen(req)
            except Exception as e:  # noqa: BLE001 - e.g. a chain no longer in the index: keep the old verdict
                log.warning("re-screening transfer %s failed: %s", t["transfer_id"], e)
                continue
            if v["decision"] == t["decision"]:
                continue
            before = db.execute("SELECT body FROM verdicts WHERE verdict_id = ?", (t["verdict_id"],))
            vb = json.loads(before[0][0]) if before else None
            a = Alert(kind="decision_changed", severity=SEVERITY_OF_DECISION.get(v["decision"], "medium"),
                      dedupe_key=f"transfer:{t['transfer_id']}:{v['verdict_id']}",
                      subject={"transfer_id": t["transfer_id"], "external_id": t["external_id"],
                               "customer_id": t["customer_id"], "chain": t["chain"], "direction": t["direction"],
                               "address": t["address"], "counterparty": t["counterparty"], "txid": t["txid"]},
                      verdict_before=_brief(vb) or {"verdict_id": t["verdict_id"], "decision": t["decision"]},
                      verdict_after=_brief(v),
                      details={"decision_before": t["decision"], "decision_after": v["decision"], "cause": cause})
            book.raise_([a], [
                verdict_row(v, None),
                ("INSERT INTO transfer_verdicts (transfer_id, verdict_id, previous_verdict_id, decision_before, "
                 "decision_after, created, cause) VALUES (?,?,?,?,?,?,?)",
                 (t["transfer_id"], v["verdict_id"], t["verdict_id"], t["decision"], v["decision"], now_iso(),
                  dumps(cause))),
                ("UPDATE transfers SET verdict_id = ?, decision = ? WHERE transfer_id = ? AND verdict_id = ?",
                 (v["verdict_id"], v["decision"], t["transfer_id"], t["verdict_id"])),
            ])
            raised.append(a)
    return raised


def transfer_history(db: Any, transfer_id: str) -> list[dict[str, Any]]:
    rows = db.execute("SELECT verdict_id, previous_verdict_id, decision_before, decision_after, created, cause "
                      "FROM transfer_verdicts WHERE transfer_id = ? ORDER BY created, verdict_id", (transfer_id,))
    return [{"verdict_id": v, "previous_verdict_id": p, "decision_before": b, "decision_after": a, "at": c,
             "cause": json.loads(cause) if cause else None} for v, p, b, a, c, cause in rows]
