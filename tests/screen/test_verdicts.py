"""Verdicts on the simulated world under the shipped default policy."""

from __future__ import annotations

from fundtrail.screen.policy import default_policy
from fundtrail.service.screening import Screener
from fundtrail.store import Workspace


def _screener(world):
    return Screener.open(Workspace(world.home), default_policy().with_version(0))


def test_cashout_and_dormant_blocked(world):
    s = _screener(world)
    for chain, a in world.cashout + world.dormant:
        v = s.screen_address(chain, a).to_json()
        assert v["decision"] == "block", (a, v["reasons"])
        assert v["reasons"] and v["risk"] in ("high", "severe") and v["score"] >= 80


def test_deposit_two_hops_review_or_block_by_indirect_exposure(world):
    v = _screener(world).screen_address(*world.deposit_2hops).to_json()
    assert v["decision"] in ("review", "block")
    assert v["entity"] is not None and v["entity"]["category"] in ("exchange", "exchange_nokyc")
    stolen = [e for e in v["exposure"] if e["category"] == "stolen_funds"]
    assert stolen and stolen[0]["kind"] == "indirect" and stolen[0]["hops"] == 2
    assert "STOLEN-INDIRECT" in [r["rule"] for r in v["reasons"]]
    for k in ("verdict_id", "chain", "address", "entity", "cluster_id", "decision", "risk", "score", "exposure",
              "reasons", "policy", "as_of"):
        assert k in v
    assert set(v["as_of"]) >= {"heights", "tags_digest"}
    e = stolen[0]
    assert set(e) >= {"direction", "kind", "category", "entity", "country", "hops", "amount", "usd", "share", "path"}
    assert isinstance(e["amount"], str)


def test_ordinary_user_allowed(world):
    v = _screener(world).screen_address(*world.user).to_json()
    assert v["decision"] == "allow" and v["reasons"] == [] and v["score"] == 0


def test_sanctioned_after_the_transfer_is_not_yet_sanctioned(world):
    s = _screener(world)
    chain, a = world.later_sanctioned
    before = s.screen_transfer({"chain": chain, "direction": "sent", "address": a, "asset": "BTC",
                                "amount": "0.1", "time": "2025-06-01T00:00:00Z"}).to_json()
    assert before["decision"] == "allow"
    assert before["entity"]["sanctioned"] is False and before["entity"]["sanctions_status"] == "future"
    after = s.screen_transfer({"chain": chain, "direction": "sent", "address": a, "asset": "BTC",
                               "amount": "0.1", "time": "2030-06-01T00:00:00Z"}).to_json()
    assert after["decision"] == "block" and after["reasons"][0]["rule"] == "SANCTIONED-SELF"


def test_received_deposit_judged_on_its_source(world):
    s = _screener(world)
    chain, thief_split = world.cashout[0]
    _, user = world.user
    v = s.screen_transfer({"chain": chain, "direction": "received", "address": thief_split,
                           "counterparty": world.cashout[1][1], "asset": "ETH", "amount": "1"}).to_json()
    assert v["decision"] == "block" and v["judged_address"] == world.cashout[1][1]
    assert user
