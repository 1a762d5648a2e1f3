"""The investigation services on the KYT tests' simulated world: following seeds to their endpoints equals the
simulator's truth under every taint model; one-hop expansion; search; paged address and cluster pages."""

from __future__ import annotations

from collections import defaultdict

import pytest

from fundtrail.investigate import activity as A
from fundtrail.investigate import clusters as K
from fundtrail.investigate import graph as G
from fundtrail.investigate import search as S
from fundtrail.investigate import txs as X
from fundtrail.model.trace import Seed
from fundtrail.store import Workspace
from tests.exposure.world import build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory)


@pytest.mark.parametrize("model", ["poison", "haircut", "fifo"])
def test_follow_equals_truth(world, model):
    ws = Workspace(world.home)
    seeds = [Seed(s["chain"], address=s["address"]) for s in world.truth["theft"]["seeds"]]
    g = G.follow(ws, seeds, model=model)
    want: dict = defaultdict(int)
    for e in world.truth["expected"][model]["endpoints"]:
        want[(e["entity"], e["chain"], e["asset"])] += int(e["amount"])
    got: dict = defaultdict(int)
    for e in g["endpoints"]:
        got[(e["entity"], e["chain"], e["asset"])] += int(e["amount_base"])
    assert dict(got) == dict(want)
    # the graph's endpoint edges carry the same amounts, one node per entity
    edge_sum: dict = defaultdict(int)
    for e in g["edges"]:
        if e["reason"] == "endpoint":
            edge_sum[(e["target"][2:], e["chain"], e["asset"])] += int(e["amount_base"])
    assert dict(edge_sum) == dict(want)
    ids = [n["id"] for n in g["nodes"]]
    assert len(ids) == len(set(ids))
    unspent = {(u["chain"], u["address"], u["asset"]): int(u["amount"])
               for u in world.truth["expected"][model]["unspent"]}
    assert {(u["chain"], u["address"], u["asset"]): int(u["amount_base"]) for u in g["unspent"]} == unspent


def test_expand_one_hop(world):
    ws = Workspace(world.home)
    s = world.truth["theft"]["seeds"][0]
    fwd = G.expand(ws, s["chain"], s["address"])
    me = G.address_node_id(s["chain"], s["address"])
    assert fwd["edges"] and all(e["source"] == me for e in fwd["edges"])
    splits = {a for c, a in world.cashout if c == s["chain"]}
    reached = {n["address"] for n in fwd["nodes"] if n["address"]}
    assert splits <= reached  # the thief's split addresses are its first hop
    back = G.expand(ws, s["chain"], s["address"], direction="backward")
    assert back["edges"] and all(e["target"] == me for e in back["edges"])
    with pytest.raises(Exception, match="model"):
        G.expand(ws, s["chain"], s["address"], model="lifo")


def test_search_finds_every_kind(world):
    ws = Workspace(world.home)
    s = world.truth["theft"]["seeds"][0]
    assert [h["kind"] for h in S.search(ws, s["address"].upper() if s["chain"] == "simeth" else s["address"])] == \
        ["address"]
    assert any(h["kind"] == "incident" and h["id"] == "sim-theft" for h in S.search(ws, "sim-theft"))
    assert any(h["kind"] == "entity" and h["id"] == "Garantex-sim" for h in S.search(ws, "garantex"))
    chain, addr = world.cashout[0]
    tx = A.activity(ws, chain, addr)["transactions"][0]["txid"]
    assert [h["kind"] for h in S.search(ws, tx)] == ["transaction"]
    cid = K.cluster_of(ws, "regtest", world.user[1])
    assert any(h["kind"] == "cluster" and h["chain"] == "regtest" for h in S.search(ws, str(cid)))
    assert S.search(ws, "   ") == []


def test_address_pages_are_paged_and_balance(world):
    ws = Workspace(world.home)
    chain, addr = world.dormant[0]
    a = A.activity(ws, chain, addr)
    t = a["totals"][0]
    assert float(t["balance"]) > 0 and t["sent"].strip("0.") == ""
    # a busy address (an exchange's hot wallet): pages of 5 follow each other without overlap
    hot = max(world.truth["owners"]["regtest"].items(), key=lambda kv: 0)[0]
    con = ws.connect()
    try:
        busiest = con.execute("SELECT a.address FROM utxo_outputs o JOIN addresses a USING (chain, address_id) "
                              "WHERE o.chain = 'regtest' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
    finally:
        con.close()
    assert hot
    p0 = A.activity(ws, "regtest", busiest, page=0, size=5)
    p1 = A.activity(ws, "regtest", busiest, page=1, size=5)
    assert p0["more"] and len(p0["transactions"]) == 5
    keys = lambda p: {(t["txid"], t["direction"]) for t in p["transactions"]}  # noqa: E731
    assert not keys(p0) & keys(p1)
    cp = A.counterparties(ws, "regtest", busiest, size=3)
    amounts = [float(c["amount"]) for c in cp["counterparties"]]
    assert amounts == sorted(amounts, reverse=True)
    tx = X.transaction(ws, "regtest", p0["transactions"][0]["txid"])
    assert tx["outputs"] and tx["kind"] == "utxo"


def test_cluster_page_explains_merges(world):
    ws = Workspace(world.home)
    con = ws.connect()
    try:
        cid, n = con.execute("SELECT cluster_id, count(*) FROM cluster_members WHERE chain = 'regtest' GROUP BY 1 "
                             "ORDER BY 2 DESC LIMIT 1").fetchone()
    finally:
        con.close()
    c = K.cluster_page(ws, "regtest", cid, size=10)
    assert c["size"] == n and len(c["members"]) == min(10, n) and c["more"] == (n > 10)
    assert c["merges"] and all(m["why"] for m in c["merges"])
    assert sum(h["count"] for h in c["merges_by_heuristic"]) == n - 1  # a spanning tree: k members, k-1 merges
    with pytest.raises(Exception, match="no cluster"):
        K.cluster_page(ws, "regtest", 10**12)


def test_one_hop_edges_carry_the_time_of_their_transaction(world):
    ws = Workspace(world.home)
    s = world.truth["theft"]["seeds"][0]
    fwd = G.expand(ws, s["chain"], s["address"])
    flows = [e for e in fwd["edges"] if e["reason"] == "flow"]
    assert flows and all(e["first_seen"] for e in flows)
    assert all(e["first_seen"][:19] >= world.truth["theft"]["time"][:19] for e in flows)


def test_peel_flags_find_the_simulated_peels(world):
    """The address pages' peel-chain flags: the simulator's peels are found in the chains the trace reports."""
    from fundtrail.investigate.peels import MAX_AT, address_peel_chains

    ws = Workspace(world.home)
    seeds = [Seed(s["chain"], address=s["address"]) for s in world.truth["theft"]["seeds"]]
    starts = {p.start_txid for p in G.trace(ws, seeds).peel_chains}
    peels = [f for f in world.truth["flows"] if f["step"] == "peel" and f["chain"] == "regtest"]
    assert peels
    found = 0
    for f in peels[:40]:
        j = address_peel_chains(ws, "regtest", f["to"])
        assert all(c["hops"] >= 3 and c["start_txid"] in starts for c in j["chains"]), j
        if any(c["role"] == "peel" and (f["txid"] in c["at_txids"] or len(c["at_txids"]) == MAX_AT)
               for c in j["chains"]):
            found += 1
    assert found >= 0.8 * min(40, len(peels)), found


def test_cluster_ids_without_the_screening_index(world):
    """"Group by cluster" without a screening index: the expansion labelled from the workspace's cluster tables
    gives every address node the cluster id that cluster_members holds for it (None for one it does not)."""
    ws = Workspace(world.home)
    label = K.cluster_labeler(ws)
    got, seen = {}, 0
    for s in world.truth["theft"]["seeds"]:
        for d in ("forward", "backward"):
            for n in G.expand(ws, s["chain"], s["address"], direction=d, label=label)["nodes"]:
                if n["address"]:
                    got[(n["chain"], n["address"])] = n["cluster"]
    for (chain, address), cid in got.items():
        assert cid == K.cluster_of(ws, chain, address), (chain, address)
        seen += cid is not None
    assert seen > 0
    assert K.cluster_ids(ws, "regtest", ["bcrt1qnotanaddressofthisworld"]) == {}
