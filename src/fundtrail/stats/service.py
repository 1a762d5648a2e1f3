"""``compute_stats``: trace every incident under each taint model and turn the results into facts, then
group them.

The traces come from ``fundtrail.trace.service.trace`` (the engine, as ``report`` uses it); this service
adds the incident catalogue (reported losses and sources), USD at the day of every movement (``PriceBook``:
that day's price or nothing) and the method every figure states: models, hop budget, the height each chain
was ingested and clustered to, and where no price was known.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from fundtrail.errors import NotFoundError, UsageError
from fundtrail.incidents import Incident, list_incidents, parse_when
from fundtrail.incidents_catalogue import list_catalogue
from fundtrail.model.trace import Seed, TraceResult
from fundtrail.prices.book import PriceBook
from fundtrail.progress import NullProgress, Progress
from fundtrail.stats.aggregate import check_keys, group, shares, timing
from fundtrail.stats.model import Fact, GroupRow, IncidentInfo, StatsResult
from fundtrail.store import Workspace

MODELS = ("poison", "haircut", "fifo")
SERVICE_EXCLUDED = frozenset({"mixer", "coinjoin_coordinator"})
Tracer = Callable[..., TraceResult]
#: ``runner(ws, [(seeds, since) per incident], models, max_hops, prices, tracer)``: per incident, in order,
#: the traces of its models (in order) and the NotFoundError that stopped them (or None)
TraceRunner = Callable[..., Iterable[tuple[list[TraceResult], NotFoundError | None]]]
Grouper = Callable[[Sequence[Fact], Sequence[str]], tuple[GroupRow, ...]]


def _embedded_traces(ws: Workspace, jobs: Sequence[tuple[list[Seed], datetime | None]], models: Sequence[str],
                     max_hops: int, prices: PriceBook | None, tracer: Tracer
                     ) -> Iterator[tuple[list[TraceResult], NotFoundError | None]]:
    for seeds, since in jobs:
        out: list[TraceResult] = []
        try:
            for m in models:
                out.append(tracer(ws, seeds, model=m, max_hops=max_hops, since=since, prices=prices))
        except NotFoundError as e:
            yield out, e
            continue
        yield out, None


def _cents(usd: float | None) -> int | None:
    return None if usd is None else int(round(usd * 100))


def _time(text: Any) -> datetime | None:
    if text is None:
        return None
    if isinstance(text, datetime):
        return text
    return parse_when(str(text), field="time")


def facts_of(incident: Incident, r: TraceResult, prices: PriceBook | None,
             theft_time: datetime | None = None) -> list[Fact]:
    """The facts one trace gives: stolen (per asset, at the theft), one cash-out or mixer fact per arrival,
    one unspent fact per holding. ``theft_time`` defaults to the trace's first seed receipt."""
    t0 = theft_time or _time(r.params.get("seed_time")) or incident.since
    actor = incident.actor
    out: list[Fact] = []
    crossed_in: dict[tuple[str, str], int] = {}
    for c in (*r.bridges, *r.swaps):
        crossed_in[(c.to_chain, c.to_asset)] = crossed_in.get((c.to_chain, c.to_asset), 0) + c.to_amount
    for a in r.traced:
        amount = a.amount - crossed_in.get((a.chain, a.asset), 0)
        if amount <= 0:
            continue
        usd = a.usd if amount == a.amount and a.usd is not None else (
            prices.usd(a.chain, a.asset, a.symbol, t0, amount, a.decimals) if prices is not None and t0 else None)
        out.append(Fact("stolen", r.model, incident.name, actor, a.chain, a.asset, a.decimals, amount, _cents(usd),
                        t0, a.symbol))

    def delay(t: datetime | None) -> int | None:
        return int((t - t0).total_seconds()) if t is not None and t0 is not None else None

    for v in r.arrivals:
        measure = "mixer" if v.category in SERVICE_EXCLUDED else "cashed_out"
        usd = v.usd
        if usd is None and prices is not None and v.time is not None:
            usd = prices.usd(v.chain, v.asset, v.symbol, v.time, v.amount, v.decimals)
        out.append(Fact(measure, r.model, incident.name, actor, v.chain, v.asset, v.decimals, v.amount, _cents(usd),
                        v.time, v.symbol, v.entity, v.category, v.country, v.hops, delay(v.time)))
    for h in r.unspent:
        usd = h.usd
        if usd is None and prices is not None and h.since is not None:
            usd = prices.usd(h.chain, h.asset, h.symbol, h.since, h.amount, h.decimals)
        out.append(Fact("unspent", r.model, incident.name, actor, h.chain, h.asset, h.decimals, h.amount, _cents(usd),
                        h.since, h.symbol, h.entity, None, None, None, delay(h.since)))
    return out


def _reported(entries: Sequence[Any], names: set[str] | None) -> list[Fact]:
    out = []
    for e in entries:
        if names is not None and e.name not in names:
            continue
        if e.reported_loss_usd is None:
            continue
        cents = int(round(e.reported_loss_usd * 100))
        out.append(Fact("reported", "sources", e.name, e.actor, "", "USD", 2, cents, cents, e.date, "USD"))
    return out


def present_seeds(ws: Workspace, incident: Incident) -> tuple[list[Seed], list[Seed]]:
    """The incident's seeds the workspace knows (address seeds whose address is in the chain's address
    dictionary; transaction seeds are kept and checked by the trace), and the address seeds it does not."""
    from fundtrail.trace.crossing import address_ids

    keep: list[Seed] = []
    dropped: list[Seed] = []
    by_chain: dict[str, list[Seed]] = {}
    for s in incident.seeds:
        if s.address is None:
            keep.append(s)
        else:
            by_chain.setdefault(s.chain, []).append(s)
    for chain, ss in by_chain.items():
        known = address_ids(ws, chain, [s.address for s in ss if s.address is not None])
        for s in ss:
            (keep if s.address in known else dropped).append(s)
    return keep, dropped


def _in_range(f: Fact, lo: datetime | None, hi: datetime | None) -> bool:
    if lo is None and hi is None:
        return True
    if f.time is None:
        return False
    return (lo is None or f.time >= lo) and (hi is None or f.time < hi)


def compute_stats(ws: Workspace, *, by: Sequence[str] = ("actor", "year"), incidents: Sequence[str] = (),
                  models: Sequence[str] = ("haircut",), date_from: Any = None, date_to: Any = None,
                  max_hops: int = 20, prices: PriceBook | None = None, tracer: Tracer | None = None,
                  progress: Progress | None = None, runner: TraceRunner | None = None,
                  grouper: Grouper | None = None) -> StatsResult:
    """Statistics over the workspace's incidents (or the named ones): stolen, cashed out, mixed and
    unspent value grouped ``by`` the given keys, flows by month, timing and shares, per model.

    ``runner`` runs the traces (default: one after another in process; stats/distributed.py: as Spark
    tasks) and ``grouper`` adds the facts up (default :func:`~fundtrail.stats.aggregate.group`)."""
    progress = progress or NullProgress()
    keys = check_keys(by)
    models = tuple(dict.fromkeys(models))
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        raise UsageError(f"--model: unknown taint model(s) {', '.join(bad) or '(none)'}; use {', '.join(MODELS)}")
    lo = parse_when(date_from, field="--from") if date_from else None
    hi = parse_when(date_to, field="--to") if date_to else None
    if lo is not None and hi is not None and hi <= lo:
        raise UsageError("--to must be after --from")
    catalogue = {e.name: e for e in list_catalogue(ws)}
    stored = list_incidents(ws)
    if not stored and not catalogue:
        raise UsageError(f"no incidents in {ws.home}: create one (fundtrail incident create) or import a "
                         "catalogue (fundtrail incident import FILE | --shipped)")
    names = set(incidents) if incidents else None
    if names is not None:
        unknown = sorted(names - {i.name for i in stored} - set(catalogue))
        if unknown:
            known = ", ".join(sorted({i.name for i in stored} | set(catalogue))) or "none yet"
            raise NotFoundError(f"no incident named {', '.join(map(repr, unknown))} in {ws.home} (incidents: {known})")
        stored = [i for i in stored if i.name in names]
    book = prices if prices is not None else PriceBook.load(ws)
    if tracer is None:
        from fundtrail.trace.service import trace as tracer
    facts: list[Fact] = _reported(list(catalogue.values()), names)
    infos: list[IncidentInfo] = []
    notes: list[str] = []
    traceable = [i for i in stored if all(ws.chain(c) is not None for c in {s.chain for s in i.seeds})]
    for i in stored:
        if i not in traceable:
            missing = sorted({s.chain for s in i.seeds if ws.chain(s.chain) is None})
            notes.append(f"incident {i.name}: not traced (chain{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(missing)} not ingested); only its reported figures count")
    task = progress.task("stats: tracing incidents", total=len(traceable) * len(models), unit="traces")
    warnings: list[str] = []
    traced_names: set[str] = set()
    jobs: list[tuple[Incident, list[Seed]]] = []
    for inc in traceable:
        seeds, dropped = present_seeds(ws, inc)
        if dropped:
            shown = ", ".join(f"{s.chain}:{s.address}" for s in dropped[:5])
            notes.append(f"incident {inc.name}: {len(dropped)} of {len(inc.seeds)} seed addresses have no "
                         f"transactions in the workspace and are not traced from ({shown}"
                         f"{', …' if len(dropped) > 5 else ''})")
        if not seeds:
            notes.append(f"incident {inc.name}: not traced (none of its seeds is in the workspace); only its "
                         "reported figures count")
            task.advance(len(models))
            continue
        jobs.append((inc, seeds))
    run = runner or _embedded_traces
    for (inc, _seeds), (results, err) in zip(jobs, run(ws, [(s, inc.since) for inc, s in jobs], models, max_hops,
                                                       book, tracer), strict=True):
        for r in results:
            facts.extend(facts_of(inc, r, book))
            warnings.extend(r.params.get("warnings", []))
        task.advance(len(models))
        if err is not None:
            facts = [f for f in facts if f.incident != inc.name or f.measure == "reported"]
            notes.append(f"incident {inc.name}: not traced ({err}); only its reported figures count")
            continue
        traced_names.add(inc.name)
    task.close()
    for inc in stored:
        cat = catalogue.get(inc.name)
        infos.append(IncidentInfo(inc.name, inc.actor, cat.date if cat else inc.since, inc.chains, len(inc.seeds),
                                  inc.name in traced_names, cat.victim if cat else inc.description,
                                  cat.reported_loss_usd if cat else None, cat.sources if cat else (),
                                  cat.seed_note if cat else None))
    for name, cat in catalogue.items():
        if (names is None or name in names) and name not in {i.name for i in stored}:
            infos.append(IncidentInfo(name, cat.actor, cat.date, cat.chains, 0, False, cat.victim,
                                      cat.reported_loss_usd, cat.sources, cat.seed_note))
    infos.sort(key=lambda i: (i.date or datetime.min.replace(tzinfo=UTC), i.name))
    facts = [f for f in facts if _in_range(f, lo, hi)]
    facts.sort(key=lambda f: (f.measure, f.model, f.incident, f.time or datetime.min.replace(tzinfo=UTC),
                              f.chain, f.asset, f.entity or ""))
    unpriced = sorted({(f.chain, f.symbol or f.asset, f.time.date().isoformat() if f.time else "no date")
                       for f in facts if f.usd_cents is None and f.amount})
    if unpriced:
        shown = "; ".join(f"{a} on {c} ({d})" for c, a, d in unpriced[:12])
        more = f" and {len(unpriced) - 12} more" if len(unpriced) > 12 else ""
        notes.append(f"no USD price known for: {shown}{more}; those amounts count in coin, not in USD "
                     "(fundtrail prices import / fetch)")
    notes.extend(dict.fromkeys(warnings))
    method = {
        "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "models": list(models), "direction": "forward", "max_hops": max_hops, "dust": None,
        "follow_mixers": False,
        "as_of": {c: {"ingested_height": (ws.chain(c) or {}).get("tip_height"),
                      "clustered_height": (ws.setting(f"cluster:{c}") or {}).get("height")}
                  for c in sorted({s.chain for i in traceable for s in i.seeds}
                                  | {f.chain for f in facts if f.chain})},
        "usd": "the asset's USD price on the UTC day of each movement (prices table); no interpolation",
        "from": lo.strftime("%Y-%m-%d") if lo else None, "to": hi.strftime("%Y-%m-%d") if hi else None,
        "stolen": "what the seeds received (the trace's traced amount less what entered through swaps and "
                  "bridges), at the first seed receipt",
        "cashed_out": "arrivals at services (exchange, OTC desk, payment processor, gambling), per model",
        "timing": "median and 90th percentile of hops and days from the first seed receipt to each cash-out, "
                  "weighted by USD value when every cash-out has a price, otherwise by arrival",
        "reported": "losses in USD as the catalogue's cited sources state them",
    }
    monthly_facts = [f for f in facts if f.measure in ("cashed_out", "mixer", "unspent")]
    grouping = grouper or group
    return StatsResult(
        by=keys, models=models, facts=tuple(facts), groups=grouping(facts, keys),
        monthly=grouping(monthly_facts, ("month",)), timing=timing(facts, keys),
        shares=shares(facts, models), incidents=tuple(infos), method=method, notes=tuple(dict.fromkeys(notes)))
