"""The multi-incident world: several thefts by several actors over several years, each with an exact,
balanced ground truth of its own, and incidents that never share an account."""

from __future__ import annotations

import json

from fundtrail.simulate.multi import DEFAULT_PLAN, simulate_multi


def test_multi_world_truth_per_incident(tmp_path):
    doc = simulate_multi(tmp_path, seed=2)
    assert json.loads((tmp_path / "incidents.json").read_text()) == doc
    incs = doc["incidents"]
    assert [i["name"] for i in incs] == [p.name for p in DEFAULT_PLAN]
    assert len({i["actor"] for i in incs}) == 2 and len({i["time"][:4] for i in incs}) == 3
    assert len({i["seeds"][0]["address"] for i in incs}) == len(incs)
    for i in incs:
        for model in ("poison", "haircut", "fifo"):
            exp = i["expected"][model]
            assert all(c["balanced"] for c in exp["conservation"] if model != "poison")
            # each incident reaches exchanges on both chains, a mixer, and keeps some funds unspent
            assert {e["chain"] for e in exp["endpoints"]} == {"simeth", "regtest"}
            assert any(e["category"] == "mixer" for e in exp["endpoints"])
            assert exp["unspent"]
            # laundering ends within weeks of the theft, in the theft's year
            assert all(e["last_seen"][:4] == i["time"][:4] for e in exp["endpoints"])
    # the incidents' laundering never meets: no endpoint txid is shared between two incidents
    seen: dict[str, str] = {}
    for i in incs:
        for e in i["expected"]["haircut"]["endpoints"]:
            for t in e["txids"]:
                assert seen.setdefault(t, i["name"]) == i["name"]
    assert (tmp_path / "prices.csv").read_text().count("\n") > 800 * 4
