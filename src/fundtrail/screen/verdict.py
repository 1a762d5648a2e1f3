"""A verdict: one address's exposure and attribution judged under a policy, at a point in time.

Pure: the caller passes the profile (from the exposure index), the policy, the time the transfer happened
(or now) and a USD converter; nothing here reads files or the network. Sanctions are point in time: a
source or an address counts as sanctioned only if a listing was valid at ``at`` (``sanctioned_at_time``);
one listed later is not yet sanctioned, one delisted before is historical (``sanctioned_historical``).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fundtrail.exposure.index import Item, Profile
from fundtrail.screen.policy import DECISIONS, Policy, Rule

Usd = Callable[[str, str, int, int, dt.datetime], float | None]  # chain, asset, amount, decimals, at


@functools.lru_cache(maxsize=1024)
def _iso(t: dt.datetime | None) -> str | None:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t is not None else None


def sanction_state(frm: dt.datetime | None, to: dt.datetime | None, listed: bool, at: dt.datetime) -> str:
    """``active`` | ``historical`` (delisted before ``at``) | ``future`` (listed after ``at``) | ``none``."""
    if not listed:
        return "none"
    if frm is not None and at < frm:
        return "future"
    if to is not None and at >= to:
        return "historical"
    return "active"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The verdict JSON (the contract's fields first)."""

    data: dict[str, Any]

    @property
    def decision(self) -> str:
        return self.data["decision"]

    @property
    def verdict_id(self) -> str:
        return self.data["verdict_id"]

    def to_json(self) -> dict[str, Any]:
        return self.data


def _self_state(p: Profile, at: dt.datetime) -> str:
    if p.windows:
        states = {sanction_state(w.valid_from, w.valid_to, True, at) for w in p.windows}
        for s in ("active", "historical", "future"):
            if s in states:
                return s
    if p.label is not None and p.label.sanctioned:
        return "active"
    return "none"


def _match_entity(r: Rule, p: Profile, state: str) -> bool:
    if p.label is None and state == "none":
        return False
    if r.category and (p.label is None or p.label.category not in r.category):
        return False
    if r.entity and (p.label is None or p.label.entity.lower() not in r.entity):
        return False
    if r.sanctioned_at_time is not None and (state == "active") != r.sanctioned_at_time:
        return False
    if r.sanctioned_historical is not None and (state == "historical") != r.sanctioned_historical:
        return False
    if r.direction or r.kind or r.min_share is not None or r.min_amount is not None or r.min_usd is not None \
            or r.max_hops is not None:
        return False
    return True


def _match_item(r: Rule, it: Item, state: str, usd: float | None) -> bool:
    g = it.group
    if r.category and g.category not in r.category:
        return False
    if r.entity and g.entity.lower() not in r.entity:
        return False
    if r.direction and it.direction != r.direction:
        return False
    if r.kind and it.kind != r.kind:
        return False
    if r.max_hops is not None and it.hops > r.max_hops:
        return False
    if r.min_share is not None and it.share < r.min_share:
        return False
    if r.min_amount is not None and Decimal(it.amount) / (Decimal(10) ** it.decimals) < r.min_amount:
        return False
    if r.min_usd is not None and (usd is None or usd < r.min_usd):
        return False
    if r.sanctioned_at_time is not None and (state == "active") != r.sanctioned_at_time:
        return False
    if r.sanctioned_historical is not None and (state == "historical") != r.sanctioned_historical:
        return False
    return True


def verdict_id(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, sort_keys=True, default=str).encode()
    return "v_" + hashlib.sha256(raw).hexdigest()[:24]


def screen_profile(p: Profile, policy: Policy, *, at: dt.datetime, as_of: dict[str, Any],
                   usd: Usd | None = None, vid: str | None = None, extra: dict[str, Any] | None = None) -> Verdict:
    """Judge ``p`` under ``policy`` as of time ``at``. The strictest matching rule decides; every matching
    rule is a reason (strictest first). ``vid``: the verdict id (the service's; default: a content hash)."""
    at = at.astimezone(dt.UTC)
    state = _self_state(p, at)
    exposure: list[dict[str, Any]] = []
    matched: dict[str, Rule] = {}
    for r in policy.rules:
        if r.applies_to == "entity" and _match_entity(r, p, state):
            matched[r.id] = r
    for it in sorted(p.items, key=lambda i: (i.direction, i.hops, -i.share, i.group.gid, i.asset)):
        g = it.group
        gstate = sanction_state(g.sanctioned_from, g.sanctioned_to, g.sanctioned, at)
        u = usd(p.chain, it.asset, it.amount, it.decimals, at) if usd is not None else None
        rules = [r.id for r in policy.rules if r.applies_to == "exposure" and _match_item(r, it, gstate, u)]
        for rid in rules:
            matched[rid] = next(r for r in policy.rules if r.id == rid)
        exposure.append({
            "direction": it.direction, "kind": it.kind, "category": g.category, "entity": g.entity,
            "country": g.country, "hops": it.hops, "amount": it.amount_text(), "usd": u,
            "share": round(it.share, 6), "path": list(it.path), "asset": it.asset,
            "sanctioned": gstate == "active", "sanctions_status": gstate,
            "sanctioned_from": _iso(g.sanctioned_from), "sanctioned_to": _iso(g.sanctioned_to),
            "rules": rules,
        })
    reasons = sorted(matched.values(), key=lambda r: (-r.strictness[0], -r.strictness[1], r.id))
    if reasons:
        top = reasons[0]
        decision, risk, score = top.decision, top.risk, top.score
    else:
        decision, risk, score = "allow", "low", 0
    entity = None
    if p.label is not None:
        entity = {"name": p.label.entity, "category": p.label.category, "country": p.label.country,
                  "sanctioned": state == "active", "source": p.label.source, "confidence": p.label.confidence,
                  "via": p.label.via, "sanctions_status": state}
    elif state != "none":
        w = p.windows[0]
        entity = {"name": w.entity, "category": "sanctioned", "country": None, "sanctioned": state == "active",
                  "source": w.source, "confidence": None, "via": "address", "sanctions_status": state}
    body = {
        "chain": p.chain, "address": p.address, "entity": entity, "cluster_id": p.cluster_id,
        "decision": decision, "risk": risk, "score": score, "exposure": exposure,
        "reasons": [{"rule": r.id, "text": r.text, "decision": r.decision} for r in reasons],
        "policy": {"id": policy.id, "version": policy.version, "digest": policy.digest},
        "as_of": dict(as_of), "at": _iso(at),
    }
    if extra:
        body.update(extra)
    vid = vid or verdict_id(body)
    return Verdict({"verdict_id": vid, **body})


def strictest(decisions: list[str]) -> str:
    return max(decisions, key=DECISIONS.index) if decisions else "allow"
