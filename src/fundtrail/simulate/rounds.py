"""Multi-party rounds and the single-owner transactions that resemble them, as transaction shapes with the
truth of who owns every input and output.

The CoinJoin detector (:mod:`fundtrail.cluster.coinjoin`) must flag the first kind and leave the second
alone; both are generated here with parameters, so tests and the clustering benchmark measure detection
and false-flag rates on many independent rounds instead of one hand-built transaction:

* :func:`equal_round`: a round with a dominant equal output value where one participant (a whale, or the
  thief) registers several equal outputs per input (the WabiSabi / JoinMarket-maker behaviour that breaks
  "k equal outputs need k inputs"): ``whale_share`` of the equal outputs go to the whale;
* :func:`wabisabi_round`: Wasabi 2.x: every participant's amount decomposed into standard denominations
  (``denominations``), a whale among them, a coordinator fee output;
* :func:`whirlpool_mix`: a 5-in/5-out Whirlpool mix of one pool;
* :func:`joinmarket_round`: one taker and ``makers`` makers, each maker with one or more inputs and a
  change output;
* :func:`batch_payout`: an exchange's withdrawal batch (one owner, a few inputs, many outputs with some
  repeated round amounts, one change output), :func:`consolidation` and :func:`payment`: ordinary traffic.

Addresses are integers from one counter (:class:`Ids`); owners are strings. Each participant holds a
pool of addresses its inputs come from (the "8 addresses of an innocent participant" of the measured
failure), and receives at fresh addresses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

BTC = 100_000_000
STANDARD = (5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000,
            10_000_000, 20_000_000, 50_000_000, 100_000_000, 200_000_000, 500_000_000)
WHIRLPOOL_POOLS = (100_000, 1_000_000, 5_000_000, 50_000_000)
SCRIPTS = ("p2wpkh", "p2tr", "p2sh", "p2pkh")


@dataclass(frozen=True, slots=True)
class Coin:
    owner: str
    address_id: int
    value: int
    script_type: str = "p2wpkh"


@dataclass(frozen=True, slots=True)
class ShapedTx:
    """One transaction: ``kind`` names the shape; ``multi_party`` is the truth (several owners' inputs)."""

    kind: str
    inputs: tuple[Coin, ...]
    outputs: tuple[Coin, ...]
    multi_party: bool


@dataclass(slots=True)
class Ids:
    """Address ids: a counter, plus each owner's pool of addresses its coins sit at."""

    next_id: int = 0
    pools: dict[str, list[int]] = field(default_factory=dict)

    def fresh(self) -> int:
        self.next_id += 1
        return self.next_id

    def held(self, owner: str, rng: random.Random, size: int = 8) -> int:
        pool = self.pools.setdefault(owner, [])
        if len(pool) < size:
            pool.append(self.fresh())
            return pool[-1]
        return rng.choice(pool)


def _fee(rng: random.Random, n_in: int, n_out: int) -> int:
    return (68 * n_in + 31 * n_out + 11) * rng.randint(2, 30)


def equal_round(rng: random.Random, ids: Ids, *, inputs: int = 32, equal_outputs: int = 47,
                whale_share: float = 0.6, value: int | None = None, whale: str = "whale",
                participants: str = "participant", script: str = "p2wpkh") -> ShapedTx:
    """A round of ``inputs`` inputs and ``equal_outputs`` outputs of one value (default: a random
    non-standard amount), ``whale_share`` of them to ``whale`` from only one or two inputs; every other
    participant brings one to three inputs, takes one equal output (two if there are more equal outputs
    than participants can absorb) and a change. The measured failure of issue 14: 32 inputs, 80 outputs,
    47 equal, the thief the whale."""
    v = value if value is not None else rng.randint(5_000_000, 30_000_000)
    n_whale = max(1, min(equal_outputs - 1, round(equal_outputs * whale_share)))
    whale_inputs = min(2, max(1, inputs // 10))
    others_inputs = max(1, inputs - whale_inputs)
    rest = equal_outputs - n_whale
    n_parts = max(1, min(rest, others_inputs))
    per = [1] * n_parts
    for i in range(rest - n_parts):
        per[i % n_parts] += 1
    ins: list[Coin] = []
    outs: list[Coin] = []
    # the whale: few large inputs, many equal outputs, a change
    need = n_whale * v
    parts = _split(rng, need + rng.randint(10_000, v), whale_inputs)
    ins += [Coin(whale, ids.held(whale, rng), x, script) for x in parts]
    outs += [Coin(whale, ids.fresh(), v, script) for _ in range(n_whale)]
    outs.append(Coin(whale, ids.fresh(), sum(parts) - need - _fee(rng, whale_inputs, n_whale), script))
    # the others: inputs spread over the participants
    k_in = [1] * n_parts
    for _i in range(others_inputs - n_parts):
        k_in[rng.randrange(n_parts)] += 1
    for p in range(n_parts):
        owner = f"{participants}:{p}"
        total = per[p] * v + rng.randint(20_000, v)
        parts = _split(rng, total, k_in[p])
        ins += [Coin(owner, ids.held(owner, rng), x, script) for x in parts]
        outs += [Coin(owner, ids.fresh(), v, script) for _ in range(per[p])]
        change = total - per[p] * v - _fee(rng, k_in[p], per[p])
        if change > 1_000:
            outs.append(Coin(owner, ids.fresh(), change, script))
    rng.shuffle(ins)
    rng.shuffle(outs)
    return ShapedTx("equal_round", tuple(ins), tuple(outs), True)


def wabisabi_round(rng: random.Random, ids: Ids, *, participants: int = 40, whale_share: float = 0.5,
                   denominations: tuple[int, ...] = STANDARD, coordinator: int | None = None,
                   whale: str = "whale", script: str = "p2wpkh") -> ShapedTx:
    """A Wasabi 2.x round: each participant's amount (the whale's ``whale_share`` of the round) is
    decomposed greedily into ``denominations``; the whale brings one input per ~10 outputs it takes;
    ``coordinator`` (an address id) receives a fee output when given."""
    amounts = [rng.randint(1_000_000, 40_000_000) for _ in range(participants - 1)]
    whale_amount = int(sum(amounts) * whale_share / max(1e-9, 1 - whale_share))
    owners = [f"participant:{i}" for i in range(participants - 1)] + [whale]
    amounts.append(max(whale_amount, 2_000_000))
    ds = sorted(denominations, reverse=True)
    ins: list[Coin] = []
    outs: list[Coin] = []
    for owner, amt in zip(owners, amounts, strict=True):
        pieces: list[int] = []
        left = amt
        for d in ds:
            while left >= d and len(pieces) < 60:
                pieces.append(d)
                left -= d
        n_in = max(1, len(pieces) // 10) if owner == whale else rng.choice((1, 1, 2, 3))
        fee = _fee(rng, n_in, len(pieces))
        parts = _split(rng, amt + fee, n_in)
        ins += [Coin(owner, ids.held(owner, rng), x, script) for x in parts]
        outs += [Coin(owner, ids.fresh(), d, script) for d in pieces]
    if coordinator is not None:
        outs.append(Coin("coordinator", coordinator, rng.randint(50_000, 500_000), script))
    rng.shuffle(ins)
    rng.shuffle(outs)
    return ShapedTx("wabisabi_round", tuple(ins), tuple(outs), True)


def whirlpool_mix(rng: random.Random, ids: Ids, *, pool: int = 1_000_000, remixers: int = 2) -> ShapedTx:
    """5 inputs (``remixers`` of them exactly the pool value, the others the premix value with the miner
    fee), 5 outputs of exactly ``pool`` to fresh addresses."""
    ins, outs = [], []
    for i in range(5):
        owner = f"mixer:{rng.randrange(10**9)}:{i}"
        extra = 0 if i < remixers else rng.randint(200, min(pool // 5, 1_000_000) // 2)
        ins.append(Coin(owner, ids.held(owner, rng), pool + extra))
        outs.append(Coin(owner, ids.fresh(), pool))
    rng.shuffle(ins)
    rng.shuffle(outs)
    return ShapedTx("whirlpool_mix", tuple(ins), tuple(outs), True)


def joinmarket_round(rng: random.Random, ids: Ids, *, makers: int = 5, value: int | None = None,
                     taker: str = "taker") -> ShapedTx:
    """One taker (inputs paying exactly the CoinJoin amount plus fees, no change) and ``makers`` makers
    (one to three inputs each, an equal output and a change)."""
    v = value if value is not None else rng.randint(1_000_000, 200_000_000)
    ins: list[Coin] = []
    outs: list[Coin] = []
    tin = _split(rng, v + rng.randint(2_000, 20_000), rng.choice((1, 2)))
    ins += [Coin(taker, ids.held(taker, rng), x) for x in tin]
    outs.append(Coin(taker, ids.fresh(), v))
    for m in range(makers):
        owner = f"maker:{m}"
        total = v + rng.randint(100_000, 3 * v)
        parts = _split(rng, total, rng.choice((1, 1, 2, 3)))
        ins += [Coin(owner, ids.held(owner, rng), x) for x in parts]
        outs.append(Coin(owner, ids.fresh(), v))
        outs.append(Coin(owner, ids.fresh(), total - v + rng.randint(10, 500)))
    rng.shuffle(ins)
    rng.shuffle(outs)
    return ShapedTx("joinmarket_round", tuple(ins), tuple(outs), True)


def batch_payout(rng: random.Random, ids: Ids, *, owner: str = "exchange", outputs: int = 60,
                 inputs: int = 3, repeated: float = 0.15) -> ShapedTx:
    """An exchange's withdrawal batch: ``inputs`` of its coins, ``outputs`` payments to customers of
    different amounts of which a fraction ``repeated`` is one popular round amount, and a change."""
    pays = []
    popular = rng.choice((100_000, 1_000_000, 5_000_000, 10_000_000))
    for _ in range(outputs):
        if rng.random() < repeated:
            pays.append(popular)
        else:
            pays.append(rng.randint(10_000, 50_000_000) // rng.choice((1, 1, 1000)) * rng.choice((1, 1, 1000)))
    pays = [max(p, 5_000) for p in pays]
    total = sum(pays) + rng.randint(1_000_000, 500_000_000)
    parts = _split(rng, total, inputs)
    ins = tuple(Coin(owner, ids.held(owner, rng, 50), x, rng.choice(SCRIPTS[:2])) for x in parts)
    outs = [Coin(f"customer:{rng.randrange(10**9)}", ids.fresh(), p, rng.choice(SCRIPTS)) for p in pays]
    outs.append(Coin(owner, ids.held(owner, rng, 50), total - sum(pays) - _fee(rng, inputs, outputs)))
    rng.shuffle(outs)
    return ShapedTx("batch_payout", ins, tuple(outs), False)


def consolidation(rng: random.Random, ids: Ids, *, owner: str = "exchange", inputs: int = 20) -> ShapedTx:
    """One owner sweeping ``inputs`` coins (often equal deposits) into one output."""
    v = rng.choice((100_000, 1_000_000, None))
    vals = [v if v and rng.random() < 0.5 else rng.randint(20_000, 10_000_000) for _ in range(inputs)]
    ins = tuple(Coin(owner, ids.held(owner, rng, 50), x) for x in vals)
    return ShapedTx("consolidation", ins, (Coin(owner, ids.fresh(), sum(vals) - _fee(rng, inputs, 1)),), False)


def payment(rng: random.Random, ids: Ids, *, owner: str = "user") -> ShapedTx:
    """An ordinary payment: one to three inputs of one owner, a payment and a change."""
    n = rng.choice((1, 1, 1, 2, 3))
    vals = [rng.randint(50_000, 20_000_000) for _ in range(n)]
    pay = rng.randint(10_000, sum(vals) // 2)
    ins = tuple(Coin(owner, ids.held(owner, rng), x) for x in vals)
    outs = (Coin(f"payee:{rng.randrange(10**9)}", ids.fresh(), pay),
            Coin(owner, ids.fresh(), sum(vals) - pay - _fee(rng, n, 2)))
    return ShapedTx("payment", ins, outs, False)


def _split(rng: random.Random, total: int, n: int) -> list[int]:
    """``total`` cut into ``n`` positive parts."""
    if n <= 1:
        return [total]
    cuts = sorted(rng.sample(range(1, total), n - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
