"""The ``fundtrail stats`` command on the simulated multi-incident world: JSON, CSV, table and one
self-contained HTML file with the charts."""

from __future__ import annotations

import csv
import io
import json
import re

from fundtrail.cli.main import main


def test_stats_json_csv_table(multi_world, capsys):
    home, doc = multi_world
    assert main(["stats", "--home", str(home), "--by", "actor,country", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["by"] == ["actor", "country"] and out["method"]["models"] == ["haircut"]
    assert {g["measure"] for g in out["groups"]} >= {"stolen", "cashed_out", "mixer", "unspent"}
    assert {g["country"] for g in out["groups"] if g["measure"] == "cashed_out"} >= {"RU", "KH", "US"}
    assert main(["stats", "--home", str(home), "--by", "year", "--format", "csv", "--model", "fifo"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows and all(r["model"] in ("fifo",) for r in rows) and all("hop budget 20" in r["method"] for r in rows)
    assert main(["stats", "--home", str(home), "--by", "actor", "--incident", doc["incidents"][0]["name"]]) == 0
    text = capsys.readouterr().out
    assert "Cashed out at services" in text and "hop budget 20" in text


def test_stats_html_is_one_offline_file(multi_world, tmp_path):
    home, _ = multi_world
    out = tmp_path / "stats.html"
    assert main(["stats", "--home", str(home), "--format", "html", "--out", str(out)]) == 0
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "Content-Security-Policy" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing fetched
    assert "<script" not in html
    assert html.count('class="bars"') >= 2  # stacked bars per year and actor
    assert 'class="rank"' in html and 'data-country="RU"' in html  # the country ranking
    assert 'id="sankey"' in html and "node-seed" in html and "node-country" in html  # actor -> country


def test_stats_usage_errors(multi_world, capsys):
    home, _ = multi_world
    assert main(["stats", "--home", str(home), "--by", "planet"]) == 2
    assert "--by" in capsys.readouterr().err
    assert main(["stats", "--home", str(home), "--incident", "nope"]) == 2
    assert main(["stats", "--home", str(home), "--model", "lifo"]) == 2
    assert main(["stats", "--home", str(home), "--format", "pdf"]) == 2
    assert main(["stats", "--home", str(home), "--from", "2025-02-01", "--to", "2025-01-01"]) == 2
    capsys.readouterr()


def test_stats_on_an_empty_workspace_says_what_to_do(tmp_path, capsys):
    assert main(["stats", "--home", str(tmp_path / "empty")]) == 2
    assert "incident import" in capsys.readouterr().err


def test_seeds_missing_from_the_workspace_are_named_not_fatal(multi_world):
    from fundtrail.incidents import create_incident, delete_incident
    from fundtrail.stats import compute_stats
    from fundtrail.store import Workspace

    home, doc = multi_world
    ws = Workspace(home)
    seed = doc["incidents"][0]["seeds"][0]["address"]
    absent = "0x" + "ab" * 20
    create_incident(ws, "partly-known", ["simeth"], addresses=[seed, absent], actor="x",
                    since=doc["incidents"][0]["time"][:10])
    create_incident(ws, "unknown", ["simeth"], addresses=[absent])
    try:
        r = compute_stats(ws, incidents=["partly-known", "unknown"], models=("haircut",))
    finally:
        delete_incident(ws, "partly-known")
        delete_incident(ws, "unknown")
    assert any("1 of 2 seed addresses" in n and absent in n for n in r.notes)
    assert any("incident unknown: not traced" in n for n in r.notes)
    stolen = {f.asset: f.amount for f in r.facts if f.measure == "stolen"}
    want = {s["asset"]: int(s["amount"]) for s in doc["incidents"][0]["stolen"]}
    assert stolen == want
    assert {i.name: i.traced for i in r.incidents} == {"partly-known": True, "unknown": False}
