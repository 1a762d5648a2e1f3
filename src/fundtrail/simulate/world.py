"""``simulate(out_dir, scale, seed)``: play a synthetic two-chain world with a theft, write it out with its
ground truth.

Output (the contract's layout)::

    DIR/bitcoin/blocks/blk*.dat   regtest block files (Bitcoin Core framing), chain name ``regtest``
    DIR/evm/rpc.jsonl             recorded JSON-RPC responses of the EVM chain ``simeth`` (chain id 31337)
    DIR/tags/*.yaml               GraphSense TagPacks + an ActorPack (what is publicly known)
    DIR/prices.csv                date,asset,usd for BTC, ETH and the stablecoin
    DIR/truth.json                owners, clusters, the theft, the laundering flows, expected trace results

The world is synthetic: every entity has an invented name ending in ``-sim``. See docs/simulator.md.
"""

from __future__ import annotations

import heapq
import json
import random
import shutil
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fundtrail.model.chain import REGTEST
from fundtrail.progress import NullProgress, Progress
from fundtrail.simulate import actors as A
from fundtrail.simulate.btc import COIN, Owned
from fundtrail.simulate.evm import ETHER, EvmWorld, RpcRecorder, eoa
from fundtrail.simulate.ledger import Exchange, InsufficientFunds, Ledger, Wallet

UTXO_CHAIN = "regtest"
EVM_CHAIN = "simeth"
CHAIN_ID = 31337
T0 = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp())  # the world's day 0
DAY = 86400
HOUR = 3600
TOKEN_DECIMALS = 6
TOKEN_SYMBOL = "SIMUSD"


@dataclass(frozen=True, slots=True)
class Scale:
    days: int
    block_minutes: int  # Bitcoin block interval during the activity phase
    retail: int  # story-level ordinary Bitcoin users
    retail_tx_per_block: float
    evm_users: int
    evm_actions_per_tick: int  # random EVM user actions every 6 hours
    cj_participants: int  # clean participants of each CoinJoin round
    splits: int  # how many addresses the thief splits the Ethereum loot into
    peel_hops: int
    background_tx_per_block: int  # bulk ordinary traffic (background generator)
    background_users: int


SCALES: dict[str, Scale] = {
    "demo": Scale(60, 360, 40, 1.5, 16, 2, 9, 6, 6, 0, 0),
    "small": Scale(60, 60, 400, 3.0, 120, 6, 19, 10, 8, 240, 40_000),
    "large": Scale(60, 10, 2000, 1.0, 400, 12, 39, 16, 8, 1250, 400_000),
}


@dataclass(slots=True)
class WorldSummary:
    out_dir: Path
    scale: str
    seed: int
    btc_blocks: int
    btc_txs: int
    btc_bytes: int
    btc_files: int
    evm_blocks: int
    evm_txs: int
    rpc_lines: int
    addresses: int
    seconds: float
    peak_rss_mb: float
    stolen: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in
                ((k, getattr(self, k)) for k in self.__slots__)}


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------------------

class World:
    def __init__(self, out_dir: Path, scale: str, seed: int, progress: Progress) -> None:
        if scale not in SCALES:
            from fundtrail.errors import UsageError

            raise UsageError(f"unknown scale {scale!r}; one of {', '.join(SCALES)}")
        self.out = out_dir
        self.scale_name = scale
        self.sc = SCALES[scale]
        self.seed = seed
        self.rng = random.Random(seed)
        self.progress = progress
        self.ledger = Ledger(REGTEST, seed, out_dir / "bitcoin" / "blocks")
        self.events: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = 0
        self.flows: list[dict[str, Any]] = []
        self.evm_owners: dict[str, str] = {}
        self.evm_labels: dict[str, str] = {}
        self.prices = self._make_prices()
        self.mixer_candidates: list[dict[str, Any]] = []

    # --- helpers ------------------------------------------------------------------------------------------
    def at(self, t: int, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self.events, (t, self._seq, fn))

    def _make_prices(self) -> dict[int, dict[str, float]]:
        r = random.Random(self.seed * 7919 + 1)
        btc, eth = 62_000.0, 3_400.0
        out = {}
        for d in range(-3, self.sc.days + 4):
            out[d] = {"BTC": round(btc, 2), "ETH": round(eth, 2), TOKEN_SYMBOL: 1.0}
            btc *= 1 + r.gauss(0, 0.025)
            eth *= 1 + r.gauss(0, 0.03)
        return out

    def price(self, t: int, asset: str) -> float:
        return self.prices[(t - T0) // DAY][asset]

    def eoa(self, owner: str, label: str) -> str:
        a = eoa(self.seed, label)
        self.evm_owners[a] = owner
        return a

    def evm_block(self, t: int) -> None:
        """Make sure an EVM block at time ``t`` is open (one block per event time)."""
        ob = self.evm._open
        if ob is None or ob.time != t:
            self.evm.begin_block(t)

    # --- setup ------------------------------------------------------------------------------------------
    def setup(self) -> None:
        L = self.ledger
        sc = self.sc
        rng = self.rng
        self.pool = Wallet(L, "simpool", ("p2wpkh",))
        self.exchanges: dict[str, Exchange] = {}
        dep_kinds = {"helix": "p2wpkh", "garantex": "p2pkh", "huione": "p2sh", "northwind": "p2wpkh",
                     "merlion": "p2sh", "yuanotc": "p2pkh"}
        for e in A.EXCHANGES:
            hot = Wallet(L, e.id, ("p2wpkh", "p2sh"))
            self.exchanges[e.id] = Exchange(e.id, hot, Wallet(L, e.id, (dep_kinds[e.id],), f"{e.id}/deposits"),
                                          dep_kinds[e.id])
            hot.address(0)
            hot.address(1)
        self.bridge_btc = Wallet(L, "simbridge", ("p2wpkh",))
        self.bridge_btc.address(0)
        self.thief_btc = Wallet(L, "lazarus", ("p2wpkh", "p2tr"))
        self.retail = [Wallet(L, f"user:{i}", (rng.choice(("p2wpkh", "p2wpkh", "p2pkh", "p2sh", "p2tr")),))
                       for i in range(sc.retail)]
        # CoinJoin: clean participants; contribution units c_i; the thief brings c_t units
        m = sc.cj_participants
        self.cj_users = [Wallet(L, f"user:cj{i}", ("p2wpkh", "p2tr")) for i in range(m)]
        self.cj_units = [rng.choice((1, 2, 2, 3, 4)) for _ in range(m)]
        self.cj_thief_units = max(2, sum(self.cj_units) // 2)
        self.cj_C = sum(self.cj_units) + self.cj_thief_units  # every CoinJoin-zone amount is a multiple of C

        # EVM
        self.deployer = self.eoa("simusd", "deployer")
        self.relayer = self.eoa("user:relayer", "relayer")
        self.evm_users = [self.eoa(f"user:e{i}", f"user/e{i}") for i in range(sc.evm_users)]
        self.evm_hot = {e.id: self.eoa(e.id, f"hot/{e.id}") for e in A.EXCHANGES}
        self.evm_deposit: dict[tuple[str, str], str] = {}
        self.thief_evm = [self.eoa("lazarus", f"thief/{i}") for i in range(sc.splits + 1)]
        alloc = {self.deployer: 20_000 * ETHER, self.relayer: 50 * ETHER}
        for u in self.evm_users:
            alloc[u] = rng.randint(20, 400) * ETHER
        for e in A.EXCHANGES:
            alloc[self.evm_hot[e.id]] = (12_000 if e.id == "helix" else 3_000) * ETHER
        self.evm = EvmWorld(self.seed, CHAIN_ID, T0 - DAY, alloc)

    def deposit_evm(self, exchange: str, customer: str) -> str:
        k = (exchange, customer)
        a = self.evm_deposit.get(k)
        if a is None:
            a = self.eoa(exchange, f"deposit/{exchange}/{customer}")
            self.evm_deposit[k] = a
        return a

    # --- the Bitcoin premine and distribution -------------------------------------------------------------
    def premine(self) -> None:
        L = self.ledger
        for h in range(1, 221):
            L.mine(T0 - 2 * DAY + h * 600, self.pool)
        # distribution: exchanges, the bridge, OTC, retail users, CoinJoin participants
        plan: list[tuple[Owned, int]] = []
        for e in A.EXCHANGES:
            for i in range(4):
                plan.append((self.exchanges[e.id].hot.address(i % 2), 100 * COIN))
        for _i in range(10):
            plan.append((self.bridge_btc.address(0), 100 * COIN))
        per_user = min(33 * COIN // 10, 1_000 * COIN // max(1, len(self.retail)))
        for w in self.retail:
            plan.append((w.new_address(), self.rng.randint(per_user // 6, per_user * 2)))
        C = self.cj_C
        self.cj_Q = C * (60_000_000 // C)
        for w, c in zip(self.cj_users, self.cj_units, strict=True):
            plan.append((w.new_address("p2wpkh"), c * self.cj_Q))
        for i in range(0, len(plan), 200):
            self.pool.pay(plan[i:i + 200], feerate=2, label="pool payout")
        L.mine(T0 - 2 * DAY + 222 * 600, self.pool)

    # --- routine behaviour ------------------------------------------------------------------------------
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
        x = ev.balance(self.pair)
        y = ev.balance(self.pair, self.token)
        out = y * eth_in * 997 // (x * 1000 + eth_in * 997)
        ev.swap_eth_for_tokens(self.pair, self.token, u, eth_in, out, note=note)
        return out

    def swap_tokens(self, u: str, tok_in: int, note: str) -> int:
        ev = self.evm
        x = ev.balance(self.pair)
        y = ev.balance(self.pair, self.token)
        out = x * tok_in * 997 // (y * 1000 + tok_in * 997)
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

    def deploy(self) -> None:
        ev = self.evm
        t = T0 + 600
        self.evm_block(t)
        d = self.deployer
        self.token = ev.deploy_token(d, _init_code("SimUSD"), "SimUSD-sim", TOKEN_SYMBOL, TOKEN_DECIMALS,
                                     10**9 * 10**TOKEN_DECIMALS)
        self.evm_owners[self.token] = "simusd"
        self.pair, _ = ev.deploy(d, _init_code("SimSwapPair"), 2_400_000, "deploy pair")
        self.evm_owners[self.pair] = "simswap"
        self.pool10, _ = ev.deploy(d, _init_code("MixerPool10"), 1_600_000, "deploy mixer 10")
        self.pool100, _ = ev.deploy(d, _init_code("MixerPool100"), 1_600_000, "deploy mixer 100")
        self.evm_owners[self.pool10] = "tornado"
        self.evm_owners[self.pool100] = "tornado"
        self.pool_denom = {self.pool10: 10 * ETHER, self.pool100: 100 * ETHER}
        self.bridge, _ = ev.deploy(d, _init_code("SimBridge"), 1_300_000, "deploy bridge")
        self.evm_owners[self.bridge] = "simbridge"
        self.bridge_releases: dict[int, tuple[str, int, int, str]] = {}
        self.evm_block(t + 12)
        ev.transfer_eth(d, self.pair, 8_000 * ETHER, note="liquidity")
        ev.transfer_token(self.token, d, self.pair, 27_200_000 * 10**TOKEN_DECIMALS, note="liquidity")
        self.evm_block(t + 24)
        ev.transfer_token(self.token, d, self.evm_hot["helix"], 30_000_000 * 10**TOKEN_DECIMALS, note="treasury")
        for e in ("garantex", "huione", "northwind", "merlion"):
            ev.transfer_token(self.token, d, self.evm_hot[e], 5_000_000 * 10**TOKEN_DECIMALS, note="treasury")
        for u in self.evm_users:
            ev.transfer_token(self.token, d, u, self.rng.randint(100, 50_000) * 10**TOKEN_DECIMALS, note="airdrop")

    # --- the theft ------------------------------------------------------------------------------------------
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

    # --- the run ------------------------------------------------------------------------------------------
    now = 0

    def run(self) -> None:
        sc = self.sc
        L = self.ledger
        self.setup()
        self.premine()
        self.deploy()
        self.theft()
        interval = sc.block_minutes * 60
        start = T0 + 3600
        n_blocks = sc.days * DAY // interval
        for k in range(0, sc.days * DAY // (6 * HOUR)):
            self.at(T0 + DAY + k * 6 * HOUR + 1800, lambda k=k: self.evm_tick(self.now))
        task = self.progress.task("simulate: bitcoin blocks", total=n_blocks, unit="blocks")
        carry = 0.0
        for b in range(n_blocks):
            bt = start + b * interval
            while self.events and self.events[0][0] <= bt:
                t, _s, fn = heapq.heappop(self.events)
                self.now = t
                fn()
            self.now = bt
            carry += sc.retail_tx_per_block
            while carry >= 1:
                carry -= 1
                self.retail_step()
            if b % max(1, (12 * HOUR) // interval) == 0:
                for ex in self.exchanges.values():
                    ex.sweep(L)
            L.mine(bt, self.pool)
            task.advance(1)
        task.close()
        # events past the end (never more than a few sweeps) are dropped; the EVM chain is closed
        self.evm.finish()
        L.close()


def _init_code(name: str) -> bytes:
    """Contract creation code: the compiled artifact when the contracts package has it, otherwise a
    minimal init code that returns an empty runtime (the recorded chain never executes it)."""
    try:
        from fundtrail.simulate.contracts import load_artifact

        art = load_artifact(name)
        bc = art.get("bytecode") if isinstance(art, dict) else getattr(art, "bytecode", None)
        if isinstance(bc, dict):
            bc = bc.get("object")
        if bc:
            return bytes.fromhex(bc.removeprefix("0x"))
    except Exception:  # noqa: BLE001 - the contracts package is optional here
        pass
    return bytes.fromhex("6080604052348015600f57600080fd5b50603f80601d6000396000f3fe") + name.encode()


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------------------

def simulate(out_dir: str | Path, scale: str = "demo", seed: int = 1, *,
             progress: Progress = NullProgress()) -> WorldSummary:
    """Play a world and write it to ``out_dir`` (replacing what a previous run wrote there)."""
    from fundtrail.simulate import outputs, truth

    out = Path(out_dir)
    t0 = _time.monotonic()
    for sub in ("bitcoin", "evm", "tags"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evm").mkdir(parents=True, exist_ok=True)
    w = World(out, scale, seed, progress)
    if w.sc.background_tx_per_block:
        from fundtrail.simulate.background import attach_background

        attach_background(w)
    w.run()
    task = progress.task("simulate: writing rpc.jsonl, tags, prices, truth", total=4, unit="files")
    rpc_lines = RpcRecorder(w.evm).write(out / "evm" / "rpc.jsonl")
    task.advance(1)
    outputs.write_tags(w, out / "tags")
    task.advance(1)
    outputs.write_prices(w, out / "prices.csv")
    task.advance(1)
    t = truth.build_truth(w)
    with open(out / "truth.json", "w") as f:
        json.dump(t, f, indent=1, sort_keys=False)
    task.advance(1)
    task.close()
    files = sorted((out / "bitcoin" / "blocks").glob("blk*.dat"))
    bg = getattr(w, "background_gen", None)
    return WorldSummary(
        out, scale, seed, w.ledger.height + 1, w.ledger.tx_count, w.ledger.writer.bytes_written, len(files),
        len(w.evm.blocks), len(w.evm.all_txs), rpc_lines,
        len(w.ledger.owners) + len(w.evm_owners) + (bg.address_count() if bg else 0),
        round(_time.monotonic() - t0, 2), round(_rss_mb(), 1),
        [dict(s) for s in t["theft"]["stolen"]])
