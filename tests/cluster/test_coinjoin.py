"""CoinJoin detectors on transactions shaped per each protocol's published structure, and on the kind of
ordinary transactions they must not flag."""

from __future__ import annotations

import random

from fundtrail.cluster.coinjoin import (
    WASABI2_DENOMINATIONS,
    TxIn,
    TxOut,
    classify,
)

_next = iter(range(10_000, 10**9))


def ins(values, st="p2wpkh"):
    return [TxIn(v, next(_next), st) for v in values]


def outs(values, st="p2wpkh"):
    return [TxOut(v, next(_next), st) for v in values]


def test_whirlpool_mix_each_pool():
    for d in (100_000, 1_000_000, 5_000_000, 50_000_000):
        # 2 premix inputs (denomination + miner fee share) and 3 remixes (exactly the denomination)
        v = classify(ins([d + 1_530, d + 1_530, d, d, d]), outs([d] * 5))
        assert v is not None and v.protocol == "whirlpool" and v.confidence >= 0.99, d


def test_whirlpool_with_unknown_input_values():
    # the real block 702861 comes without the outputs it spends: input values are unknown
    v = classify([TxIn(None, -1, None)] * 5, outs([1_000_000] * 5))
    assert v.protocol == "whirlpool" and v.confidence >= 0.95


def test_not_whirlpool():
    for i_vals, o_vals in (([1_000_000] * 5, [1_000_000] * 4 + [990_000]),  # one output off
                           ([2_000_000] * 5, [1_000_000] * 5),  # inputs far above the pool
                           ([700_000] * 5, [700_000] * 5)):  # not a pool denomination
        v = classify(ins(i_vals), outs(o_vals))
        assert v is None or v.protocol != "whirlpool"


def test_whirlpool_tx0():
    d = 1_000_000
    premix = d + 1_200
    o = outs([premix] * 4) + [TxOut(0, -1, "op_return", True)] + outs([50_000, 3_311_000])
    v = classify(ins([7_500_000]), o)
    assert v.protocol == "whirlpool_tx0" and v.equal_count == 4


def test_wasabi1_round_like_real_block_702861():
    # shaped like 5c2f55fc…ef3a of block 702861: 100 inputs, base 10,944,832 sat x 60 and mixing levels
    rnd = random.Random(1)
    base = 10_944_832
    values = [base] * 60 + [21_887_656] * 7 + [43_775_312] * 5 + [87_550_624] * 3 + [175_101_248] * 2
    values += [rnd.randrange(30_000, 9_000_000) for _ in range(45)]
    v = classify(ins([rnd.randrange(11_000_000, 60_000_000) for _ in range(100)]), outs(values))
    assert v.protocol == "wasabi1" and v.confidence >= 0.95 and v.equal_value == base


def test_wasabi1_coordinator_output():
    coord = 424242
    o = outs([10_000_000] * 30 + [123_456] * 0) + [TxOut(2_000_000, coord, "p2wpkh")]
    v = classify(ins([10_500_000] * 35), o, coordinator_ids=frozenset({coord}))
    assert v.protocol == "wasabi1" and v.confidence == 0.99


def test_wasabi2_standard_denominations():
    rnd = random.Random(2)
    denoms = sorted(d for d in WASABI2_DENOMINATIONS if 5_000 <= d <= 50_000_000)
    values = []
    for d in rnd.sample(denoms, 15):
        values += [d] * rnd.randrange(1, 6)
    values += [rnd.randrange(6_000, 900_000) for _ in range(10)]  # changes
    v = classify(ins([rnd.randrange(50_000, 90_000_000) for _ in range(60)], "p2tr"), outs(values, "p2tr"))
    assert v.protocol == "wasabi2" and v.confidence >= 0.9


def test_denominations_are_the_published_series():
    for d in (5_000, 6_561, 8_192, 10_000, 13_122, 20_000, 50_000, 1_048_576, 100_000_000):
        assert d in WASABI2_DENOMINATIONS
    for d in (4_096, 7_000, 12_345):
        assert d not in WASABI2_DENOMINATIONS


def test_joinmarket():
    k = 5
    o = outs([2_345_678] * k) + outs([1_111, 222_222, 333_333, 44_444])  # k-1 maker changes
    v = classify(ins([3_000_000, 2_600_000, 2_400_000, 5_000_000, 2_500_000, 900_000], "p2sh"), o)
    assert v.protocol == "joinmarket" and v.equal_count == k


def test_generic_equal_output_mix():
    o = outs([1_234_567] * 6) + outs([10_000])
    v = classify(ins([1_300_000] * 6), o)
    assert v.protocol == "generic" and 0.6 <= v.confidence <= 0.75


def test_ordinary_transactions_are_not_coinjoins():
    # one-input batch payout with repeated amounts (an exchange's withdrawals): single owner
    assert classify(ins([500_000_000]), outs([59_882] * 11 + list(range(100_000, 160_000, 1000)))) is None
    # a payment with change
    assert classify(ins([120_000, 80_000]), outs([150_000, 49_000])) is None
    # consolidation
    assert classify(ins([10_000] * 40), outs([399_000])) is None
    # two equal outputs to the sender's own input address is not a mix
    i = ins([600_000, 600_000, 600_000])
    o = [TxOut(500_000, i[0].address_id, "p2wpkh")] + outs([500_000, 500_000])
    v = classify(i, o)
    assert v is None or v.protocol not in ("generic", "joinmarket")
