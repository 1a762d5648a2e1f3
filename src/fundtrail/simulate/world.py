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
from pathlib import Path
from typing import Any

from fundtrail.model.chain import REGTEST
from fundtrail.progress import NullProgress, Progress
from fundtrail.simulate import actors as A
from fundtrail.simulate.btc import COIN, Owned
from fundtrail.simulate.evm import ETHER, EvmWorld, RpcRecorder, eoa
from fundtrail.simulate.laundering import Laundering
from fundtrail.simulate.ledger import Exchange, Ledger, Wallet
from fundtrail.simulate.params import CHAIN_ID, DAY, HOUR, SCALES, T0, TOKEN_DECIMALS, TOKEN_SYMBOL
from fundtrail.simulate.routine import Routine


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

class World(Routine, Laundering):
    """The state of one world (its cast, wallets, contracts, chains and event queue) and its run: the
    setup, the Bitcoin premine and distribution, the contract deployment, then block by block the
    scheduled events (the theft and laundering: :class:`Laundering`), the ordinary users (:class:`Routine`)
    and the exchanges' sweeps."""

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
    """Contract creation code of a simulated deployment: a minimal init code that returns an empty runtime,
    tagged with the contract's name (the recorded chain never executes it)."""
    return bytes.fromhex("6080604052348015600f57600080fd5b50603f80601d6000396000f3fe") + name.encode()


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

