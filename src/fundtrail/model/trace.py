"""Records of a trace: what ``fundtrail trace`` computes and ``fundtrail report`` renders.

Amounts are integers in base units with the asset's decimals beside them; ``to_json`` gives the
contract's trace JSON (amounts as decimal strings in whole units, ``usd`` a number or null).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from fundtrail.model.amount import format_units

Model = Literal["poison", "haircut", "fifo"]
Direction = Literal["forward", "backward"]


def _iso(t: datetime | None) -> str | None:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t is not None else None


@dataclass(frozen=True, slots=True)
class Seed:
    chain: str
    address: str | None = None
    txid: str | None = None
    n: int | None = None  # output index (UTXO) when the seed is one output

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"chain": self.chain}
        for k in ("address", "txid", "n"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d


@dataclass(frozen=True, slots=True)
class AssetAmount:
    chain: str
    asset: str  # BTC, ETH, or a token's contract address
    amount: int
    decimals: int
    symbol: str | None = None
    usd: float | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"chain": self.chain, "asset": self.asset,
                             "amount": format_units(self.amount, self.decimals)}
        if self.symbol:
            d["symbol"] = self.symbol
        d["usd"] = self.usd
        return d


@dataclass(frozen=True, slots=True)
class Deposit:
    """One arrival of traced funds at an endpoint's address: the transaction and the traced amount."""

    address: str
    txid: str
    amount: int
    time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Funds that reached an attributed service (or an attributed non-service entity, e.g. a mixer)."""

    entity: str
    category: str
    country: str | None
    chain: str
    asset: str
    amount: int
    decimals: int
    usd: float | None
    hops: int
    first_seen: datetime | None
    last_seen: datetime | None
    paths: tuple[tuple[str, ...], ...] = ()
    addresses: tuple[str, ...] = ()
    symbol: str | None = None
    sanctioned: bool = False
    deposits: tuple[Deposit, ...] = ()  # every arrival (address, txid, amount): freeze requests need them all
    # swept: the funds moved on into the entity (or sit at an address it uses as its own); unswept: they
    # sit at a deposit address / deposit contract attributed to the entity and were not yet swept (a
    # freeze candidate: ``unswept_addresses``); one endpoint row per state
    state: Literal["swept", "unswept"] = "swept"
    unswept_addresses: tuple[str, ...] = ()
    provenance: str | None = None  # how an unswept deposit address/contract was attributed
    # of the traced amount of this chain and asset (backward: the share of the funds that came from here)
    share: float | None = None
    incident: str | None = None  # category incident (backward): the named incident whose seeds were reached

    def to_json(self) -> dict[str, Any]:
        return {
            "entity": self.entity, "category": self.category, "country": self.country,
            "chain": self.chain, "asset": self.asset, "symbol": self.symbol,
            "amount": format_units(self.amount, self.decimals), "usd": self.usd, "hops": self.hops,
            "first_seen": _iso(self.first_seen), "last_seen": _iso(self.last_seen),
            "paths": [list(p) for p in self.paths], "addresses": list(self.addresses),
            "sanctioned": self.sanctioned, "state": self.state,
            "unswept_addresses": list(self.unswept_addresses), "provenance": self.provenance,
            "share": None if self.share is None else round(self.share, 6), "incident": self.incident,
        }


@dataclass(frozen=True, slots=True)
class Arrival:
    """One arrival of traced funds at an endpoint (one output or one transfer): what an :class:`Endpoint`
    sums up, kept with its own time, hop count and USD value at its day (statistics by month, percentiles
    of hops and time to cash-out). Not part of the trace JSON."""

    entity: str
    category: str
    country: str | None
    chain: str
    asset: str
    amount: int
    decimals: int
    hops: int
    time: datetime | None
    txid: str
    usd: float | None = None
    symbol: str | None = None


@dataclass(frozen=True, slots=True)
class Holding:
    """Traced funds still unspent at an address: a freeze candidate."""

    chain: str
    address: str
    asset: str
    amount: int
    decimals: int
    usd: float | None = None
    since: datetime | None = None
    entity: str | None = None
    symbol: str | None = None

    @property
    def note(self) -> str | None:
        """Why unspent value at this address is no endpoint."""
        if self.entity is None:
            return ("no tag and no cluster attributes this address (a deposit address counts as its "
                    "exchange's only once clustering joins it to the exchange)")
        return None

    def to_json(self) -> dict[str, Any]:
        return {"chain": self.chain, "address": self.address, "asset": self.asset, "symbol": self.symbol,
                "amount": format_units(self.amount, self.decimals), "usd": self.usd,
                "since": _iso(self.since), "entity": self.entity, "note": self.note}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A possible withdrawal from a fixed-denomination mixer matching a traced deposit."""

    txid: str
    address: str
    amount: int
    time: datetime | None
    confidence: float

    def to_json(self, decimals: int) -> dict[str, Any]:
        return {"txid": self.txid, "address": self.address, "amount": format_units(self.amount, decimals),
                "time": _iso(self.time), "confidence": self.confidence}


@dataclass(frozen=True, slots=True)
class MixerUse:
    chain: str
    mixer: str  # entity name or pool address
    address: str
    asset: str
    amount: int
    decimals: int
    deposits: tuple[str, ...]
    candidates: tuple[Candidate, ...] = ()
    followed: bool = False
    usd: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"chain": self.chain, "mixer": self.mixer, "address": self.address, "asset": self.asset,
                "amount": format_units(self.amount, self.decimals), "usd": self.usd,
                "deposits": list(self.deposits), "followed": self.followed,
                "candidate_withdrawals": [c.to_json(self.decimals) for c in self.candidates]}


@dataclass(frozen=True, slots=True)
class Crossing:
    """A bridge hop (chain to chain) or a swap (asset to asset) the trace continued through."""

    kind: Literal["bridge", "swap"]
    via: str  # bridge or DEX entity / contract
    from_chain: str
    from_asset: str
    from_amount: int
    from_decimals: int
    to_chain: str
    to_asset: str
    to_amount: int
    to_decimals: int
    in_txid: str
    out_txid: str | None
    match: str  # deposit_id | amount_time | same_tx
    confidence: float
    time: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "via": self.via, "from_chain": self.from_chain,
                "from_asset": self.from_asset, "from_amount": format_units(self.from_amount, self.from_decimals),
                "to_chain": self.to_chain, "to_asset": self.to_asset,
                "to_amount": format_units(self.to_amount, self.to_decimals), "in_txid": self.in_txid,
                "out_txid": self.out_txid, "match": self.match, "confidence": self.confidence,
                "time": _iso(self.time)}


@dataclass(frozen=True, slots=True)
class Stopped:
    """Traced value the trace did not follow further, and why (hop limit, dust, unmatched bridge…)."""

    chain: str
    asset: str
    amount: int
    decimals: int
    reason: str  # max_hops | dust | unmatched_bridge | unfollowed_mixer …
    address: str | None = None
    txid: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"chain": self.chain, "asset": self.asset, "amount": format_units(self.amount, self.decimals),
                "reason": self.reason, "address": self.address, "txid": self.txid}


# transactions (EVM: transfers) a trace passes for free along peel chains per chain, by default
# (docs/tracing.md, Peel chains); used up, the trace says so (a ``peel_budget`` limit notice)
PEEL_TXS = 10_000


@dataclass(frozen=True, slots=True)
class Limit:
    """A trace limit that stopped traced value: said first in every report, never silently.

    ``reason`` is ``max_hops``, ``dust`` or ``peel_budget`` (the allowance of transactions passed for free
    along peel chains was used up: later peel steps each cost a hop; ``amount`` is then what the hop limit
    stopped on that chain and asset, possibly 0); ``where`` lists the largest stopped places (address and
    txid; for ``peel_budget`` the transaction where the allowance ran out); ``option`` is the setting that
    would go on (e.g. ``--max-hops 40``, ``--peel-txs 20000``)."""

    chain: str
    asset: str
    amount: int
    decimals: int
    reason: str
    share: float  # of the traced amount of this chain and asset
    where: tuple[tuple[str | None, str | None], ...] = ()  # (address, txid), largest first
    option: str = ""
    symbol: str | None = None

    @property
    def message(self) -> str:
        unit = self.symbol or ("BTC" if self.asset == "BTC" else self.asset)
        if self.reason == "peel_budget":
            return (f"the peel-chain allowance was used up on {self.chain} ({unit}): later peel steps each cost "
                    f"a hop; {format_units(self.amount, self.decimals)} {unit} ({self.share:.2%} of the traced "
                    f"{unit}) stopped at the hop limit; {self.option} would follow peel chains further")
        what = "the hop limit" if self.reason == "max_hops" else "the dust threshold"
        return (f"{format_units(self.amount, self.decimals)} {unit} ({self.share:.2%} of the traced "
                f"{unit} on {self.chain}) stopped at {what}; {self.option} would follow it further")

    def to_json(self) -> dict[str, Any]:
        return {"chain": self.chain, "asset": self.asset, "reason": self.reason,
                "amount": format_units(self.amount, self.decimals), "share": round(self.share, 6),
                "where": [{"address": a, "txid": t} for a, t in self.where], "option": self.option,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class PeelChain:
    chain: str
    asset: str
    start_txid: str
    end_txid: str
    hops: int
    amount_in: int
    peeled: int
    decimals: int
    peels_by_destination: tuple[tuple[str, int], ...] = ()  # (entity or 'unattributed', amount)

    def to_json(self) -> dict[str, Any]:
        # hops = transactions of the chain; it costs one hop of the --max-hops budget however long
        return {"chain": self.chain, "asset": self.asset, "start_txid": self.start_txid,
                "end_txid": self.end_txid, "hops": self.hops, "transactions": self.hops, "budget_hops": 1,
                "amount_in": format_units(self.amount_in, self.decimals),
                "peeled": format_units(self.peeled, self.decimals),
                "peels_by_destination": [{"destination": d, "amount": format_units(a, self.decimals)}
                                         for d, a in self.peels_by_destination]}


@dataclass(frozen=True, slots=True)
class Balance:
    """Conservation per (chain, asset): traced = endpoints + unspent + fees + stopped + mixers + out."""

    chain: str
    asset: str
    decimals: int
    traced: int
    endpoints: int
    unspent: int
    fees: int
    stopped_hops: int
    stopped_dust: int
    mixers: int
    crossed_out: int = 0  # left this asset through a swap or bridge (appears in the other asset's traced)
    other_stopped: int = 0
    # poison only: clean value that became tainted by mixing with tainted value (0 for haircut and FIFO,
    # which conserve); accounted = traced + absorbed
    absorbed: int = 0

    @property
    def accounted(self) -> int:
        return (self.endpoints + self.unspent + self.fees + self.stopped_hops + self.stopped_dust
                + self.mixers + self.crossed_out + self.other_stopped)

    @property
    def balanced(self) -> bool:
        return self.accounted == self.traced + self.absorbed

    def to_json(self) -> dict[str, Any]:
        f = self.decimals
        return {"chain": self.chain, "asset": self.asset, "traced": format_units(self.traced, f),
                "endpoints": format_units(self.endpoints, f), "unspent": format_units(self.unspent, f),
                "fees": format_units(self.fees, f), "stopped_hops": format_units(self.stopped_hops, f),
                "stopped_dust": format_units(self.stopped_dust, f), "mixers": format_units(self.mixers, f),
                "crossed_out": format_units(self.crossed_out, f),
                "other_stopped": format_units(self.other_stopped, f),
                "absorbed": format_units(self.absorbed, f), "balanced": self.balanced}


@dataclass(frozen=True, slots=True)
class TraceResult:
    model: Model
    direction: Direction
    seeds: tuple[Seed, ...]
    traced: tuple[AssetAmount, ...]
    endpoints: tuple[Endpoint, ...]
    unspent: tuple[Holding, ...]
    mixers: tuple[MixerUse, ...] = ()
    bridges: tuple[Crossing, ...] = ()
    swaps: tuple[Crossing, ...] = ()
    stopped: tuple[Stopped, ...] = ()
    peel_chains: tuple[PeelChain, ...] = ()
    balances: tuple[Balance, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    arrivals: tuple[Arrival, ...] = ()  # every endpoint arrival, in time order (not in the JSON)
    limits: tuple[Limit, ...] = ()  # value stopped at a limit (hop budget, dust), largest first

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "direction": self.direction,
            "seeds": [s.to_json() for s in self.seeds],
            "traced_amount": [a.to_json() for a in self.traced],
            "endpoints": [e.to_json() for e in self.endpoints],
            "unspent": [h.to_json() for h in self.unspent],
            "mixers": [m.to_json() for m in self.mixers],
            "bridges": [b.to_json() for b in self.bridges],
            # the first field after the contract's fixed eight: value stopped at a limit
            "limits": [x.to_json() for x in self.limits],
            "swaps": [s.to_json() for s in self.swaps],
            "stopped": [s.to_json() for s in self.stopped],
            "peel_chains": [p.to_json() for p in self.peel_chains],
            "conservation": [b.to_json() for b in self.balances],
            "params": self.params,
        }
