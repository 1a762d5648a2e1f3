"""Clustering a simulated world (issue 7's simulator) against its ground truth."""

from __future__ import annotations

import json

import pytest

from fundtrail.cluster.accuracy import score_workspace
from fundtrail.cluster.service import cluster
from fundtrail.store import Workspace


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    sim = pytest.importorskip("fundtrail.simulate.world")
    from fundtrail.ingest.bitcoin.service import ingest_block_files

    tmp = tmp_path_factory.mktemp("sim")
    sim.simulate(tmp / "world", "demo", 1)
    ws = Workspace(tmp / "ws")
    ingest_block_files(ws, tmp / "world" / "bitcoin" / "blocks", "regtest")
    return ws, json.loads((tmp / "world" / "truth.json").read_text())


def test_cospend_matches_truth_and_coinjoins_stay_apart(world):
    ws, truth = world
    cluster(ws, "regtest", full=True)
    s = score_workspace(ws, "regtest", truth)
    assert s["clusters"].precision == 1.0 and s["clusters"].recall == 1.0
    assert s["owners"].precision == 1.0  # no wrong merge against true ownership
    found = set(ws.query("SELECT txid FROM coinjoin_txs WHERE protocol <> 'whirlpool_tx0'")["txid"].to_pylist())
    assert set(truth["coinjoin_txids"]) <= found
    owners = truth["owners"]["regtest"]
    for txid in truth["coinjoin_txids"]:
        rows = ws.query(f"SELECT i.address, c.cluster_id FROM inputs i JOIN clusters c ON c.chain = i.chain "
                        f"AND c.address = i.address WHERE i.txid = '{txid}'").to_pylist()
        by_owner: dict[str, set[int]] = {}
        for r in rows:
            by_owner.setdefault(owners.get(r["address"], r["address"]), set()).add(r["cluster_id"])
        clusters = [c for cs in by_owner.values() for c in cs]
        assert len(clusters) == len(set(clusters)), "two CoinJoin participants share a cluster"


def test_precise_change_heuristics_keep_ownership_precision(world):
    ws, truth = world
    base = score_workspace(ws, "regtest", truth) if ws.row_count("cluster_members", "regtest") else None
    cluster(ws, "regtest", change_heuristics="round_amount,optimal_change")
    s = score_workspace(ws, "regtest", truth)["owners"]
    assert s.precision >= 0.99
    if base is not None:
        assert s.recall >= base["owners"].recall
