"""Invariants of the aggregation: the sum over any grouping equals the ungrouped total (per measure, model
and asset, and in USD cents), and the weighted percentiles do not depend on the order of the facts."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.stats.aggregate import group, timing, weighted_quantile
from fundtrail.stats.model import GROUP_KEYS, Fact

T0 = datetime(2022, 1, 1, tzinfo=UTC)

facts_st = st.builds(
    Fact,
    measure=st.sampled_from(("stolen", "cashed_out", "mixer", "unspent", "reported")),
    model=st.sampled_from(("haircut", "fifo")),
    incident=st.sampled_from(("a", "b", "c")),
    actor=st.sampled_from((None, "lazarusgroup", "other")),
    chain=st.sampled_from(("bitcoin", "ethereum")),
    asset=st.sampled_from(("BTC", "ETH", "0xdac17f958d2ee523a2206206994597c13d831ec7")),
    decimals=st.just(8),
    amount=st.integers(0, 10**30),
    usd_cents=st.one_of(st.none(), st.integers(0, 10**14)),
    time=st.one_of(st.none(), st.integers(0, 4 * 365 * 24).map(lambda h: T0 + timedelta(hours=h))),
    symbol=st.sampled_from((None, "USDT")),
    entity=st.sampled_from((None, "Garantex", "Huione")),
    category=st.sampled_from((None, "exchange", "otc_desk")),
    country=st.sampled_from((None, "RU", "KH", "US")),
    hops=st.one_of(st.none(), st.integers(0, 30)),
    delay_s=st.one_of(st.none(), st.integers(0, 10**8)),
)


def _totals(rows):
    amt: dict[tuple, int] = defaultdict(int)
    usd: dict[tuple, int] = defaultdict(int)
    n: dict[tuple, int] = defaultdict(int)
    for g in rows:
        for t in g.totals:
            amt[(g.measure, g.model, t.chain, t.asset)] += t.amount
            usd[(g.measure, g.model, t.chain, t.asset)] += t.usd_cents or 0
        n[(g.measure, g.model)] += g.facts
    return dict(amt), dict(usd), dict(n)


@settings(max_examples=150, deadline=None)
@given(st.lists(facts_st, max_size=60), st.lists(st.sampled_from(GROUP_KEYS), max_size=4, unique=True))
def test_sum_over_any_grouping_equals_the_ungrouped_total(facts, by):
    assert _totals(group(facts, by)) == _totals(group(facts, ()))
    # and the group USD is the sum of its assets' USD, partial exactly when some amount had no price
    for g in group(facts, by):
        known = [t.usd_cents for t in g.totals if t.usd_cents is not None]
        assert g.usd_cents == (sum(known) if known else None)
        assert g.usd_partial == any(t.unpriced for t in g.totals)


@settings(max_examples=100, deadline=None)
@given(st.lists(facts_st, max_size=40), st.lists(st.sampled_from(GROUP_KEYS), max_size=2, unique=True),
       st.randoms(use_true_random=False))
def test_timing_does_not_depend_on_order(facts, by, rnd):
    shuffled = list(facts)
    rnd.shuffle(shuffled)
    assert timing(facts, by) == timing(shuffled, by)


@given(st.lists(st.tuples(st.integers(0, 100), st.integers(1, 1000)), min_size=1, max_size=50),
       st.floats(0.01, 1.0))
def test_weighted_quantile_is_a_value_with_enough_weight_below(pairs, q):
    vals, ws = [float(v) for v, _ in pairs], [w for _, w in pairs]
    r = weighted_quantile(vals, ws, q)
    total = sum(ws)
    assert r in vals
    assert sum(w for v, w in zip(vals, ws, strict=True) if v <= r) >= q * total
    assert sum(w for v, w in zip(vals, ws, strict=True) if v < r) < q * total
