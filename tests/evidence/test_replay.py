"""Pinning: export, let the workspace move on (more blocks, a changed tag), replay the old bundle."""

from __future__ import annotations

import json
import time

import pytest

from fundtrail.evidence.bundle import export_bundle
from fundtrail.evidence.verify import compare_results, verify_bundle
from fundtrail.model.trace import Seed
from fundtrail.trace.service import trace

from . import world

PINNED = 310  # the Bitcoin height the workspace has reached when the bundle is exported


@pytest.fixture(scope="module")
def moved_on(tmp_path_factory):
    """(truth, ws, bundle A exported at Bitcoin height 310, the relabelled address) after the workspace
    caught up with the chain and a tag changed."""
    out = tmp_path_factory.mktemp("replay-world")
    truth = world.simulate(out)
    ws = world.build(out, tmp_path_factory.mktemp("replay-ws"), truth, upto=PINNED)
    d = tmp_path_factory.mktemp("replay-bundles")
    a = export_bundle(ws, "sim-theft", d / "a.zip")
    assert a.manifest["chains"][0]["chain"] == "regtest" and a.manifest["chains"][0]["height"] == PINNED
    # the deposit address of one exchange, relabelled by a tag imported after the export
    ep = next(e for s in a.report.models for e in s.result.endpoints
              if e.chain == "regtest" and e.category != "mixer" and e.deposits)
    relabelled = ep.deposits[0].address
    time.sleep(1.1)  # import times have one-second resolution
    world.catch_up(out, ws, truth)
    csv = d / "relabel.csv"
    csv.write_text("address,chain,label,category,entity,country,source,confidence\n"
                   f"{relabelled},regtest,Relabelled Exchange-sim,exchange,Relabelled Exchange-sim,FR,test,1.0\n")
    from fundtrail.attribution.service import import_paths

    import_paths(ws, [csv])
    return truth, ws, a, ep.entity, d


def test_replay_reproduces_the_bundle_after_the_workspace_moved_on(moved_on):
    truth, ws, a, _, _ = moved_on
    assert ws.chain("regtest")["tip_height"] > PINNED
    v = verify_bundle(a.path, ws, replay=True)
    assert v.ok, (v.problems, v.differences)
    assert v.replayed and not v.differences


def test_a_fresh_export_differs(moved_on):
    _, ws, a, entity, d = moved_on
    b = export_bundle(ws, "sim-theft", d / "b.zip")
    diffs = compare_results(a.manifest["results"], b.manifest["results"])
    assert diffs
    assert any("Relabelled Exchange-sim" in x for x in diffs)
    assert any("Relabelled" not in x and "regtest" in x for x in diffs)  # the blocks ingested since count too
    assert b.manifest["chains"][0]["height"] > a.manifest["chains"][0]["height"]
    new_tags = {x["dataset"] for x in b.manifest["tags"]["datasets"]} - {x["dataset"] for x in a.manifest["tags"]["datasets"]}
    assert new_tags == {"csv:relabel"}


def test_trace_as_of_the_pins_equals_the_bundle(moved_on, capsys):
    truth, ws, a, entity, _ = moved_on
    heights = {c["chain"]: c["height"] for c in a.manifest["chains"]}
    seeds = [Seed(s["chain"], address=s["address"]) for s in truth["theft"]["seeds"]]
    pinned = trace(ws, seeds, model="haircut", as_of_height=heights, tags_as_of=a.manifest["tags"]["as_of"])
    want = {(x["entity"], x["chain"], x["asset"]): int(x["amount"]) for x in a.manifest["results"]["haircut"]["endpoints"]}
    assert {(e.entity, e.chain, e.asset): e.amount for e in pinned.endpoints} == want
    assert pinned.params["as_of"]["heights"] == heights
    # the same heights with today's tags: the relabelled deposit address is its own endpoint now
    later_tags = trace(ws, seeds, model="haircut", as_of_height=heights)
    assert "Relabelled Exchange-sim" in {e.entity for e in later_tags.endpoints}
    # and the command line, with the contract's options
    from fundtrail.cli.main import main

    s = truth["theft"]["seeds"][0]
    args = ["trace", "--chain", s["chain"], "--address", s["address"], "--json", "--home", str(ws.home),
            "--tags-as-of", a.manifest["tags"]["as_of"]] + [x for c, h in heights.items()
                                                          for x in ("--as-of-height", f"{c}={h}")]
    capsys.readouterr()
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    from decimal import Decimal

    got = {(e["entity"], e["chain"], e["asset"]): Decimal(e["amount"]) for e in doc["endpoints"]}
    dec = {(e.entity, e.chain, e.asset): e.decimals for e in pinned.endpoints}
    assert {k: int(v.scaleb(dec[k])) for k, v in got.items()} == want
    # and the report, with the same options
    capsys.readouterr()
    assert main(["report", "sim-theft", "--format", "json", "--model", "haircut", "--home", str(ws.home),
                 "--tags-as-of", a.manifest["tags"]["as_of"]] + args[-4:]) == 0
    rep = json.loads(capsys.readouterr().out)
    got = {(e["entity"], e["chain"], e["asset"]): int(Decimal(e["amount"]).scaleb(dec[(e["entity"], e["chain"],
                                                                                      e["asset"])]))
           for e in rep["endpoints"]}
    assert got == want and rep["report"]["params"]["as_of"]["heights"] == heights


def test_a_replaced_tag_snapshot_is_reported(moved_on, tmp_path):
    """A snapshot imported again over itself (same dataset, same snapshot date) replaces the copy the bundle
    was pinned to: replay cannot reproduce it from this workspace and says so, naming the dataset."""
    import shutil

    from fundtrail.attribution.service import import_paths
    from fundtrail.store import Workspace

    _, ws, a, _, _ = moved_on
    copy = Workspace(shutil.copytree(ws.home, tmp_path / "ws"))
    first = a.manifest["tags"]["datasets"][0]
    import_paths(copy, [first["files"][0]["path"]])
    v = verify_bundle(a.path, copy, replay=True)
    assert any(first["dataset"] in x for x in v.differences), v.differences
