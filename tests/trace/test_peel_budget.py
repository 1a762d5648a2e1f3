"""Peel chains cost one hop of the budget however long they are; where a trace does stop at a limit the
result says so first (``limits``: how much, where, the option that would go on); an exchange deposit
not yet swept is an endpoint in state ``unswept``."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundtrail.model.trace import Seed
from fundtrail.store import Workspace
from fundtrail.trace.service import trace

from .world import BtcWorld, addr


def _peel_world(ws: Workspace, hops: int, seed: int, spend_deposits: bool = True) -> int:
    """A coin peeled ``hops`` times (a small payment per hop to one of three exchanges' deposit addresses, the
    rest to a fresh address); returns the total paid to the exchanges."""
    rng = random.Random(seed)
    w = BtcWorld()
    w.tx("cb", [], [("thief", 50_000_000_000)], height=1)
    for ex in ("huobi", "garantex", "binance"):  # the hot wallets exist on the chain
        w.tx(f"cb:{ex}", [], [(f"hot:{ex}", 1_000_000)], height=1)
    prev, value, paid = "cb", 50_000_000_000, 0
    for i in range(hops):
        fee = 500 + rng.randint(0, 400)
        # a realistic peel: a small share of what is left, so the chain lasts all ``hops`` steps
        peel = int(value * rng.uniform(0.5, 1.5) / (hops - i + 4)) if i < hops - 1 else value - fee
        rest = value - peel - fee
        ex = ("huobi", "garantex", "binance")[i % 3]
        outs = [(f"dep:{ex}:{i}", peel)] + ([(f"c{i}", rest)] if i < hops - 1 else [])
        rng.shuffle(outs)
        w.tx(f"p{i}", [(prev, _out_index(w, prev, f"c{i - 1}") if i else 0)], outs, height=2 + i)
        paid += peel
        prev, value = f"p{i}", rest
        if spend_deposits:
            w.tx(f"sweep{i}", [(f"p{i}", _out_index(w, f"p{i}", f"dep:{ex}:{i}"))], [(f"hot:{ex}", peel - 300)],
                 height=2 + i)
    for ex, name in (("huobi", "Huobi"), ("garantex", "Garantex"), ("binance", "Binance")):
        w.tag(f"hot:{ex}", "exchange", name)
        w.clusters.append([f"hot:{ex}"] + [f"dep:{ex}:{i}" for i in range(hops) if ("huobi", "garantex",
                                                                                        "binance")[i % 3] == ex])
    w.write(ws)
    return paid


def _out_index(w: BtcWorld, tx: str, name: str) -> int:
    t = next(t for t in w.txs if t["name"] == tx)
    return next(n for n, o in enumerate(t["outputs"]) if o[0] == name)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hops=st.integers(1, 400), seed=st.integers(0, 10_000))
def test_a_peel_chain_of_any_length_is_followed_at_the_default_budget(tmp_path_factory, hops, seed):
    ws = Workspace(tmp_path_factory.mktemp("peel") / "ws")
    paid = _peel_world(ws, hops, seed, spend_deposits=False)
    r = trace(ws, [Seed("regtest", address=addr("thief"))], model="haircut")
    b = r.balances[0]
    assert b.balanced and b.stopped_hops == 0 and not r.limits
    assert sum(e.amount for e in r.endpoints) == paid == b.endpoints
    assert {e.entity for e in r.endpoints} <= {"Huobi", "Garantex", "Binance"}
    # the deposits were never swept: every endpoint is in state unswept, at the deposit addresses
    assert all(e.state == "unswept" and e.unswept_addresses for e in r.endpoints)
    assert max(e.hops for e in r.endpoints) <= 3
    if hops >= 5:
        (pc,) = r.peel_chains
        assert pc.hops >= hops - 3 and pc.to_json()["transactions"] == pc.hops


def test_limits_are_reported_first_with_the_option_that_goes_on(home):
    """A zig-zag that is no peel chain (two equal outputs per hop) stops at --max-hops 3: the result's
    limits say how much stopped, where, and that --max-hops 13 would go on."""
    ws = Workspace(home)
    w = BtcWorld()
    w.tx("cb", [], [("thief", 1_000_000)], height=1)
    prev = "cb"
    for i in range(6):
        w.tx(f"z{i}", [(prev, 0)], [(f"a{i}", 500_000 - 1000 * (i + 1)), (f"b{i}", 490_000 - 1000 * i)],
             height=2 + i)
        prev = f"z{i}"
    w.write(ws)
    r = trace(ws, [Seed("regtest", address=addr("thief"))], model="haircut", max_hops=3)
    assert r.balances[0].stopped_hops > 0
    (lim,) = r.limits
    assert lim.reason == "max_hops" and lim.amount == r.balances[0].stopped_hops
    assert lim.option == "--max-hops 13" and lim.where and lim.where[0][0] == addr("a2")
    js = r.to_json()
    assert list(js)[8] == "limits"  # right after the contract's fixed eight fields
    assert js["limits"][0]["option"] == "--max-hops 13" and "stopped at the hop limit" in js["limits"][0]["message"]
    assert not trace(ws, [Seed("regtest", address=addr("thief"))], model="haircut").limits


def test_swept_deposits_are_endpoints_in_state_swept(home):
    ws = Workspace(home)
    paid = _peel_world(ws, 12, 5, spend_deposits=True)
    r = trace(ws, [Seed("regtest", address=addr("thief"))], model="haircut")
    assert sum(e.amount for e in r.endpoints) == paid
    assert all(e.state == "swept" for e in r.endpoints)
    assert all(e.to_json()["state"] == "swept" for e in r.endpoints)


def test_an_evm_forwarding_chain_costs_one_hop(home):
    """EVM: 60 fresh accounts, each paying ~10% to an exchange and forwarding the rest to the next: the
    default budget follows the chain to its end."""
    from .world import EvmWorld, eaddr

    ws = Workspace(home)
    w = EvmWorld()
    w.tag("hot", "exchange", "Binance")
    eth = 10**18
    w.tx("fund", "victim", [("victim", "a0", "ETH", 1000 * eth)], height=1)
    value, paid = 1000 * eth, 0
    for i in range(60):
        pay = value // 10
        w.tx(f"pay{i}", f"a{i}", [(f"a{i}", "hot", "ETH", pay)], height=2 + 2 * i)
        w.tx(f"fwd{i}", f"a{i}", [(f"a{i}", f"a{i + 1}", "ETH", value - pay)], height=3 + 2 * i)
        paid += pay
        value -= pay
    w.write(ws)
    r = trace(ws, [Seed("simeth", address=eaddr("a0"))], model="haircut")
    b = r.balances[0]
    assert b.balanced and b.stopped_hops == 0 and not r.limits
    assert b.endpoints == paid and b.unspent == value
    (pc,) = r.peel_chains  # summarised with its transfer count, like a Bitcoin peel chain
    assert pc.chain == "simeth" and pc.hops == 60 and pc.to_json()["transactions"] == 60
    assert dict(pc.peels_by_destination) == {"Binance": paid - 100 * eth}  # a0's own payment precedes the chain
    r = trace(ws, [Seed("simeth", address=eaddr("a0"))], model="haircut", max_hops=1)
    assert r.limits and r.limits[0].reason == "max_hops"


def test_without_the_peel_budget_a_long_chain_stops_and_says_so(home, capsys):
    """The wave-1 budget (every transaction a hop), kept as --no-peel-budget: a 60-step chain stops at
    --max-hops 20 and the limit notice is printed first, naming the option that goes on."""
    from fundtrail.cli.main import main

    ws = Workspace(home)
    paid = _peel_world(ws, 60, 2, spend_deposits=False)
    r = trace(ws, [Seed("regtest", address=addr("thief"))], model="haircut", peel_budget=False)
    assert r.balances[0].stopped_hops > 0 and sum(e.amount for e in r.endpoints) < paid
    (lim,) = r.limits
    assert lim.option == "--max-hops 40" and r.params["peel_budget"] is False
    capsys.readouterr()
    assert main(["trace", "--chain", "regtest", "--address", addr("thief"), "--no-peel-budget",
                 "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "LIMIT" in out and "--max-hops 40" in out
    assert out.index("LIMIT") < out.index("endpoints")


def test_a_used_up_peel_allowance_is_reported_first(home, capsys):
    """The allowance of transactions passed for free along peel chains (--peel-txs) bounds what the free
    hops can cost; used up, later peel steps cost a hop each and the trace says so first, naming the
    transaction where it ran out and the option that goes on."""
    from fundtrail.cli.main import main

    ws = Workspace(home)
    paid = _peel_world(ws, 60, 3, spend_deposits=False)
    r = trace(ws, [Seed("regtest", address=addr("thief"))], model="haircut", peel_budget=10)
    assert r.params["peel_free_txs"] == 10 and r.params["peel_txs"] == 10
    b = r.balances[0]
    assert b.balanced and b.stopped_hops > 0 and sum(e.amount for e in r.endpoints) < paid
    reasons = [x.reason for x in r.limits]
    assert "peel_budget" in reasons and "max_hops" in reasons
    lim = next(x for x in r.limits if x.reason == "peel_budget")
    assert lim.option == "--peel-txs 20" and lim.amount == b.stopped_hops and lim.where[0][1]
    assert "peel-chain allowance was used up" in lim.message
    full = trace(ws, [Seed("regtest", address=addr("thief"))], model="haircut")
    assert not full.limits and sum(e.amount for e in full.endpoints) == paid
    capsys.readouterr()
    assert main(["trace", "--chain", "regtest", "--address", addr("thief"), "--peel-txs", "10",
                 "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "--peel-txs 20" in out and out.index("LIMIT") < out.index("endpoints")


def test_change_spending_of_one_or_two_steps_is_no_peel_chain(home):
    """Two peel-shaped transactions in a row are ordinary change-spending: each costs its hop (a chain
    needs a run of 3); a 'payment' back to the spent coin's address is change, not a peel."""
    ws = Workspace(home)
    w = BtcWorld()
    w.tx("cb", [], [("a", 1_000_000)], height=1)
    w.tx("t1", [("cb", 0)], [("b", 700_000), ("x1", 200_000)], height=2)
    w.tx("t2", [("t1", 0)], [("c", 500_000), ("x2", 150_000)], height=3)
    w.tx("t3", [("t2", 0)], [("d", 400_000), ("x3", 90_000)], height=4)  # x3 pays on: not a peel (one output)
    w.tx("t4", [("t3", 0)], [("e", 390_000)], height=5)
    w.write(ws)
    r = trace(ws, [Seed("regtest", address=addr("a"))], model="haircut", max_hops=3)
    # t1, t2, t3 form a run of 3: t2 and t3 are free, t4 costs a hop: all within 3 hops
    assert not r.limits and r.params["peel_free_txs"] == 2
    w2 = BtcWorld()
    w2.tx("cb", [], [("a", 1_000_000)], height=1)
    w2.tx("t1", [("cb", 0)], [("b", 700_000), ("x1", 200_000)], height=2)
    w2.tx("t2", [("t1", 0)], [("c", 500_000), ("b", 150_000)], height=3)  # pays back to the coin's address
    w2.tx("t3", [("t2", 0)], [("d", 400_000), ("x3", 90_000)], height=4)
    ws2 = Workspace(home / "two")
    w2.write(ws2)
    r2 = trace(ws2, [Seed("regtest", address=addr("a"))], model="haircut", max_hops=3)
    assert r2.params["peel_free_txs"] == 0
