"""CoinJoin detection by structure on many generated rounds (simulate/rounds.py): whale rounds where one
participant takes more equal outputs than it has inputs, WabiSabi decompositions, Whirlpool and JoinMarket;
and the ordinary traffic it must leave alone. Co-spend clustering with the verdicts never merges two
owners (the thief with the decoy participant of a round)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.cluster.coinjoin import NOT_MULTI_PARTY, TxIn, TxOut, classify
from fundtrail.simulate import rounds as R


def verdict(tx: R.ShapedTx):
    return classify([TxIn(c.value, c.address_id, c.script_type) for c in tx.inputs],
                    [TxOut(c.value, c.address_id, c.script_type) for c in tx.outputs])


def flagged(tx: R.ShapedTx) -> bool:
    v = verdict(tx)
    return v is not None and v.protocol not in NOT_MULTI_PARTY


def co_spend_owners(txs: list[R.ShapedTx]) -> dict[int, set[str]]:
    """Co-spend clustering over the transactions not flagged: cluster root -> owners of its addresses."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    owner: dict[int, str] = {}
    for tx in txs:
        for c in (*tx.inputs, *tx.outputs):
            owner[c.address_id] = c.owner
            find(c.address_id)
        if flagged(tx):
            continue
        a = [c.address_id for c in tx.inputs]
        for b in a[1:]:
            ra, rb = find(a[0]), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    out: dict[int, set[str]] = {}
    for a, o in owner.items():
        out.setdefault(find(a), set()).add(o)
    return out


def test_the_measured_failure_is_flagged_and_keeps_the_decoy_apart():
    """Issue 14: 32 inputs, 80 outputs, 47 of one value, the thief the whale; an innocent participant
    with 8 addresses must not end in the thief's cluster."""
    rng = random.Random(14)
    ids = R.Ids()
    txs = []
    for _ in range(20):
        tx = R.equal_round(rng, ids, inputs=32, equal_outputs=47, whale_share=0.6, whale="thief")
        assert 60 <= len(tx.outputs) <= 90 and len(tx.inputs) == 32
        v = verdict(tx)
        assert v is not None and v.protocol == "equal_output" and v.equal_count == 47
        assert "more equal outputs than inputs" in v.reason and 0.5 <= v.confidence <= 0.95
        txs.append(tx)
        # the participants also spend their own coins together (co-spend evidence that must stay inside)
        for owner in ("thief", "participant:0", "participant:1"):
            ins = [R.Coin(owner, ids.held(owner, rng), 1_000_000) for _ in range(3)]
            txs.append(R.ShapedTx("payment", tuple(ins), (R.Coin("payee", ids.fresh(), 2_900_000),), False))
    for owners in co_spend_owners(txs).values():
        assert len(owners) == 1, owners


def test_detection_and_false_flag_rates_on_generated_traffic():
    rng = random.Random(7)
    ids = R.Ids()
    rounds, ordinary = [], []
    for _ in range(150):
        rounds.append(R.equal_round(rng, ids, inputs=rng.randint(8, 60), equal_outputs=rng.randint(10, 90),
                                    whale_share=rng.uniform(0.2, 0.8)))
        rounds.append(R.wabisabi_round(rng, ids, participants=rng.randint(10, 80),
                                       whale_share=rng.uniform(0.1, 0.7)))
        rounds.append(R.whirlpool_mix(rng, ids, pool=rng.choice(R.WHIRLPOOL_POOLS)))
        rounds.append(R.joinmarket_round(rng, ids, makers=rng.randint(2, 9)))
        ordinary.append(R.batch_payout(rng, ids, outputs=rng.randint(5, 300), inputs=rng.randint(1, 4),
                                       repeated=rng.uniform(0, 0.2)))
        ordinary.append(R.consolidation(rng, ids, inputs=rng.randint(2, 100)))
        for _ in range(20):
            ordinary.append(R.payment(rng, ids))
    hit = sum(flagged(t) for t in rounds)
    false = sum(flagged(t) for t in ordinary)
    assert hit >= 0.99 * len(rounds), (hit, len(rounds))
    assert false <= 0.001 * len(ordinary), (false, len(ordinary))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), n_in=st.integers(8, 60), k=st.integers(10, 90),
       share=st.floats(0.05, 0.95))
def test_whale_rounds_are_flagged_whatever_the_whale_share(seed, n_in, k, share):
    rng = random.Random(seed)
    tx = R.equal_round(rng, R.Ids(), inputs=n_in, equal_outputs=k, whale_share=share)
    assert flagged(tx)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), n_in=st.integers(8, 40), k=st.integers(10, 60),
       share=st.floats(0.3, 0.9), moved=st.integers(1, 30))
def test_splitting_equal_outputs_among_more_owners_never_changes_who_is_merged(seed, n_in, k, share, moved):
    """Re-registering some of the whale's equal outputs to new participants (fresh owners, fresh
    addresses) changes nothing about the inputs: the round stays flagged, nobody is merged."""
    rng = random.Random(seed)
    ids = R.Ids()
    tx = R.equal_round(rng, ids, inputs=n_in, equal_outputs=k, whale_share=share)
    eq_value = max({c.value for c in tx.outputs}, key=lambda v: sum(c.value == v for c in tx.outputs))
    outs = list(tx.outputs)
    n = 0
    for i, c in enumerate(outs):
        if c.owner == "whale" and c.value == eq_value and n < moved:
            outs[i] = R.Coin(f"new:{n}", ids.fresh(), c.value, c.script_type)
            n += 1
    split = R.ShapedTx(tx.kind, tx.inputs, tuple(outs), True)
    assert flagged(tx) and flagged(split)
    for owners in co_spend_owners([tx]).values():
        assert len(owners) == 1
    for owners in co_spend_owners([split]).values():
        assert len(owners) == 1
