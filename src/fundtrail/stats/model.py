"""Records of ``fundtrail stats``: one :class:`Fact` per movement, grouped into :class:`GroupRow` totals.

A fact is one amount of one asset with its USD value at the day it moved (integer cents, so that sums over
any grouping add up exactly), its time, and what it is:

* ``stolen``      what an incident's seeds received (traced amount less what entered through a swap or
                  bridge), at the theft time;
* ``cashed_out``  one arrival at a service (exchange, OTC desk, payment processor, gambling: the trace's
                  endpoints other than mixers), with its hop count and delay since the theft;
* ``mixer``       one deposit into a mixer the trace did not follow;
* ``unspent``     traced funds still at rest at an address (freeze candidates), at the time they arrived;
* ``reported``    an incident's loss in USD as its published sources report it (asset ``USD``, cents).

``model`` is the taint model the trace ran under (``reported`` facts: ``sources``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fundtrail.model.amount import format_units

MEASURES = ("stolen", "cashed_out", "mixer", "unspent", "reported")
GROUP_KEYS = ("actor", "year", "month", "incident", "asset", "chain", "country", "entity", "category")
NA = "n/a"


TITLES = {"reported": "Reported losses (as the cited sources state them)",
          "stolen": "Stolen (traced from the seeds, at the theft)",
          "cashed_out": "Cashed out at services (trace endpoints)", "mixer": "Lost in mixers",
          "unspent": "Still unspent (freezable)"}



def _iso(t: datetime | None) -> str | None:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t is not None else None


def usd_text(cents: int | None, partial: bool = False) -> str:
    if cents is None:
        return "n/a"
    return f"${cents / 100:,.2f}" + (" (partial)" if partial else "")


@dataclass(frozen=True, slots=True)
class Fact:
    measure: str
    model: str
    incident: str
    actor: str | None
    chain: str
    asset: str
    decimals: int
    amount: int
    usd_cents: int | None
    time: datetime | None
    symbol: str | None = None
    entity: str | None = None
    category: str | None = None
    country: str | None = None
    hops: int | None = None
    delay_s: int | None = None  # seconds from the theft to this movement

    def key(self, name: str) -> str:
        """The value this fact takes for a grouping key (``n/a`` where it has none)."""
        if name == "year":
            return f"{self.time.year:04d}" if self.time else NA
        if name == "month":
            return f"{self.time.year:04d}-{self.time.month:02d}" if self.time else NA
        if name == "asset":
            return self.symbol or self.asset
        v = getattr(self, name)
        return v if v else NA

    def to_json(self) -> dict[str, Any]:
        return {"measure": self.measure, "model": self.model, "incident": self.incident, "actor": self.actor,
                "chain": self.chain, "asset": self.asset, "symbol": self.symbol,
                "amount": format_units(self.amount, self.decimals),
                "usd": None if self.usd_cents is None else self.usd_cents / 100, "time": _iso(self.time),
                "entity": self.entity, "category": self.category, "country": self.country, "hops": self.hops,
                "delay_s": self.delay_s}


@dataclass(frozen=True, slots=True)
class AssetTotal:
    chain: str
    asset: str
    symbol: str | None
    decimals: int
    amount: int
    usd_cents: int | None  # None: no unit of it had a price
    unpriced: int = 0  # base units without a USD price

    def text(self) -> str:
        return f"{format_units(self.amount, self.decimals)} {self.symbol or self.asset}"

    def to_json(self) -> dict[str, Any]:
        return {"chain": self.chain, "asset": self.asset, "symbol": self.symbol,
                "amount": format_units(self.amount, self.decimals),
                "usd": None if self.usd_cents is None else self.usd_cents / 100,
                "unpriced_amount": format_units(self.unpriced, self.decimals)}


@dataclass(frozen=True, slots=True)
class GroupRow:
    """One group of one measure under one model: totals per asset, and in USD (partial when some amount
    had no price at its day)."""

    measure: str
    model: str
    key: tuple[str, ...]
    totals: tuple[AssetTotal, ...]
    usd_cents: int | None
    usd_partial: bool
    facts: int

    def to_json(self, by: tuple[str, ...]) -> dict[str, Any]:
        return {"measure": self.measure, "model": self.model, **dict(zip(by, self.key, strict=True)),
                "usd": None if self.usd_cents is None else self.usd_cents / 100, "usd_partial": self.usd_partial,
                "facts": self.facts, "totals": [t.to_json() for t in self.totals]}


@dataclass(frozen=True, slots=True)
class Timing:
    """Hop count and days from theft to cash-out of one group's cash-outs: median and 90th percentile,
    weighted by USD value when every arrival has a price, otherwise by arrival (``weight``)."""

    model: str
    key: tuple[str, ...]
    arrivals: int
    weight: str  # usd | arrivals
    hops_median: float | None
    hops_p90: float | None
    days_median: float | None
    days_p90: float | None

    def to_json(self, by: tuple[str, ...]) -> dict[str, Any]:
        return {"model": self.model, **dict(zip(by, self.key, strict=True)), "arrivals": self.arrivals,
                "weighted_by": self.weight, "hops_median": self.hops_median, "hops_p90": self.hops_p90,
                "days_median": self.days_median, "days_p90": self.days_p90}


@dataclass(frozen=True, slots=True)
class Shares:
    """Where one model's traced value went, in USD at the day of each movement: cashed out at services,
    lost in mixers, still unspent (freezable), and the rest (fees, hop limit, unmatched bridges, …)."""

    model: str
    stolen_cents: int | None
    cashed_out_cents: int | None
    mixer_cents: int | None
    unspent_cents: int | None
    partial: bool

    def share(self, cents: int | None) -> float | None:
        if cents is None or not self.stolen_cents:
            return None
        return round(cents / self.stolen_cents, 4)

    def to_json(self) -> dict[str, Any]:
        def u(c: int | None) -> float | None:
            return None if c is None else c / 100

        return {"model": self.model, "stolen_usd": u(self.stolen_cents),
                "cashed_out_usd": u(self.cashed_out_cents), "mixer_usd": u(self.mixer_cents),
                "unspent_usd": u(self.unspent_cents), "cashed_out_share": self.share(self.cashed_out_cents),
                "mixer_share": self.share(self.mixer_cents), "unspent_share": self.share(self.unspent_cents),
                "usd_partial": self.partial}


@dataclass(frozen=True, slots=True)
class IncidentInfo:
    name: str
    actor: str | None
    date: datetime | None
    chains: tuple[str, ...]
    seeds: int
    traced: bool
    victim: str | None = None
    reported_loss_usd: float | None = None
    sources: tuple[str, ...] = ()
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "actor": self.actor, "date": _iso(self.date), "chains": list(self.chains),
                "seeds": self.seeds, "traced": self.traced, "victim": self.victim,
                "reported_loss_usd": self.reported_loss_usd, "sources": list(self.sources), "note": self.note}


@dataclass(frozen=True, slots=True)
class StatsResult:
    by: tuple[str, ...]
    models: tuple[str, ...]
    facts: tuple[Fact, ...]
    groups: tuple[GroupRow, ...]  # every measure grouped by ``by``
    monthly: tuple[GroupRow, ...]  # cashed-out, mixer and unspent flows by month (every model)
    timing: tuple[Timing, ...]  # per model and ``by`` group (cash-outs only), plus the overall row (key ())
    shares: tuple[Shares, ...]
    incidents: tuple[IncidentInfo, ...]
    method: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "by": list(self.by), "models": list(self.models), "method": self.method, "notes": list(self.notes),
            "incidents": [i.to_json() for i in self.incidents],
            "groups": [g.to_json(self.by) for g in self.groups],
            "monthly": [g.to_json(("month",)) for g in self.monthly],
            "timing": [t.to_json(self.by if t.key else ()) for t in self.timing],
            "shares": [s.to_json() for s in self.shares],
            "facts": [f.to_json() for f in self.facts],
        }


def method_text(r: StatsResult) -> str:
    m = r.method
    asof = ", ".join(f"{c} ingested to {v.get('ingested_height')}, clustered to {v.get('clustered_height')}"
                     for c, v in m.get("as_of", {}).items()) or "no chain traced"
    return (f"method: models {', '.join(m.get('models', []))}; forward; hop budget {m.get('max_hops')}; "
            f"as of {asof}; USD at the day of each movement; generated {m.get('generated')}"
            + (f"; from {m['from']}" if m.get("from") else "") + (f"; to {m['to']}" if m.get("to") else ""))
