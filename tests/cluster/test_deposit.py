"""The EVM deposit-address heuristic on a hand-built exchange."""

from __future__ import annotations

from fundtrail.cluster.evidence import why
from fundtrail.cluster.service import cluster
from fundtrail.store import Workspace
from tests.cluster.world import add_tags, write_evm

HOT = "0x" + "aa" * 20
HOT2 = "0x" + "ab" * 20
OTHER_EX = "0x" + "bb" * 20
GAS = "0x" + "ac" * 20


def addr(tag: str) -> str:
    return "0x" + tag.encode().hex().ljust(40, "0")[:40]


ETH = 10**18
H = 3600


def exchange_world(ws: Workspace) -> None:
    add_tags(ws, [
        {"chain": "ethereum", "address": HOT, "label": "Binance 14", "category": "exchange", "entity": "binance",
         "source": "test", "confidence": 1.0},
        {"chain": "ethereum", "address": OTHER_EX, "label": "Kraken 1", "category": "exchange",
         "entity": "kraken", "source": "test", "confidence": 1.0},
    ])
    u1, u2, u3, u4 = addr("user1"), addr("user2"), addr("user3"), addr("user4")
    d1, d2, d3 = addr("dep1"), addr("dep2"), addr("dep3")
    notdep, slow = addr("personal"), addr("slowpoke")
    usdt = "0x" + "dd" * 20
    t = [
        # d1: three customers deposit, the exchange sweeps everything (less gas) within hours
        {"from": u1, "to": d1, "amount": 2 * ETH, "time": 0},
        {"from": u2, "to": d1, "amount": 1 * ETH, "time": 1 * H},
        {"from": d1, "to": HOT, "amount": 3 * ETH - 10**15, "time": 3 * H},
        {"from": u3, "to": d1, "amount": 5 * ETH, "time": 30 * H},
        {"from": d1, "to": HOT, "amount": 5 * ETH - 10**15, "time": 31 * H},
        # d2: a token deposit address: USDT in from one customer, a gas top-up from the exchange's gas
        # feeder, the USDT swept to the hot wallet
        {"from": HOT, "to": d2, "amount": 10**16, "time": 2 * H},
        {"from": u4, "to": d2, "amount": 1_000 * 10**6, "time": 1 * H, "asset": usdt, "kind": "token"},
        {"from": d2, "to": HOT, "amount": 1_000 * 10**6, "time": 4 * H, "asset": usdt, "kind": "token"},
        # d3: swept to the same exchange's hot wallet
        {"from": u1, "to": d3, "amount": 7 * ETH, "time": 5 * H},
        {"from": u2, "to": d3, "amount": 1 * ETH, "time": 6 * H},
        {"from": d3, "to": HOT, "amount": 8 * ETH - 10**15, "time": 7 * H},
        # a person who sends half to the exchange and half to a friend: not a deposit address
        {"from": u1, "to": notdep, "amount": 4 * ETH, "time": 0},
        {"from": notdep, "to": HOT, "amount": 2 * ETH, "time": 2 * H},
        {"from": notdep, "to": u3, "amount": 2 * ETH, "time": 2 * H},
        # forwards everything, but weeks later: not a sweep
        {"from": u2, "to": slow, "amount": 1 * ETH, "time": 0},
        {"from": slow, "to": HOT, "amount": 1 * ETH - 10**15, "time": 20 * 24 * H},
    ]
    write_evm(ws, "ethereum", t)


def test_swept_deposit_addresses_join_the_hot_wallet(home):
    ws = Workspace(home)
    exchange_world(ws)
    (s,) = cluster(ws, "ethereum").chains
    assert s.kind == "evm" and s.deposits == 3
    c = dict(zip(*[ws.query("SELECT address, cluster_id FROM clusters WHERE chain = 'ethereum'")[k].to_pylist()
                   for k in ("address", "cluster_id")], strict=True))
    hot = c[HOT]
    assert c[addr("dep1")] == c[addr("dep2")] == c[addr("dep3")] == hot
    for a in (addr("personal"), addr("slowpoke"), addr("user1"), addr("user2")):
        assert c[a] != hot, a
    dep = ws.query("SELECT d.senders, d.entity, d.confidence, a.address FROM deposit_addresses d "
                   "JOIN addresses a ON a.chain = d.chain AND a.address_id = d.address_id ORDER BY a.address")
    rows = {r["address"]: r for r in dep.to_pylist()}
    assert rows[addr("dep1")]["senders"] == 3 and rows[addr("dep1")]["confidence"] == 0.9
    assert rows[addr("dep2")]["senders"] == 1 and rows[addr("dep2")]["entity"] == "binance"
    ex = why(ws, "ethereum", addr("dep1"), addr("dep3"))
    assert ex.same_cluster and {s.heuristic for s in ex.steps} == {"deposit"} and len(ex.steps) == 2


def test_min_senders_is_respected(home):
    from fundtrail.cluster.deposit import DepositParams, deposit_addresses

    ws = Workspace(home)
    exchange_world(ws)
    got = deposit_addresses(ws, "ethereum", DepositParams(min_senders=2))
    assert got.num_rows == 2  # dep1 (3 senders) and dep3 (2); dep2 had one customer
