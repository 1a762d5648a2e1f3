"""Deposit contracts never swept: a contract deployed by an exchange's tagged hot wallet (or created by a
factory it deployed) is attributed to the exchange with provenance and a confidence below the tag's;
funds sitting there reach the exchange in state ``unswept``; a swept deposit address is ``swept``."""

from __future__ import annotations

from fundtrail.cluster.service import cluster
from fundtrail.model.trace import Seed
from fundtrail.store import Workspace
from fundtrail.trace.service import trace

from .world import EvmWorld, eaddr

ETH = 10**18


def _world(ws: Workspace) -> None:
    w = EvmWorld()
    w.tag("hot", "exchange", "Binance", "KY")
    w.tx("fund", "victim", [("victim", "thief", "ETH", 100 * ETH)], height=1)
    w.tx("gas", "whale", [("whale", "hot", "ETH", 10 * ETH)], height=1)
    w.tx("deploy1", "hot", [], height=2, created="fwd1")  # a forwarder the hot wallet deployed itself
    w.tx("deploy_factory", "hot", [], height=2, created="factory")
    w.tx("make2", "hot", [("hot", "factory", "ETH", 1), ("factory", "fwd2", "ETH", 1, "create")], height=3)
    w.tx("pay1", "thief", [("thief", "fwd1", "ETH", 30 * ETH)], height=4)
    w.tx("pay2", "thief", [("thief", "fwd2", "ETH", 20 * ETH)], height=5)
    w.tx("pay3", "thief", [("thief", "dep3", "ETH", 40 * ETH)], height=6)
    w.tx("sweep3", "dep3", [("dep3", "hot", "ETH", 40 * ETH)], height=7)
    w.write(ws)


def test_unswept_deposit_contracts_reach_their_creator(home):
    ws = Workspace(home)
    _world(ws)
    before = trace(ws, [Seed("simeth", address=eaddr("thief"))], model="haircut")
    held = {h.address: h for h in before.unspent}
    # unclustered: the forwarders are unattributed holdings, and say why
    assert eaddr("fwd1") in held and "no tag and no cluster" in held[eaddr("fwd1")].to_json()["note"]
    cluster(ws, "simeth")
    deps = {r["address_id"]: r for r in ws.query("SELECT d.*, a.address FROM deposit_addresses d JOIN addresses a "
                                                  "ON a.chain = d.chain AND a.address_id = d.address_id").to_pylist()}
    by_addr = {r["address"]: r for r in deps.values()}
    assert by_addr[eaddr("fwd1")]["rule"] == "creator" and by_addr[eaddr("fwd1")]["confidence"] == 0.9
    assert by_addr[eaddr("fwd2")]["rule"] == "factory" and by_addr[eaddr("fwd2")]["confidence"] < 0.9
    assert f"created by {eaddr('hot')} (Binance hot wallet, tag source test)" in by_addr[eaddr("fwd1")]["provenance"]
    assert eaddr("factory") in by_addr[eaddr("fwd2")]["provenance"]
    assert by_addr[eaddr("dep3")]["rule"] == "sweep"
    r = trace(ws, [Seed("simeth", address=eaddr("thief"))], model="haircut")
    ends = {(e.entity, e.state): e for e in r.endpoints}
    assert set(ends) == {("Binance", "unswept"), ("Binance", "swept")}
    un = ends[("Binance", "unswept")]
    assert un.amount == 50 * ETH and set(un.unswept_addresses) == {eaddr("fwd1"), eaddr("fwd2")}
    assert "created by" in (un.provenance or "")
    assert ends[("Binance", "swept")].amount == 40 * ETH
    js = un.to_json()
    assert js["state"] == "unswept" and js["unswept_addresses"]
    b = r.balances[0]
    assert b.balanced and b.endpoints == 90 * ETH and b.unspent == 10 * ETH
