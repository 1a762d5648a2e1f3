"""The assembly of a trace's legs into a :class:`~fundtrail.model.trace.TraceResult`: traced amounts and
the conservation balance per chain and asset, endpoints grouped by entity (with up to ``MAX_PATHS``
evidence paths), holdings, mixer uses, stopped rows, crossings and peel chains, priced in USD when a price
book is given."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fundtrail.model.trace import (
    Arrival,
    AssetAmount,
    Balance,
    Candidate,
    Deposit,
    Endpoint,
    Holding,
    Limit,
    MixerUse,
    Seed,
    Stopped,
    TraceResult,
)
from fundtrail.trace.context import INCIDENT, Ctx, as_utc
from fundtrail.trace.leg import MAX_STOPPED_ROWS, EpEvent, Leg, MixEvent

MAX_PATHS = 3
MAX_ADDRESSES = 20


def usd(prices: Any, chain: str, asset: str, symbol: str | None, when: int | None, amount: int,
         decimals: int) -> float | None:
    if prices is None or amount == 0:
        return None if prices is None else 0.0
    try:
        return prices.usd(chain, asset, symbol, as_utc(when), amount, decimals)
    except Exception:  # noqa: BLE001 - a missing price is null, not a failed trace
        return None


def sum_usd(vals: list[float | None]) -> float | None:
    known = [v for v in vals if v is not None]
    return round(sum(known), 2) if known else None


def assemble(ctx: Ctx, seeds: Sequence[Seed], legs: dict[str, Leg], prices: Any,
              params: dict[str, Any]) -> TraceResult:
    traced: list[AssetAmount] = []
    balances: list[Balance] = []
    for chain, leg in sorted(legs.items()):
        for asset, b in sorted(leg.buckets.items()):
            dec, sym = ctx.asset_meta(chain, asset)
            if b.traced or b.absorbed:
                traced.append(AssetAmount(chain, asset, b.traced, dec, sym,
                                          usd(prices, chain, asset, sym, leg.seed_time, b.traced, dec)))
            balances.append(Balance(chain, asset, dec, b.traced, b.endpoints, b.unspent, b.fees, b.stopped_hops,
                                    b.stopped_dust, b.mixers, b.crossed_out, b.other_stopped, b.absorbed))
    # endpoints by entity, chain and asset
    groups: dict[tuple[str, str, str, str, str], list[EpEvent]] = {}
    for leg in legs.values():
        for ev in leg.endpoints:
            groups.setdefault((ev.label.entity, ev.label.category, ev.chain, ev.asset, ev.state), []).append(ev)
    endpoints: list[Endpoint] = []
    for (entity, category, chain, asset, state), evs in groups.items():
        dec, sym = ctx.asset_meta(chain, asset)
        evs_sorted = sorted(evs, key=lambda v: (-v.amount, v.time, v.txid))
        paths: list[tuple[str, ...]] = []
        for v in evs_sorted:
            if v.path and v.path not in paths:
                paths.append(v.path)
            if len(paths) >= MAX_PATHS:
                break
        addrs = sorted({v.address for v in evs})[:MAX_ADDRESSES]
        lab = evs[0].label
        endpoints.append(Endpoint(
            entity=entity, category=category, country=lab.country, chain=chain, asset=asset,
            amount=sum(v.amount for v in evs), decimals=dec,
            usd=sum_usd([usd(prices, chain, asset, sym, v.time, v.amount, dec) for v in evs]) if prices else None,
            hops=min(v.hops for v in evs), first_seen=as_utc(min(v.time for v in evs)),
            last_seen=as_utc(max(v.time for v in evs)), paths=tuple(paths), addresses=tuple(addrs), symbol=sym,
            sanctioned=any(v.label.sanctioned for v in evs), state=state,  # type: ignore[arg-type]
            unswept_addresses=tuple(sorted({v.address for v in evs}))[:MAX_ADDRESSES] if state == "unswept" else (),
            provenance=next((v.provenance for v in evs_sorted if v.provenance), None),
            deposits=tuple(Deposit(v.address, v.txid, v.amount, as_utc(v.time)) for v in evs_sorted),
            share=_share(legs, chain, asset, sum(v.amount for v in evs)),
            incident=entity if category == INCIDENT else None))
    endpoints.sort(key=lambda e: (e.chain, e.asset, -e.amount, e.entity, e.state))
    arrivals: list[Arrival] = []
    for leg in legs.values():
        for ev in leg.endpoints:
            dec, sym = ctx.asset_meta(ev.chain, ev.asset)
            arrivals.append(Arrival(ev.label.entity, ev.label.category, ev.label.country, ev.chain, ev.asset,
                                    ev.amount, dec, ev.hops, as_utc(ev.time), ev.txid,
                                    usd(prices, ev.chain, ev.asset, sym, ev.time, ev.amount, dec), sym))
    arrivals.sort(key=lambda a: (a.time or datetime.min.replace(tzinfo=UTC), a.chain, a.txid, a.entity))
    seed_times = [leg.seed_time for leg in legs.values() if leg.seed_time is not None]
    first = as_utc(min(seed_times)) if seed_times else None
    params = {**params, "seed_time": first.strftime("%Y-%m-%dT%H:%M:%SZ") if first is not None else None}
    unspent: list[Holding] = []
    for chain, leg in legs.items():
        for a, asset, amt, t, ent in leg.holdings:
            dec, sym = ctx.asset_meta(chain, asset)
            unspent.append(Holding(chain, a, asset, amt, dec, usd(prices, chain, asset, sym, t, amt, dec),
                                   as_utc(t), ent, sym))
    unspent.sort(key=lambda h: (h.chain, h.asset, -h.amount, h.address))
    mixers: list[MixerUse] = []
    mgroups: dict[tuple[str, str, str, bool], list[MixEvent]] = {}
    for leg in legs.values():
        for m in leg.mixers:
            mgroups.setdefault((m.chain, m.pool, m.asset, m.followed), []).append(m)
    for (chain, pool, asset, followed), ms in sorted(mgroups.items()):
        dec, sym = ctx.asset_meta(chain, asset)
        cands: list[Candidate] = []
        for m in ms:
            for c in m.candidates:
                if c not in cands:
                    cands.append(c)
        amt = sum(m.amount for m in ms)
        mixers.append(MixerUse(chain, ms[0].label.entity, pool, asset, amt, dec, tuple(m.txid for m in ms),
                               tuple(cands[:10]), followed,
                               sum_usd([usd(prices, chain, asset, sym, m.time, m.amount, dec) for m in ms])
                               if prices else None))
    stopped: list[Stopped] = []
    for chain, leg in sorted(legs.items()):
        rows = sorted(leg.stopped.items(), key=lambda kv: (-kv[1][0], kv[0][1], str(kv[0][2])))
        rest: dict[tuple[str, str], int] = {}
        for i, ((asset, reason, addr), (amt, txid)) in enumerate(rows):
            dec, _ = ctx.asset_meta(chain, asset)
            if i < MAX_STOPPED_ROWS:
                stopped.append(Stopped(chain, asset, amt, dec, reason, addr, txid))
            else:
                rest[(asset, reason)] = rest.get((asset, reason), 0) + amt
        for (asset, reason), amt in sorted(rest.items()):
            dec, _ = ctx.asset_meta(chain, asset)
            stopped.append(Stopped(chain, asset, amt, dec, reason, None, None))
    limits = limit_notices(ctx, legs, params)
    return TraceResult(
        model=ctx.model, direction="forward" if ctx.forward else "backward", seeds=tuple(seeds),
        traced=tuple(traced), endpoints=tuple(endpoints), unspent=tuple(unspent), mixers=tuple(mixers),
        bridges=tuple(c for leg in legs.values() for c in leg.bridges),
        swaps=tuple(c for leg in legs.values() for c in leg.swaps), stopped=tuple(stopped),
        peel_chains=tuple(p for leg in legs.values() for p in leg.peels), balances=tuple(balances), params=params,
        limits=limits, arrivals=tuple(arrivals))


def _share(legs: dict[str, Leg], chain: str, asset: str, amount: int) -> float | None:
    """``amount`` as a share of what was traced on ``chain`` in ``asset`` (with poison's growth)."""
    leg = legs.get(chain)
    b = leg.buckets.get(asset) if leg is not None else None
    base = (b.traced + b.absorbed) if b is not None else 0
    return amount / base if base else None


def limit_notices(ctx: Ctx, legs: dict[str, Leg], params: dict[str, Any]) -> tuple[Limit, ...]:
    """One notice per chain, asset and limit (hop budget, dust) that stopped traced value: how much (and
    its share of what was traced), the largest places it stopped, and the option that would go on; and one
    per chain and asset whenever the peel-chain allowance was used up (even if nothing stopped)."""
    out: list[Limit] = []
    max_hops = int(params.get("max_hops") or 0)
    for chain, leg in sorted(legs.items()):
        for asset, b in sorted(leg.buckets.items()):
            dec, sym = ctx.asset_meta(chain, asset)
            base = b.traced + b.absorbed
            if leg.peel_hit is not None and (b.traced or b.absorbed):
                out.append(Limit(chain, asset, b.stopped_hops, dec, "peel_budget",
                                 b.stopped_hops / base if base else 0.0, ((None, leg.peel_hit),),
                                 f"--peel-txs {2 * ctx.peel_txs}", sym))
            for reason, amount in (("max_hops", b.stopped_hops), ("dust", b.stopped_dust)):
                if amount <= 0:
                    continue
                rows = sorted(((v[0], addr, v[1]) for (a, r, addr), v in leg.stopped.items()
                               if a == asset and r == reason), key=lambda x: (-x[0], str(x[1])))
                where = tuple((addr, txid) for _amt, addr, txid in rows if addr or txid)[:3]
                if reason == "max_hops":
                    option = f"--max-hops {max(2 * max_hops, max_hops + 10)}"
                else:
                    option = "--dust 0"
                out.append(Limit(chain, asset, amount, dec, reason, amount / base if base else 0.0, where,
                                 option, sym))
    out.sort(key=lambda x: (-x.share, x.chain, x.asset, x.reason))
    return tuple(out)

