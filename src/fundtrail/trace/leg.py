"""The records one leg of a trace fills: per-asset buckets of the conservation balance, endpoint and mixer
events with their evidence paths, stopped value, crossings found, and injections of taint into other
chains' legs (bridge releases)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fundtrail.model.trace import Candidate, Crossing, PeelChain
from fundtrail.trace.stops import Label

MAX_PATH_LEN = 64  # transactions kept in one endpoint's evidence path
MAX_STOPPED_ROWS = 25  # stopped rows listed per leg (the rest summed into one row per asset and reason)

@dataclass(slots=True)
class Bucket:
    traced: int = 0
    endpoints: int = 0
    unspent: int = 0
    fees: int = 0
    stopped_hops: int = 0
    stopped_dust: int = 0
    mixers: int = 0
    crossed_out: int = 0
    other_stopped: int = 0
    absorbed: int = 0


@dataclass(frozen=True, slots=True)
class Injection:
    """Taint arriving on ``chain`` through a crossing: at a Bitcoin output (node) or an EVM ledger row."""

    chain: str
    target: int
    tainted: int
    hop: int


@dataclass(slots=True)
class EpEvent:
    label: Label
    chain: str
    asset: str
    amount: int
    hops: int
    time: int
    path: tuple[str, ...]
    address: str
    txid: str
    state: str = "swept"  # unswept: still at the entity's deposit address / contract (not moved on)
    provenance: str | None = None  # how that deposit address / contract was attributed


@dataclass(slots=True)
class MixEvent:
    label: Label
    chain: str
    pool: str
    asset: str
    amount: int
    txid: str
    time: int
    candidates: tuple[Candidate, ...] = ()
    followed: bool = False


@dataclass(slots=True)
class Leg:
    chain: str
    kind: str
    buckets: dict[str, Bucket] = field(default_factory=dict)
    endpoints: list[EpEvent] = field(default_factory=list)
    holdings: list[tuple[str, str, int, int, str | None]] = field(default_factory=list)  # addr, asset, amt, t, ent
    mixers: list[MixEvent] = field(default_factory=list)
    stopped: dict[tuple[str, str, str | None], list[Any]] = field(default_factory=dict)
    bridges: list[Crossing] = field(default_factory=list)
    swaps: list[Crossing] = field(default_factory=list)
    injections: list[Injection] = field(default_factory=list)
    peels: list[PeelChain] = field(default_factory=list)
    seed_time: int | None = None
    txs: int = 0  # transactions (Bitcoin) or ledger entries (EVM) the taint went through
    peel_free_txs: int = 0  # transactions (EVM: transfers) passed for free along peel chains
    peel_hit: str | None = None  # the first txid the peel allowance no longer covered (it was used up)

    def b(self, asset: str) -> Bucket:
        return self.buckets.setdefault(asset, Bucket())

    def stop(self, asset: str, reason: str, amount: int, address: str | None, txid: str | None) -> None:
        row = self.stopped.setdefault((asset, reason, address), [0, txid])
        row[0] += amount

