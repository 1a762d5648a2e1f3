"""Invariants of the report over random balanced traces (hypothesis)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundtrail.incidents import make_incident
from fundtrail.model.amount import parse_units
from fundtrail.model.trace import AssetAmount, Balance, Endpoint, Holding, Seed, TraceResult
from fundtrail.report.build import assemble_report
from fundtrail.report.model import fmt_amount
from fundtrail.report.render import render
from fundtrail.report.sankey import build_sankey

ASSETS = [("bitcoin", "BTC", 8), ("ethereum", "ETH", 18), ("ethereum", "0x" + "ab" * 20, 6)]
ENTITIES = [("Garantex", "exchange", "RU"), ("Huione", "payment_processor", "KH"), ("Binance", "exchange", None),
            ("OTC-1", "otc_desk", "CN"), ("Tornado", "mixer", None)]
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _exact(text: str, decimals: int) -> int:
    whole, _, frac = text.partition(".")
    assert len(frac) <= decimals
    return int(whole) * 10**decimals + int(frac.ljust(decimals, "0") or 0)


@given(st.integers(min_value=0, max_value=10**40), st.sampled_from([0, 6, 8, 18]))
def test_fmt_amount_is_exact(amount, decimals):
    text = fmt_amount(amount, decimals).replace(",", "")
    assert _exact(text, decimals) == amount
    if amount < 10**27:  # model.amount.parse_units goes through Decimal's default 28-digit context
        assert parse_units(text, decimals) == amount


@st.composite
def traces(draw):
    endpoints, unspent, balances, traced = [], [], [], []
    for chain, asset, dec in draw(st.lists(st.sampled_from(ASSETS), min_size=1, max_size=3, unique=True)):
        eps = draw(st.lists(st.tuples(st.sampled_from(ENTITIES), st.integers(1, 10**dec * 50), st.integers(1, 15),
                                      st.integers(0, 30)), max_size=6))
        ends = 0
        for (entity, cat, cc), amount, hops, day in eps:
            t = T0 + timedelta(days=day)
            endpoints.append(Endpoint(entity, cat, cc, chain, asset, amount, dec, None, hops, t, t, (("aa" * 32,),)))
            ends += amount
        hold = draw(st.integers(0, 10**dec * 20))
        if hold:
            unspent.append(Holding(chain, "x" + asset, asset, hold, dec))
        fees = draw(st.integers(0, 10**dec))
        stopped = draw(st.integers(0, 10**dec))
        total = ends + hold + fees + stopped
        if total == 0:
            total = fees = 1
        traced.append(AssetAmount(chain, asset, total, dec))
        balances.append(Balance(chain, asset, dec, total, ends, hold, fees, stopped, 0, 0))
    return TraceResult("haircut", "forward", (Seed("bitcoin", address="x"),), tuple(traced), tuple(endpoints),
                       tuple(unspent), balances=tuple(balances))


INC = make_incident("h", ["bitcoin", "ethereum"], addresses=["bc1qdc6qh88lkdaf3899gnntk7q293ufq8flalcz86"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces())
def test_groupings_add_up_and_sankey_conserves(result):
    rep = assemble_report(INC, [result])
    s = rep.summary()
    assert s.balanced
    want: dict[tuple[str, str], int] = defaultdict(int)
    for e in result.endpoints:
        want[(e.chain, e.asset)] += e.amount
    for groups in ([e.total for e in s.by_entity], [t for g in s.by_country for t in g.totals],
                   [t for g in s.by_category for t in g.totals], [t for r in s.rollup for t in r.totals],
                   list(s.endpoints_total)):
        got: dict[tuple[str, str], int] = defaultdict(int)
        for t in groups:
            got[(t.chain, t.asset)] += t.amount
        assert dict(got) == dict(want)
    sk = build_sankey(rep)
    inflow, outflow = defaultdict(float), defaultdict(float)
    for lk in sk.links:
        assert lk.value > 0
        outflow[lk.source] += lk.value
        inflow[lk.target] += lk.value
    for n in sk.nodes:
        if n.kind in ("hops", "entity"):
            assert inflow[n.id] == pytest.approx(outflow[n.id], rel=1e-9, abs=1e-12)
    assert sum(outflow[n.id] for n in sk.nodes if n.kind == "seed") == pytest.approx(1.0, rel=1e-9)
    assert set(sk.countries) == {e.country or "" for e in result.endpoints}
    html = render(rep, "html")
    for cc in sk.countries:
        assert f'data-id="country:{cc}"' in html
