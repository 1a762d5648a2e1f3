"""Pure aggregation of :class:`~fundtrail.stats.model.Fact` rows: totals per group, weighted percentiles,
shares. No workspace access; every sum is over integers (base units, USD cents), so the sum over any
grouping equals the ungrouped total exactly."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from fundtrail.errors import UsageError
from fundtrail.stats.model import GROUP_KEYS, AssetTotal, Fact, GroupRow, Shares, Timing

DAY = 86400


def check_keys(by: Sequence[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(k.strip() for k in by if k and k.strip()))
    bad = [k for k in out if k not in GROUP_KEYS]
    if bad:
        raise UsageError(f"--by: unknown key(s) {', '.join(bad)}; use {', '.join(GROUP_KEYS)}")
    return out


#: what :func:`group` adds up: (measure, model, key) -> (chain, asset) -> [amount, usd cents, priced?, unpriced
#: amount]; (chain, asset) -> (symbol, decimals); (measure, model, key) -> number of facts
Sums = tuple[dict, dict, dict]


def sums(facts: Iterable[Fact], by: Sequence[str]) -> Sums:
    """The integer sums behind :func:`group` (a distributed engine computes the same dictionaries)."""
    by = tuple(by)
    amounts: dict[tuple, dict[tuple[str, str], list[int]]] = defaultdict(dict)
    meta: dict[tuple[str, str], tuple[str | None, int]] = {}
    counts: dict[tuple, int] = defaultdict(int)
    for f in facts:
        g = (f.measure, f.model, tuple(f.key(k) for k in by))
        a = (f.chain, f.asset)
        meta.setdefault(a, (f.symbol, f.decimals))
        if f.symbol and not meta[a][0]:
            meta[a] = (f.symbol, f.decimals)
        cur = amounts[g].setdefault(a, [0, 0, 0, 0])  # amount, usd cents, priced?, unpriced amount
        cur[0] += f.amount
        if f.usd_cents is None:
            cur[3] += f.amount
        else:
            cur[1] += f.usd_cents
            cur[2] = 1
        counts[g] += 1
    return amounts, meta, counts


def rows_of(s: Sums, by: Sequence[str]) -> tuple[GroupRow, ...]:
    """Group rows from :func:`sums`, in the order the outputs show them."""
    amounts, meta, counts = s
    rows = []
    for (measure, model, key), per in amounts.items():
        totals = []
        for (chain, asset), (amt, cents, priced, unpriced) in per.items():
            sym, dec = meta[(chain, asset)]
            totals.append(AssetTotal(chain, asset, sym, dec, amt, cents if priced else None, unpriced))
        totals.sort(key=lambda t: (-(t.usd_cents or 0), t.chain, t.asset))
        known = [t.usd_cents for t in totals if t.usd_cents is not None]
        rows.append(GroupRow(measure, model, key, tuple(totals), sum(known) if known else None,
                             any(t.unpriced for t in totals), counts[(measure, model, key)]))
    order = {m: i for i, m in enumerate(("reported", "stolen", "cashed_out", "mixer", "unspent"))}
    if any(k in ("year", "month") for k in by):  # time series: in time order
        rows.sort(key=lambda r: (order.get(r.measure, 9), r.model, r.key, -(r.usd_cents or 0)))
    else:  # rankings: largest first
        rows.sort(key=lambda r: (order.get(r.measure, 9), r.model, -(r.usd_cents or 0), r.key))
    return tuple(rows)


def group(facts: Iterable[Fact], by: Sequence[str]) -> tuple[GroupRow, ...]:
    """Totals per (measure, model, key): per asset, and in USD cents."""
    return rows_of(sums(facts, by), by)


def weighted_quantile(values: Sequence[float], weights: Sequence[int], q: float) -> float | None:
    """The smallest value whose cumulative weight reaches ``q`` of the total (weights are integers, so
    the result is exact and independent of input order)."""
    pairs = sorted((v, w) for v, w in zip(values, weights, strict=True) if w > 0)
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0:
        return None
    need = q * total
    acc = 0
    for v, w in pairs:
        acc += w
        if acc >= need:
            return v
    return pairs[-1][0]


def timing(facts: Iterable[Fact], by: Sequence[str]) -> tuple[Timing, ...]:
    """Median and p90 of hops and of days from theft to cash-out, per model, overall and per group."""
    by = tuple(by)
    cash = [f for f in facts if f.measure == "cashed_out"]
    groups: dict[tuple[str, tuple[str, ...]], list[Fact]] = defaultdict(list)
    for f in cash:
        groups[(f.model, ())].append(f)
        if by:
            groups[(f.model, tuple(f.key(k) for k in by))].append(f)
    out = []
    for (model, key), fs in groups.items():
        priced = all(f.usd_cents is not None for f in fs)
        w = [f.usd_cents or 0 for f in fs] if priced and any(f.usd_cents for f in fs) else [1] * len(fs)
        hops = [float(f.hops) if f.hops is not None else None for f in fs]
        days = [f.delay_s / DAY if f.delay_s is not None else None for f in fs]

        def q(vals: list[float | None], p: float, w: list[int] = w) -> float | None:
            pairs = [(v, x) for v, x in zip(vals, w, strict=True) if v is not None]
            r = weighted_quantile([v for v, _ in pairs], [x for _, x in pairs], p)
            return None if r is None else round(r, 2)

        out.append(Timing(model, key, len(fs), "usd" if w and priced and any(f.usd_cents for f in fs)
                          else "arrivals", q(hops, 0.5), q(hops, 0.9), q(days, 0.5), q(days, 0.9)))
    out.sort(key=lambda t: (t.model, len(t.key), t.key))
    return tuple(out)


def shares(facts: Iterable[Fact], models: Sequence[str]) -> tuple[Shares, ...]:
    sums: dict[tuple[str, str], int] = defaultdict(int)
    seen: dict[tuple[str, str], bool] = defaultdict(bool)
    partial: dict[str, bool] = defaultdict(bool)
    for f in facts:
        if f.measure == "reported":
            continue
        k = (f.model, f.measure)
        if f.usd_cents is None:
            if f.amount:
                partial[f.model] = True
        else:
            sums[k] += f.usd_cents
            seen[k] = True
    out = []
    for m in models:
        def c(measure: str, m: str = m) -> int | None:
            return sums[(m, measure)] if seen[(m, measure)] else None
        out.append(Shares(m, c("stolen"), c("cashed_out"), c("mixer"), c("unspent"), partial[m]))
    return tuple(out)
