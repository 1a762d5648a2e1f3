"""The policy in force (the store's newest version, else the shipped default as version 0) and backtests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fundtrail.errors import NotFoundError
from fundtrail.screen.policy import Policy, default_policy, parse_policy
from fundtrail.service.store import Store


def current_policy(store: Store | None) -> Policy:
    row = store.policy() if store is not None else None
    if row is None:
        return default_policy().with_version(0)
    return parse_policy(row["body"], path=f"policy version {row['version']}").with_version(int(row["version"]))


def policy_version(store: Store | None, version: int | None) -> Policy:
    if not version:
        return default_policy().with_version(0)
    row = store.policy(version) if store is not None else None
    if row is None:
        raise NotFoundError(f"policy version {version} is not in the store")
    return parse_policy(row["body"], path=f"policy version {version}").with_version(int(version))


def put_policy(store: Store, text: str, author: str | None) -> Policy:
    p = parse_policy(text, path="policy")
    v = store.add_policy(p.id, text, p.digest, author)
    return p.with_version(v)


@dataclass(slots=True)
class Backtest:
    total: int = 0
    replayed: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)  # verdicts whose index version is gone
    changed: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "replayed": self.replayed, "changed": self.changed, "skipped": self.skipped}


def backtest(ws: Any, store: Store, candidate: Policy, limit: int = 100_000) -> Backtest:
    """Replay every stored verdict under ``candidate`` (each as of its own index version) and list the
    decisions that would change, with the rules that now decide."""
    from fundtrail.exposure.index import load_index
    from fundtrail.service.screening import load_prices, replay

    out = Backtest()
    indexes: dict[int, Any] = {}
    prices = load_prices(ws)
    offset = 0
    while offset < limit:
        batch = store.verdicts(limit=1000, offset=offset)
        if not batch:
            break
        offset += len(batch)
        for v in batch:
            out.total += 1
            ver = v.get("as_of", {}).get("index_version")
            if ver not in indexes:
                try:
                    indexes[ver] = load_index(ws, ver)
                except NotFoundError:
                    indexes[ver] = None
            ix = indexes[ver]
            if ix is None:
                out.skipped.append({"verdict_id": v["verdict_id"], "reason": f"index version {ver} not kept"})
                continue
            r = replay(v, ix, candidate, prices)["replayed"]
            out.replayed += 1
            if r["decision"] != v["decision"]:
                out.changed.append({"verdict_id": v["verdict_id"], "chain": v["chain"], "address": v["address"],
                                    "before": v["decision"], "after": r["decision"],
                                    "before_rules": [x["rule"] for x in v["reasons"]],
                                    "after_rules": [x["rule"] for x in r["reasons"]],
                                    "why": r["reasons"][0]["text"] if r["reasons"] else "no rule matches"})
    return out
