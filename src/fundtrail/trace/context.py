"""The context the legs of one trace share: the workspace, the taint model and limits, the crossing book,
asset metadata, and the per-chain labels and CoinJoin masks (cached with the graphs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from fundtrail.errors import NotFoundError, UsageError
from fundtrail.model.address import normalize
from fundtrail.model.amount import parse_units
from fundtrail.model.chain import BITCOIN_NETWORKS
from fundtrail.model.trace import PEEL_TXS
from fundtrail.store import Workspace
from fundtrail.trace import crossing as X
from fundtrail.trace.graph import cached
from fundtrail.trace.stops import Label, Labels, coinjoin_txids, load_labels


@dataclass(slots=True)
class Ctx:
    ws: Workspace
    model: str
    forward: bool
    max_hops: int
    dust: Any
    since: int | None
    follow_mixers: bool
    book: X.CrossBook
    meta: dict[str, dict[str, tuple[int, str | None]]] = field(default_factory=dict)
    # transactions (EVM: transfers) a trace may pass for free along peel chains (a chain costs one hop of
    # the budget); 0 counts every transaction as a hop
    peel_txs: int = PEEL_TXS

    def kind(self, chain: str) -> str:
        c = self.ws.chain(chain)
        if c is not None and c.get("kind") in ("utxo", "evm"):
            return c["kind"]
        if any(n.chain == chain for n in BITCOIN_NETWORKS.values()):
            return "utxo"
        if self.ws.parts("utxo_transactions", chain):
            return "utxo"
        if self.ws.parts("evm_transfers", chain):
            return "evm"
        raise NotFoundError(f"chain {chain!r} is not in the workspace {self.ws.home}")

    def asset_meta(self, chain: str, asset: str) -> tuple[int, str | None]:
        m = self.meta.get(chain)
        if m is None:
            m = {}
            t = self.ws.read("tokens", chain, columns=["address", "symbol", "decimals"])
            for a, s, d in zip(t["address"].to_pylist(), t["symbol"].to_pylist(), t["decimals"].to_pylist(),
                               strict=True):
                if a:
                    m[a.lower()] = (int(d) if d is not None else 0, s)
            self.meta[chain] = m
        if asset == "BTC":
            return 8, "BTC"
        if not asset.startswith("0x"):
            return 18, asset
        return m.get(asset, (0, None))

    def seed_address_id(self, chain: str, address: str, what: str) -> int:
        """The id of a seed address; NotFoundError naming it when it has no ``what`` (transactions,
        transfers) in the chain."""
        addr = normalize(chain, address)
        ids = X.address_ids(self.ws, chain, [addr])
        if addr not in ids:
            raise NotFoundError(f"address {addr} has no {what} in chain {chain!r} of the workspace")
        return ids[addr]

    def dust_for(self, chain: str, asset: str) -> int:
        d = self.dust
        if d is None:
            return 0
        if isinstance(d, int):
            return d
        dec, _ = self.asset_meta(chain, asset)
        try:
            return parse_units(str(d), dec)
        except ValueError:
            return int(Decimal(str(d)).scaleb(dec))


def chain_labels(ws: Workspace, chain: str, book: X.CrossBook, kind: str) -> Labels:
    def build(ws_: Workspace, chain_: str) -> Labels:
        extra: dict[int, Label] = {}
        if kind == "utxo":
            for a in book.btc_bridge_wallet.get(chain_, ()):
                extra[a] = Label("bridge wallet", "bridge", None, False, False, 0.9)
        else:
            ids = X.address_ids(ws_, chain_, sorted(book.bridges.get(chain_, ())))
            for addr, a in ids.items():
                extra[a] = Label(f"bridge {addr}", "bridge", None, False, False, 0.9)
            ids = X.address_ids(ws_, chain_, sorted(book.pools.get(chain_, ())))
            for addr, a in ids.items():
                extra[a] = Label(f"mixer pool {addr}", "mixer", None, False, False, 0.9)
        return load_labels(ws_, chain_, extra)

    return cached(ws, chain, "labels", build)


INCIDENT = "incident"  # the category of a backward endpoint at a named incident's seed address


def incident_seeds(ctx: Ctx, chain: str) -> list[tuple[str, Ctx, list[Any]]]:
    """Backward traces credit the share of the traced funds that came from a named incident to it: the
    stored incidents with seeds on ``chain``, each as (name, a context carrying the incident's own
    ``since``, its seeds on the chain). The legs resolve the seeds exactly as a forward trace from the
    incident does (its seed coins; on EVM its seed transfers), so that both directions stop at the same
    places (docs/tracing.md, "Why backward and forward agree")."""
    from dataclasses import replace

    from fundtrail.incidents import list_incidents

    out: list[tuple[str, Ctx, list[Any]]] = []
    for inc in list_incidents(ctx.ws):
        seeds = [s for s in inc.seeds if s.chain == chain]
        if seeds:
            out.append((inc.name, replace(ctx, since=to_unix(inc.since)), seeds))
    return out


def incident_label(name: str) -> Label:
    return Label(name, INCIDENT, None, False, True, 1.0)


def deposit_provenance(ws: Workspace, chain: str) -> dict[int, str]:
    """The deposit addresses and deposit contracts clustering attributed on a chain (``deposit_addresses``),
    each with the evidence in words: value sitting there has reached the exchange, even unswept."""
    def build(ws_: Workspace, chain_: str) -> dict[int, str]:
        if not ws_.parts("deposit_addresses", chain_):
            return {}
        t = ws_.read("deposit_addresses", chain_)
        prov = t["provenance"].to_pylist() if "provenance" in t.column_names else [None] * t.num_rows
        ent = t["entity"].to_pylist()
        return {int(a): (p or f"deposit address of {e} (clustering)")
                for a, p, e in zip(t["address_id"].to_pylist(), prov, ent, strict=True) if a is not None}

    return cached(ws, chain, "deposit_provenance", build)


def coinjoin_mask(ws: Workspace, chain: str, g: Any) -> np.ndarray:
    def build(ws_: Workspace, chain_: str) -> np.ndarray:
        mask = np.zeros(g.ntx, np.bool_)
        ts = g.tx_numbers(sorted(coinjoin_txids(ws_, chain_)))
        mask[ts[ts >= 0]] = True
        return mask

    return cached(ws, chain, "coinjoin_mask", build)


def as_utc(t: int | None) -> datetime | None:
    return datetime.fromtimestamp(int(t), UTC) if t is not None and t > 0 else None


def to_unix(since: Any) -> int | None:
    if since is None:
        return None
    if isinstance(since, int | float):
        return int(since)
    if isinstance(since, datetime):
        return int((since if since.tzinfo else since.replace(tzinfo=UTC)).timestamp())
    if isinstance(since, date):
        return int(datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp())
    try:
        d = datetime.fromisoformat(str(since).replace("Z", "+00:00"))
    except ValueError as e:
        raise UsageError(f"--since {since!r} is not a date (YYYY-MM-DD) or an ISO time") from e
    return to_unix(d)

