"""The policy language: YAML rules, each with an id and a text; the strictest matching rule decides.

```
id: my-policy
rules:
  - id: STOLEN-DIRECT                 # unique, appears in the verdict's reasons
    text: Received stolen funds directly.
    applies_to: exposure              # exposure (default): an exposure item; entity: the address's own attribution
    category: [stolen_funds]          # any of (exposure: the source's category; entity: the address's)
    direction: received               # received | sent (exposure only)
    kind: direct                      # direct | indirect (exposure only)
    min_share: 0.5                    # share of what the address received / sent in that asset, 0..1
    min_amount: "1.5"                 # in whole units of the item's asset
    min_usd: 1000
    max_hops: 3
    entity: [Garantex]                # entity names (case-insensitive)
    sanctioned_at_time: true          # the source (or the address) was sanctioned at the transfer's time
    sanctioned_historical: true       # ... was sanctioned once, but not at that time (delisted)
    decision: block                   # allow | review | block
    risk: severe                      # low | medium | high | severe (default from the decision)
    score: 95                         # 0..100 (default from the risk)
```
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any

import yaml

from fundtrail.errors import PolicyError

DECISIONS = ("allow", "review", "block")
RISKS = ("low", "medium", "high", "severe")
RISK_SCORE = {"low": 10, "medium": 50, "high": 80, "severe": 95}
DECISION_RISK = {"allow": "low", "review": "medium", "block": "high"}
_KEYS = {"id", "text", "applies_to", "category", "direction", "kind", "min_share", "min_amount", "min_usd",
         "max_hops", "entity", "sanctioned_at_time", "sanctioned_historical", "decision", "risk", "score"}


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    text: str
    decision: str
    risk: str
    score: int
    applies_to: str = "exposure"
    category: tuple[str, ...] = ()
    direction: str | None = None
    kind: str | None = None
    min_share: float | None = None
    min_amount: Decimal | None = None
    min_usd: float | None = None
    max_hops: int | None = None
    entity: tuple[str, ...] = ()
    sanctioned_at_time: bool | None = None
    sanctioned_historical: bool | None = None

    @property
    def strictness(self) -> tuple[int, int]:
        return DECISIONS.index(self.decision), self.score


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    rules: tuple[Rule, ...]
    text: str
    version: int | None = None

    @property
    def digest(self) -> str:
        return _digest(self.text)

    def with_version(self, version: int) -> Policy:
        return Policy(self.id, self.rules, self.text, version)


@functools.lru_cache(maxsize=64)
def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _list(v: Any, field: str, where: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (v.lower(),)
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return tuple(x.lower() for x in v)
    raise PolicyError(f"{where}: {field} must be a string or a list of strings", field=field)


def _rule(d: Any, i: int) -> Rule:
    where = f"rules[{i}]"
    if not isinstance(d, dict):
        raise PolicyError(f"{where}: a rule is a mapping", field=where)
    unknown = sorted(set(d) - _KEYS)
    if unknown:
        raise PolicyError(f"{where}: unknown field {unknown[0]!r}", field=f"{where}.{unknown[0]}")
    rid = d.get("id")
    if not isinstance(rid, str) or not rid.strip():
        raise PolicyError(f"{where}: id is required (a string)", field=f"{where}.id")
    where = f"rules[{i}] ({rid})"
    text = d.get("text")
    if not isinstance(text, str) or not text.strip():
        raise PolicyError(f"{where}: text is required (a string)", field=f"rules[{i}].text")
    dec = d.get("decision")
    if dec not in DECISIONS:
        raise PolicyError(f"{where}: decision must be one of {', '.join(DECISIONS)}", field=f"rules[{i}].decision")
    risk = d.get("risk", DECISION_RISK[dec])
    if risk not in RISKS:
        raise PolicyError(f"{where}: risk must be one of {', '.join(RISKS)}", field=f"rules[{i}].risk")
    score = d.get("score", RISK_SCORE[risk])
    if not isinstance(score, int) or isinstance(score, bool) or not 0 <= score <= 100:
        raise PolicyError(f"{where}: score must be an integer 0..100", field=f"rules[{i}].score")
    applies = d.get("applies_to", "exposure")
    if applies not in ("exposure", "entity"):
        raise PolicyError(f"{where}: applies_to must be exposure or entity", field=f"rules[{i}].applies_to")
    direction = d.get("direction")
    if direction not in (None, "received", "sent"):
        raise PolicyError(f"{where}: direction must be received or sent", field=f"rules[{i}].direction")
    kind = d.get("kind")
    if kind not in (None, "direct", "indirect"):
        raise PolicyError(f"{where}: kind must be direct or indirect", field=f"rules[{i}].kind")

    def num(name: str, typ: type, lo: float | None = None, hi: float | None = None) -> Any:
        v = d.get(name)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (typ is int and not isinstance(v, int)):
            raise PolicyError(f"{where}: {name} must be a number", field=f"rules[{i}].{name}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise PolicyError(f"{where}: {name} out of range", field=f"rules[{i}].{name}")
        return typ(v)

    amt = d.get("min_amount")
    if amt is not None:
        try:
            amt = Decimal(str(amt))
        except InvalidOperation:
            raise PolicyError(f"{where}: min_amount must be a decimal number", field=f"rules[{i}].min_amount") from None
    for b in ("sanctioned_at_time", "sanctioned_historical"):
        if d.get(b) is not None and not isinstance(d.get(b), bool):
            raise PolicyError(f"{where}: {b} must be true or false", field=f"rules[{i}].{b}")
    return Rule(id=rid.strip(), text=text.strip(), decision=dec, risk=risk, score=score, applies_to=applies,
                category=_list(d.get("category"), "category", where), direction=direction, kind=kind,
                min_share=num("min_share", float, 0, 1), min_amount=amt, min_usd=num("min_usd", float, 0),
                max_hops=num("max_hops", int, 0), entity=_list(d.get("entity"), "entity", where),
                sanctioned_at_time=d.get("sanctioned_at_time"), sanctioned_historical=d.get("sanctioned_historical"))


def parse_policy(text: str, *, path: str | None = None) -> Policy:
    """Parse and validate a policy document; PolicyError names the field (``rules[3].decision``)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise PolicyError(f"policy is not valid YAML: {str(e).splitlines()[0]}", path=path,
                          line=None if line is None else line + 1, field="policy") from None
    if not isinstance(doc, dict):
        raise PolicyError("a policy is a mapping with id and rules", path=path, field="policy")
    unknown = sorted(set(doc) - {"id", "rules", "description"})
    if unknown:
        raise PolicyError(f"unknown field {unknown[0]!r}", path=path, field=unknown[0])
    pid = doc.get("id", "policy")
    if not isinstance(pid, str):
        raise PolicyError("id must be a string", path=path, field="id")
    rules = doc.get("rules")
    if not isinstance(rules, list) or not rules:
        raise PolicyError("rules must be a non-empty list", path=path, field="rules")
    try:
        parsed = tuple(_rule(r, i) for i, r in enumerate(rules))
    except PolicyError as e:
        raise PolicyError(e.message, path=path, field=e.field) from None
    ids = [r.id for r in parsed]
    dup = sorted({x for x in ids if ids.count(x) > 1})
    if dup:
        raise PolicyError(f"rule id {dup[0]!r} is used twice", path=path, field="rules.id")
    return Policy(pid, parsed, text)


def default_policy_text() -> str:
    return resources.files("fundtrail.screen").joinpath("default_policy.yaml").read_text(encoding="utf-8")


def default_policy() -> Policy:
    return parse_policy(default_policy_text(), path="default_policy.yaml")
