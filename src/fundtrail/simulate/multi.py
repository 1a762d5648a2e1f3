"""A world with several thefts by several actors over several years (for statistics with ground truth).

Built on the one-theft world (``simulate.world.World``) through its public pieces — the cast, wallets,
exchanges, the DEX, the mixer pools, the bridge and its release, the event queue — with its own theft
plan: each incident steals ETH and the stablecoin from an exchange's Ethereum hot wallet on its own date,
splits the loot over fresh accounts (swap and bridge, mixer and bridge, cash-out at no-KYC exchanges,
bridge, dormant), and launders the bridged bitcoin through its own wallet: a dormant part, a consolidation
and two peel chains into exchange deposit addresses. Incidents never share an account or a coin, and there
is no CoinJoin, so the ground truth of each incident (``simulate.truth.build_truth`` with that incident's
seed) stays exact to the satoshi and the wei.

Daily Bitcoin blocks over ``days`` days (default 800: March 2024 to May 2026); the ordinary EVM users act
every ten days. Everything is synthetic (names end in ``-sim``).
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fundtrail.progress import NullProgress, Progress
from fundtrail.simulate import truth as truth_mod
from fundtrail.simulate.btc import Owned
from fundtrail.simulate.evm import ETHER, RpcRecorder
from fundtrail.simulate.ledger import Wallet
from fundtrail.simulate.params import (
    DAY,
    EVM_CHAIN,
    HOUR,
    T0,
    TOKEN_DECIMALS,
    TOKEN_SYMBOL,
    UTXO_CHAIN,
    Scale,
)
from fundtrail.simulate.world import World

ROLES = ("swap_bridge", "mix_bridge", "cashout", "bridge", "dormant")


@dataclass(frozen=True, slots=True)
class Theft:
    name: str
    actor: str  # the incident's actor label (an ActorPack-style id)
    victim: str  # exchange id whose Ethereum hot wallet is drained
    day: int  # days after the world's day 0 (2024-03-01)
    eth: int  # whole ETH stolen
    tokens: int  # whole SIMUSD stolen
    splits: int = 5


DEFAULT_PLAN: tuple[Theft, ...] = (
    Theft("sim-2024-helix", "lazarus-sim", "helix", 10, 3_000, 6_000_000),
    Theft("sim-2024-merlion", "bluenoroff-sim", "merlion", 200, 1_200, 2_000_000),
    Theft("sim-2025-northwind", "lazarus-sim", "northwind", 420, 1_500, 3_000_000),
    Theft("sim-2026-garantex", "bluenoroff-sim", "garantex", 700, 1_000, 1_500_000),
)


@dataclass(slots=True)
class _Incident:
    plan: Theft
    seed: str
    splits: list[str]
    wallet: Wallet
    stolen: dict[str, int] = field(default_factory=dict)
    time: int = 0


class MultiWorld(World):
    """The world of ``simulate.world`` with a plan of several thefts instead of the one theft."""

    def __init__(self, out_dir: Path, seed: int, plan: tuple[Theft, ...], days: int,
                 progress: Progress) -> None:
        super().__init__(out_dir, "demo", seed, progress)
        self.scale_name = "multi"
        self.sc = Scale(days=days, block_minutes=24 * 60, retail=40, retail_tx_per_block=1.0, evm_users=16,
                        evm_actions_per_tick=2, cj_participants=6, splits=5, peel_hops=4,
                        background_tx_per_block=0, background_users=0)
        self.prices = self._make_prices()
        self.plan = plan
        self.incidents: list[_Incident] = []

    def _make_prices(self) -> dict[int, dict[str, float]]:
        # a calmer walk than the 60-day world's (years of it must keep the bridge's BTC custody solvent)
        r = random.Random(self.seed * 7919 + 1)
        btc, eth = 62_000.0, 3_400.0
        out = {}
        for d in range(-3, self.sc.days + 4):
            out[d] = {"BTC": round(btc, 2), "ETH": round(eth, 2), TOKEN_SYMBOL: 1.0}
            btc *= 1 + r.gauss(0, 0.01)
            eth *= 1 + r.gauss(0, 0.01)
        return out

    def evm_tick(self, t: int) -> None:
        k = (t - T0 - DAY - 1800) // (6 * HOUR)
        if k % 40 == 0:  # ordinary EVM users act every ten days
            super().evm_tick(t)

    # --- the thefts ---------------------------------------------------------------------------------------
    def theft(self) -> None:
        for n, p in enumerate(self.plan):
            inc = _Incident(p, self.eoa("lazarus", f"multi/{p.name}/seed"),
                            [self.eoa("lazarus", f"multi/{p.name}/split/{i}") for i in range(p.splits)],
                            Wallet(self.ledger, "lazarus", ("p2wpkh",), f"lazarus/{p.name}"))
            inc.stolen = {"ETH": p.eth * ETHER, "TOKEN": p.tokens * 10**TOKEN_DECIMALS}
            inc.time = T0 + p.day * DAY + 3 * HOUR + 17 * 60 + n * 60
            self.incidents.append(inc)
            self._schedule(inc)
        first = self.incidents[0]
        self.theft_seed = first.seed  # the synthetic sanctions list names the first thief address
        self.stolen = {"ETH": first.stolen["ETH"]}

    def _schedule(self, inc: _Incident) -> None:
        ev = self.evm
        p = inc.plan
        t0 = inc.time
        roles = {a: ROLES[i % len(ROLES)] for i, a in enumerate(inc.splits)}

        def steal() -> None:
            self.evm_block(t0)
            hot = self.evm_hot[p.victim]
            a = ev.transfer_eth(hot, inc.seed, inc.stolen["ETH"], note="theft")
            b = ev.transfer_token(self.token, hot, inc.seed, inc.stolen["TOKEN"], note="theft")
            self.flow("theft", EVM_CHAIN, a.hash, hot, inc.seed, "ETH", inc.stolen["ETH"], a.time)
            self.flow("theft", EVM_CHAIN, b.hash, hot, inc.seed, self.token, inc.stolen["TOKEN"], b.time)
        self.at(t0, steal)

        def split() -> None:
            t = t0 + 2 * HOUR
            self.evm_block(t)
            eth_each = (inc.stolen["ETH"] - 2 * ETHER) // len(inc.splits) // ETHER * ETHER
            tok_roles = [a for a in inc.splits if roles[a] in ("swap_bridge", "cashout", "dormant")]
            tok_each = inc.stolen["TOKEN"] // len(tok_roles) // 10**TOKEN_DECIMALS * 10**TOKEN_DECIMALS
            for a in inc.splits:
                ev.transfer_eth(inc.seed, a, eth_each, note="split")
            self.evm_block(t + 12)
            for a in tok_roles:
                ev.transfer_token(self.token, inc.seed, a, tok_each, note="split")
        self.at(t0 + 2 * HOUR, split)

        for i, a in enumerate(inc.splits):
            t = t0 + 6 * HOUR + i * 5 * HOUR + self.rng.randint(0, 3600)
            self.at(t, lambda a=a, role=roles[a], t=t: self._act(inc, a, role, t))
        self.at(t0 + len(inc.splits) * 5 * HOUR + 2 * DAY, lambda: self._btc(inc))

    def _act(self, inc: _Incident, a: str, role: str, t: int) -> None:
        ev = self.evm
        self.evm_block(t)
        if role == "swap_bridge":
            self.swap_tokens(a, ev.balance(a, self.token), note="thief swap")
        if role == "mix_bridge":
            ev.mixer_deposit(self.pool100, a, 100 * ETHER, note="thief mixer deposit")
            for _j in range(3):
                ev.mixer_deposit(self.pool10, a, 10 * ETHER, note="thief mixer deposit")
        if role == "cashout":
            dep = self.deposit_evm("huione", f"mule:{inc.plan.name}:{a}")
            ev.transfer_token(self.token, a, dep, ev.balance(a, self.token), note="thief cashout")
            self.at(t + 5 * HOUR, lambda dep=dep: self.sweep_evm("huione", dep))
            dep2 = self.deposit_evm("garantex", f"mule:{inc.plan.name}:{a}")
            ev.transfer_eth(a, dep2, ev.balance(a) // 2 // ETHER * ETHER, note="thief cashout")
            self.at(t + 7 * HOUR, lambda dep=dep2: self.sweep_evm("garantex", dep))
        if role == "dormant":
            return
        avail = ev.balance(a) - ETHER // 2
        parts = 3 if role == "bridge" else 2 if role != "cashout" else 1
        each = avail // parts // 10**16 * 10**16
        for _p in range(parts):
            self.evm_block(self.evm.now + 12 * 5)
            self.bridge_out(a, each, inc.wallet.new_address("p2wpkh"), note="thief bridge")

    def _btc(self, inc: _Incident) -> None:
        L = self.ledger
        W = inc.wallet
        ops = sorted(W.outpoints(), key=lambda op: (W.coins[op].height, op))
        if len(ops) < 2:
            return
        dormant, rest = ops[: max(1, len(ops) // 5)], ops[max(1, len(ops) // 5):]
        total = sum(W.coins[op].value for op in dormant)
        fee = 400 + 120 * len(dormant)
        L.transact(dormant, [(W.new_address("p2wpkh"), total * 2 // 3),
                             (W.new_address("p2wpkh"), total - total * 2 // 3 - fee)], "thief dormant")
        total = sum(W.coins[op].value for op in rest)
        a, b = W.new_address("p2wpkh"), W.new_address("p2wpkh")
        fee = 300 + 100 * len(rest)
        tx = L.transact(rest, [(a, total // 2), (b, total - total // 2 - fee)], "thief consolidation")
        dests = ("garantex", "huione", "northwind", "merlion", "yuanotc")
        for chain_no, op in enumerate(((tx.txid, 0), (tx.txid, 1))):
            self.at(self.now + 2 * DAY + chain_no * DAY, lambda op=op, c=chain_no: self._peel(inc, op, 0, c, dests))

    def _peel(self, inc: _Incident, op: tuple[bytes, int], hop: int, chain_no: int, dests: tuple[str, ...]) -> None:
        L = self.ledger
        W = inc.wallet
        coin = W.coins.get(op)
        if coin is None:
            return
        ex = self.exchanges[dests[(hop + 2 * chain_no + len(self.incidents)) % len(dests)]]
        dep: Owned = ex.deposit_address(f"mule:{inc.plan.name}:{chain_no}:{hop % 3}")
        fee = 500 + self.rng.randint(0, 400)
        if hop + 1 >= self.sc.peel_hops:
            L.transact([op], [(dep, coin.value - fee)], f"thief peel {inc.plan.name} {chain_no}.{hop}")
            return
        peel_v = int(coin.value * self.rng.uniform(0.08, 0.2))
        tx = L.transact([op], [(dep, peel_v), (W.new_address("p2wpkh"), coin.value - peel_v - fee)],
                        f"thief peel {inc.plan.name} {chain_no}.{hop}")
        self.at(self.now + self.rng.randint(2 * DAY, 4 * DAY),
                lambda: self._peel(inc, (tx.txid, 1), hop + 1, chain_no, dests))


def simulate_multi(out_dir: str | Path, *, seed: int = 1, plan: tuple[Theft, ...] = DEFAULT_PLAN,
                   days: int = 800, progress: Progress = NullProgress()) -> dict[str, Any]:
    """Play the world and write it like ``simulate`` does (block files, rpc.jsonl, tags, prices), plus
    ``incidents.json``: per incident its actor, victim, time, seed, stolen amounts and the expected trace
    results under every model (the reference implementation of ``simulate.truth``, run per incident)."""
    from fundtrail.simulate import outputs

    out = Path(out_dir)
    for sub in ("bitcoin", "evm", "tags"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    (out / "evm").mkdir(parents=True, exist_ok=True)
    w = MultiWorld(out, seed, plan, days, progress)
    w.run()
    RpcRecorder(w.evm).write(out / "evm" / "rpc.jsonl")
    outputs.write_tags(w, out / "tags")
    outputs.write_prices(w, out / "prices.csv")
    incidents = []
    for inc in w.incidents:
        w.theft_seed = inc.seed
        w.stolen = {"ETH": inc.stolen["ETH"], w.token: inc.stolen["TOKEN"]}
        t = truth_mod.build_truth(w)
        incidents.append({
            "name": inc.plan.name, "actor": inc.plan.actor, "victim": inc.plan.victim,
            "time": datetime.fromtimestamp(inc.time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seeds": [{"chain": EVM_CHAIN, "address": inc.seed}],
            "stolen": [{"chain": EVM_CHAIN, "asset": a, "amount": str(v)} for a, v in w.stolen.items()],
            "expected": t["expected"]})
    doc = {"seed": seed, "synthetic": True, "chains": {"utxo": UTXO_CHAIN, "evm": EVM_CHAIN},
           "note": "A simulated world: every entity, address and transaction here is invented.",
           "token": w.token, "incidents": incidents}
    (out / "incidents.json").write_text(json.dumps(doc, indent=1))
    return doc
