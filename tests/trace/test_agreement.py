"""Backward and forward tracing agree at the service (hypothesis): on generated Bitcoin and EVM worlds, a
forward haircut trace from a named incident's seed address, then a backward haircut trace from every
deposit it reached: the share of the deposit the backward trace credits to the incident (by name) equals
what the forward trace put into it, within one base unit per transaction (rounding). Fees, CoinJoins,
the exchanges' stops and the default limits are treated alike in both directions (docs/tracing.md,
"Why backward and forward agree")."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundtrail.incidents import create_incident
from fundtrail.model.trace import Seed
from fundtrail.store import Workspace
from fundtrail.trace.service import trace

from .world import BtcWorld, EvmWorld, addr, eaddr, txid

INCIDENT = "gen-theft"
OWNERS = ["thief", "u1", "u2", "u3", "u4", "ex:Alpha", "ex:Beta"]


@st.composite
def btc_worlds(draw):
    """A coin stolen into ``thief`` (the incident's address) among clean coins of other owners, then up to
    14 transactions spending 1-3 unspent coins (never an exchange's) into 1-3 outputs to random owners,
    with fees; some of them marked as CoinJoins."""
    w = BtcWorld()
    coins: list[tuple[str, int, int]] = []  # (tx, n, value) unspent, not at an exchange
    w.tx("theft", [], [("thief", draw(st.integers(10**6, 10**10)))], height=1)
    coins.append(("theft", 0, w.txs[-1]["outputs"][0][1]))
    for i in range(draw(st.integers(1, 3))):
        v = draw(st.integers(10**5, 10**10))
        owner = draw(st.sampled_from(OWNERS[1:5]))
        w.tx(f"cb{i}", [], [(owner, v)], height=1)
        coins.append((f"cb{i}", 0, v))
    for k in range(draw(st.integers(1, 14))):
        if not coins:
            break
        m = draw(st.integers(1, min(3, len(coins))))
        idx = draw(st.lists(st.integers(0, len(coins) - 1), min_size=m, max_size=m, unique=True))
        ins = [coins[i] for i in idx]
        for i in sorted(idx, reverse=True):
            coins.pop(i)
        total = sum(v for _t, _n, v in ins)
        fee = draw(st.integers(0, total // 20))
        n_out = draw(st.integers(1, 3))
        cuts = sorted(draw(st.lists(st.integers(1, max(1, total - fee - 1)), min_size=n_out - 1,
                                    max_size=n_out - 1)))
        vals = [b - a for a, b in zip([0, *cuts], [*cuts, total - fee], strict=True)]
        outs = [(draw(st.sampled_from(OWNERS)), v) for v in vals if v > 0]
        if not outs:
            continue
        name = f"t{k}"
        w.tx(name, [(t, n) for t, n, _v in ins], outs, height=2 + k)
        if m >= 2 and draw(st.integers(0, 4)) == 0:
            w.coinjoins.append(name)
        coins += [(name, n, v) for n, (o, v) in enumerate(outs) if not o.startswith("ex:")]
    for ex in ("Alpha", "Beta"):
        w.tag(f"ex:{ex}", "exchange", ex)
    return w


def _credited(r, name: str) -> int:
    return sum(e.amount for e in r.endpoints if e.category == "incident" and e.entity == name)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(btc_worlds())
def test_bitcoin_backward_credit_to_the_incident_equals_the_forward_deposit(tmp_path_factory, w):
    ws = Workspace(tmp_path_factory.mktemp("agree") / "ws")
    w.write(ws)
    create_incident(ws, INCIDENT, "regtest", addresses=[addr("thief")])
    fwd = trace(ws, [Seed("regtest", address=addr("thief"))], model="haircut")
    assert all(b.balanced for b in fwd.balances)
    by_txid = {txid(t["name"]): t for t in w.txs}
    fwd_amt: dict[tuple[str, str], int] = {}
    for ep in fwd.endpoints:
        for dep in ep.deposits:
            fwd_amt[(dep.txid, dep.address)] = fwd_amt.get((dep.txid, dep.address), 0) + dep.amount
    for (tx, address), amount in sorted(fwd_amt.items()):
        # backward from the deposit outputs (every output of the transaction paid to that address)
        ns = [n for n, (owner, _v) in enumerate(by_txid[tx]["outputs"]) if addr(owner) == address]
        back = trace(ws, [Seed("regtest", txid=tx, n=n) for n in ns], model="haircut", direction="backward")
        assert all(b.balanced for b in back.balances)
        got = _credited(back, INCIDENT)
        assert abs(got - amount) <= len(w.txs), (tx, address, got, amount)
        (inc,) = [e for e in back.endpoints if e.category == "incident"]
        assert inc.incident == INCIDENT and inc.to_json()["incident"] == INCIDENT
        assert 0 < inc.share <= 1


@st.composite
def evm_worlds(draw):
    """ETH stolen into ``thief`` (the incident's address) among funded accounts, then up to 14 steps: a
    transfer of part of a sender's balance to another account or an exchange's hot wallet, with gas fees,
    or clean funds arriving at an account."""
    w = EvmWorld()
    names = ["thief", "u1", "u2", "u3", "u4"]
    bal = {n: 0 for n in names}
    stolen = draw(st.integers(10**15, 10**21))
    w.tx("theft", "victim", [("victim", "thief", "ETH", stolen)], height=1)
    bal["thief"] = stolen
    for i, n in enumerate(names[1:]):
        if draw(st.booleans()):
            v = draw(st.integers(10**15, 10**21))
            w.tx(f"fund{i}", n, [(None, n, "ETH", v, "reward")], height=1)
            bal[n] = v
    for k in range(draw(st.integers(1, 14))):
        if draw(st.integers(0, 3)) == 0:  # clean funds arriving between the tainted ones
            n = draw(st.sampled_from(names[1:]))
            v = draw(st.integers(10**15, 10**21))
            w.tx(f"r{k}", n, [(None, n, "ETH", v, "reward")], height=2 + k)
            bal[n] += v
            continue
        src = draw(st.sampled_from([n for n in names if bal[n] > 10**12] or ["thief"]))
        if bal[src] <= 10**12:
            break
        dst = draw(st.sampled_from([n for n in names if n != src] + ["hot"]))
        fee = draw(st.integers(0, 10**12))
        amt = draw(st.integers(1, max(1, (bal[src] - fee) * draw(st.sampled_from([1, 2, 3])) // 3)))
        amt = min(amt, bal[src] - fee)
        if amt <= 0:
            continue
        bal[src] -= amt + fee
        if dst in bal:
            bal[dst] += amt
        w.tx(f"s{k}", src, [(src, dst, "ETH", amt)], height=2 + k, fee=fee)
    w.tag("hot", "exchange", "Alpha")
    return w


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(evm_worlds())
def test_evm_backward_credit_to_the_incident_equals_the_forward_deposit(tmp_path_factory, w):
    ws = Workspace(tmp_path_factory.mktemp("agree") / "ws")
    w.write(ws)
    create_incident(ws, INCIDENT, "simeth", addresses=[eaddr("thief")])
    fwd = trace(ws, [Seed("simeth", address=eaddr("thief"))], model="haircut")
    assert all(b.balanced for b in fwd.balances)
    for ep in fwd.endpoints:
        for dep in ep.deposits:
            back = trace(ws, [Seed("simeth", txid=dep.txid)], model="haircut", direction="backward")
            assert all(b.balanced for b in back.balances)
            got = _credited(back, INCIDENT)
            assert abs(got - dep.amount) <= len(w.txs), (dep, got, dep.amount)


def test_backward_names_the_incident_and_its_share(home, capsys):
    """A deposit half paid from a named theft, half from clean funds: the backward trace credits 50% to
    the incident by name, in the trace JSON too (``endpoints[].incident``, ``share``)."""
    ws = Workspace(home)
    w = BtcWorld()
    w.tx("theft", [], [("thief", 1_000_000)], height=1)
    w.tx("clean", [], [("u1", 1_000_000)], height=1)
    w.tx("mix", [("theft", 0), ("clean", 0)], [("ex:Alpha", 1_000_000), ("u2", 1_000_000)], height=2)
    w.tag("ex:Alpha", "exchange", "Alpha")
    w.write(ws)
    create_incident(ws, INCIDENT, "regtest", addresses=[addr("thief")])
    back = trace(ws, [Seed("regtest", txid=txid("mix"), n=0)], model="haircut", direction="backward")
    js = back.to_json()
    (inc,) = [e for e in js["endpoints"] if e["category"] == "incident"]
    assert inc["entity"] == INCIDENT and inc["incident"] == INCIDENT
    assert inc["amount"] == "0.00500000" and inc["share"] == 0.5
    # the CLI prints the same (backward from the whole transaction: still half from the theft)
    import json

    from fundtrail.cli.main import main

    capsys.readouterr()
    assert main(["trace", "--chain", "regtest", "--tx", txid("mix"), "--direction", "backward", "--json",
                 "--home", str(home)]) == 0
    js = json.loads(capsys.readouterr().out)
    (inc,) = [e for e in js["endpoints"] if e["category"] == "incident"]
    assert inc["incident"] == INCIDENT and inc["amount"] == "0.01000000" and inc["share"] == 0.5


def test_evm_backward_haircut_is_the_adjoint_of_the_forward_rule(home):
    """An account holding clean funds receives more clean ETH, then stolen ETH, pays gas, then pays an exchange:
    forward haircut puts outflow/balance of its taint into the deposit; the backward trace from the
    deposit credits the incident exactly that (not the whole deposit, which the time-reversed walk of
    wave 1 did), and the clean senders the rest."""
    ws = Workspace(home)
    w = EvmWorld()
    eth = 10**18
    w.tx("fund", "u1", [(None, "u1", "ETH", 30 * eth, "reward")], height=1)
    w.tx("theft", "victim", [("victim", "thief", "ETH", 10 * eth)], height=2)
    w.tx("s0", "u2", [("u2", "u1", "ETH", 20 * eth)], height=3)
    w.tx("s1", "thief", [("thief", "u1", "ETH", 10 * eth)], height=4)
    w.tx("s2", "u1", [("u1", "hot", "ETH", 24 * eth)], height=5, fee=10**15)
    w.tag("hot", "exchange", "Alpha")
    w.write(ws)
    create_incident(ws, INCIDENT, "simeth", addresses=[eaddr("thief")])
    fwd = trace(ws, [Seed("simeth", address=eaddr("thief"))], model="haircut")
    (ep,) = fwd.endpoints
    assert ep.amount == 4 * eth  # 24 of 60: 10 * 24 / 60
    back = trace(ws, [Seed("simeth", txid=txid("s2"))], model="haircut", direction="backward")
    assert abs(_credited(back, INCIDENT) - ep.amount) <= 2
    assert all(b.balanced for b in back.balances)


def test_backward_crosses_a_bridge_back_to_the_incident(home):
    """ETH stolen on the EVM chain, bridged to Bitcoin (release by deposit id), paid to an exchange there:
    the backward trace from that deposit crosses the bridge back and credits the incident what the
    forward trace put into the deposit (in the source chain's units: scaled by the bridge's rate)."""
    ws = Workspace(home)
    w = EvmWorld()
    w.tx("fund", "x", [(None, "victim", "ETH", 100, "reward")], height=1)
    w.tx("theft", "victim", [("victim", "thief", "ETH", 100)], height=2)
    w.tx("clean", "c", [(None, "mule", "ETH", 300, "reward")], height=3)
    w.tx("pass", "thief", [("thief", "mule", "ETH", 100)], height=4)
    w.tx("dep", "mule", [("mule", "bridge", "ETH", 200)], height=5,
         logs=[w.bridge_deposit_log("bridge", 5, "mule", None, 200, "regtest", addr("loot"))])
    w.write(ws)
    b = BtcWorld()
    b.tx("cbw", [], [("bridgewallet", 10_000_000)], height=1)
    b.tx("rel", [("cbw", 0)], [("loot", 5_000_000), ("bridgewallet", 4_990_000), (None, 0, b"BRIDGE:OUT:simeth:5")],
         height=2)
    b.tx("cash", [("rel", 0)], [("ex:Alpha", 3_000_000), ("u1", 1_999_000)], height=3)
    b.tag("ex:Alpha", "exchange", "Alpha")
    b.write(ws)
    create_incident(ws, INCIDENT, "simeth", addresses=[eaddr("thief")])
    fwd = trace(ws, [Seed("simeth", address=eaddr("thief"))], model="haircut")
    (ep,) = [e for e in fwd.endpoints if e.chain == "regtest"]
    # forward: 3,000,000 of the 5,000,000 payout, a quarter of it (100 of 400 units) from the theft
    assert ep.amount == 750_000
    back = trace(ws, [Seed("regtest", txid=txid("cash"), n=0)], model="haircut", direction="backward")
    assert all(x.balanced for x in back.balances)
    assert back.bridges and back.bridges[0].to_chain == "simeth"
    credited = _credited(back, INCIDENT)
    assert credited * 5_000_000 // 200 == pytest.approx(ep.amount, abs=5_000_000 // 200)
