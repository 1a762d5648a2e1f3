"""The theft and its laundering: the theft from the victim exchange's hot wallet on the EVM chain, the split
across fresh addresses, and per address a role (swap then bridge, mixer then bridge, bridge, cash-out at
exchanges, dormant); then on Bitcoin dormant holdings, a CoinJoin round with exact (haircut-friendly)
amounts and post-mix cash-outs, and peel chains to exchanges. Every laundering step is recorded as a flow
for the ground truth (see docs/simulator.md for the story).

:class:`Laundering` is a part of :class:`~fundtrail.simulate.world.World`: it acts on the world's state
set up there."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fundtrail.simulate.btc import Owned
from fundtrail.simulate.evm import ETHER, EvmWorld
from fundtrail.simulate.ledger import Exchange, Ledger, Wallet
from fundtrail.simulate.params import DAY, EVM_CHAIN, HOUR, T0, TOKEN_DECIMALS, UTXO_CHAIN, Scale


class Laundering:
    # the world's state the theft and laundering use (set up by World)
    rng: random.Random
    sc: Scale
    now: int
    ledger: Ledger
    evm: EvmWorld
    exchanges: dict[str, Exchange]
    evm_hot: dict[str, str]
    thief_evm: list[str]
    thief_btc: Wallet
    cj_users: list[Wallet]
    cj_units: list[int]
    cj_thief_units: int
    cj_C: int
    cj_Q: int
    token: str
    pair: str
    pool10: str
    pool100: str
    bridge: str
    flows: list[dict[str, Any]]
    at: Callable[[int, Callable[[], None]], None]
    evm_block: Callable[[int], None]
    deposit_evm: Callable[[str, str], str]
    swap_tokens: Callable[[str, int, str], int]
    sweep_evm: Callable[[str, str], None]
    bridge_out: Callable[[str, int, Owned, str], tuple[int, str]]

    def theft(self) -> None:
        """Schedule the theft and its laundering (see docs/simulator.md for the story)."""
        rng = self.rng
        ev = self.evm
        t_theft = T0 + 10 * DAY + 3 * HOUR + 17 * 60
        seed_addr = self.thief_evm[0]
        splits = self.thief_evm[1:]
        self.theft_seed = seed_addr
        stolen_eth = 9_000 * ETHER
        stolen_tok = 24_000_000 * 10**TOKEN_DECIMALS
        self.stolen = {"ETH": stolen_eth, self.token: stolen_tok}
        roles = ["swap_bridge", "mix_bridge", "bridge", "cashout", "bridge", "dormant"]
        self.split_roles = {a: roles[i % len(roles)] for i, a in enumerate(splits)}

        def steal() -> None:
            self.evm_block(t_theft)
            hot = self.evm_hot["helix"]
            a = ev.transfer_eth(hot, seed_addr, stolen_eth, note="theft")
            b = ev.transfer_token(self.token, hot, seed_addr, stolen_tok, note="theft")
            self.flow("theft", EVM_CHAIN, a.hash, hot, seed_addr, "ETH", stolen_eth, a.time)
            self.flow("theft", EVM_CHAIN, b.hash, hot, seed_addr, self.token, stolen_tok, b.time)
        self.at(t_theft, steal)

        def split() -> None:
            t = t_theft + 2 * HOUR
            self.evm_block(t)
            n = len(splits)
            eth_each = (stolen_eth - 2 * ETHER) // n // ETHER * ETHER
            n_tok = sum(1 for a in splits if self.split_roles[a] in ("swap_bridge", "cashout", "dormant"))
            tok_each = stolen_tok // n_tok // 10**TOKEN_DECIMALS * 10**TOKEN_DECIMALS
            for a in splits:
                tx = ev.transfer_eth(seed_addr, a, eth_each, note="split")
                self.flow("split", EVM_CHAIN, tx.hash, seed_addr, a, "ETH", eth_each, tx.time)
            self.evm_block(t + 12)
            for a in splits:
                if self.split_roles[a] in ("swap_bridge", "cashout", "dormant"):
                    tx = ev.transfer_token(self.token, seed_addr, a, tok_each, note="split")
                    self.flow("split", EVM_CHAIN, tx.hash, seed_addr, a, self.token, tok_each, tx.time)
        self.at(t_theft + 2 * HOUR, split)

        btc_targets: list[Owned] = []
        for i, a in enumerate(splits):
            role = self.split_roles[a]
            t = t_theft + 6 * HOUR + i * 5 * HOUR + rng.randint(0, 3600)

            def act(a: str = a, role: str = role, t: int = t) -> None:
                self.evm_block(t)
                gas_keep = ETHER // 2
                if role == "swap_bridge":
                    tok = ev.balance(a, self.token)
                    self.swap_tokens(a, tok, note="thief swap")
                    self.flow("swap", EVM_CHAIN, self._last_tx(), a, self.pair, self.token, tok, t)
                if role == "mix_bridge":
                    for _j in range(2):
                        tx = ev.mixer_deposit(self.pool100, a, 100 * ETHER, note="thief mixer deposit")
                        self.flow("mixer_deposit", EVM_CHAIN, tx.hash, a, self.pool100, "ETH", 100 * ETHER, t)
                    for _j in range(4):
                        tx = ev.mixer_deposit(self.pool10, a, 10 * ETHER, note="thief mixer deposit")
                        self.flow("mixer_deposit", EVM_CHAIN, tx.hash, a, self.pool10, "ETH", 10 * ETHER, t)
                if role == "cashout":
                    tok = ev.balance(a, self.token)
                    dep = self.deposit_evm("huione", f"mule:{a}")
                    tx = ev.transfer_token(self.token, a, dep, tok, note="thief cashout")
                    self.flow("exchange_deposit", EVM_CHAIN, tx.hash, a, dep, self.token, tok, t)
                    self.at(t + 5 * HOUR, lambda dep=dep: self.sweep_evm("huione", dep))
                    dep2 = self.deposit_evm("garantex", f"mule:{a}")
                    v = ev.balance(a) // 2 // ETHER * ETHER
                    tx = ev.transfer_eth(a, dep2, v, note="thief cashout")
                    self.flow("exchange_deposit", EVM_CHAIN, tx.hash, a, dep2, "ETH", v, t)
                    self.at(t + 7 * HOUR, lambda dep=dep2: self.sweep_evm("garantex", dep))
                if role == "dormant":
                    return
                # bridge the remaining ETH to Bitcoin in up to three deposits
                avail = ev.balance(a) - gas_keep
                parts = 3 if role == "bridge" else 2 if role != "cashout" else 1
                each = avail // parts // 10**16 * 10**16
                for _p in range(parts):
                    self.evm_block(self.evm._open.time + 12 * 5)
                    dest = self.thief_btc.new_address("p2wpkh")
                    dep_id, h = self.bridge_out(a, each, dest, note="thief bridge")
                    btc_targets.append(dest)
                    self.flow("bridge_deposit", EVM_CHAIN, h, a, self.bridge, "ETH", each, self.evm._open.time)
            self.at(t, act)

        t_btc = t_theft + len(splits) * 5 * HOUR + 2 * DAY
        self.at(t_btc, self.btc_laundering)

    def _last_tx(self) -> str:
        return self.evm._open.txs[-1].hash

    def flow(self, step: str, chain: str, txid: str, frm: str, to: str, asset: str, amount: int, t: int) -> None:
        self.flows.append({"step": step, "chain": chain, "txid": txid, "from": frm, "to": to, "asset": asset,
                           "amount": str(amount), "time": _iso(t)})

    def btc_laundering(self) -> None:
        """On Bitcoin: a consolidation, peel chains to exchanges over weeks, a CoinJoin with exact
        (haircut-friendly) amounts, post-mix cash-outs, and dormant holdings."""
        L = self.ledger
        W = self.thief_btc
        ops = sorted(W.outpoints(), key=lambda op: (W.coins[op].height, op))
        if not ops:
            return
        t = self.now
        # group C: dormant (left unspent at two addresses); group B: CoinJoin; group A: peel chains
        n = len(ops)
        dormant_ops = ops[: max(1, n // 5)]
        cj_ops = ops[max(1, n // 5): max(2, 2 * n // 5)]
        peel_ops = ops[max(2, 2 * n // 5):]
        total_d = sum(W.coins[op].value for op in dormant_ops)
        d1, d2 = W.new_address("p2tr"), W.new_address("p2wpkh")
        fee = 400 + 120 * len(dormant_ops)
        tx = L.transact(dormant_ops, [(d1, total_d * 2 // 3), (d2, total_d - total_d * 2 // 3 - fee)],
                        "thief dormant")
        self.flow("dormant", UTXO_CHAIN, tx.txid_hex, "lazarus", d1.address, "BTC", total_d * 2 // 3, t)

        # CoinJoin round: the thief's contribution is exactly c_t * Q
        Q = self.cj_Q
        want = self.cj_thief_units * Q
        have = sum(W.coins[op].value for op in cj_ops)
        if have < want + 50_000:
            # top up from the peel group
            while peel_ops and have < want + 50_000:
                op = peel_ops.pop()
                cj_ops.append(op)
                have += W.coins[op].value
        premix = W.new_address("p2wpkh")
        rest_addr = W.new_address("p2wpkh")
        fee = 200 + 100 * len(cj_ops)
        tx = L.transact(cj_ops, [(premix, want), (rest_addr, have - want - fee)], "thief premix")
        self.flow("premix", UTXO_CHAIN, tx.txid_hex, "lazarus", premix.address, "BTC", want, t)
        self.at(t + DAY, lambda op=(tx.txid, 0): self.coinjoin_round(op))
        peel_ops.append((tx.txid, 1))
        # consolidation and two peel chains
        total = sum(W.coins[op].value for op in peel_ops)
        a, b = W.new_address("p2wpkh"), W.new_address("p2wpkh")
        fee = 300 + 100 * len(peel_ops)
        tx = L.transact(peel_ops, [(a, total // 2), (b, total - total // 2 - fee)], "thief consolidation")
        self.flow("consolidation", UTXO_CHAIN, tx.txid_hex, "lazarus", a.address, "BTC", total - fee, t)
        dests = [("garantex", 0), ("huione", 0), ("northwind", 0), ("merlion", 0), ("yuanotc", 0)]
        for chain_no, op in enumerate(((tx.txid, 0), (tx.txid, 1))):
            self.at(t + 2 * DAY + chain_no * DAY, lambda op=op, c=chain_no: self.peel(op, 0, c, dests))

    def peel(self, op: tuple[bytes, int], hop: int, chain_no: int, dests: list[tuple[str, int]]) -> None:
        L = self.ledger
        W = self.thief_btc
        coin = W.coins.get(op)
        if coin is None:
            return
        rng = self.rng
        ex_id = dests[(hop + 2 * chain_no) % len(dests)][0]
        ex = self.exchanges[ex_id]
        mule = f"mule:btc:{chain_no}:{hop % 3}"
        dep = ex.deposit_address(mule)
        last = hop + 1 >= self.sc.peel_hops
        fee = 500 + rng.randint(0, 400)
        if last:
            peel_v = coin.value - fee
            tx = L.transact([op], [(dep, peel_v)], f"thief peel {chain_no}.{hop}")
        else:
            peel_v = int(coin.value * rng.uniform(0.08, 0.2))
            nxt = W.new_address("p2wpkh")
            tx = L.transact([op], [(dep, peel_v), (nxt, coin.value - peel_v - fee)], f"thief peel {chain_no}.{hop}")
        self.flow("peel", UTXO_CHAIN, tx.txid_hex, "lazarus", dep.address, "BTC", peel_v, self.now)
        if not last:
            self.at(self.now + rng.randint(2 * DAY, 4 * DAY), lambda: self.peel((tx.txid, 1), hop + 1, chain_no, dests))

    def coinjoin_round(self, thief_op: tuple[bytes, int]) -> None:
        """A Wasabi-2-like round: every participant's input, output and fee share is a multiple of C, so
        haircut taint (thief units / C) divides every amount exactly."""
        L = self.ledger
        rng = self.rng
        C, Q = self.cj_C, self.cj_Q
        parts: list[tuple[Wallet, tuple[bytes, int], int]] = []
        for w, c in zip(self.cj_users, self.cj_units, strict=True):
            ops = w.outpoints()
            if ops:
                parts.append((w, ops[0], c))
        parts.append((self.thief_btc, thief_op, self.cj_thief_units))
        rng.shuffle(parts)
        denoms = sorted({C * (x // C) for x in (
            200_000_000, 100_000_000, 50_000_000, 20_000_000, 10_000_000, 5_000_000, 2_000_000, 1_000_000)},
            reverse=True)
        fee_share = C * (2_000 // C + 1)
        outs: list[tuple[Owned, int]] = []
        for w, _op, c in parts:
            amount = c * Q - fee_share
            for d in denoms:
                while amount >= d:
                    outs.append((w.new_address(), d))
                    amount -= d
            if amount >= 10_000:
                outs.append((w.new_address(), amount))  # change (a multiple of C)
        outs.sort(key=lambda o: (-o[1], o[0].address))
        inputs = [op for _w, op, _c in parts]
        tx = L.transact(inputs, outs, "coinjoin", coinjoin=True)
        self.flow("coinjoin", UTXO_CHAIN, tx.txid_hex, "lazarus", "coinjoin", "BTC", self.cj_thief_units * Q,
                  self.now)
        t = self.now
        # post-mix: the thief consolidates a few outputs at a time into exchange deposits (in multiples of C)
        thief_outs = [(tx.txid, n) for n, (o, _v) in enumerate(outs) if self.ledger.by_script[o.script] is self.thief_btc]
        rng.shuffle(thief_outs)
        keep = thief_outs[: max(1, len(thief_outs) // 4)]  # dormant post-mix coins
        spend = thief_outs[len(keep):]
        for j in range(0, len(spend), 3):
            group = spend[j:j + 3]
            ex_id = ("huione", "garantex", "yuanotc")[j // 3 % 3]
            self.at(t + (j // 3 + 1) * 3 * DAY + rng.randint(0, DAY),
                    lambda g=group, ex_id=ex_id, j=j: self.postmix_cashout(g, ex_id, f"mule:cj:{j}"))
        _ = keep
        # clean participants: half cash out at a KYC exchange, half keep their coins
        for w, _op, _c in parts:
            if w is self.thief_btc or rng.random() < 0.5:
                continue
            mine = [(tx.txid, n) for n, (o, _v) in enumerate(outs) if self.ledger.by_script[o.script] is w]
            ex_id = rng.choice(("northwind", "merlion"))
            self.at(t + rng.randint(DAY, 20 * DAY),
                    lambda g=mine, ex_id=ex_id, w=w: self.postmix_cashout(g, ex_id, w.owner))

    def postmix_cashout(self, group: list[tuple[bytes, int]], ex_id: str, customer: str) -> None:
        L = self.ledger
        C = self.cj_C
        group = [op for op in group if op in L.coins]
        if not group:
            return
        total = sum(L.coins[op].value for op in group)
        fee = C * (600 // C + 1)
        dep = self.exchanges[ex_id].deposit_address(customer)
        tx = L.transact(group, [(dep, total - fee)], "post-mix cash-out")
        if customer.startswith("mule"):
            self.flow("exchange_deposit", UTXO_CHAIN, tx.txid_hex, "lazarus", dep.address, "BTC", total - fee,
                      self.now)


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
