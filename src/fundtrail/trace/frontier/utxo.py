"""The Bitcoin leg of a trace: seeds resolved to outputs, the numba output-level kernel
(:func:`~fundtrail.trace.taint.run_utxo`) over the cached :class:`~fundtrail.trace.graph.UtxoGraph`, and
its outcome rolled into a :class:`~fundtrail.trace.leg.Leg` (endpoints with paths, holdings per address,
stopped value, bridge deposits, peel chains)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fundtrail.errors import NotFoundError
from fundtrail.model.address import normalize
from fundtrail.model.trace import Crossing, Seed
from fundtrail.trace import crossing as X
from fundtrail.trace.context import Ctx, as_utc, chain_labels, coinjoin_mask, incident_label, incident_seeds
from fundtrail.trace.frontier.release import release_injection
from fundtrail.trace.graph import cached, evm_ledger, utxo_graph
from fundtrail.trace.leg import MAX_PATH_LEN, MAX_STOPPED_ROWS, EpEvent, Injection, Leg, MixEvent
from fundtrail.trace.peel import peel_chains
from fundtrail.trace.stops import Label
from fundtrail.trace.taint import (
    BRIDGE,
    BURNED,
    ENDPOINT,
    KIND_FEE,
    MIXER,
    SINK_COINBASE,
    SINK_FEE,
    STOP_DUST,
    STOP_HOPS,
    UNSPENT,
    run_utxo,
)


def utxo_seeds(ctx: Ctx, chain: str, seeds: Sequence[Seed]) -> dict[int, int]:
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
            aid = ctx.seed_address_id(chain, s.address, "transactions")
            for o in _received(g, aid, g.outputs_of(aid).tolist(), ctx.since):
                out[o] = int(g.out_value[o])
    return out


def _received(g: Any, aid: int, nodes: Sequence[int], since: int | None) -> list[int]:
    """Of the outputs ``nodes`` at address ``aid``: those it received (from ``since`` on), not the change
    it paid back to itself."""
    out = []
    for o in nodes:
        t = int(g.out_tx[o])
        if since is not None and g.tx_time[t] < since:
            continue
        i0, i1 = int(g.tx_in_ptr[t]), int(g.tx_in_ptr[t + 1])
        prev = g.in_node[i0:i1]
        prev = prev[prev >= 0]
        if len(prev) and (g.out_addr[prev] == aid).any():
            continue  # change back to the seed address: not "received"
        if g.out_value[o] > 0:
            out.append(int(o))
    return out


def incident_coins(ctx: Ctx, chain: str) -> dict[int, Label]:
    """The seed coins of every stored incident on ``chain`` (what a forward trace from the incident starts
    from), each labelled with its incident: the stops of a backward trace. The incidents' addresses' outputs
    come from the graph's address index; cached per workspace generation (storing an incident is a new
    generation)."""
    def build(ws: Any, chain_: str) -> dict[int, Label]:
        g = utxo_graph(ws, chain_)
        incs = incident_seeds(ctx, chain_)
        addrs = sorted({normalize(chain_, s.address) for _n, _c, ss in incs for s in ss if s.address is not None})
        ids = X.address_ids(ws, chain_, addrs) if addrs else {}
        want = np.array(sorted(set(ids.values())), np.int64)
        by_addr: dict[int, list[int]] = {}
        if len(want):
            for o in g.outputs_of_many(want).tolist():
                by_addr.setdefault(int(g.out_addr[o]), []).append(o)
        out: dict[int, Label] = {}
        for name, ictx, ss in incs:
            lab = incident_label(name)
            for s in ss:
                if s.address is not None:
                    aid = ids.get(normalize(chain_, s.address))
                    found = _received(g, aid, by_addr.get(aid, []), ictx.since) if aid is not None else []
                else:
                    try:
                        found = list(utxo_seeds(ictx, chain_, [s]))
                    except NotFoundError:  # an incident transaction this workspace does not hold
                        found = []
                for o in found:
                    out.setdefault(o, lab)
        return out

    return cached(ctx.ws, chain, "incident_coins", build)


def _incident_stop(ctx: Ctx, chain: str, inc_node: dict[int, Label]) -> np.ndarray:
    """The incidents' seed coins as one flag per output (the kernel's ``node_stop``), made once per
    workspace generation like :func:`incident_coins` itself."""
    def build(ws: Any, chain_: str) -> np.ndarray:
        mask = np.zeros(utxo_graph(ws, chain_).nout, np.bool_)
        mask[np.fromiter(inc_node, np.int64, len(inc_node))] = True
        return mask

    return cached(ctx.ws, chain, "incident_stop", build)


def utxo_leg(ctx: Ctx, chain: str, seeds: dict[int, int], injections: list[Injection]) -> Leg:
    ws = ctx.ws
    g = utxo_graph(ws, chain)
    labels = chain_labels(ws, chain, ctx.book, "utxo")
    cj = coinjoin_mask(ws, chain, g)
    want: dict[int, int] = dict(seeds)
    hops0: dict[int, int] = {}
    for inj in injections:
        want[inj.target] = want.get(inj.target, 0) + inj.tainted
        hops0[inj.target] = inj.hop
    nodes = np.array(sorted(want), np.int64)
    taints = np.array([want[n] for n in nodes.tolist()], np.int64)
    leg = Leg(chain, "utxo")
    dust = ctx.dust_for(chain, "BTC")
    # backward: a named incident's seed coins end the trace, credited to the incident by name
    inc_node: dict[int, Label] = {}
    node_stop = None
    if not ctx.forward:
        inc_node = incident_coins(ctx, chain)
        if inc_node:
            node_stop = _incident_stop(ctx, chain, inc_node)
    out = run_utxo(g, ctx.model, ctx.forward, cj, labels.stop, nodes, taints, ctx.max_hops, dust,
                   peel_txs=ctx.peel_txs, node_stop=node_stop)
    b = leg.b("BTC")
    b.traced = int(np.minimum(taints, g.out_value[nodes]).sum()) if len(nodes) else 0
    b.absorbed = out.absorbed
    leg.txs = len(out.done)
    leg.peel_free_txs = out.peel_free_txs
    if out.peel_hit >= 0:
        leg.peel_hit = g.txid_of(out.peel_hit)
    if len(nodes):
        leg.seed_time = int(g.tx_time[g.out_tx[nodes]].min())
    touched = out.nodes
    st = out.node_status
    tn = out.node_taint
    hp = out.node_hop
    addr_cache: dict[int, str] = X.address_strings(ws, chain, g.out_addr[touched[st != 1]])

    def astr(node: int) -> str:
        a = int(g.out_addr[node])
        return addr_cache.get(a, f"#{a}" if a >= 0 else "(no address)")

    def path(node: int) -> tuple[str, ...]:
        p: list[str] = []
        n = node
        for _ in range(MAX_PATH_LEN):
            t = int(g.out_tx[n]) if ctx.forward else int(g.out_spent_tx[n])
            if t < 0 or out.tx_hop_of(t) < 0:
                break
            p.append(g.txid_of(t))
            n = int(out.tx_best_of(t))
            if n < 0:
                break
        return tuple(reversed(p)) if ctx.forward else tuple(p)

    # endpoints and mixers: one event per output (with its evidence path)
    for i in np.flatnonzero(((st == ENDPOINT) | (st == MIXER)) & (tn > 0)).tolist():
        node = int(touched[i])
        amt = int(tn[i])
        t_created = int(g.out_tx[node])
        when = int(g.tx_time[t_created])
        txid = g.txid_of(t_created)
        lab = inc_node.get(node) or labels.get(int(g.out_addr[node])) or Label("unknown", "other", None, False,
                                                                               False)
        if st[i] == ENDPOINT:
            b.endpoints += amt
        else:
            b.mixers += amt
            leg.mixers.append(MixEvent(lab, chain, astr(node), "BTC", amt, txid, when))
        # an exchange's deposit output not spent yet: deposited, not yet swept (a freeze candidate)
        state = "unswept" if st[i] == ENDPOINT and int(g.out_spent_tx[node]) < 0 else "swept"
        leg.endpoints.append(EpEvent(lab, chain, "BTC", amt, int(hp[i]), when, path(node), astr(node),
                                     txid, state))
    # the rest in bulk, per address: unspent holdings and stopped value
    for code, reason in ((UNSPENT, None), (STOP_HOPS, "max_hops"), (STOP_DUST, "dust"), (BURNED, "op_return")):
        sel = (st == code) & (tn > 0)
        ns = touched[sel]
        if not len(ns):
            continue
        a = g.out_addr[ns]
        order = np.argsort(a, kind="stable")
        ns, a = ns[order], a[order]
        starts = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
        amounts = tn[sel][order]
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
    if not ctx.forward:
        # backward: the bridge-wallet coins a bridge release spent; crossed back to the deposit it pays out
        for node in bnodes.tolist():
            by_tx.setdefault(int(g.out_spent_tx[node]), []).append(node)
        for t, ns in sorted(by_tx.items()):
            _bridge_back(ctx, g, leg, b, t, ns, out, labels, astr)
        by_tx = {}
    for node in bnodes.tolist() if ctx.forward else ():
        by_tx.setdefault(int(g.out_tx[node]), []).append(node)
    for t, ns in sorted(by_tx.items()):
        tainted = int(out.taint_of(ns).sum())
        deposited = int(g.out_value[ns].sum())
        txid = g.txid_of(t)
        hop = int(out.hop_of(ns).min())
        rel = ctx.book.releases_by_srctx.get((chain, txid)) if ctx.forward else None
        inj = release_injection(ctx, rel, tainted, deposited, hop) if rel is not None else None
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
                                    as_utc(int(g.tx_time[t]))))
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




def _bridge_back(ctx: Ctx, g: Any, leg: Leg, b: Any, t: int, ns: list[int], out: Any, labels: Any,
                 astr: Any) -> None:
    """Backward across a bridge (the adjoint of :func:`~fundtrail.trace.frontier.release.release_injection`):
    the taint the backward walk brought to the bridge-wallet coins that release ``t`` spent is what the
    release's payouts owe to the deposit on the source chain; it goes on there as an injection at the
    deposit's ledger row, scaled from the release's payouts to the deposit (forward scales the other way).
    Unmatched (not a release, or its deposit unknown): stopped ``bridge``, as before."""
    tainted = int(out.taint_of(ns).sum())
    txid = g.txid_of(t) if t >= 0 else None
    rel = next((r for r in ctx.book.releases if r.chain == g.chain and r.txid == txid and r.kind == "btc"), None)
    dep = None
    if rel is not None and rel.deposit_id is not None:
        dep = next((d for ds in ctx.book.deposits_by_tx.values() for d in ds
                    if d.chain == rel.src_chain and d.deposit_id == rel.deposit_id), None)
    row = -1
    if dep is not None:
        try:
            L = evm_ledger(ctx.ws, dep.chain, reverse=True)
        except Exception:  # noqa: BLE001 - the source chain is not in the workspace
            L = None
        if L is not None:
            bid = X.address_ids(ctx.ws, dep.chain, [dep.bridge]).get(dep.bridge, -2)
            for e in L.tx_rows(dep.txid):
                if L.kind[e] != KIND_FEE and L.src[e] == bid and (row < 0 or L.amount(e) == dep.amount):
                    row = int(e)
    wallet = ctx.book.btc_bridge_wallet.get(g.chain, set())
    payouts = [o for o in range(int(g.tx_out_ptr[t]), int(g.tx_out_ptr[t + 1]))
               if g.out_value[o] > 0 and not g.out_opret[o] and int(g.out_addr[o]) not in wallet] if t >= 0 else []
    paid = sum(int(g.out_value[o]) for o in payouts)
    if row < 0 or paid <= 0 or tainted <= 0:
        b.other_stopped += tainted
        leg.stop("BTC", "bridge", tainted, astr(ns[0]), txid)
        return
    amt = L.amount(row)
    demand = amt if ctx.model == "poison" else min(amt, tainted * dep.amount // paid)
    b.crossed_out += tainted
    leg.injections.append(Injection(dep.chain, row, demand, int(out.hop_of(ns).min())))
    asset = L.asset_of(row)
    dec, _ = ctx.asset_meta(dep.chain, asset)
    lab = labels.get(int(g.out_addr[ns[0]]))
    leg.bridges.append(Crossing("bridge", lab.entity if lab else astr(ns[0]), g.chain, "BTC", tainted, 8, dep.chain,
                                asset, demand, dec, txid, dep.txid, "deposit_id", 1.0, as_utc(int(g.tx_time[t]))))
