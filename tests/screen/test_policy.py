"""The policy language: parsing, errors naming the field, the strictest rule wins."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fundtrail.errors import PolicyError
from fundtrail.exposure.index import Item, LabelRow, Profile
from fundtrail.exposure.sources import Group
from fundtrail.screen.policy import DECISIONS, default_policy, parse_policy
from fundtrail.screen.verdict import screen_profile

AT = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _item(category="stolen_funds", hops=1, amount=50, total=100.0, sanctioned=False, frm=None, to=None,
          direction="received"):
    g = Group(0, category, "X", None, sanctioned, frm, to, "tags")
    return Item(direction, g, "BTC", 8, amount, total, hops, ("t1",))


def _profile(*items, label=None):
    return Profile("bitcoin", "a", 1, None, label, (), tuple(items))


def test_default_policy_parses():
    p = default_policy()
    assert len(p.rules) >= 8 and len({r.id for r in p.rules}) == len(p.rules)


@pytest.mark.parametrize("doc, field", [
    ("rules: []", "rules"),
    ("rules: [{id: A, text: t, decision: maybe}]", "rules[0].decision"),
    ("rules: [{id: A, text: t, decision: block, min_share: 2}]", "rules[0].min_share"),
    ("rules: [{id: A, text: t, decision: block, colour: red}]", "rules[0].colour"),
    ("rules: [{text: t, decision: block}]", "rules[0].id"),
    ("rules: [{id: A, text: t, decision: block}, {id: A, text: u, decision: allow}]", "rules.id"),
    ("rules: [", "policy"),
])
def test_errors_name_the_field(doc, field):
    with pytest.raises(PolicyError) as e:
        parse_policy(doc)
    assert e.value.field == field


def test_strictest_rule_wins_and_all_are_reasons():
    p = parse_policy("""
id: t
rules:
  - {id: R1, text: any stolen, category: stolen_funds, decision: review}
  - {id: B1, text: direct stolen, category: stolen_funds, kind: direct, decision: block}
  - {id: A1, text: small, category: stolen_funds, decision: allow}
""")
    v = screen_profile(_profile(_item(hops=1)), p, at=AT, as_of={}).to_json()
    assert v["decision"] == "block" and [r["rule"] for r in v["reasons"]] == ["B1", "R1", "A1"]
    v = screen_profile(_profile(_item(hops=3)), p, at=AT, as_of={}).to_json()
    assert v["decision"] == "review"


def test_point_in_time_sanctions():
    p = default_policy()
    frm = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    it = _item(category="exchange", sanctioned=True, frm=frm)
    before = screen_profile(_profile(it), p, at=AT, as_of={}).to_json()
    assert before["decision"] == "allow" and before["exposure"][0]["sanctions_status"] == "future"
    after = screen_profile(_profile(it), p, at=frm + dt.timedelta(days=1), as_of={}).to_json()
    assert after["decision"] == "block"
    delisted = _item(category="exchange", sanctioned=True, to=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    hist = screen_profile(_profile(delisted), p, at=AT, as_of={}).to_json()
    assert hist["decision"] == "review" and hist["reasons"][0]["rule"] == "SANCTIONED-HISTORICAL"


def test_entity_rules():
    lab = LabelRow("Mixer-sim", "mixer", None, False, "test", 1.0, "address", False)
    v = screen_profile(_profile(label=lab), default_policy(), at=AT, as_of={}).to_json()
    assert v["decision"] == "block" and v["reasons"][0]["rule"] == "RISKY-ENTITY"


@given(st.lists(st.tuples(st.sampled_from(["stolen_funds", "mixer", "scam", "exchange"]), st.integers(1, 6),
                          st.integers(0, 100)), max_size=6))
def test_decision_is_the_strictest_matching_rule(spec):
    p = default_policy()
    items = [_item(c, h, a, 100.0) for c, h, a in spec]
    v = screen_profile(_profile(*items), p, at=AT, as_of={}).to_json()
    matched = {r for e in v["exposure"] for r in e["rules"]}
    decisions = [r.decision for r in p.rules if r.id in matched]
    expect = max(decisions, key=DECISIONS.index) if decisions else "allow"
    assert v["decision"] == expect
    # adding exposure never makes a verdict more lenient
    more = screen_profile(_profile(*items, _item("stolen_funds", 1, 100, 100.0)), p, at=AT, as_of={}).to_json()
    assert DECISIONS.index(more["decision"]) >= DECISIONS.index(v["decision"])
