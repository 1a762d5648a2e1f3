"""The routine behaviour of a world's ordinary users (and the services the thief uses too): Bitcoin
payments, deposits and withdrawals; EVM payments, token transfers, swaps on the DEX pair, mixer deposits and
relayed withdrawals, deposit sweeps, and ETH -> BTC bridge transfers with their release on Bitcoin.

:class:`Routine` is a part of :class:`~fundtrail.simulate.world.World`: it acts on the world's state
(ledger, EVM chain, wallets, contracts, event queue) set up there."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from fundtrail.simulate.btc import COIN, Owned
from fundtrail.simulate.evm import ETHER, EvmWorld
from fundtrail.simulate.ledger import Exchange, InsufficientFunds, Ledger, Wallet
from fundtrail.simulate.params import EVM_CHAIN, HOUR, TOKEN_DECIMALS, UTXO_CHAIN, Scale


class Routine:
    # the world's state these actions use (set up by World)
    rng: random.Random
    sc: Scale
    now: int
    ledger: Ledger
    evm: EvmWorld
    retail: list[Wallet]
    exchanges: dict[str, Exchange]
    evm_users: list[str]
    evm_hot: dict[str, str]
    token: str
    pair: str
    pool10: str
    pool_denom: dict[str, int]
    relayer: str
    bridge: str
    bridge_btc: Wallet
    bridge_releases: dict[int, tuple[str, int, int, str]]
    mixer_candidates: list[dict[str, Any]]
    at: Callable[[int, Callable[[], None]], None]
    evm_block: Callable[[int], None]
    deposit_evm: Callable[[str, str], str]
    price: Callable[[int, str], float]

    def retail_step(self) -> None:
        """One random ordinary-user action on Bitcoin."""
        rng = self.rng
        w = rng.choice(self.retail)
        bal = w.balance()
        if bal < 20_000:
            # withdraw from an exchange
            ex = self.exchanges[rng.choice(("northwind", "merlion", "garantex", "huione", "helix"))]
            try:
                ex.withdraw(self.ledger, w.new_address(), rng.randint(2, 30) * COIN // 100)
            except InsufficientFunds:
                pass
            return
        r = rng.random()
        try:
            if r < 0.45:
                to = rng.choice(self.retail)
                dest = to.address(rng.randrange(len(to.addresses))) if to.addresses and rng.random() < 0.3 \
                    else to.new_address()
                w.pay([(dest, max(10_000, int(bal * rng.uniform(0.05, 0.5))))], feerate=rng.choice((2, 5, 8)),
                      reuse_change=rng.random() < 0.2, label="user payment")
            elif r < 0.75:
                ex = self.exchanges[rng.choice(("northwind", "merlion", "garantex", "huione", "helix", "yuanotc"))]
                w.pay([(ex.deposit_address(w.owner), max(10_000, int(bal * rng.uniform(0.1, 0.6))))],
                      feerate=4, reuse_change=rng.random() < 0.3, label="exchange deposit")
            else:
                ex = self.exchanges[rng.choice(("northwind", "merlion", "garantex", "huione"))]
                ex.withdraw(self.ledger, w.address(0) if rng.random() < 0.3 else w.new_address(),
                            rng.randint(2, 40) * COIN // 100)
        except InsufficientFunds:
            pass

    def evm_tick(self, t: int) -> None:
        rng = self.rng
        ev = self.evm
        self.evm_block(t)
        for _ in range(self.sc.evm_actions_per_tick):
            u = rng.choice(self.evm_users)
            r = rng.random()
            eth = ev.balance(u)
            tok = ev.balance(u, self.token)
            if eth < 2 * ETHER:
                ex = rng.choice(("northwind", "merlion", "garantex", "huione"))
                ev.transfer_eth(self.evm_hot[ex], u, rng.randint(5, 50) * ETHER, note=f"withdrawal {ex}")
                continue
            if r < 0.25:
                v = rng.randint(1, max(1, int(eth // ETHER) // 4)) * ETHER // 2
                ev.transfer_eth(u, rng.choice(self.evm_users), v, note="user payment")
            elif r < 0.4:
                self.swap_eth(u, rng.randint(1, 6) * ETHER, note="user swap")
            elif r < 0.5 and tok > 0:
                ev.transfer_token(self.token, u, rng.choice(self.evm_users), tok // 2, note="user token payment")
            elif r < 0.65 and tok > 1_000 * 10**TOKEN_DECIMALS:
                self.swap_tokens(u, tok // 3, note="user swap")
            elif r < 0.8:
                ex = rng.choice(("northwind", "merlion", "garantex", "huione", "helix"))
                dep = self.deposit_evm(ex, u)
                ev.transfer_eth(u, dep, rng.randint(1, 4) * ETHER, note=f"deposit {ex}")
                self.at(t + rng.randint(2, 12) * HOUR, lambda ex=ex, dep=dep: self.sweep_evm(ex, dep))
            elif r < 0.9 and eth > 12 * ETHER:
                pool = self.pool10
                ev.mixer_deposit(pool, u, 10 * ETHER, note="user mixer deposit")
                to = rng.choice(self.evm_users)
                self.at(t + rng.randint(6, 72) * HOUR, lambda pool=pool, to=to: self.mixer_withdraw(pool, to))
            elif eth > 3 * ETHER:
                btc_user = rng.choice(self.retail)
                self.bridge_out(u, rng.randint(1, 3) * ETHER, btc_user.new_address(), note="user bridge")

    def sweep_evm(self, ex: str, dep: str) -> None:
        ev = self.evm
        t = self.now
        self.evm_block(t)
        tok = ev.balance(dep, self.token)
        if tok:
            gas = 60_000 * 2 * 10**9 + 10**12
            if ev.balance(dep) < gas:
                ev.transfer_eth(self.evm_hot[ex], dep, gas, note=f"gas top-up {ex}")
            ev.transfer_token(self.token, dep, self.evm_hot[ex], tok, note=f"sweep {ex}")
        bal = ev.balance(dep)
        fee = 21_000 * (ev.base_fee + ev.tip)
        if bal > fee + 10**15:
            ev.transfer_eth(dep, self.evm_hot[ex], bal - fee, note=f"sweep {ex}")

    def mixer_withdraw(self, pool: str, to: str) -> None:
        self.evm_block(self.now)
        denom = self.pool_denom[pool]
        tx = self.evm.mixer_withdraw(pool, self.relayer, to, denom, denom // 200, note="mixer withdrawal")
        self.mixer_candidates.append({"txid": tx.hash, "to": to, "amount": denom - denom // 200, "time": tx.time})

    def swap_eth(self, u: str, eth_in: int, note: str) -> int:
        ev = self.evm
        out = amount_out(eth_in, ev.balance(self.pair), ev.balance(self.pair, self.token))
        ev.swap_eth_for_tokens(self.pair, self.token, u, eth_in, out, note=note)
        return out

    def swap_tokens(self, u: str, tok_in: int, note: str) -> int:
        ev = self.evm
        out = amount_out(tok_in, ev.balance(self.pair, self.token), ev.balance(self.pair))
        ev.swap_tokens_for_eth(self.pair, self.token, u, tok_in, out, note=note)
        return out

    def bridge_out(self, u: str, amount: int, dest: Owned, note: str) -> tuple[int, str]:
        """ETH -> BTC through the bridge: the deposit now, the BTC release ~40 minutes later."""
        dep_id, tx = self.evm.bridge_deposit_eth(self.bridge, u, amount, UTXO_CHAIN, dest.address, note=note)
        t = tx.time
        sats = amount * self.price(t, "ETH") / self.price(t, "BTC") / 10**10
        sats = int(sats * 0.997)

        def release() -> None:
            rtx = self.bridge_btc.pay([(dest, sats)], feerate=3, change=self.bridge_btc.address(0),
                                      label=f"bridge release {dep_id}",
                                      op_return=f"BRIDGE:OUT:{EVM_CHAIN}:{dep_id}".encode())
            self.bridge_releases[dep_id] = (rtx.txid_hex, 0, sats, dest.address)
        self.at(t + 40 * 60, release)
        return dep_id, tx.hash


def amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """What a Uniswap-v2-style pair pays for ``amount_in``: constant product, 0.3% fee, rounded down."""
    return reserve_out * amount_in * 997 // (reserve_in * 1000 + amount_in * 997)
