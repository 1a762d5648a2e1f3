"""Bitcoin (output-level) tracing on small hand-computed worlds."""

from __future__ import annotations

import pytest

from fundtrail.model.trace import Seed
from fundtrail.store import Workspace
from fundtrail.trace.service import trace

from .world import BtcWorld, addr, txid


def _story(ws: Workspace) -> None:
    w = BtcWorld()
    w.tx("cb1", [], [("victim", 100_000)], height=1)
    w.tx("theft", [("cb1", 0)], [("thief", 99_000)], height=2)
    w.tx("cb2", [], [("clean", 50_000)], height=2)
    w.tx("mix", [("theft", 0), ("cb2", 0)], [("x", 100_000), ("exch", 48_000)], height=3)
    w.tx("split", [("mix", 0)], [("y", 60_000), ("z", 39_500)], height=4)
    w.tag("exch", "exchange", "Garantex", "RU")
    w.write(ws)


def _amounts(r):
    ends = {(e.entity, e.asset): e.amount for e in r.endpoints}
    unspent = {h.address: h.amount for h in r.unspent}
    bal = {(b.chain, b.asset): b for b in r.balances}
    return ends, unspent, bal


def test_haircut_largest_remainder_exact(home):
    ws = Workspace(home)
    _story(ws)
    r = trace(ws, [Seed("regtest", address=addr("thief"))], model="haircut")
    ends, unspent, bal = _amounts(r)
    assert ends == {("Garantex", "BTC"): 31_893}
    assert unspent == {addr("y"): 39_866, addr("z"): 26_245}
    b = bal[("regtest", "BTC")]
    assert (b.traced, b.endpoints, b.unspent, b.fees) == (99_000, 31_893, 66_111, 996)
    assert b.balanced
    ep = r.endpoints[0]
    assert ep.country == "RU" and ep.category == "exchange" and ep.hops == 1
    assert ep.paths == ((txid("mix"),),)
    j = r.to_json()
    assert j["endpoints"][0]["amount"] == "0.00031893" and j["endpoints"][0]["usd"] is None
    assert list(j)[:8] == ["model", "direction", "seeds", "traced_amount", "endpoints", "unspent", "mixers",
                           "bridges"]


def test_fifo_keeps_satoshi_order(home):
    ws = Workspace(home)
    _story(ws)
    r = trace(ws, [Seed("regtest", address=addr("thief"))], model="fifo")
    ends, unspent, bal = _amounts(r)
    assert ends == {}
    assert unspent == {addr("y"): 60_000, addr("z"): 39_000}
    b = bal[("regtest", "BTC")]
    assert b.fees == 0 and b.balanced


def test_poison_marks_everything_and_reports_absorbed(home):
    ws = Workspace(home)
    _story(ws)
    r = trace(ws, [Seed("regtest", address=addr("thief"))], model="poison")
    ends, unspent, bal = _amounts(r)
    assert ends == {("Garantex", "BTC"): 48_000}
    assert unspent == {addr("y"): 60_000, addr("z"): 39_500}
    b = bal[("regtest", "BTC")]
    assert b.fees == 1_500 and b.absorbed == 50_000 and b.balanced


def test_hop_limit_and_dust_are_reported(home):
    ws = Workspace(home)
    _story(ws)
    r = trace(ws, [Seed("regtest", address=addr("thief"))], model="haircut", max_hops=1)
    b = r.balances[0]
    assert b.stopped_hops == 66_443 and b.balanced
    assert any(s.reason == "max_hops" and s.amount == 66_443 for s in r.stopped)
    r = trace(ws, [Seed("regtest", address=addr("thief"))], model="haircut", dust=40_000)
    b = r.balances[0]
    # exch (31,893) is an endpoint before dust applies; y and z are below the threshold
    assert b.stopped_dust == 39_866 + 26_245 and b.endpoints == 31_893 and b.balanced
    r = trace(ws, [Seed("regtest", address=addr("thief"))], model="haircut", dust="0.0004")
    assert r.balances[0].stopped_dust == 39_866 + 26_245


def test_seed_by_txid_and_backward(home):
    ws = Workspace(home)
    _story(ws)
    r = trace(ws, [Seed("regtest", txid=txid("theft"))], model="haircut")
    assert r.balances[0].traced == 99_000 and r.endpoints[0].amount == 31_893
    # backward from y: where did y's 60,000 come from?
    r = trace(ws, [Seed("regtest", address=addr("y"))], model="haircut", direction="backward")
    b = r.balances[0]
    assert b.traced == 60_000 and b.balanced
    # haircut back through split (inputs 100,000 -> all 60,000 from mix:0), then mix: 99,000/149,000 from
    # theft, 50,000/149,000 from cb2 (coinbase): 39,866 / 20,134 (largest remainder)
    coinbase = sum(s.amount for s in r.stopped if s.reason == "coinbase")
    assert coinbase == 60_000  # everything was mined eventually
    assert b.other_stopped == 60_000


def test_service_cluster_stops_and_coinjoin_haircut(home):
    ws = Workspace(home)
    w = BtcWorld()
    w.tx("cb1", [], [("thief", 1_000)], height=1)
    w.tx("cb2", [], [("alice", 1_000)], height=1)
    w.tx("cb3", [], [("bob", 1_000)], height=1)
    w.tx("cj", [("cb1", 0), ("cb2", 0), ("cb3", 0)], [("o1", 1_000), ("o2", 1_000), ("o3", 1_000)], height=2)
    w.tx("dep", [("cj", 0)], [("deposit", 1_000)], height=3)
    w.tag("hotwallet", "exchange", "Binance", "KY")
    w.clusters.append(["hotwallet", "deposit"])
    w.tx("cb4", [], [("hotwallet", 5)], height=1)
    w.coinjoins.append("cj")
    w.write(ws)
    for model in ("poison", "fifo", "haircut"):
        r = trace(ws, [Seed("regtest", txid=txid("cb1"))], model=model)
        ends, unspent, bal = _amounts(r)
        b = bal[("regtest", "BTC")]
        assert b.balanced, model
        # the CoinJoin is split by haircut whatever the model: 333/333/334 -> largest remainder gives the
        # extra unit to the first slot
        # (poison reports a coin holding any taint whole)
        held = 1_000 if model == "poison" else 333
        assert unspent == {addr("o2"): held, addr("o3"): held}, (model, unspent)
        # after the CoinJoin each model applies again: poison taints all of the deposit it reaches
        assert ends == {("Binance", "BTC"): 1_000 if model == "poison" else 334}, model


def test_peel_chain_is_summarised(home):
    ws = Workspace(home)
    w = BtcWorld()
    w.tx("cb", [], [("thief", 1_000_000)], height=1)
    prev = "cb"
    for i in range(6):
        w.tx(f"p{i}", [(prev, 0)], [(f"c{i}", 1_000_000 - (i + 1) * 50_000 - (i + 1) * 100),
                                     ("exch" if i % 2 else f"u{i}", 50_000)], height=2 + i)
        prev = f"p{i}"
    w.tag("exch", "exchange", "Huobi", "SC")
    w.write(ws)
    r = trace(ws, [Seed("regtest", address=addr("thief"))], model="haircut")
    assert len(r.peel_chains) == 1
    pc = r.peel_chains[0]
    assert pc.hops == 6 and pc.peeled == 300_000 and pc.amount_in == 1_000_000
    assert dict(pc.peels_by_destination) == {"Huobi": 150_000, "unspent": 150_000}
    assert r.balances[0].balanced


def test_unknown_seed_is_a_clear_error(home):
    from fundtrail.errors import NotFoundError
    ws = Workspace(home)
    _story(ws)
    with pytest.raises(NotFoundError):
        trace(ws, [Seed("regtest", address=addr("nobody"))])
