"""Assemble a :class:`Report` from the ``TraceResult`` of each taint model (pure: no workspace access).

``service.build_report`` runs the traces and looks up transactions; this module only aggregates:
totals per entity, category and country, the per-country roll-up, the timeline, evidence paths, the
models side by side and the conservation balances.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fundtrail.incidents import Incident
from fundtrail.model.trace import Balance, Endpoint, Holding, TraceResult
from fundtrail.prices.book import PriceBook
from fundtrail.report.countries import country_name
from fundtrail.report.model import (
    ComparisonRow,
    CountryRollup,
    EntityComparisonRow,
    EntityTotal,
    EvidenceHop,
    EvidencePath,
    GroupTotal,
    ModelSummary,
    Report,
    TimelineEvent,
    Total,
    TxFact,
    asset_label,
    category_label,
    usd_sum,
)

MODEL_ORDER = ("poison", "haircut", "fifo")

#: category -> the words of the roll-up sentence ("reached exchanges in Russia")
CATEGORY_GROUP: dict[str, str] = {
    "exchange": "exchanges", "exchange_nokyc": "exchanges", "otc_desk": "OTC desks",
    "payment_processor": "payment processors", "gambling": "gambling services",
    "mixer": "mixers", "coinjoin_coordinator": "mixers", "bridge": "bridges", "dex": "DEXes",
    "defi": "DeFi protocols", "wallet_service": "wallet services", "mining": "mining pools",
    "darknet_market": "darknet markets", "sanctioned": "sanctioned entities", "scam": "scams",
    "ransomware": "ransomware operators", "theft_perpetrator": "the thieves' own wallets",
    "theft_victim": "victims", "other": "other entities",
}
GROUP_ORDER = ("exchanges", "OTC desks", "payment processors", "gambling services", "mixers", "bridges")
MIXER_CATEGORIES = frozenset({"mixer", "coinjoin_coordinator"})

MAX_PATHS_PER_ENDPOINT = 3
MAX_EVIDENCE_ENDPOINTS = 40
MAX_TIMELINE_HOLDINGS = 10


AssetKey = tuple[str, str]  # (chain, asset)


class _Assets:
    """Decimals and symbols of every (chain, asset) the results mention."""

    def __init__(self, results: Iterable[TraceResult]) -> None:
        self.decimals: dict[AssetKey, int] = {}
        self.symbols: dict[AssetKey, str | None] = {}
        for r in results:
            for a in r.traced:
                self._see(a.chain, a.asset, a.decimals, a.symbol)
            for e in r.endpoints:
                self._see(e.chain, e.asset, e.decimals, e.symbol)
            for h in r.unspent:
                self._see(h.chain, h.asset, h.decimals, h.symbol)
            for m in r.mixers:
                self._see(m.chain, m.asset, m.decimals, None)
            for s in r.stopped:
                self._see(s.chain, s.asset, s.decimals, None)
            for b in r.balances:
                self._see(b.chain, b.asset, b.decimals, None)
            for c in (*r.bridges, *r.swaps):
                self._see(c.from_chain, c.from_asset, c.from_decimals, None)
                self._see(c.to_chain, c.to_asset, c.to_decimals, None)

    def _see(self, chain: str, asset: str, decimals: int, symbol: str | None) -> None:
        k = (chain, asset)
        self.decimals.setdefault(k, decimals)
        if symbol or k not in self.symbols:
            self.symbols[k] = symbol or self.symbols.get(k)

    def total(self, chain: str, asset: str, amount: int, usd: float | None = None,
              usd_partial: bool = False) -> Total:
        k = (chain, asset)
        return Total(chain, asset, self.symbols.get(k), self.decimals.get(k, 0), int(amount), usd, usd_partial)


def _sum_totals(assets: _Assets, items: Iterable[tuple[str, str, int, float | None]]) -> tuple[Total, ...]:
    """Sum (chain, asset, amount, usd) per asset; USD partial when some amount had no price."""
    amt: dict[AssetKey, int] = defaultdict(int)
    usd: dict[AssetKey, float] = defaultdict(float)
    known: dict[AssetKey, bool] = defaultdict(bool)
    missing: dict[AssetKey, bool] = defaultdict(bool)
    for chain, asset, amount, u in items:
        k = (chain, asset)
        amt[k] += int(amount)
        if u is None:
            if amount:
                missing[k] = True
        else:
            usd[k] += u
            known[k] = True
    return tuple(assets.total(c, a, amt[(c, a)], usd[(c, a)] if known[(c, a)] else None, missing[(c, a)])
                 for c, a in sorted(amt, key=lambda k: (-_weight(amt[k], assets.decimals.get(k, 0)), k)))


def _weight(amount: int, decimals: int) -> float:
    return amount / 10**decimals if decimals else float(amount)


def _day(t: datetime | None) -> Any:
    return t.astimezone(UTC).date() if t is not None else None


def _price_endpoint(e: Endpoint, prices: PriceBook | None) -> Endpoint:
    """Fill a missing USD value where it is unambiguous: every unit arrived on one UTC day."""
    if e.usd is not None or prices is None or e.first_seen is None:
        return e
    if _day(e.first_seen) != _day(e.last_seen or e.first_seen):
        return e
    u = prices.usd(e.chain, e.asset, e.symbol, e.first_seen, e.amount, e.decimals)
    if u is None:
        return e
    from dataclasses import replace

    return replace(e, usd=u)


def _price_holding(h: Holding, prices: PriceBook | None) -> Holding:
    if h.usd is not None or prices is None or h.since is None:
        return h
    u = prices.usd(h.chain, h.asset, h.symbol, h.since, h.amount, h.decimals)
    if u is None:
        return h
    from dataclasses import replace

    return replace(h, usd=u)


def _by_entity(assets: _Assets, endpoints: Sequence[Endpoint]) -> tuple[EntityTotal, ...]:
    groups: dict[tuple[str, str, str | None, str, str], list[Endpoint]] = defaultdict(list)
    for e in endpoints:
        groups[(e.entity, e.category, e.country, e.chain, e.asset)].append(e)
    out = []
    for (entity, category, country, _chain, _asset), es in groups.items():
        total = _sum_totals(assets, ((e.chain, e.asset, e.amount, e.usd) for e in es))[0]
        firsts = [e.first_seen for e in es if e.first_seen is not None]
        lasts = [e.last_seen or e.first_seen for e in es if (e.last_seen or e.first_seen) is not None]
        addrs = tuple(dict.fromkeys(a for e in es for a in e.addresses))
        out.append(EntityTotal(
            entity=entity, category=category, country=country, sanctioned=any(e.sanctioned for e in es),
            total=total, hops=min(e.hops for e in es), max_hops=max(e.hops for e in es),
            first_seen=min(firsts) if firsts else None, last_seen=max(lasts) if lasts else None,
            paths=sum(len(e.paths) for e in es), addresses=addrs))
    out.sort(key=lambda x: (-(x.total.usd or 0.0), -_weight(x.total.amount, x.total.decimals), x.entity))
    return tuple(out)


def _group(assets: _Assets, endpoints: Sequence[Endpoint], key: Any, label: Any) -> tuple[GroupTotal, ...]:
    groups: dict[Any, list[Endpoint]] = defaultdict(list)
    for e in endpoints:
        groups[key(e)].append(e)
    out = []
    for k, es in groups.items():
        totals = _sum_totals(assets, ((e.chain, e.asset, e.amount, e.usd) for e in es))
        usd, partial = usd_sum(totals)
        out.append(GroupTotal(key=k, label=label(k), totals=totals, usd=usd, usd_partial=partial,
                              entities=tuple(sorted({e.entity for e in es}))))
    out.sort(key=lambda g: (-(g.usd or 0.0), -sum(_weight(t.amount, t.decimals) for t in g.totals), g.label))
    return tuple(out)


def _rollup(assets: _Assets, endpoints: Sequence[Endpoint], direction: str = "forward") -> tuple[CountryRollup, ...]:
    groups: dict[tuple[str | None, str], list[Endpoint]] = defaultdict(list)
    for e in endpoints:
        groups[(e.country, CATEGORY_GROUP.get(e.category, e.category.replace("_", " ")))].append(e)
    out = []
    for (country, group), es in groups.items():
        totals = _sum_totals(assets, ((e.chain, e.asset, e.amount, e.usd) for e in es))
        usd, partial = usd_sum(totals)
        out.append(CountryRollup(country=country, group=group,
                                 categories=tuple(sorted({e.category for e in es})),
                                 entities=tuple(sorted({e.entity for e in es})), totals=totals, usd=usd,
                                 usd_partial=partial, direction=direction))
    rank = {g: i for i, g in enumerate(GROUP_ORDER)}
    out.sort(key=lambda r: (rank.get(r.group, len(rank)), -(r.usd or 0.0),
                            -sum(_weight(t.amount, t.decimals) for t in r.totals), r.country or "~"))
    return tuple(out)


def _balances(assets: _Assets, r: TraceResult) -> tuple[Balance, ...]:
    """The trace's own balances, or (when it gave none) the balance its records imply."""
    if r.balances:
        return r.balances
    keys = {(a.chain, a.asset) for a in r.traced}
    out = []
    for chain, asset in sorted(keys):
        def s(items: Iterable[Any], chain: str = chain, asset: str = asset) -> int:
            return sum(int(x.amount) for x in items if x.chain == chain and x.asset == asset)
        out.append(Balance(
            chain=chain, asset=asset, decimals=assets.decimals.get((chain, asset), 0),
            traced=s(r.traced), endpoints=s(r.endpoints), unspent=s(r.unspent), fees=0,
            stopped_hops=s(x for x in r.stopped if x.reason == "max_hops"),
            stopped_dust=s(x for x in r.stopped if x.reason == "dust"),
            mixers=s(r.mixers),
            crossed_out=sum(c.from_amount for c in (*r.bridges, *r.swaps)
                            if c.from_chain == chain and c.from_asset == asset),
            other_stopped=s(x for x in r.stopped if x.reason not in ("max_hops", "dust"))))
    return tuple(out)


def summarize(r: TraceResult, assets: _Assets, prices: PriceBook | None = None) -> ModelSummary:
    endpoints = tuple(_price_endpoint(e, prices) for e in r.endpoints)
    unspent = tuple(sorted((_price_holding(h, prices) for h in r.unspent),
                           key=lambda h: (-(h.usd or 0.0), -_weight(h.amount, h.decimals), h.address)))
    traced = tuple(assets.total(a.chain, a.asset, a.amount, a.usd) for a in r.traced)
    return ModelSummary(
        model=r.model, result=r, traced=traced,
        endpoints_total=_sum_totals(assets, ((e.chain, e.asset, e.amount, e.usd) for e in endpoints)),
        by_entity=_by_entity(assets, endpoints),
        by_category=_group(assets, endpoints, lambda e: e.category, category_label),
        by_country=_group(assets, endpoints, lambda e: e.country,
                          lambda k: f"{country_name(k, article=False)}" + (f" ({k})" if k else "")),
        rollup=_rollup(assets, endpoints, r.direction),
        unspent=unspent,
        unspent_total=_sum_totals(assets, ((h.chain, h.asset, h.amount, h.usd) for h in unspent)),
        mixers=r.mixers, bridges=r.bridges, swaps=r.swaps, stopped=r.stopped,
        balances=_balances(assets, r),
    )


def stolen_totals(r: TraceResult, assets: _Assets, prices: PriceBook | None = None,
                  when: datetime | None = None) -> tuple[Total, ...]:
    """What the seeds held: the traced amount of each asset less what entered it through a swap or bridge."""
    crossed_in: dict[AssetKey, int] = defaultdict(int)
    for c in (*r.bridges, *r.swaps):
        crossed_in[(c.to_chain, c.to_asset)] += c.to_amount
    out = []
    for a in r.traced:
        k = (a.chain, a.asset)
        amount = a.amount - crossed_in.get(k, 0)
        if amount <= 0:
            continue
        usd = a.usd if amount == a.amount else None
        if usd is None and prices is not None and when is not None:
            usd = prices.usd(a.chain, a.asset, a.symbol, when, amount, a.decimals)
        out.append(assets.total(a.chain, a.asset, amount, usd))
    return tuple(out)


def _timeline(incident: Incident, s: ModelSummary, assets: _Assets,
              tx_facts: Mapping[str, TxFact], prices: PriceBook | None = None) -> tuple[TimelineEvent, ...]:
    ev: list[TimelineEvent] = []

    def priced(chain: str, asset: str, amount: int, when: datetime | None) -> Total:
        t = assets.total(chain, asset, amount)
        if prices is None or when is None:
            return t
        from dataclasses import replace

        return replace(t, usd=prices.usd(chain, asset, t.symbol, when, amount, t.decimals))

    if incident.since is not None:
        ev.append(TimelineEvent(incident.since, "incident", f"Incident {incident.name} starts (trace from here)"))
    for seed in incident.seeds:
        if seed.txid and seed.txid in tx_facts:
            f = tx_facts[seed.txid]
            ev.append(TimelineEvent(f.time, "theft", f"Theft transaction on {f.chain}",
                                    f.moved[0] if f.moved else None, seed.txid))
    verb = "come from" if s.result.direction == "backward" else "reach"
    for e in s.by_entity:
        where = f"{e.entity} ({category_label(e.category)}, {country_name(e.country, article=False)})"
        if e.first_seen is not None:
            ev.append(TimelineEvent(e.first_seen, "endpoint_first", f"First traced funds {verb} {where}", e.total))
        if e.last_seen is not None and e.last_seen != e.first_seen:
            ev.append(TimelineEvent(e.last_seen, "endpoint_last", f"Last traced funds {verb} {where}"))
    for c in s.bridges:
        ev.append(TimelineEvent(
            c.time, "bridge",
            f"Bridged via {c.via}: {assets.total(c.from_chain, c.from_asset, c.from_amount).text()} on "
            f"{c.from_chain} -> {assets.total(c.to_chain, c.to_asset, c.to_amount).text()} on {c.to_chain} "
            f"(matched by {c.match.replace('_', ' ')}, confidence {c.confidence:.2f})",
            priced(c.from_chain, c.from_asset, c.from_amount, c.time), c.in_txid))
    for c in s.swaps:
        ev.append(TimelineEvent(
            c.time, "swap",
            f"Swapped on {c.via}: {assets.total(c.from_chain, c.from_asset, c.from_amount).text()} -> "
            f"{assets.total(c.to_chain, c.to_asset, c.to_amount).text()}",
            priced(c.from_chain, c.from_asset, c.from_amount, c.time), c.in_txid))
    for m in s.mixers:
        t = None
        for d in m.deposits:
            f = tx_facts.get(d)
            if f is not None and f.time is not None and (t is None or f.time < t):
                t = f.time
        ev.append(TimelineEvent(t, "mixer", f"Deposited into mixer {m.mixer} ({len(m.deposits)} deposits)",
                                assets.total(m.chain, m.asset, m.amount, m.usd),
                                m.deposits[0] if m.deposits else None))
    dated = [h for h in s.unspent if h.since is not None]
    for h in dated[:MAX_TIMELINE_HOLDINGS]:
        ev.append(TimelineEvent(h.since, "unspent", f"Funds come to rest at {h.address} (still unspent)",
                                assets.total(h.chain, h.asset, h.amount, h.usd)))
    rest = dated[MAX_TIMELINE_HOLDINGS:]
    if rest:
        ev.append(TimelineEvent(max(h.since for h in rest if h.since is not None), "unspent",
                                f"… and {len(rest)} smaller holdings come to rest (see unspent holdings)"))
    far = datetime.max.replace(tzinfo=UTC)
    ev.sort(key=lambda e: (e.time or far, e.kind))
    return tuple(ev)


def _evidence(s: ModelSummary, assets: _Assets, tx_facts: Mapping[str, TxFact]) -> tuple[EvidencePath, ...]:
    out: list[EvidencePath] = []
    ranked = sorted(s.result.endpoints, key=lambda e: (-(e.usd or 0.0), -_weight(e.amount, e.decimals)))
    for e in ranked[:MAX_EVIDENCE_ENDPOINTS]:
        total = assets.total(e.chain, e.asset, e.amount, e.usd)
        paths = e.paths[:MAX_PATHS_PER_ENDPOINT]
        for i, p in enumerate(paths, 1):
            hops = []
            for txid in p:
                f = tx_facts.get(txid)
                hops.append(EvidenceHop(txid, f.chain if f else None, f.time if f else None,
                                        f.moved if f else ()))
            out.append(EvidencePath(e.entity, e.category, e.country, total, tuple(hops), i, len(e.paths)))
    return tuple(out)


def _comparison(summaries: Sequence[ModelSummary], assets: _Assets) -> tuple[ComparisonRow, ...]:
    keys: list[AssetKey] = []
    for s in summaries:
        for b in s.balances:
            if (b.chain, b.asset) not in keys:
                keys.append((b.chain, b.asset))
    metrics = [
        ("traced", lambda b: b.traced), ("endpoints", lambda b: b.endpoints), ("unspent", lambda b: b.unspent),
        ("mixers", lambda b: b.mixers), ("fees", lambda b: b.fees),
        ("stopped (hop limit)", lambda b: b.stopped_hops), ("stopped (dust)", lambda b: b.stopped_dust),
        ("stopped (other)", lambda b: b.other_stopped), ("crossed to other asset", lambda b: b.crossed_out),
        ("absorbed clean value (poison)", lambda b: b.absorbed),
    ]
    rows = []
    for chain, asset in keys:
        by_model = [{(b.chain, b.asset): b for b in s.balances}.get((chain, asset)) for s in summaries]
        for name, get in metrics:
            amounts = tuple(get(b) if b is not None else None for b in by_model)
            if name != "traced" and not any(amounts):
                continue
            rows.append(ComparisonRow(name, chain, asset, assets.symbols.get((chain, asset)),
                                      assets.decimals.get((chain, asset), 0), amounts))
    return tuple(rows)


def _entity_comparison(summaries: Sequence[ModelSummary], assets: _Assets) -> tuple[EntityComparisonRow, ...]:
    keys: dict[tuple[str, str, str | None, str, str], None] = {}
    per: list[dict[tuple[str, str, str | None, str, str], EntityTotal]] = []
    for s in summaries:
        d = {(e.entity, e.category, e.country, e.total.chain, e.total.asset): e for e in s.by_entity}
        per.append(d)
        keys.update(dict.fromkeys(d))
    rows = []
    for k in keys:
        ents = [d.get(k) for d in per]
        rows.append(EntityComparisonRow(
            entity=k[0], category=k[1], country=k[2], chain=k[3], asset=k[4],
            symbol=assets.symbols.get((k[3], k[4])), decimals=assets.decimals.get((k[3], k[4]), 0),
            amounts=tuple(e.total.amount if e else None for e in ents),
            usd=tuple(e.total.usd if e else None for e in ents)))
    rows.sort(key=lambda r: (-max((_weight(a, r.decimals) for a in r.amounts if a is not None), default=0), r.entity))
    return tuple(rows)


def assemble_report(incident: Incident, results: Sequence[TraceResult], *, primary: str | None = None,
                    prices: PriceBook | None = None, tx_facts: Mapping[str, TxFact] | None = None,
                    generated: datetime | None = None, params: dict[str, Any] | None = None) -> Report:
    """Build the report from one trace per model (the first of ``results`` with model ``primary``, or
    haircut, leads the JSON and the diagram)."""
    if not results:
        raise ValueError("a report needs at least one trace result")
    order = {m: i for i, m in enumerate(MODEL_ORDER)}
    results = sorted(results, key=lambda r: order.get(r.model, len(order)))
    names = [r.model for r in results]
    if primary is None:
        primary = "haircut" if "haircut" in names else names[0]
    if primary not in names:
        raise ValueError(f"primary model {primary!r} is not among the results ({', '.join(names)})")
    assets = _Assets(results)
    facts = dict(tx_facts or {})
    summaries = tuple(summarize(r, assets, prices) for r in results)
    main = next(s for s in summaries if s.model == primary)
    notes = []
    for s in summaries:
        for b in s.balances:
            if not b.balanced:
                diff = b.traced + b.absorbed - b.accounted
                notes.append(f"{s.model}: {asset_label(b.asset, assets.symbols.get((b.chain, b.asset)))} on "
                             f"{b.chain} does not balance: traced - accounted = {diff} base units")
    for w in dict.fromkeys(w for r in results for w in r.params.get("warnings", [])):
        notes.append(w)  # e.g. a traced chain not clustered up to its tip
    missing_usd = [e for s in summaries for e in s.by_entity if e.total.usd is None]
    if missing_usd:
        notes.append("USD is n/a where no daily price is known for the asset on the day it moved "
                     "(fundtrail prices import / fetch)")
    return Report(
        incident=incident, generated=generated or datetime.now(UTC).replace(microsecond=0),
        primary=primary, models=summaries, stolen=stolen_totals(main.result, assets, prices, incident.since),
        timeline=_timeline(incident, main, assets, facts, prices), evidence=_evidence(main, assets, facts),
        comparison=_comparison(summaries, assets), entity_comparison=_entity_comparison(summaries, assets),
        notes=tuple(notes), params=dict(params or {}),
        symbols={f"{c}:{a}": s for (c, a), s in assets.symbols.items() if s},
    )
