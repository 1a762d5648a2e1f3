"""The report from trace results: aggregates, roll-up, conservation, and the four renderers."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict

import pytest

from fundtrail.model.amount import format_units
from fundtrail.report.build import assemble_report
from fundtrail.report.render import render
from fundtrail.report.sankey import build_sankey, to_svg
from tests.report import fixtures as F


@pytest.fixture(scope="module")
def report():
    return assemble_report(F.incident(), F.results(), prices=F.prices())


def test_models_and_primary(report):
    assert report.model_names == ("poison", "haircut", "fifo")
    assert report.primary == "haircut"
    assert all(s.balanced for s in report.models)


def test_stolen_excludes_what_crossed_in(report):
    # traced BTC is 110 (10 bridged in from ETH); USDT came from the swap: neither was stolen as such
    assert [(t.chain, t.asset, t.amount) for t in report.stolen] == [
        ("bitcoin", "BTC", 100 * F.SAT), ("ethereum", "ETH", 1000 * F.WEI)]
    assert report.stolen[0].usd == 100 * 62000.0  # priced on the theft day


def test_entity_country_category_totals_are_exact(report):
    s = report.summary("haircut")
    garantex = next(e for e in s.by_entity if e.entity == "Garantex")
    assert garantex.total.amount == 38 * F.SAT + 1234
    assert garantex.paths == 4 and garantex.hops == 4
    ru = next(g for g in s.by_country if g.key == "RU")
    assert [(t.asset, t.amount) for t in ru.totals] == [("BTC", (38 + 9) * F.SAT + 2468)]
    assert ru.entities == ("Bitzlato", "Garantex")
    kh = next(g for g in s.by_country if g.key == "KH")
    by_asset = {t.asset: t.amount for t in kh.totals}
    assert by_asset == {"BTC": (16 + 7) * F.SAT + 2468 + 9 * F.SAT + 50_000_000, F.USDT: 987_000_000_000}
    assert kh.usd_partial  # the USDT arrived on a day without a USDT price
    exch = next(g for g in s.by_category if g.key == "exchange")
    assert exch.entities == ("Coinbase", "Garantex")
    # per model, the endpoint totals equal the trace's own balance
    for m in report.models:
        for b in m.balances:
            got = sum(t.amount for t in m.endpoints_total if (t.chain, t.asset) == (b.chain, b.asset))
            assert got == b.endpoints, (m.model, b.asset)


def test_rollup_sentences(report):
    sentences = [r.sentence for r in report.summary().rollup]
    assert sentences[0] == "reached exchanges in Russia: 47.00002468 BTC, $2,924,301.54"
    assert "reached exchanges in the United States: 1.00001234 BTC, $62,800.77" in sentences
    pay = next(s for s in sentences if s.startswith("reached payment processors in Cambodia"))
    assert "987,000 USDT" in pay and pay.endswith("+")  # USD sum is partial


def test_unspent_freeze_candidates_sorted_and_priced(report):
    u = report.summary().unspent
    assert [h.address for h in u][:2] == [F.addr("rest-1"), F.addr("rest-2")]
    assert u[0].usd == pytest.approx(u[0].amount / 1e8 * 62600.0)  # priced on the day it came to rest


def test_side_by_side_and_haircut_not_above_poison(report):
    names = report.model_names
    for r in report.entity_comparison:
        d = dict(zip(names, r.amounts, strict=True))
        assert d["haircut"] <= d["poison"]
    endpoints = {(r.asset): r.amounts for r in report.comparison if r.metric == "endpoints"}
    assert endpoints["BTC"] == tuple(
        next(b.endpoints for b in s.balances if b.asset == "BTC") for s in report.models)


def test_timeline_is_chronological(report):
    times = [e.time for e in report.timeline if e.time is not None]
    assert times == sorted(times)
    kinds = {e.kind for e in report.timeline}
    assert {"incident", "swap", "bridge", "endpoint_first", "unspent", "mixer"} <= kinds


def test_unbalanced_trace_is_flagged():
    from dataclasses import replace

    r = F.result("haircut")
    b0 = replace(r.balances[0], unspent=r.balances[0].unspent - 5)
    bad = replace(r, balances=(b0, *r.balances[1:]))
    rep = assemble_report(F.incident(), [bad])
    assert not rep.summary().balanced
    assert any("does not balance" in n and "5 base units" in n for n in rep.notes)
    assert "NO" in render(rep, "table")


def test_json_carries_the_contract_trace_json(report):
    doc = json.loads(render(report, "json"))
    for key in ("model", "direction", "seeds", "traced_amount", "endpoints", "unspent", "mixers", "bridges"):
        assert key in doc
    assert doc["model"] == "haircut" and doc["direction"] == "forward"
    ep = next(e for e in doc["endpoints"] if e["entity"] == "Garantex")
    assert ep["amount"] == "38.00001234" and ep["country"] == "RU" and ep["category"] == "exchange"
    assert set(ep) >= {"entity", "category", "country", "chain", "asset", "amount", "usd", "hops",
                       "first_seen", "last_seen", "paths"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ep["first_seen"])
    usdt = next(e for e in doc["endpoints"] if e["asset"] == F.USDT)
    assert usdt["usd"] is None and usdt["amount"] == "987000.000000"
    assert set(doc["traces"]) == {"poison", "haircut", "fifo"}
    assert doc["traces"]["poison"]["model"] == "poison"
    assert doc["incident"]["name"] == "dprk-2024-03"
    rep = doc["report"]
    assert rep["stolen"][0]["amount"] == "100.00000000"
    assert rep["rollup"][0]["sentence"] == "reached exchanges in Russia: 47.00002468 BTC, $2,924,301.54"
    assert all(s["balanced"] for s in rep["summaries"].values())


def test_csv_sections_and_exact_amounts(report):
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    sections = {r["section"] for r in rows}
    assert {"stolen", "endpoint", "country", "category", "rollup", "unspent", "mixer", "bridge", "swap",
            "stopped", "conservation", "timeline", "evidence", "comparison"} <= sections
    ru = [r for r in rows if r["section"] == "endpoint" and r["model"] == "haircut" and r["country"] == "RU"]
    total = sum(int(r["amount"].replace(".", "")) for r in ru)
    assert format_units(total, 8) == "47.00002468"
    per_model = defaultdict(int)
    for r in rows:
        if r["section"] == "endpoint" and r["asset"] == "BTC":
            per_model[r["model"]] += int(r["amount"].replace(".", ""))
    for s in report.models:
        assert per_model[s.model] == next(b.endpoints for b in s.balances if b.asset == "BTC")


def test_table_text(report):
    text = render(report, "table", width=200)
    for needle in ("Total stolen", "Reached exchanges in Russia: 47.00002468 BTC, $2,924,301.54", "Garantex",
                   "Bitzlato", "Huione Pay", "Xinbi OTC", "Coinbase", "freeze candidates", "Tornado Cash",
                   "Example Bridge", "Models side by side", "Conservation", "Evidence paths", "Timeline"):
        assert needle in text, needle


def test_html_is_self_contained(report):
    html = render(report, "html")
    assert html.startswith("<!DOCTYPE html>")
    # nothing fetched from elsewhere: the only URL is the SVG namespace name
    urls = set(re.findall(r"""(?:https?:)?//[^\s"'<>)]+""", html))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert not re.search(r"<(link|img|iframe|object|embed)\b", html, re.I)
    assert not re.search(r"""\ssrc\s*=""", html, re.I)
    assert "@import" not in html and "url(" not in html
    for cc in ("RU", "KH", "US"):
        assert f'class="node node-country" data-id="country:{cc}"' in html
        assert f'data-country="{cc}"' in html
    for t in ("endpoints", "countries", "categories", "unspent", "mixers", "crossings", "timeline",
              "comparison", "conservation"):
        assert f'<table class="{t}">' in html, t


def test_sankey_flows_are_conserved(report):
    sk = build_sankey(report)
    inflow, outflow = defaultdict(float), defaultdict(float)
    for lk in sk.links:
        outflow[lk.source] += lk.value
        inflow[lk.target] += lk.value
    for n in sk.nodes:
        if n.kind in ("hops", "entity"):
            assert inflow[n.id] == pytest.approx(outflow[n.id], rel=1e-9), n.id
    seeds = [n for n in sk.nodes if n.kind == "seed"]
    assert sum(outflow[n.id] for n in seeds) == pytest.approx(1.0, rel=1e-9)  # every unit accounted for
    # the BTC seed carries its USD share of the theft (6.2M of 9.6M)
    assert outflow["seed:bitcoin:BTC"] == pytest.approx(6.2 / 9.6, rel=1e-9)
    assert sk.countries == ("KH", "RU", "US")
    # each endpoint country is reached by ribbons of its own colour from a seed through hops and entities
    for cc in sk.countries:
        ribbons = [lk for lk in sk.links if lk.country == cc]
        assert {lk.source.split(":")[0] for lk in ribbons} == {"seed", "hops", "entity"}
    svg = to_svg(sk)
    assert svg.count('class="link"') == len(sk.links)
    assert svg.count("<g class=\"node ") == len(sk.nodes)


def test_sankey_without_prices_weights_assets_equally():
    rep = assemble_report(F.incident(), F.results(), prices=None)
    # the fixture's traced BTC carries a USD value, ETH too; drop them to force the fallback
    from dataclasses import replace

    rep = replace(rep, stolen=tuple(replace(t, usd=None) for t in rep.stolen))
    sk = build_sankey(rep)
    out = defaultdict(float)
    for lk in sk.links:
        out[lk.source] += lk.value
    assert out["seed:bitcoin:BTC"] == pytest.approx(0.5)
    assert out["seed:ethereum:ETH"] == pytest.approx(0.5)
    assert "equally" in sk.unit


def test_backward_trace_wording():
    from dataclasses import replace

    r = replace(F.result("haircut"), direction="backward")
    rep = assemble_report(F.incident(), [r], prices=F.prices())
    assert rep.summary().rollup[0].sentence.startswith("came from exchanges in Russia: ")
    assert "Where the money came from" in render(rep, "html")
    assert any(e.description.startswith("First traced funds come from") for e in rep.timeline)


def test_trace_warnings_become_report_notes_in_every_format():
    import dataclasses

    warn = "chain ethereum has not been clustered: run `fundtrail cluster --chain ethereum`"
    results = [dataclasses.replace(r, params={**r.params, "warnings": [warn]}) for r in F.results()]
    rep = assemble_report(F.incident(), results, prices=F.prices())
    assert rep.notes.count(warn) == 1  # once, though every model's trace carries it
    assert "has not been clustered" in render(rep, "html")
    assert "has not been clustered" in json.dumps(rep.to_json())


def test_limits_come_first_and_unswept_endpoints_and_peel_counts_show_in_every_format():
    """A trace stopped at the hop limit: every format says so before anything else (how much, where, the
    option that goes on); an unswept deposit is listed with its addresses and provenance; peel chains show
    their transaction counts."""
    import dataclasses

    from fundtrail.model.trace import Limit

    lim = Limit("bitcoin", "BTC", 123_000_000, 8, "max_hops", 0.0123, ((F.addr("far"), F.txid("far")),),
                "--max-hops 40")
    results = []
    for r in F.results():
        eps = list(r.endpoints)
        eps[0] = dataclasses.replace(eps[0], state="unswept", unswept_addresses=(F.addr("dep-contract"),),
                                     provenance="created by 0xhot (Garantex hot wallet, tag source t) in tx 0xabc")
        results.append(dataclasses.replace(r, limits=(lim,), endpoints=tuple(eps)))
    rep = assemble_report(F.incident(), results, prices=F.prices())
    text = render(rep, "table")
    assert "LIMIT" in text and "1.23000000 BTC" in text and "--max-hops 40" in text
    assert text.index("LIMIT") < text.index("Total stolen")
    assert "Deposited, not yet swept" in text and "created by 0xhot" in text
    html = render(rep, "html")
    assert html.index('id="limits"') < html.index('class="cards"') and "--max-hops 40" in html
    assert "Deposited, not yet swept" in html and F.addr("dep-contract") in html
    rows = list(csv.DictReader(io.StringIO(render(rep, "csv"))))
    assert rows[0]["section"] == "limit" and "--max-hops 40" in rows[0]["detail"]
    assert any(r["section"] == "endpoint" and "state=unswept" in r["detail"] for r in rows)
    if any(r.peel_chains for r in results):
        assert any(r["section"] == "peel_chain" and "transactions" in r["detail"] for r in rows)
        assert "transactions" in text
    js = rep.to_json()
    assert js["limits"][0]["option"] == "--max-hops 40"
    assert any(e["state"] == "unswept" for e in js["endpoints"])
