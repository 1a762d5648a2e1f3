"""End to end on a simulated world: simulate -> ingest Bitcoin and EVM -> tags -> prices -> incident -> report.

Uses the other areas' services (simulator, ingesters, attribution, tracing engine); skips with the reason
when one of them is not importable. The report must reflect the engine's traces exactly, balance, and name
the endpoint entities and countries of the world's ground truth.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def report(sim_report):
    return sim_report


def test_report_reflects_the_traces_and_balances(report):
    assert report.model_names == ("poison", "haircut", "fifo")
    for s in report.models:
        assert s.balanced, [b.to_json() for b in s.balances if not b.balanced]
        sums: dict[tuple[str, str, str], int] = defaultdict(int)
        for e in s.result.endpoints:
            sums[(e.entity, e.chain, e.asset)] += e.amount
        assert {(e.entity, e.total.chain, e.total.asset): e.total.amount for e in s.by_entity} == dict(sums)
        assert sum(h.amount for h in s.unspent) == sum(h.amount for h in s.result.unspent)


def test_stolen_equals_truth(report, sim_world):
    _, truth = sim_world
    want = {(x["chain"], x["asset"]): int(x["amount"]) for x in truth["theft"]["stolen"]}
    assert {(t.chain, t.asset): t.amount for t in report.stolen} == want
    assert all(t.usd is not None for t in report.stolen)  # the world ships a price list


def test_endpoints_name_the_truths_entities_and_countries(report, sim_world):
    _, truth = sim_world
    for s in report.models:
        exp = {(e["entity"], e["country"]) for e in truth["expected"][s.model]["endpoints"]}
        got = {(e.entity, e.country) for e in s.by_entity}
        assert got == exp, s.model
        countries = {r.country for r in s.rollup}
        assert countries == {c for _, c in exp}


def test_evidence_paths_carry_times_and_amounts_from_the_workspace(report):
    assert report.evidence
    hops = [h for p in report.evidence for h in p.hops]
    assert all(h.time is not None and h.moved for h in hops)
    times = [[h.time for h in p.hops] for p in report.evidence]
    assert all(t == sorted(t) for t in times)  # a path runs forward in time


def test_renderers_on_real_traces(report, tmp_path):
    from fundtrail.report.render import render

    doc = json.loads(render(report, "json"))
    assert doc["model"] == "haircut" and doc["traced_amount"] and doc["endpoints"]
    for e in doc["endpoints"]:
        dec = len(e["amount"].split(".")[1]) if "." in e["amount"] else 0
        assert Decimal(e["amount"]).scaleb(dec) == int(Decimal(e["amount"]).scaleb(dec))
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert {r["section"] for r in rows} >= {"stolen", "endpoint", "unspent", "conservation", "evidence"}
    html = render(report, "html")
    for cc in {e.country for e in report.summary().by_entity if e.country}:
        assert f'data-id="country:{cc}"' in html
    text = render(report, "table")
    assert "Reached exchanges in Russia" in text


def test_cli_incident_and_report(sim_world, tmp_path):
    from fundtrail.cli.main import main

    home, truth = sim_world
    assert main(["incident", "list", "--home", str(home)]) == 0
    assert main(["incident", "show", "sim-theft", "--home", str(home), "--json"]) == 0
    out = tmp_path / "r.html"
    assert main(["report", "sim-theft", "--home", str(home), "--format", "html", "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    out = tmp_path / "r.json"
    assert main(["report", "sim-theft", "--home", str(home), "--format", "json", "--out", str(out),
                 "--model", "haircut"]) == 0
    doc = json.loads(out.read_text())
    assert doc["model"] == "haircut" and list(doc["traces"]) == ["haircut"]
    assert main(["report", "nope", "--home", str(home)]) == 2  # unknown incident: a usage error
    assert main(["report", "sim-theft", "--home", str(home), "--format", "pdf"]) == 2
    assert Path(home).exists()
