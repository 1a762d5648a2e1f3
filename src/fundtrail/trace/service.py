"""``trace``: follow funds from seeds (addresses or transactions) forward or backward, under one taint model.

The service resolves seeds to graph nodes, runs one *leg* per chain (Bitcoin: the numba output-level
kernel over the cached :class:`~fundtrail.trace.graph.UtxoGraph`; EVM: the account-level engine over the
cached :class:`~fundtrail.trace.graph.EvmLedger`), turns bridge crossings of one leg into injections of
taint into another chain's leg, and repeats until no new crossing appears (at most ``MAX_ROUNDS``
rounds; each round recomputes every leg from its seeds and the crossings found so far, so the result is
deterministic). It then rolls the legs up into a :class:`~fundtrail.model.trace.TraceResult` with a
conservation :class:`~fundtrail.model.trace.Balance` per chain and asset.
"""

from __future__ import annotations

import heapq
import time as _time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from fundtrail.errors import NotFoundError, UsageError
from fundtrail.model.address import normalize
from fundtrail.model.amount import parse_units
from fundtrail.model.chain import BITCOIN_NETWORKS
from fundtrail.model.trace import (
    AssetAmount,
    Balance,
    Candidate,
    Crossing,
    Deposit,
    Endpoint,
    Holding,
    MixerUse,
    PeelChain,
    Seed,
    Stopped,
    TraceResult,
)
from fundtrail.progress import NullProgress, Progress
from fundtrail.store import Workspace
from fundtrail.trace import crossing as X
from fundtrail.trace.asof import as_of
from fundtrail.trace.graph import cached, evm_ledger, release_memory, utxo_graph
from fundtrail.trace.peel import peel_chains
from fundtrail.trace.stops import Label, Labels, coinjoin_txids, load_labels
from fundtrail.trace.taint import (
    BRIDGE,
    BURNED,
    ENDPOINT,
    KIND_FEE,
    MIXER,
    MODELS,
    S_BRIDGE,
    S_MIXER,
    S_SERVICE,
    SINK_COINBASE,
    SINK_FEE,
    STOP_DUST,
    STOP_HOPS,
    UNSPENT,
    EvmTaint,
    Move,
    run_utxo,
    split_exact,
)

MAX_ROUNDS = 4
MAX_PATHS = 3
MAX_PATH_LEN = 64
MAX_STOPPED_ROWS = 25
MAX_ADDRESSES = 20


# --- records of one leg --------------------------------------------------------------------------------

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

    def b(self, asset: str) -> Bucket:
        return self.buckets.setdefault(asset, Bucket())

    def stop(self, asset: str, reason: str, amount: int, address: str | None, txid: str | None) -> None:
        row = self.stopped.setdefault((asset, reason, address), [0, txid])
        row[0] += amount


# --- context shared by the legs of one trace -------------------------------------------------------------

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


def _labels(ws: Workspace, chain: str, book: X.CrossBook, kind: str) -> Labels:
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


def _coinjoin_mask(ws: Workspace, chain: str, g: Any) -> np.ndarray:
    def build(ws_: Workspace, chain_: str) -> np.ndarray:
        mask = np.zeros(g.ntx, np.bool_)
        ts = g.tx_numbers(sorted(coinjoin_txids(ws_, chain_)))
        mask[ts[ts >= 0]] = True
        return mask

    return cached(ws, chain, "coinjoin_mask", build)


def _ts(t: int | None) -> datetime | None:
    return datetime.fromtimestamp(int(t), UTC) if t is not None and t > 0 else None


def _to_unix(since: Any) -> int | None:
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
    return _to_unix(d)


# --- Bitcoin --------------------------------------------------------------------------------------------

def _utxo_seeds(ctx: Ctx, chain: str, seeds: Sequence[Seed]) -> dict[int, int]:
    g = utxo_graph(ctx.ws, chain)
    out: dict[int, int] = {}
    for s in seeds:
        if s.txid is not None:
            t = g.tx_number(s.txid.lower())
            if t is None:
                raise NotFoundError(f"transaction {s.txid} is not in chain {chain!r} of the workspace")
            if ctx.forward:
                nodes = range(int(g.tx_out_ptr[t]), int(g.tx_out_ptr[t + 1]))
                for o in nodes:
                    if s.n is not None and int(g.out_n[o]) != s.n:
                        continue
                    if g.out_value[o] > 0 and not g.out_opret[o]:
                        out[o] = int(g.out_value[o])
            else:  # backward from a transaction: where did its inputs come from = its outputs, traced back
                for o in range(int(g.tx_out_ptr[t]), int(g.tx_out_ptr[t + 1])):
                    if g.out_value[o] > 0 and not g.out_opret[o] and (s.n is None or int(g.out_n[o]) == s.n):
                        out[o] = int(g.out_value[o])
        elif s.address is not None:
            addr = normalize(chain, s.address)
            ids = X.address_ids(ctx.ws, chain, [addr])
            if addr not in ids:
                raise NotFoundError(f"address {addr} has no transactions in chain {chain!r} of the workspace")
            aid = ids[addr]
            nodes = np.flatnonzero(g.out_addr == aid)
            for o in nodes.tolist():
                t = int(g.out_tx[o])
                if ctx.since is not None and g.tx_time[t] < ctx.since:
                    continue
                i0, i1 = int(g.tx_in_ptr[t]), int(g.tx_in_ptr[t + 1])
                prev = g.in_node[i0:i1]
                prev = prev[prev >= 0]
                if len(prev) and (g.out_addr[prev] == aid).any():
                    continue  # change back to the seed address: not "received"
                if g.out_value[o] > 0:
                    out[o] = int(g.out_value[o])
    return out


def _utxo_leg(ctx: Ctx, chain: str, seeds: dict[int, int], injections: list[Injection]) -> Leg:
    ws = ctx.ws
    g = utxo_graph(ws, chain)
    labels = _labels(ws, chain, ctx.book, "utxo")
    cj = _coinjoin_mask(ws, chain, g)
    want: dict[int, int] = dict(seeds)
    hops0: dict[int, int] = {}
    for inj in injections:
        want[inj.target] = want.get(inj.target, 0) + inj.tainted
        hops0[inj.target] = inj.hop
    nodes = np.array(sorted(want), np.int64)
    taints = np.array([want[n] for n in nodes.tolist()], np.int64)
    leg = Leg(chain, "utxo")
    dust = ctx.dust_for(chain, "BTC")
    out = run_utxo(g, ctx.model, ctx.forward, cj, labels.stop, nodes, taints, ctx.max_hops, dust)
    b = leg.b("BTC")
    b.traced = int(np.minimum(taints, g.out_value[nodes]).sum()) if len(nodes) else 0
    b.absorbed = out.absorbed
    leg.txs = len(out.done)
    if len(nodes):
        leg.seed_time = int(g.tx_time[g.out_tx[nodes]].min())
    touched = out.nodes()
    st = out.status[touched]
    tn = out.taint[touched]
    addr_cache: dict[int, str] = X.address_strings(ws, chain, g.out_addr[touched[st != 1]])

    def astr(node: int) -> str:
        a = int(g.out_addr[node])
        return addr_cache.get(a, f"#{a}" if a >= 0 else "(no address)")

    def path(node: int) -> tuple[str, ...]:
        p: list[str] = []
        n = node
        for _ in range(MAX_PATH_LEN):
            t = int(g.out_tx[n]) if ctx.forward else int(g.out_spent_tx[n])
            if t < 0 or out.tx_hop[t] < 0:
                break
            p.append(g.txid_of(t))
            n = int(out.tx_best[t])
            if n < 0:
                break
        return tuple(reversed(p)) if ctx.forward else tuple(p)

    # endpoints and mixers: one event per output (with its evidence path)
    for node in touched[((st == ENDPOINT) | (st == MIXER)) & (tn > 0)].tolist():
        amt = int(out.taint[node])
        t_created = int(g.out_tx[node])
        when = int(g.tx_time[t_created])
        txid = g.txid_of(t_created)
        lab = labels.get(int(g.out_addr[node])) or Label("unknown", "other", None, False, False)
        if out.status[node] == ENDPOINT:
            b.endpoints += amt
        else:
            b.mixers += amt
            leg.mixers.append(MixEvent(lab, chain, astr(node), "BTC", amt, txid, when))
        leg.endpoints.append(EpEvent(lab, chain, "BTC", amt, int(out.hop[node]), when, path(node), astr(node),
                                     txid))
    # the rest in bulk, per address: unspent holdings and stopped value
    for code, reason in ((UNSPENT, None), (STOP_HOPS, "max_hops"), (STOP_DUST, "dust"), (BURNED, "op_return")):
        ns = touched[(st == code) & (tn > 0)]
        if not len(ns):
            continue
        a = g.out_addr[ns]
        order = np.argsort(a, kind="stable")
        ns, a = ns[order], a[order]
        starts = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
        amounts = out.taint[ns]
        if code == UNSPENT and ctx.model == "poison":
            # poison: a coin holding any taint is tainted whole (a CoinJoin output, split by haircut, too);
            # the clean part it takes in is poison's growth
            whole = g.out_value[ns]
            b.absorbed += int((whole - amounts).sum())
            amounts = whole
        sums = np.add.reduceat(amounts, starts)
        times = np.minimum.reduceat(g.tx_time[g.out_tx[ns]], starts)
        total = int(sums.sum())
        if code == UNSPENT:
            b.unspent += total
            for i, n0 in enumerate(ns[starts].tolist()):
                lab = labels.get(int(g.out_addr[n0]))
                leg.holdings.append((astr(n0), "BTC", int(sums[i]), int(times[i]), lab.entity if lab else None))
            continue
        if code == STOP_HOPS:
            b.stopped_hops += total
        elif code == STOP_DUST:
            b.stopped_dust += total
        else:
            b.other_stopped += total
        top = np.argsort(-sums, kind="stable")
        for i in top[:MAX_STOPPED_ROWS].tolist():
            n0 = int(ns[starts[i]])
            leg.stop("BTC", reason, int(sums[i]), astr(n0) if code != BURNED else None,
                     g.txid_of(int(g.out_tx[n0])))
        rest = int(sums[top[MAX_STOPPED_ROWS:]].sum())
        if rest:
            leg.stop("BTC", reason, rest, None, None)
    # fees / coinbase / missing history
    for kind, amt in zip(out.sink_kind.tolist(), out.sink.tolist(), strict=True):
        if amt <= 0:
            continue
        if kind == SINK_FEE:
            b.fees += amt
        elif kind == SINK_COINBASE:
            b.other_stopped += amt
            leg.stop("BTC", "coinbase", amt, None, None)
        else:
            b.other_stopped += amt
            leg.stop("BTC", "missing_history", amt, None, None)
    # bridges: group the bridge-wallet outputs per deposit transaction
    bnodes = touched[st == BRIDGE]
    by_tx: dict[int, list[int]] = {}
    for node in bnodes.tolist():
        by_tx.setdefault(int(g.out_tx[node]), []).append(node)
    for t, ns in sorted(by_tx.items()):
        tainted = int(out.taint[ns].sum())
        deposited = int(g.out_value[ns].sum())
        txid = g.txid_of(t)
        hop = int(out.hop[ns].min())
        rel = ctx.book.releases_by_srctx.get((chain, txid)) if ctx.forward else None
        inj = _release_injection(ctx, rel, tainted, deposited, hop) if rel is not None else None
        if inj is None:
            b.other_stopped += tainted
            leg.stop("BTC", "unmatched_bridge" if ctx.forward else "bridge", tainted, astr(ns[0]), txid)
            continue
        injs, to_asset, to_amount, to_dec = inj
        b.crossed_out += tainted
        leg.injections.extend(injs)
        lab = labels.get(int(g.out_addr[ns[0]]))
        leg.bridges.append(Crossing("bridge", lab.entity if lab else astr(ns[0]), chain, "BTC", tainted, 8,
                                    rel.chain, to_asset, to_amount, to_dec, txid, rel.txid, "src_tx", 1.0,
                                    _ts(int(g.tx_time[t]))))
    # holdings: one per address
    agg: dict[tuple[str, str], list[Any]] = {}
    for a, asset, amt, t, ent in leg.holdings:
        row = agg.setdefault((a, asset), [0, t, ent])
        row[0] += amt
        row[1] = min(row[1], t)
    leg.holdings = [(a, asset, v[0], v[1], v[2]) for (a, asset), v in agg.items()]
    if ctx.forward:
        leg.peels = peel_chains(g, out, labels)
    return leg


def _release_injection(ctx: Ctx, rel: X.BridgeRelease, tainted: int, deposited: int, hop: int):
    """Where a matched bridge release lands: injections into the destination chain's leg."""
    if deposited <= 0 or tainted <= 0:
        return None
    ws = ctx.ws
    if rel.kind == "evm":
        try:
            L = evm_ledger(ws, rel.chain)
        except Exception:  # noqa: BLE001
            return None
        asset = "ETH" if (rel.token or X.ZERO_ADDRESS) == X.ZERO_ADDRESS else rel.token
        ids = X.address_ids(ws, rel.chain, [rel.recipient] if rel.recipient else [])
        rid = ids.get(rel.recipient or "", -1)
        best = None
        for e in L.tx_rows(rel.txid):
            if L.kind[e] == KIND_FEE:
                continue
            a = L.asset_of(e)
            if (a == asset or (asset == "ETH" and not a.startswith("0x"))) and (rid < 0 or L.dst[e] == rid):
                if best is None or L.amount(e) == rel.amount:
                    best = e
        if best is None:
            return None
        amt = L.amount(best)
        share = amt * tainted // deposited if ctx.model != "poison" else amt
        share = min(share, amt)
        dec, _sym = ctx.asset_meta(rel.chain, L.asset_of(best))
        return [Injection(rel.chain, int(best), share, hop)], L.asset_of(best), share, dec
    # Bitcoin release: the outputs not returning to the bridge wallet
    g = utxo_graph(ws, rel.chain)
    t = g.tx_number(rel.txid)
    if t is None:
        return None
    wallet = ctx.book.btc_bridge_wallet.get(rel.chain, set())
    outs = [o for o in range(int(g.tx_out_ptr[t]), int(g.tx_out_ptr[t + 1]))
            if g.out_value[o] > 0 and not g.out_opret[o] and int(g.out_addr[o]) not in wallet]
    if not outs:
        return None
    vals = [int(g.out_value[o]) for o in outs]
    total = sum(vals)
    tot_t = total if ctx.model == "poison" else min(total, total * tainted // deposited)
    shares = split_exact(tot_t, vals)
    return ([Injection(rel.chain, o, s, hop) for o, s in zip(outs, shares, strict=True) if s > 0], "BTC", tot_t, 8)


# --- EVM ------------------------------------------------------------------------------------------------

def _evm_seed_rows(ctx: Ctx, chain: str, seeds: Sequence[Seed]) -> dict[int, int]:
    L = evm_ledger(ctx.ws, chain, reverse=not ctx.forward)
    out: dict[int, int] = {}
    for s in seeds:
        if s.txid is not None:
            rows = L.tx_rows(s.txid.lower())
            if not len(rows):
                raise NotFoundError(f"transaction {s.txid} has no transfers in chain {chain!r} of the workspace")
            for e in rows:
                if L.kind[e] != KIND_FEE and L.dst[e] >= 0 and L.amount(e) > 0:
                    out[e] = L.amount(e)
        elif s.address is not None:
            addr = normalize(chain, s.address)
            ids = X.address_ids(ctx.ws, chain, [addr])
            if addr not in ids:
                raise NotFoundError(f"address {addr} has no transfers in chain {chain!r} of the workspace")
            aid = ids[addr]
            for e in L.entries(aid).tolist():
                # forward: what the address received; backward (reversed ledger): the same rows, now
                # leaving the address towards their senders
                mine = L.dst[e] == aid if ctx.forward else L.src[e] == aid
                other = L.src[e] if ctx.forward else L.dst[e]
                if not mine or other == aid or L.kind[e] == KIND_FEE:
                    continue
                if ctx.since is not None and L.time[e] < ctx.since:
                    continue
                sw = L.swaps.get(L.txid_of(e))
                if sw is not None and sw.trader == aid and (e in sw.out_rows or e in sw.in_rows):
                    continue  # the address's own swap: the trace converts it (not a new receipt)
                if L.amount(e) > 0:
                    out[e] = L.amount(e)
    return out


def _evm_leg(ctx: Ctx, chain: str, seeds: dict[int, int], injections: list[Injection]) -> Leg:
    ws = ctx.ws
    L = evm_ledger(ws, chain, reverse=not ctx.forward)
    labels = _labels(ws, chain, ctx.book, "evm")
    leg = Leg(chain, "evm")
    eng = EvmTaint(L, ctx.model)
    inj: dict[int, tuple[int, int]] = {}
    for i in injections:
        t, h = inj.get(i.target, (0, i.hop))
        inj[i.target] = (t + i.tainted, min(h, i.hop))
    heap: list[tuple[int, int]] = [(e, -1) for e in sorted(set(seeds) | set(inj))]
    heapq.heapify(heap)
    cursor: dict[int, int] = {}
    link: dict[int, int] = {}
    swap_acc: dict[str, list[int]] = {}  # txid -> [amount_in, tainted_in, hop, in_row, asset]
    swap_done: dict[str, dict[int, int]] = {}
    used_withdrawals: set[str] = set()
    addr_cache: dict[int, str] = {}
    if seeds:
        leg.seed_time = int(min(L.time[e] for e in seeds))

    def astr_now(a: int) -> str:
        a = int(a)
        if a not in addr_cache:
            addr_cache.update(X.address_strings(ws, chain, [a]))
        return addr_cache.get(a, f"#{a}" if a >= 0 else "(none)")

    # the addresses of stops, endpoints and holdings are resolved together after the walk (one query):
    # until then a record holds a placeholder naming the id
    deferred: set[int] = set()

    def astr(a: int) -> str:
        a = int(a)
        if a in addr_cache:
            return addr_cache[a]
        deferred.add(a)
        return f"{_PENDING}{a}"

    def activate(acct: int, e: int) -> None:
        if acct < 0 or acct in cursor:
            return
        ents = L.entries(acct)
        pos = int(np.searchsorted(ents, e, side="right"))
        cursor[acct] = pos
        if pos < len(ents):
            heapq.heappush(heap, (int(ents[pos]), acct))

    def path(e: int) -> tuple[str, ...]:
        p: list[str] = []
        seen: set[int] = set()
        while e >= 0 and e not in seen and len(p) < MAX_PATH_LEN:
            seen.add(e)
            t = L.txid_of(e)
            if not p or p[-1] != t:
                p.append(t)
            e = link.get(e, -1)
        return tuple(reversed(p)) if ctx.forward else tuple(p)

    last = -1
    while heap:
        e, acct = heapq.heappop(heap)
        if acct >= 0:
            ents = L.entries(acct)
            pos = cursor[acct] + 1
            cursor[acct] = pos
            if pos < len(ents):
                heapq.heappush(heap, (int(ents[pos]), acct))
        if e == last:
            continue
        last = e
        s, d, ai = int(L.src[e]), int(L.dst[e]), int(L.asset[e])
        x = L.amount(e)
        asset = L.assets[ai]
        b = leg.b(asset)
        txid = L.txid_of(e)
        when = int(L.time[e])
        mv = None
        hop_next = 0
        prev = -1
        st_s = eng.state(s, ai) if s >= 0 and s != d else None
        if st_s is not None:
            mv = eng.outflow(st_s, x, ai)
            hop_next = st_s.hop + 1
            prev = st_s.pred
        if L.kind[e] == KIND_FEE:
            if mv is not None:
                b.fees += mv.tainted
            continue
        if s == d:
            continue
        sw = L.swaps.get(txid)
        if e in seeds:
            carried = mv.tainted if mv is not None else 0
            b.traced += x - carried
            mvin = Move(x, x)
            hop_next, prev = 0, -1
        elif e in inj:
            it, ih = inj[e]
            carried = mv.tainted if mv is not None else 0
            tainted = min(x, it + carried)
            b.traced += tainted - carried
            mvin = Move(x, tainted) if mv is None or ctx.model != "fifo" else Move(x, tainted)
            hop_next, prev = (ih if mv is None else min(ih, hop_next)), prev
        elif sw is not None and d == sw.trader and e in sw.out_rows and txid in swap_acc:
            acc = swap_acc[txid]
            if txid not in swap_done:  # share the swap's taint over its out-legs once
                amts = [L.amount(r) for r in sw.out_rows]
                if ctx.model == "poison":
                    shares = amts if acc[1] > 0 else [0] * len(amts)
                else:
                    tot = sum(amts)
                    shares = split_exact(min(tot, tot * acc[1] // acc[0]) if acc[0] else 0, amts)
                swap_done[txid] = dict(zip(sw.out_rows, shares, strict=True))
                via_lab = labels.get(int(L.dst[acc[3]]))
                out_assets = sorted({L.assets[int(L.asset[r])] for r in sw.out_rows})
                fa = L.assets[acc[4]]
                fdec, _ = ctx.asset_meta(chain, fa)
                tdec, _ = ctx.asset_meta(chain, out_assets[0])
                leg.swaps.append(Crossing("swap", via_lab.entity if via_lab else astr_now(int(L.dst[acc[3]])), chain,
                                          fa, acc[1], fdec, chain, out_assets[0], sum(shares), tdec, txid, txid,
                                          "same_tx", 1.0, _ts(when)))
            share = swap_done[txid].get(e, 0)
            b.traced += share
            mvin = Move(x, share)
            hop_next, prev = acc[2], acc[3]
        else:
            mvin = mv if mv is not None else Move(x, 0)
        t = mvin.tainted
        if t <= 0:
            st_d = eng.state(d, ai) if d >= 0 else None
            if st_d is not None:
                eng.inflow(st_d, Move(x, 0), ai)
            continue
        link[e] = prev
        leg.txs += 1
        # swap in-leg: the taint continues in the other asset (out-legs, later in this transaction)
        if sw is not None and s == sw.trader and e in sw.in_rows:
            b.crossed_out += t
            acc = swap_acc.setdefault(txid, [0, 0, hop_next, e, ai])
            acc[0] += x
            acc[1] += t
            acc[2] = min(acc[2], hop_next)
            continue
        k = labels.kind(d) if d >= 0 else 0
        # bridge deposit
        deps = ctx.book.deposits_by_tx.get((chain, txid)) if ctx.forward else None
        if deps and k == S_BRIDGE:
            dep = next((dp for dp in deps if dp.amount == x), deps[0])
            rel, how, conf = ctx.book.match_release(dep)
            res = _release_injection(ctx, rel, t, dep.amount or x, hop_next) if rel is not None else None
            if res is None:
                b.other_stopped += t
                leg.stop(asset, "unmatched_bridge", t, astr(d), txid)
                continue
            injs, to_asset, to_amount, to_dec = res
            b.crossed_out += t
            leg.injections.extend(injs)
            fdec, _ = ctx.asset_meta(chain, asset)
            lab = labels.get(d)
            leg.bridges.append(Crossing("bridge", lab.entity if lab else astr_now(d), chain, asset, t, fdec, rel.chain,
                                        to_asset, to_amount, to_dec, txid, rel.txid, how, conf, _ts(when)))
            continue
        dust = ctx.dust_for(chain, asset)
        st_d = eng.state(d, ai) if d >= 0 else None
        if dust and t < dust:
            b.stopped_dust += t
            leg.stop(asset, "dust", t, astr(d), txid)
            if st_d is not None:
                eng.inflow(st_d, Move(x, 0), ai)
            continue
        if hop_next > ctx.max_hops:
            b.stopped_hops += t
            leg.stop(asset, "max_hops", t, astr(d), txid)
            if st_d is not None:
                eng.inflow(st_d, Move(x, 0), ai)
            continue
        if k == S_SERVICE:
            b.endpoints += t
            lab = labels.get(d)
            leg.endpoints.append(EpEvent(lab, chain, asset, t, hop_next, when, path(e), astr(d), txid))
            continue
        if k == S_MIXER:
            lab = labels.get(d)
            pool = astr_now(d)
            cands, n = ctx.book.candidates(chain, pool, when) if ctx.forward else ([], 0)
            cand_recs = tuple(Candidate(w.txid, w.to, x - w.fee, _ts(w.time), round(1.0 / n, 4)) for w in cands)
            followed = False
            if ctx.follow_mixers and ctx.forward:
                w = next((w for w in cands if w.txid not in used_withdrawals), None)
                row = None
                if w is not None:
                    ids = X.address_ids(ws, chain, [w.to])
                    for r in L.tx_rows(w.txid):
                        if L.src[r] == d and L.dst[r] == ids.get(w.to, -2) and int(L.asset[r]) == ai:
                            row = r
                if w is not None and row is not None and row > e:
                    used_withdrawals.add(w.txid)
                    paid = L.amount(row)
                    share = paid if ctx.model == "poison" else min(paid, t * paid // x if x else 0)
                    cur = inj.get(row, (0, hop_next + 1))
                    inj[row] = (cur[0] + share, min(cur[1], hop_next + 1))
                    heapq.heappush(heap, (int(row), -1))
                    link[row] = e
                    followed = True
            if followed:
                b.crossed_out += t
            else:
                b.mixers += t
            leg.mixers.append(MixEvent(lab, chain, pool, asset, t, txid, when, cand_recs, followed))
            if not followed:
                leg.endpoints.append(EpEvent(lab, chain, asset, t, hop_next, when, path(e), pool, txid))
            continue
        if k == S_BRIDGE:
            b.other_stopped += t
            leg.stop(asset, "unmatched_bridge" if ctx.forward else "bridge", t, astr(d), txid)
            continue
        if d < 0:
            b.other_stopped += t
            leg.stop(asset, "burned", t, None, txid)
            continue
        st_d = eng.ensure(d, ai, e, hop_next, when)
        eng.inflow(st_d, mvin, ai)
        if hop_next < st_d.hop:
            st_d.hop = hop_next
        if t > st_d.pred_amt:
            st_d.pred, st_d.pred_amt = e, t
        activate(d, e)
    for asset_i, v in eng.absorbed.items():
        leg.b(L.assets[asset_i]).absorbed += v
    for (acct, ai), st in eng.states.items():
        if st.taint > 0:
            asset = L.assets[ai]
            leg.b(asset).unspent += st.taint
            lab = labels.get(acct)
            leg.holdings.append((astr(acct), asset, st.taint, st.since, lab.entity if lab else None))
    if deferred:
        addr_cache.update(X.address_strings(ws, chain, sorted(deferred)))

        def real(text: str | None) -> str | None:
            if text is None or not text.startswith(_PENDING):
                return text
            a = int(text[len(_PENDING):])
            return addr_cache.get(a, f"#{a}" if a >= 0 else "(none)")

        for ev in leg.endpoints:
            ev.address = real(ev.address)
        stopped: dict[tuple[str, str, str | None], list[Any]] = {}
        for (asset, reason, addr), row in leg.stopped.items():
            key = (asset, reason, real(addr))
            if key in stopped:
                stopped[key][0] += row[0]
            else:
                stopped[key] = row
        leg.stopped = stopped
        leg.holdings = [(real(a), asset, amt, t, ent) for a, asset, amt, t, ent in leg.holdings]
    return leg


_PENDING = "\x00addr#"


# --- the service ------------------------------------------------------------------------------------------

def trace(ws: Workspace, seeds: Sequence[Seed], *, model: str = "haircut", direction: str = "forward",
          max_hops: int = 20, dust: Any = None, since: Any = None, follow_mixers: bool = False,
          prices: Any = None, progress: Progress = NullProgress(), as_of_height: Any = None,
          tags_as_of: Any = None) -> TraceResult:
    """Trace funds from ``seeds``. ``dust``: an int in base units for every asset, or a decimal string
    in whole units (converted per asset); ``since``: a date/ISO time, or unix seconds. ``as_of_height``
    (H, ``CHAIN=H`` or a mapping) and ``tags_as_of`` (a time) trace the workspace as it stood then
    (trace/asof.py)."""
    # --- as of (evidence, issue 17): pinned view of the workspace; the filtering lives in trace/asof.py
    ws = as_of(ws, as_of_height, tags_as_of)
    # --- end as of
    if model not in MODELS:
        raise UsageError(f"unknown taint model {model!r} (poison, haircut, fifo)")
    if direction not in ("forward", "backward"):
        raise UsageError(f"unknown direction {direction!r} (forward, backward)")
    if not seeds:
        raise UsageError("a trace needs at least one seed (an address or a transaction)")
    if max_hops < 0:
        raise UsageError("--max-hops must be 0 or more")
    task = progress.task("trace", total=None, unit="rounds")
    t0 = _time.perf_counter()
    ctx = Ctx(ws, model, direction == "forward", int(max_hops), dust, _to_unix(since), follow_mixers,
              X.cross_book(ws))
    by_chain: dict[str, list[Seed]] = {}
    for s in seeds:
        by_chain.setdefault(s.chain, []).append(s)
    seed_sets: dict[str, dict[int, int]] = {}
    kinds: dict[str, str] = {}
    for chain, ss in by_chain.items():
        kinds[chain] = ctx.kind(chain)
        seed_sets[chain] = (_utxo_seeds if kinds[chain] == "utxo" else _evm_seed_rows)(ctx, chain, ss)
    injections: dict[str, list[Injection]] = {}
    legs: dict[str, Leg] = {}
    rounds = 0
    for _round in range(1, MAX_ROUNDS + 1):
        rounds = _round
        legs = {}
        for chain in sorted(set(seed_sets) | set(injections)):
            kind = kinds.get(chain) or ctx.kind(chain)
            kinds[chain] = kind
            run = _utxo_leg if kind == "utxo" else _evm_leg
            legs[chain] = run(ctx, chain, seed_sets.get(chain, {}), injections.get(chain, []))
        new: dict[str, list[Injection]] = {}
        for leg in legs.values():
            for i in leg.injections:
                new.setdefault(i.chain, []).append(i)
        new = {c: sorted(v, key=lambda i: (i.target, i.tainted, i.hop)) for c, v in new.items()}
        task.advance(1)
        if new == injections:
            break
        injections = new
    task.close()
    elapsed = _time.perf_counter() - t0
    release_memory()  # the legs' scratch (dense per-output arrays) is gone: give its pages back
    return _assemble(ctx, seeds, legs, prices, {"max_hops": max_hops, "dust": None if dust is None else str(dust),
                                                "since": None if since is None else str(since),
                                                "follow_mixers": follow_mixers, "rounds": rounds,
                                                "transactions_traced": sum(leg.txs for leg in legs.values()),
                                                "seconds": round(elapsed, 4),
                                                "warnings": clustering_warnings(ws, sorted(legs)),
                                                **_as_of_params(ws)})


def _as_of_params(ws: Workspace) -> dict[str, Any]:
    """The pins of an as-of view (trace/asof.py) for ``TraceResult.params``; nothing for a plain workspace."""
    pins = getattr(ws, "pins", None)
    return {"as_of": pins} if pins is not None else {}


def clustering_warnings(ws: Workspace, chains: Sequence[str]) -> list[str]:
    """Chains traced without clusters up to their tip. Attribution through clusters (an exchange's
    untagged deposit addresses) is then missing, and funds look as if they went on to the hot wallet."""
    out = []
    for chain in chains:
        state = ws.chain(chain) or {}
        tip = state.get("tip_height")
        done = (ws.setting(f"cluster:{chain}") or {}).get("height")
        if done is None:
            out.append(f"chain {chain} has not been clustered: run `fundtrail cluster --chain {chain}` so that "
                       "untagged addresses of attributed services (deposit addresses) count as endpoints")
        elif tip is not None and done < tip:
            out.append(f"chain {chain} is clustered through height {done} but ingested to {tip}: run "
                       f"`fundtrail cluster --chain {chain}` to bring its clusters up to date")
    return out


def _usd(prices: Any, chain: str, asset: str, symbol: str | None, when: int | None, amount: int,
         decimals: int) -> float | None:
    if prices is None or amount == 0:
        return None if prices is None else 0.0
    try:
        return prices.usd(chain, asset, symbol, _ts(when), amount, decimals)
    except Exception:  # noqa: BLE001 - a missing price is null, not a failed trace
        return None


def _sum_usd(vals: list[float | None]) -> float | None:
    known = [v for v in vals if v is not None]
    return round(sum(known), 2) if known else None


def _assemble(ctx: Ctx, seeds: Sequence[Seed], legs: dict[str, Leg], prices: Any,
              params: dict[str, Any]) -> TraceResult:
    traced: list[AssetAmount] = []
    balances: list[Balance] = []
    for chain, leg in sorted(legs.items()):
        for asset, b in sorted(leg.buckets.items()):
            dec, sym = ctx.asset_meta(chain, asset)
            if b.traced or b.absorbed:
                traced.append(AssetAmount(chain, asset, b.traced, dec, sym,
                                          _usd(prices, chain, asset, sym, leg.seed_time, b.traced, dec)))
            balances.append(Balance(chain, asset, dec, b.traced, b.endpoints, b.unspent, b.fees, b.stopped_hops,
                                    b.stopped_dust, b.mixers, b.crossed_out, b.other_stopped, b.absorbed))
    # endpoints by entity, chain and asset
    groups: dict[tuple[str, str, str, str], list[EpEvent]] = {}
    for leg in legs.values():
        for ev in leg.endpoints:
            groups.setdefault((ev.label.entity, ev.label.category, ev.chain, ev.asset), []).append(ev)
    endpoints: list[Endpoint] = []
    for (entity, category, chain, asset), evs in groups.items():
        dec, sym = ctx.asset_meta(chain, asset)
        evs_sorted = sorted(evs, key=lambda v: (-v.amount, v.time, v.txid))
        paths: list[tuple[str, ...]] = []
        for v in evs_sorted:
            if v.path and v.path not in paths:
                paths.append(v.path)
            if len(paths) >= MAX_PATHS:
                break
        addrs = sorted({v.address for v in evs})[:MAX_ADDRESSES]
        lab = evs[0].label
        endpoints.append(Endpoint(
            entity=entity, category=category, country=lab.country, chain=chain, asset=asset,
            amount=sum(v.amount for v in evs), decimals=dec,
            usd=_sum_usd([_usd(prices, chain, asset, sym, v.time, v.amount, dec) for v in evs]) if prices else None,
            hops=min(v.hops for v in evs), first_seen=_ts(min(v.time for v in evs)),
            last_seen=_ts(max(v.time for v in evs)), paths=tuple(paths), addresses=tuple(addrs), symbol=sym,
            sanctioned=any(v.label.sanctioned for v in evs),
            deposits=tuple(Deposit(v.address, v.txid, v.amount, _ts(v.time)) for v in evs_sorted)))  # evidence
    endpoints.sort(key=lambda e: (e.chain, e.asset, -e.amount, e.entity))
    unspent: list[Holding] = []
    for chain, leg in legs.items():
        for a, asset, amt, t, ent in leg.holdings:
            dec, sym = ctx.asset_meta(chain, asset)
            unspent.append(Holding(chain, a, asset, amt, dec, _usd(prices, chain, asset, sym, t, amt, dec),
                                   _ts(t), ent, sym))
    unspent.sort(key=lambda h: (h.chain, h.asset, -h.amount, h.address))
    mixers: list[MixerUse] = []
    mgroups: dict[tuple[str, str, str, bool], list[MixEvent]] = {}
    for leg in legs.values():
        for m in leg.mixers:
            mgroups.setdefault((m.chain, m.pool, m.asset, m.followed), []).append(m)
    for (chain, pool, asset, followed), ms in sorted(mgroups.items()):
        dec, sym = ctx.asset_meta(chain, asset)
        cands: list[Candidate] = []
        for m in ms:
            for c in m.candidates:
                if c not in cands:
                    cands.append(c)
        amt = sum(m.amount for m in ms)
        mixers.append(MixerUse(chain, ms[0].label.entity, pool, asset, amt, dec, tuple(m.txid for m in ms),
                               tuple(cands[:10]), followed,
                               _sum_usd([_usd(prices, chain, asset, sym, m.time, m.amount, dec) for m in ms])
                               if prices else None))
    stopped: list[Stopped] = []
    for chain, leg in sorted(legs.items()):
        rows = sorted(leg.stopped.items(), key=lambda kv: (-kv[1][0], kv[0][1], str(kv[0][2])))
        rest: dict[tuple[str, str], int] = {}
        for i, ((asset, reason, addr), (amt, txid)) in enumerate(rows):
            dec, _ = ctx.asset_meta(chain, asset)
            if i < MAX_STOPPED_ROWS:
                stopped.append(Stopped(chain, asset, amt, dec, reason, addr, txid))
            else:
                rest[(asset, reason)] = rest.get((asset, reason), 0) + amt
        for (asset, reason), amt in sorted(rest.items()):
            dec, _ = ctx.asset_meta(chain, asset)
            stopped.append(Stopped(chain, asset, amt, dec, reason, None, None))
    return TraceResult(
        model=ctx.model, direction="forward" if ctx.forward else "backward", seeds=tuple(seeds),
        traced=tuple(traced), endpoints=tuple(endpoints), unspent=tuple(unspent), mixers=tuple(mixers),
        bridges=tuple(c for leg in legs.values() for c in leg.bridges),
        swaps=tuple(c for leg in legs.values() for c in leg.swaps), stopped=tuple(stopped),
        peel_chains=tuple(p for leg in legs.values() for p in leg.peels), balances=tuple(balances), params=params)


def trace_models(ws: Workspace, seeds: Sequence[Seed], models: Sequence[str] = ("poison", "haircut", "fifo"),
                 **kw: Any) -> dict[str, TraceResult]:
    """The same trace under several models (``--model all``)."""
    return {m: trace(ws, seeds, model=m, **kw) for m in models}


__all__ = ["trace", "trace_models", "MAX_ROUNDS", "S_MIXER", "S_SERVICE"]
