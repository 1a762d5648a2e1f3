"""Ground truth of a simulated world, including the expected trace results under poison, haircut and FIFO.

The expected amounts come from a reference implementation that is deliberately independent of the trace
engine (fundtrail.trace): plain Python over the world's own in-memory records (who owns every address is
known, so no clustering or tag resolution is involved). The rules it implements are the team's trace rules,
written out in docs/simulator.md ("Trace semantics of the truth"):

* forward from the seed address on ``simeth``: everything that address received is tainted;
* Bitcoin at the output level (a transaction's outputs inherit taint from its inputs); EVM at the account
  level per asset in time order;
* poison: every output / outflow of something tainted is wholly tainted; haircut: proportional;
  FIFO: first in, first out (within one Bitcoin input the tainted part comes first; outputs in order, the
  fee last; on an account, lots in arrival order, the gas fee before the value);
* a CoinJoin is traced through with haircut taint under every model;
* funds reaching an address of a service (exchange, no-KYC exchange, OTC desk …) end there: an endpoint;
  a deposit into a fixed-denomination mixer pool is an endpoint of category ``mixer``;
* a DEX swap continues in the asset bought (same transaction, same trader), proportionally;
* a bridge deposit continues at the bridge's release on the other chain, proportionally;
* no dust threshold and no hop limit: the expected results follow every path to its end (params say
  max_hops 20, the default; the "small" and "large" worlds hold a peel chain of 150 / 300 hops, which a
  trace at that default must follow to its end: a peel chain costs one hop).

Every division the world needs is exact by construction (the CoinJoin zone uses amounts that are multiples
of the round's unit count); the implementation asserts it, so the expected amounts are exact to the satoshi
and the wei whatever rounding a tracer uses.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

from fundtrail.simulate import actors as A

MODELS = ("poison", "haircut", "fifo")
MAX_HOPS = 20


class _Inexact(AssertionError):
    pass


def _div(a: int, b: int, c: int) -> int:
    """a * b / c, which the world guarantees is an integer."""
    q, r = divmod(a * b, c)
    if r:
        raise _Inexact(f"inexact share {a}*{b}/{c}")
    return q


def _owner_entity(owner: str | None) -> A.Entity | None:
    if owner is None:
        return None
    return A.BY_ID.get(owner)


class _Result:
    def __init__(self) -> None:
        self.endpoints: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.unspent: dict[tuple[str, str, str], int] = defaultdict(int)
        self.fees: dict[tuple[str, str], int] = defaultdict(int)
        self.traced: dict[tuple[str, str], int] = defaultdict(int)
        self.crossed_out: dict[tuple[str, str], int] = defaultdict(int)
        self.mixers: dict[tuple[str, str, str], int] = defaultdict(int)
        self.crossings: list[dict[str, Any]] = []
        self.max_hops = 0

    def endpoint(self, ent: A.Entity, chain: str, asset: str, amount: int, hops: int, t: int, txid: str,
                 address: str) -> None:
        if amount <= 0:
            return
        k = (ent.id, chain, asset)
        e = self.endpoints.get(k)
        if e is None:
            e = self.endpoints[k] = {"entity": ent.name, "entity_id": ent.id, "category": ent.category,
                                     "country": ent.country, "chain": chain, "asset": asset, "amount": 0,
                                     "hops": hops, "first_seen": t, "last_seen": t, "txids": [],
                                     "addresses": []}
        e["amount"] += amount
        e["hops"] = min(e["hops"], hops)
        e["first_seen"] = min(e["first_seen"], t)
        e["last_seen"] = max(e["last_seen"], t)
        if txid not in e["txids"]:
            e["txids"].append(txid)
        if address not in e["addresses"]:
            e["addresses"].append(address)
        self.max_hops = max(self.max_hops, hops)


# --- EVM: account level ---------------------------------------------------------------------------------

class _Account:
    """Taint of one (account, asset) under one model."""

    __slots__ = ("t", "lots", "hops")

    def __init__(self) -> None:
        self.t = 0  # tainted amount (poison: tainted amount held; haircut: proportional share)
        self.lots: deque[list[int]] = deque()  # FIFO: [amount, tainted 0/1]
        self.hops = 0


def _evm_pass(w: Any, model: str, res: _Result, btc_inject: dict[tuple[str, int], tuple[int, int, int]]) -> None:
    ev = w.evm
    seed = w.theft_seed
    bal: dict[tuple[str, str], int] = defaultdict(int)
    for a, v in ev.genesis_alloc.items():
        bal[(a, "ETH")] = v
    acct: dict[tuple[str, str], _Account] = {}
    for a, v in ev.genesis_alloc.items():
        if v:
            acc = acct.setdefault((a, "ETH"), _Account())
            acc.lots.append([v, 0])
    chain = "simeth"
    owners = w.evm_owners

    def get(a: str, asset: str) -> _Account:
        acc = acct.get((a, asset))
        if acc is None:
            acc = acct[(a, asset)] = _Account()
        return acc

    def take(a: str, asset: str, amount: int) -> int:
        """Remove ``amount`` from an account; return the tainted part under the model."""
        acc = get(a, asset)
        b = bal[(a, asset)]
        tainted = 0
        if model == "poison":
            tainted = amount if acc.t > 0 else 0
            acc.t = max(0, acc.t - amount) if acc.t > 0 else 0
            if acc.t == 0 and tainted and b - amount > 0:
                acc.t = 0  # poison keeps its flag on the remaining balance below
        elif model == "haircut":
            if acc.t:
                tainted = _div(amount, acc.t, b)
                acc.t -= tainted
        else:
            need = amount
            while need:
                lot = acc.lots[0]
                x = min(need, lot[0])
                if lot[1]:
                    tainted += x
                lot[0] -= x
                need -= x
                if lot[0] == 0:
                    acc.lots.popleft()
            acc.t -= tainted
        bal[(a, asset)] = b - amount
        return tainted

    poisoned: set[tuple[str, str]] = set()

    def take_model(a: str, asset: str, amount: int) -> int:
        if model == "poison":
            bal[(a, asset)] -= amount
            return amount if (a, asset) in poisoned else 0
        return take(a, asset, amount)

    def give(a: str, asset: str, amount: int, tainted: int, hops: int) -> None:
        acc = get(a, asset)
        bal[(a, asset)] += amount
        if model == "poison":
            if tainted:
                poisoned.add((a, asset))
                acc.t += tainted
        elif model == "haircut":
            acc.t += tainted
        else:
            if tainted:
                acc.lots.append([tainted, 1])
            if amount - tainted:
                acc.lots.append([amount - tainted, 0])
            acc.t += tainted
        if tainted:
            acc.hops = max(acc.hops, hops)

    deposits_by_tx = {d["txid"]: d for d in ev.bridge_deposits}
    for b in ev.blocks:
        for tx in b.txs:
            # the fee comes first
            fee = tx.fee
            ft = take_model(tx.frm, "ETH", fee)
            if ft:
                res.fees[(chain, "ETH")] += ft
            swap_in: tuple[str, int, int] | None = None  # (asset, amount, tainted)
            for mv in tx.moves:
                if mv.kind == "mint":
                    give(mv.to, mv.asset, mv.amount, 0, 0)
                    continue
                hops = get(mv.frm, mv.asset).hops + 1
                t = take_model(mv.frm, mv.asset, mv.amount)
                if mv.to == seed and tx.note == "theft":
                    res.traced[(chain, mv.asset)] += mv.amount
                    give(mv.to, mv.asset, mv.amount, mv.amount, 0)
                    continue
                if mv.frm == w.pair and swap_in is not None:
                    a_in, amt_in, t_in = swap_in
                    out_t = _div(mv.amount, t_in, amt_in) if t_in else 0
                    if out_t:
                        res.traced[(chain, mv.asset)] += out_t
                        res.crossings.append({"kind": "swap", "txid": tx.hash, "from_asset": a_in,
                                              "from_amount": str(t_in), "to_asset": mv.asset,
                                              "to_amount": str(out_t)})
                    give(mv.to, mv.asset, mv.amount, out_t, hops)
                    swap_in = None
                    continue
                owner = owners.get(mv.to)
                ent = _owner_entity(owner)
                if mv.to == w.pair:
                    swap_in = (mv.asset, mv.amount, t)
                    if t:
                        res.crossed_out[(chain, mv.asset)] += t
                    give(mv.to, mv.asset, mv.amount, 0, 0)
                    continue
                if mv.to == w.bridge:
                    give(mv.to, mv.asset, mv.amount, 0, 0)
                    if t:
                        res.crossed_out[(chain, mv.asset)] += t
                        d = deposits_by_tx[tx.hash]
                        rel = w.bridge_releases.get(d["id"])
                        if rel is None:
                            res.unspent[(chain, mv.to, mv.asset)] += t  # never released (world ended)
                        else:
                            txid, n, value, _addr = rel
                            btc_inject[(txid, n)] = (_div(value, t, mv.amount), hops + 1, d["id"])
                            res.crossings.append({"kind": "bridge", "txid": tx.hash, "deposit_id": d["id"],
                                                  "from_chain": chain, "from_asset": mv.asset,
                                                  "from_amount": str(t), "to_chain": "regtest",
                                                  "to_asset": "BTC", "to_txid": txid,
                                                  "to_amount": str(_div(value, t, mv.amount))})
                    continue
                if ent is not None and t and ent.category in A.SERVICE_CATEGORIES:
                    res.endpoint(ent, chain, mv.asset, t, hops, tx.time, tx.hash, mv.to)
                    give(mv.to, mv.asset, mv.amount, 0, 0)
                    continue
                if ent is not None and t and ent.category == "mixer":
                    res.endpoint(ent, chain, mv.asset, t, hops, tx.time, tx.hash, mv.to)
                    res.mixers[(chain, mv.to, mv.asset)] += t
                    give(mv.to, mv.asset, mv.amount, 0, 0)
                    continue
                give(mv.to, mv.asset, mv.amount, t, hops)
    for (a, asset), acc in acct.items():
        ent = _owner_entity(w.evm_owners.get(a))
        if ent is not None and ent.id != "lazarus":
            continue  # services, pools, the pair and the bridge are handled above
        if model == "poison":
            amt = bal[(a, asset)] if (a, asset) in poisoned else 0
        else:
            amt = acc.t
        if amt:
            res.unspent[(chain, a, asset)] += amt


# --- Bitcoin: output level ------------------------------------------------------------------------------

def _btc_pass(w: Any, model: str, res: _Result, inject: dict[tuple[str, int], tuple[int, int, int]]) -> None:
    chain = "regtest"
    # taint per outpoint: (tainted amount, hops, runs for FIFO as [(len, tainted)])
    taint: dict[tuple[str, int], tuple[int, int, list[tuple[int, int]]]] = {}
    values: dict[tuple[str, int], int] = {}
    cj = w.ledger.coinjoin_txids
    for st in w.ledger.story:
        for n, o in enumerate(st.outputs):
            values[(st.txid, n)] = o.value
        ins = []
        any_t = False
        for (ptx, pn, v, _addr, _own) in st.inputs:
            tk = taint.pop((ptx, pn), None)
            if tk is None:
                ins.append((v, 0, 0, [(v, 0)]))
            else:
                any_t = True
                ins.append((v, tk[0], tk[1], tk[2]))
        # injections (bridge releases) land on this transaction's outputs
        injected = [(n, inject[(st.txid, n)]) for n in range(len(st.outputs)) if (st.txid, n) in inject]
        for n, (amt, hops, _dep) in injected:
            v = st.outputs[n].value
            res.traced[(chain, "BTC")] += amt
            _land(w, res, st, n, amt, hops, [(amt, 1), (v - amt, 0)] if v - amt else [(amt, 1)], taint)
        if not any_t:
            continue
        hops = max(h for (_v, t, h, _r) in ins if t) + 1
        V = sum(i[0] for i in ins)
        T = sum(i[1] for i in ins)
        outs = [o.value for o in st.outputs]
        fee = V - sum(outs)
        if st.txid in cj or model == "haircut":
            shares = [_div(o, T, V) for o in outs]
            runs = [[(s, 1), (o - s, 0)] for s, o in zip(shares, outs, strict=True)]
            fee_t = T - sum(shares)
        elif model == "poison":
            shares = list(outs)
            runs = [[(o, 1)] for o in outs]
            fee_t = fee
        else:  # fifo over runs: inputs in order, tainted part of each input first, fee last
            seq: list[tuple[int, int]] = []
            for (v, t, _h, r) in ins:
                seq += r if t else [(v, 0)]
            shares, runs = [], []
            pos = 0
            seq_q = deque([list(x) for x in seq])
            for o in outs + [fee]:
                need = o
                got = 0
                rr: list[tuple[int, int]] = []
                while need:
                    seg = seq_q[0]
                    x = min(need, seg[0])
                    if seg[1]:
                        got += x
                    if rr and rr[-1][1] == seg[1]:
                        rr[-1] = (rr[-1][0] + x, seg[1])
                    else:
                        rr.append((x, seg[1]))
                    seg[0] -= x
                    need -= x
                    if seg[0] == 0:
                        seq_q.popleft()
                shares.append(got)
                runs.append(rr)
                pos += o
            fee_t = shares.pop()
            runs.pop()
        res.fees[(chain, "BTC")] += fee_t
        for n, s in enumerate(shares):
            if s:
                _land(w, res, st, n, s, hops, runs[n], taint)
    for (txid, n), (t, _h, _r) in taint.items():
        addr = w.ledger.story_out_address.get((txid, n)) if hasattr(w.ledger, "story_out_address") else None
        amt = t if model != "poison" else values[(txid, n)] if t else 0
        res.unspent[(chain, addr or f"{txid}:{n}", "BTC")] += amt


def _land(w: Any, res: _Result, st: Any, n: int, amount: int, hops: int, runs: list[tuple[int, int]],
          taint: dict) -> None:
    o = st.outputs[n]
    ent = _owner_entity(o.owner)
    if ent is not None and ent.category in A.SERVICE_CATEGORIES:
        res.endpoint(ent, "regtest", "BTC", amount, hops, st.time, st.txid, o.address)
        return
    if o.address is None:
        res.fees[("regtest", "BTC")] += amount
        return
    taint[(st.txid, n)] = (amount, hops, runs)


def _expected(w: Any, model: str) -> dict[str, Any]:
    res = _Result()
    inject: dict[tuple[str, int], tuple[int, int, int]] = {}
    _evm_pass(w, model, res, inject)
    # map outpoints to addresses for the unspent list
    w.ledger.story_out_address = {(st.txid, n): o.address for st in w.ledger.story
                                  for n, o in enumerate(st.outputs)}
    _btc_pass(w, model, res, inject)
    endpoints = sorted(res.endpoints.values(), key=lambda e: (-e["amount"], e["entity"]))
    for e in endpoints:
        e["amount"] = str(e["amount"])
        e["first_seen"] = _iso(e["first_seen"])
        e["last_seen"] = _iso(e["last_seen"])
    keys = sorted(set(res.traced) | set(res.fees) | {(c, a) for (c, _x, a) in res.unspent})
    conservation = []
    for (c, a) in keys:
        ep = sum(int(e["amount"]) for e in endpoints if e["chain"] == c and e["asset"] == a
                 and e["category"] != "mixer")
        mx = sum(v for (cc, _x, aa), v in res.mixers.items() if cc == c and aa == a)
        un = sum(v for (cc, _x, aa), v in res.unspent.items() if cc == c and aa == a)
        conservation.append({"chain": c, "asset": a, "traced": str(res.traced[(c, a)]), "endpoints": str(ep),
                             "mixers": str(mx), "unspent": str(un), "fees": str(res.fees[(c, a)]),
                             "crossed_out": str(res.crossed_out[(c, a)]),
                             "balanced": res.traced[(c, a)] == ep + mx + un + res.fees[(c, a)]
                             + res.crossed_out[(c, a)]})
    return {
        "endpoints": endpoints,
        "unspent": [{"chain": c, "address": a, "asset": s, "amount": str(v)}
                    for (c, a, s), v in sorted(res.unspent.items()) if v],
        "mixers": [{"chain": c, "address": a, "asset": s, "amount": str(v)} for (c, a, s), v in
                   sorted(res.mixers.items())],
        "fees": [{"chain": c, "asset": a, "amount": str(v)} for (c, a), v in sorted(res.fees.items())],
        "traced": [{"chain": c, "asset": a, "amount": str(v)} for (c, a), v in sorted(res.traced.items())],
        "crossings": res.crossings,
        "conservation": conservation,
        "max_hops": res.max_hops,
    }


def _iso(t: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- clusters -------------------------------------------------------------------------------------------

def _clusters(w: Any) -> dict[str, list[list[str]]]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    for st in w.ledger.story:
        if st.coinjoin or len(st.inputs) < 2:
            continue
        owners = {i[4] for i in st.inputs}
        if len(owners) != 1:
            raise AssertionError(f"simulated world bug: {st.txid} co-spends coins of {owners}")
        a0 = st.inputs[0][3]
        for i in st.inputs[1:]:
            ra, rb = find(a0), find(i[3])
            if ra != rb:
                parent[rb] = ra
    groups: dict[str, list[str]] = defaultdict(list)
    for a in parent:
        groups[find(a)].append(a)
    for a in list(groups):
        groups[a] = sorted(set(groups[a]) | {a})
    btc = sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))
    bg = getattr(w, "background_gen", None)
    if bg is not None:
        btc += bg.cluster_groups()
    # EVM: an exchange's hot wallet with the deposit addresses that forwarded to it
    evm_groups: dict[str, set[str]] = defaultdict(set)
    hot_of = {v: k for k, v in w.evm_hot.items()}
    for tx in w.evm.all_txs:
        if tx.note.startswith("sweep") and tx.to in hot_of:
            evm_groups[tx.to].update((tx.to, tx.frm))
    return {"regtest": btc, "simeth": sorted(sorted(g) for g in evm_groups.values())}


def build_truth(w: Any) -> dict[str, Any]:
    owners_btc = dict(w.ledger.owners)
    bg = getattr(w, "background_gen", None)
    owners_file = None
    if bg is not None and bg.inline_owners():
        owners_btc.update(bg.owners())
    elif bg is not None:
        owners_file = bg.write_owners(w.out / "truth_owners.parquet")
    entities = [e.to_json() for e in A.ALL]
    expected = {m: _expected(w, m) for m in MODELS}
    expected["params"] = {"max_hops": MAX_HOPS, "dust": 0, "direction": "forward", "follow_mixers": False,
                          "coinjoin": "haircut under every model",
                          "fifo": "inputs in order, tainted part of each input first, outputs in order, fee last"}
    return {
        "seed": w.seed,
        "scale": w.scale_name,
        "synthetic": True,
        "note": "A simulated world: every entity, address and transaction here is invented.",
        "chains": {"utxo": "regtest", "evm": "simeth"},
        "chain_id": 31337,
        "entities": entities,
        "tokens": [{"chain": "simeth", "address": w.token, "symbol": "SIMUSD", "decimals": 6}],
        "contracts": {"token": w.token, "dex_pair": w.pair, "mixer_pools": [w.pool10, w.pool100],
                      "bridge": w.bridge},
        "owners": {"regtest": owners_btc, "simeth": dict(w.evm_owners)},
        "owners_file": owners_file,
        "clusters": _clusters(w),
        "coinjoin_txids": sorted(w.ledger.coinjoin_txids),
        "deposit_addresses": {
            "regtest": sorted(o.address for ex in w.exchanges.values() for o in ex.deposits.addresses),
            "simeth": sorted(w.evm_deposit.values())},
        "theft": {
            "victim": "helix",
            "perpetrator": "lazarus",
            "time": w.flows[0]["time"] if w.flows else None,
            "seeds": [{"chain": "simeth", "address": w.theft_seed}],
            "stolen": [{"chain": "simeth", "asset": a, "amount": str(v)} for a, v in w.stolen.items()],
        },
        "flows": w.flows,
        "bridge_releases": {str(k): {"txid": v[0], "n": v[1], "amount": str(v[2]), "address": v[3]}
                            for k, v in sorted(w.bridge_releases.items())},
        "mixer_withdrawals": w.mixer_candidates,
        "expected": expected,
    }
