"""Trace results of a realistic theft, built directly (the report must not depend on the engine's state).

A DPRK-style theft: 100 BTC from a Bitcoin hot wallet and 1000 ETH from an Ethereum one.
* BTC goes through peel chains to Garantex and Bitzlato (RU), Huione Pay and an OTC desk (KH), a little to a
  US exchange; some stays unspent at two addresses; some is stopped by the hop limit or as dust; fees.
* ETH: 300 ETH is swapped on a DEX to USDT, which reaches Huione (KH); 400 ETH goes into a Tornado-style
  mixer pool (an endpoint of category mixer, with candidate withdrawals); 200 ETH is bridged to Bitcoin
  (10 BTC arrive, and those reach Huione); the rest sits unspent.
The three models differ in how much reaches each endpoint; every model balances per asset.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from fundtrail.incidents import make_incident
from fundtrail.model.trace import (
    AssetAmount,
    Balance,
    Candidate,
    Crossing,
    Endpoint,
    Holding,
    MixerUse,
    PeelChain,
    Seed,
    Stopped,
    TraceResult,
)
from fundtrail.prices import PriceBook

BTC_SEED = "bc1qdc6qh88lkdaf3899gnntk7q293ufq8flalcz86"
ETH_SEED = "0x7521d1cadbcfa91eec65aa16715b94ffc1c9654b"
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"
T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
SAT = 10**8
WEI = 10**18


def txid(label: str, evm: bool = False) -> str:
    h = hashlib.sha256(label.encode()).hexdigest()
    return "0x" + h if evm else h


def addr(label: str) -> str:
    from fundtrail.model.address import segwit_encode

    return segwit_encode("bc", 0, hashlib.sha256(label.encode()).digest()[:20])


def prices() -> PriceBook:
    rows = []
    for d in range(0, 20):
        day = (T0 + timedelta(days=d)).date()
        rows.append((day, "BTC", 62000.0 + 100 * d))
        rows.append((day, "ETH", 3400.0 + 10 * d))
        if d != 6:  # one day without a USDT price: that endpoint's USD is unknown
            rows.append((day, USDT, 1.0))
    return PriceBook.from_rows(rows)


def incident():
    return make_incident("dprk-2024-03", ["bitcoin", "ethereum"], addresses=[BTC_SEED, ETH_SEED],
                         actor="lazarus", since=T0)


# (entity, category, country, chain, asset, decimals, symbol, day offset, hops, share by model)
_ENDPOINTS = [
    ("Garantex", "exchange", "RU", "bitcoin", "BTC", 8, None, 2, 4, {"poison": 45, "haircut": 38, "fifo": 35}),
    ("Bitzlato", "exchange_nokyc", "RU", "bitcoin", "BTC", 8, None, 3, 6, {"poison": 12, "haircut": 9, "fifo": 11}),
    ("Huione Pay", "payment_processor", "KH", "bitcoin", "BTC", 8, None, 5, 5, {"poison": 20, "haircut": 16, "fifo": 14}),
    ("Xinbi OTC", "otc_desk", "KH", "bitcoin", "BTC", 8, None, 4, 7, {"poison": 9, "haircut": 7, "fifo": 9}),
    ("Coinbase", "exchange", "US", "bitcoin", "BTC", 8, None, 8, 9, {"poison": 4, "haircut": 1, "fifo": 2}),
]


def result(model: str, book: PriceBook | None = None) -> TraceResult:
    book = book or prices()
    endpoints: list[Endpoint] = []
    btc_in = 100 * SAT + 10 * SAT  # stolen + bridged in
    used_btc = 0
    for entity, cat, cc, chain, asset, dec, sym, day, hops, share in _ENDPOINTS:
        amount = share[model] * SAT + 1234  # odd satoshis: exact formatting matters
        used_btc += amount
        t1 = T0 + timedelta(days=day, hours=3)
        t2 = t1 + timedelta(days=1, hours=5)
        paths = tuple(tuple(txid(f"{entity}-{p}-{h}") for h in range(hops)) for p in range(4 if entity == "Garantex" else 2))
        endpoints.append(Endpoint(entity, cat, cc, chain, asset, amount, dec, None, hops, t1, t2, paths,
                                  (addr(entity + "-deposit"),), sym, False))
    # the bridged BTC reaching Huione (one day: priced)
    bridged_btc = 10 * SAT
    t_bridge = T0 + timedelta(days=2, hours=1)
    hu_amt = 9 * SAT + 50_000_000 if model != "poison" else 10 * SAT
    used_btc += hu_amt
    t_hu = T0 + timedelta(days=3, hours=2)
    endpoints.append(Endpoint("Huione Pay", "payment_processor", "KH", "bitcoin", "BTC", hu_amt, 8,
                              book.usd("bitcoin", "BTC", None, t_hu, hu_amt, 8), 3, t_hu, t_hu,
                              ((txid("bridge-release"), txid("hu-1"), txid("hu-2")),), (addr("huione-2"),)))
    fees = 150_000
    stopped_hops = 3 * SAT + 17
    stopped_dust = 4_321
    unspent_total = btc_in - used_btc - fees - stopped_hops - stopped_dust
    assert unspent_total > 0, model
    u1 = unspent_total * 2 // 3
    unspent = [
        Holding("bitcoin", addr("rest-1"), "BTC", u1, 8, None, T0 + timedelta(days=6)),
        Holding("bitcoin", addr("rest-2"), "BTC", unspent_total - u1, 8, None, T0 + timedelta(days=7)),
    ]
    # ETH
    eth_swapped, eth_mixed, eth_bridged = 300 * WEI, 400 * WEI, 200 * WEI
    eth_fees = 12_345_678_900_000_000
    eth_unspent = 1000 * WEI - eth_swapped - eth_mixed - eth_bridged - eth_fees
    t_mix = T0 + timedelta(days=1, hours=4)
    mixer = MixerUse("ethereum", "Tornado Cash 100 ETH", "0x" + "a1" * 20, "ETH", eth_mixed, 18,
                     tuple(txid(f"mix-{i}", True) for i in range(4)),
                     (Candidate(txid("wd-1", True), "0x" + "b2" * 20, 100 * WEI, t_mix + timedelta(days=3), 0.42),
                      Candidate(txid("wd-2", True), "0x" + "b3" * 20, 100 * WEI, t_mix + timedelta(days=4), 0.31)),
                     False, book.usd("ethereum", "ETH", None, t_mix, eth_mixed, 18))
    unspent.append(Holding("ethereum", "0x" + "c4" * 20, "ETH", eth_unspent, 18, None, T0 + timedelta(days=1)))
    # USDT from the swap
    usdt_in = 987_654_321_000  # 987,654.321 USDT (6 decimals)
    usdt_share = {"poison": usdt_in, "haircut": usdt_in - 654_321_000, "fifo": usdt_in - 1_000_000_000}[model]
    t_usdt = T0 + timedelta(days=6, hours=1)  # the day without a USDT price
    endpoints.append(Endpoint("Huione Pay", "payment_processor", "KH", "ethereum", USDT, usdt_share, 6, None, 3,
                              t_usdt, t_usdt, ((txid("swap", True), txid("usdt-1", True), txid("usdt-2", True)),),
                              ("0x" + "d5" * 20,), "USDT"))
    if usdt_in - usdt_share:
        unspent.append(Holding("ethereum", "0x" + "e6" * 20, USDT, usdt_in - usdt_share, 6, None,
                               T0 + timedelta(days=2), None, "USDT"))
    t_swap = T0 + timedelta(hours=20)
    swap = Crossing("swap", "Uniswap V2 USDT/ETH", "ethereum", "ETH", eth_swapped, 18, "ethereum", USDT, usdt_in, 6,
                    txid("swap", True), txid("swap", True), "same_tx", 1.0, t_swap)
    bridge = Crossing("bridge", "Example Bridge", "ethereum", "ETH", eth_bridged, 18, "bitcoin", "BTC", bridged_btc, 8,
                      txid("bridge-deposit", True), txid("bridge-release"), "deposit_id", 1.0, t_bridge)
    endpoints = [
        e if e.usd is not None or e.first_seen.date() != e.last_seen.date()
        else Endpoint(e.entity, e.category, e.country, e.chain, e.asset, e.amount, e.decimals,
                      book.usd(e.chain, e.asset, e.symbol, e.first_seen, e.amount, e.decimals), e.hops,
                      e.first_seen, e.last_seen, e.paths, e.addresses, e.symbol, e.sanctioned)
        for e in endpoints
    ]
    # priced per transfer by the engine: here, at first_seen for the BTC endpoints
    endpoints = [
        e if e.usd is not None or e.asset != "BTC"
        else Endpoint(e.entity, e.category, e.country, e.chain, e.asset, e.amount, e.decimals,
                      book.usd(e.chain, e.asset, None, e.first_seen, e.amount, e.decimals), e.hops,
                      e.first_seen, e.last_seen, e.paths, e.addresses, e.symbol, e.sanctioned)
        for e in endpoints
    ]
    usdt_unspent = usdt_in - usdt_share
    balances = (
        Balance("bitcoin", "BTC", 8, btc_in, used_btc, unspent_total, fees, stopped_hops, stopped_dust, 0),
        Balance("ethereum", "ETH", 18, 1000 * WEI, 0, eth_unspent, eth_fees, 0, 0, eth_mixed,
                crossed_out=eth_swapped + eth_bridged),
        Balance("ethereum", USDT, 6, usdt_in, usdt_share, usdt_unspent, 0, 0, 0, 0),
    )
    traced = (
        AssetAmount("bitcoin", "BTC", btc_in, 8, None, book.usd("bitcoin", "BTC", None, T0, 100 * SAT, 8)),
        AssetAmount("ethereum", "ETH", 1000 * WEI, 18, None, book.usd("ethereum", "ETH", None, T0, 1000 * WEI, 18)),
        AssetAmount("ethereum", USDT, usdt_in, 6, "USDT", None),
    )
    return TraceResult(
        model=model, direction="forward",  # type: ignore[arg-type]
        seeds=(Seed("bitcoin", BTC_SEED), Seed("ethereum", ETH_SEED)),
        traced=traced, endpoints=tuple(endpoints), unspent=tuple(unspent), mixers=(mixer,),
        bridges=(bridge,), swaps=(swap,),
        stopped=(Stopped("bitcoin", "BTC", stopped_hops, 8, "max_hops", addr("far"), txid("far")),
                 Stopped("bitcoin", "BTC", stopped_dust, 8, "dust", addr("dust"), txid("dust"))),
        peel_chains=(PeelChain("bitcoin", "BTC", txid("Garantex-0-0"), txid("Garantex-0-3"), 4, 45 * SAT,
                               38 * SAT, 8, (("Garantex", 38 * SAT),)),),
        balances=balances, params={"max_hops": 10},
    )


def results() -> list[TraceResult]:
    book = prices()
    return [result(m, book) for m in ("poison", "haircut", "fifo")]


def crowded_result(n_entities: int = 40, n_countries: int = 25) -> TraceResult:
    """Many small endpoints in many countries: the diagram must group and stay legible."""
    from fundtrail.report.countries import COUNTRIES

    ccs = list(COUNTRIES)[::3][:n_countries]
    eps = []
    for i in range(n_entities):
        amt = (i * 7919 % 97 + 1) * 10**7
        t = T0 + timedelta(days=i % 19)
        eps.append(Endpoint(f"Exchange {i:02d}", "exchange", ccs[i % n_countries], "bitcoin", "BTC", amt, 8,
                            None, 1 + i % 12, t, t, ((txid(f"c{i}"),),)))
    tot = sum(e.amount for e in eps)
    rest = 5 * SAT
    return TraceResult("haircut", "forward", (Seed("bitcoin", BTC_SEED),),  # type: ignore[arg-type]
                       (AssetAmount("bitcoin", "BTC", tot + rest, 8),), tuple(eps),
                       (Holding("bitcoin", addr("h"), "BTC", rest, 8),),
                       balances=(Balance("bitcoin", "BTC", 8, tot + rest, tot, rest, 0, 0, 0, 0),))
