"""The incident report: what ``fundtrail report`` shows, as frozen records (renderers only format these).

Amounts are integers in base units with their decimals; ``usd`` is a float or None where a price is
missing, and ``usd_partial`` says a USD sum left out amounts whose price is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fundtrail.incidents import Incident
from fundtrail.model.amount import format_units
from fundtrail.model.trace import Balance, Crossing, Holding, MixerUse, Stopped, TraceResult
from fundtrail.report.countries import country_name

NATIVE_SYMBOLS = {"BTC": "BTC", "ETH": "ETH"}


def _iso(t: datetime | None) -> str | None:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t is not None else None


def asset_label(asset: str, symbol: str | None) -> str:
    """What people call an asset: BTC, ETH, the token's symbol, or its shortened contract address."""
    if symbol:
        return symbol
    if asset in NATIVE_SYMBOLS:
        return NATIVE_SYMBOLS[asset]
    if asset.startswith("0x") and len(asset) > 12:
        return f"{asset[:6]}…{asset[-4:]}"
    return asset


CATEGORY_LABEL = {
    "exchange_nokyc": "no-KYC exchange", "otc_desk": "OTC desk", "payment_processor": "payment processor",
    "coinjoin_coordinator": "CoinJoin coordinator", "dex": "DEX", "defi": "DeFi", "darknet_market": "darknet market",
    "theft_perpetrator": "theft perpetrator", "theft_victim": "theft victim", "wallet_service": "wallet service",
}


def category_label(category: str | None) -> str:
    if not category:
        return ""
    return CATEGORY_LABEL.get(category, category.replace("_", " "))


def fmt_amount(amount: int, decimals: int) -> str:
    """Exact amount for people: thousands grouped; beyond 8 decimals trailing zeros are dropped."""
    text = format_units(amount, decimals)
    whole, _, frac = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    whole = f"{int(whole.lstrip('-')):,}"
    if decimals > 8 or decimals == 6:
        frac = frac.rstrip("0")
        if decimals > 8 and len(frac) < 2:
            frac = frac.ljust(2, "0") if frac else ""
    return f"{sign}{whole}" + (f".{frac}" if frac else "")


def fmt_usd(usd: float | None, partial: bool = False) -> str:
    if usd is None:
        return "n/a"
    return f"${usd:,.2f}" + ("+" if partial else "")


@dataclass(frozen=True, slots=True)
class Total:
    """An amount of one asset on one chain, with its USD value (None: no price known)."""

    chain: str
    asset: str
    symbol: str | None
    decimals: int
    amount: int
    usd: float | None = None
    usd_partial: bool = False

    @property
    def label(self) -> str:
        return asset_label(self.asset, self.symbol)

    @property
    def units(self) -> str:
        return format_units(self.amount, self.decimals)

    @property
    def display(self) -> str:
        return fmt_amount(self.amount, self.decimals)

    def text(self, with_chain: bool = False) -> str:
        return f"{self.display} {self.label}" + (f" ({self.chain})" if with_chain else "")

    def to_json(self) -> dict[str, Any]:
        return {"chain": self.chain, "asset": self.asset, "symbol": self.label, "amount": self.units,
                "usd": self.usd, "usd_partial": self.usd_partial}


def usd_sum(totals: tuple[Total, ...] | list[Total]) -> tuple[float | None, bool]:
    """Sum of the known USD values and whether any were unknown (None when none is known)."""
    known = [t.usd for t in totals if t.usd is not None]
    partial = any(t.usd is None or t.usd_partial for t in totals if t.amount)
    return (sum(known) if known else None), partial


def totals_text(totals: tuple[Total, ...] | list[Total]) -> str:
    return " + ".join(t.text() for t in totals) if totals else "0"


@dataclass(frozen=True, slots=True)
class EntityTotal:
    """What one endpoint entity received, per asset (the traced amount, not the entity's whole inflow)."""

    entity: str
    category: str
    country: str | None
    sanctioned: bool
    total: Total
    hops: int  # fewest hops on any path
    max_hops: int
    first_seen: datetime | None
    last_seen: datetime | None
    paths: int
    addresses: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"entity": self.entity, "category": self.category, "country": self.country,
                "sanctioned": self.sanctioned, **self.total.to_json(), "hops": self.hops,
                "max_hops": self.max_hops, "first_seen": _iso(self.first_seen),
                "last_seen": _iso(self.last_seen), "paths": self.paths, "addresses": list(self.addresses)}


@dataclass(frozen=True, slots=True)
class GroupTotal:
    """Endpoint amounts grouped by a key (a category or a country), per asset, with a USD sum."""

    key: str | None
    label: str
    totals: tuple[Total, ...]
    usd: float | None
    usd_partial: bool
    entities: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "amounts": [t.to_json() for t in self.totals],
                "usd": self.usd, "usd_partial": self.usd_partial, "entities": list(self.entities)}


@dataclass(frozen=True, slots=True)
class CountryRollup:
    """"reached exchanges in Russia: X BTC, $Y" — one row per (country, kind of service)."""

    country: str | None
    group: str  # exchanges | OTC desks | payment processors | gambling services | mixers | …
    categories: tuple[str, ...]
    entities: tuple[str, ...]
    totals: tuple[Total, ...]
    usd: float | None
    usd_partial: bool
    direction: str = "forward"  # backward: the funds came from these services

    @property
    def country_name(self) -> str:
        return country_name(self.country)

    @property
    def sentence(self) -> str:
        usd = fmt_usd(self.usd, self.usd_partial) if self.usd is not None else "USD n/a"
        verb = "came from" if self.direction == "backward" else "reached"
        where = f" in {self.country_name}" if self.country or self.group != "mixers" else ""
        return f"{verb} {self.group}{where}: {totals_text(self.totals)}, {usd}"

    def to_json(self) -> dict[str, Any]:
        return {"country": self.country, "country_name": country_name(self.country, article=False),
                "group": self.group, "categories": list(self.categories), "entities": list(self.entities),
                "amounts": [t.to_json() for t in self.totals], "usd": self.usd,
                "usd_partial": self.usd_partial, "sentence": self.sentence}


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    time: datetime | None
    kind: str  # incident | theft | endpoint_first | endpoint_last | bridge | swap | mixer | unspent
    description: str
    total: Total | None = None
    txid: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"time": _iso(self.time), "kind": self.kind, "description": self.description,
                "amount": self.total.to_json() if self.total else None, "txid": self.txid}


@dataclass(frozen=True, slots=True)
class TxFact:
    """What the workspace knows of one transaction: when, and the value it moved per asset."""

    txid: str
    chain: str
    time: datetime | None
    height: int | None
    moved: tuple[Total, ...] = ()


@dataclass(frozen=True, slots=True)
class EvidenceHop:
    txid: str
    chain: str | None
    time: datetime | None
    moved: tuple[Total, ...]  # value the transaction moved (all of it, tainted or not)

    def to_json(self) -> dict[str, Any]:
        return {"txid": self.txid, "chain": self.chain, "time": _iso(self.time),
                "moved": [t.to_json() for t in self.moved]}


@dataclass(frozen=True, slots=True)
class EvidencePath:
    entity: str
    category: str
    country: str | None
    total: Total  # what the endpoint received in this asset (all paths together)
    hops: tuple[EvidenceHop, ...]
    index: int  # the path's number among the endpoint's paths (1-based)
    of: int  # how many paths the endpoint has

    def to_json(self) -> dict[str, Any]:
        return {"entity": self.entity, "category": self.category, "country": self.country,
                "endpoint_amount": self.total.to_json(), "path": self.index, "paths": self.of,
                "hops": [h.to_json() for h in self.hops]}


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """One taint model's trace and the report's aggregates of it."""

    model: str
    result: TraceResult
    traced: tuple[Total, ...]
    endpoints_total: tuple[Total, ...]
    by_entity: tuple[EntityTotal, ...]
    by_category: tuple[GroupTotal, ...]
    by_country: tuple[GroupTotal, ...]
    rollup: tuple[CountryRollup, ...]
    unspent: tuple[Holding, ...]
    unspent_total: tuple[Total, ...]
    mixers: tuple[MixerUse, ...]
    bridges: tuple[Crossing, ...]
    swaps: tuple[Crossing, ...]
    stopped: tuple[Stopped, ...]
    balances: tuple[Balance, ...]

    @property
    def balanced(self) -> bool:
        return all(b.balanced for b in self.balances)

    def to_json(self) -> dict[str, Any]:
        usd, partial = usd_sum(self.endpoints_total)
        return {
            "model": self.model,
            "traced": [t.to_json() for t in self.traced],
            "endpoints_total": [t.to_json() for t in self.endpoints_total],
            "endpoints_usd": usd, "endpoints_usd_partial": partial,
            "by_entity": [e.to_json() for e in self.by_entity],
            "by_category": [g.to_json() for g in self.by_category],
            "by_country": [g.to_json() for g in self.by_country],
            "rollup": [r.to_json() for r in self.rollup],
            "unspent_total": [t.to_json() for t in self.unspent_total],
            "conservation": [b.to_json() for b in self.balances],
            "balanced": self.balanced,
        }


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One figure (traced, endpoints, unspent …) of one asset under each model, side by side."""

    metric: str
    chain: str
    asset: str
    symbol: str | None
    decimals: int
    amounts: tuple[int | None, ...]  # one per model, in Report.models order

    @property
    def label(self) -> str:
        return asset_label(self.asset, self.symbol)

    def to_json(self, models: tuple[str, ...]) -> dict[str, Any]:
        return {"metric": self.metric, "chain": self.chain, "asset": self.asset, "symbol": self.label,
                **{m: (format_units(a, self.decimals) if a is not None else None)
                   for m, a in zip(models, self.amounts, strict=True)}}


@dataclass(frozen=True, slots=True)
class EntityComparisonRow:
    entity: str
    category: str
    country: str | None
    chain: str
    asset: str
    symbol: str | None
    decimals: int
    amounts: tuple[int | None, ...]
    usd: tuple[float | None, ...]

    @property
    def label(self) -> str:
        return asset_label(self.asset, self.symbol)

    def to_json(self, models: tuple[str, ...]) -> dict[str, Any]:
        return {"entity": self.entity, "category": self.category, "country": self.country,
                "chain": self.chain, "asset": self.asset, "symbol": self.label,
                **{m: {"amount": format_units(a, self.decimals) if a is not None else None, "usd": u}
                   for m, a, u in zip(models, self.amounts, self.usd, strict=True)}}


@dataclass(frozen=True, slots=True)
class Report:
    incident: Incident
    generated: datetime
    primary: str
    models: tuple[ModelSummary, ...]
    stolen: tuple[Total, ...]
    timeline: tuple[TimelineEvent, ...]
    evidence: tuple[EvidencePath, ...]
    comparison: tuple[ComparisonRow, ...]
    entity_comparison: tuple[EntityComparisonRow, ...]
    notes: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    symbols: dict[str, str] = field(default_factory=dict)  # "chain:asset" -> symbol, where known

    def label(self, chain: str, asset: str) -> str:
        return asset_label(asset, self.symbols.get(f"{chain}:{asset}"))

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.model for m in self.models)

    def summary(self, model: str | None = None) -> ModelSummary:
        want = model or self.primary
        for m in self.models:
            if m.model == want:
                return m
        raise KeyError(want)

    def to_json(self) -> dict[str, Any]:
        """The contract's trace JSON of the primary model at the top level, plus the report."""
        names = self.model_names
        primary = self.summary()
        stolen_usd, stolen_partial = usd_sum(self.stolen)
        out = dict(primary.result.to_json())
        out["incident"] = self.incident.to_json()
        out["report"] = {
            "generated": _iso(self.generated),
            "primary_model": self.primary,
            "models": list(names),
            "stolen": [t.to_json() for t in self.stolen],
            "stolen_usd": stolen_usd, "stolen_usd_partial": stolen_partial,
            "summaries": {m.model: m.to_json() for m in self.models},
            "rollup": [r.to_json() for r in primary.rollup],
            "timeline": [e.to_json() for e in self.timeline],
            "evidence": [p.to_json() for p in self.evidence],
            "comparison": [r.to_json(names) for r in self.comparison],
            "entity_comparison": [r.to_json(names) for r in self.entity_comparison],
            "notes": list(self.notes),
            "params": self.params,
        }
        out["traces"] = {m.model: m.result.to_json() for m in self.models}
        return out
