"""The EVM leg of a trace: seeds resolved to ledger rows, and the account-level walk over the cached
:class:`~fundtrail.trace.graph.EvmLedger` in ledger order (:class:`~fundtrail.trace.taint.EvmTaint` per
account and asset), converting through DEX swaps, crossing bridges and stopping at services, mixers, dust
and the hop limit."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

import numpy as np

from fundtrail.errors import NotFoundError
from fundtrail.model.trace import Candidate, Crossing, PeelChain, Seed
from fundtrail.trace import crossing as X
from fundtrail.trace.context import (
    Ctx,
    as_utc,
    chain_labels,
    deposit_provenance,
    incident_label,
    incident_seeds,
)
from fundtrail.trace.frontier.release import release_injection
from fundtrail.trace.graph import evm_ledger
from fundtrail.trace.leg import MAX_PATH_LEN, EpEvent, Injection, Leg, MixEvent
from fundtrail.trace.peel import MIN_HOPS as PEEL_MIN_HOPS
from fundtrail.trace.stops import Label
from fundtrail.trace.taint import KIND_FEE, S_BRIDGE, S_MIXER, S_SERVICE, EvmTaint, Move, split_exact


def evm_seeds(ctx: Ctx, chain: str, seeds: Sequence[Seed]) -> dict[int, int]:
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
            aid = ctx.seed_address_id(chain, s.address, "transfers")
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


def evm_leg(ctx: Ctx, chain: str, seeds: dict[int, int], injections: list[Injection]) -> Leg:
    ws = ctx.ws
    L = evm_ledger(ws, chain, reverse=not ctx.forward)
    labels = chain_labels(ws, chain, ctx.book, "evm")
    # backward: a named incident's seed transfers end the trace, credited to the incident by name; the
    # haircut adjoint needs each account's balance in forward time (_BalanceAfter)
    inc_rows: dict[int, Label] = {}
    bal_after = None
    if not ctx.forward:
        for name, ictx, iseeds in incident_seeds(ctx, chain):
            for s in iseeds:
                try:
                    for r in evm_seeds(ictx, chain, [s]):
                        inc_rows.setdefault(r, incident_label(name))
                except NotFoundError:  # an incident seed this workspace does not hold
                    continue
        if ctx.model == "haircut":
            bal_after = _BalanceAfter(evm_ledger(ws, chain))
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

    deposits = deposit_provenance(ws, chain) if ctx.forward else {}
    chain_root: dict[tuple[int, int], tuple[int, int]] = {}  # (account, asset) -> its chain's first account
    fchains: dict[tuple[int, int], tuple[list[tuple[int, int]], list[tuple[int, int, int]]]] = {}
    last_outs: dict[tuple[int, int], int] = {}

    def last_out(acct: int, ai: int) -> int:
        """The last ledger entry moving asset ``ai`` out of ``acct`` (gas excluded), -1 if none."""
        key = (acct, ai)
        if key not in last_outs:
            ents = np.asarray(L.entries(acct))
            m = (L.src[ents] == acct) & (L.asset[ents] == ai) & (L.kind[ents] != KIND_FEE) & (L.dst[ents] != acct)
            last_outs[key] = int(ents[m].max()) if m.any() else -1
        return last_outs[key]

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
        forwards = False
        if st_s is not None:
            if bal_after is not None:
                # backward haircut: row e brought x into s (forward time) when s then held B; of the funds s
                # later paid out (the demand st_s.taint), the share x / B came from e (the adjoint of the
                # forward rule "an outflow carries outflow / balance of the taint")
                B = bal_after(s, ai, L, e)
                if B is not None and B >= x:
                    st_s.bal = B
            bal_before = st_s.bal
            mv = eng.outflow(st_s, x, ai)
            # the EVM peel chain: an account forwarding most of its balance on (to an account holding
            # none of the asset) continues the chain of the account that did the same to it; the chain
            # costs one hop in all, up to ctx.peel_txs transfers passed for free per leg
            forwards = ctx.peel_txs > 0 and L.kind[e] != KIND_FEE and bal_before > 0 and 2 * x >= bal_before
            free = forwards and st_s.cont and mv.tainted > 0
            if free and leg.peel_free_txs >= ctx.peel_txs:
                free = False
                if leg.peel_hit is None:
                    leg.peel_hit = L.txid_of(e)
            if free:
                leg.peel_free_txs += 1
            hop_next = st_s.hop if free else st_s.hop + 1
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
                                          "same_tx", 1.0, as_utc(when)))
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
        if inc_rows and e in inc_rows and e not in seeds:  # backward: a named incident's seed transfer
            b.endpoints += t
            leg.endpoints.append(EpEvent(inc_rows[e], chain, asset, t, hop_next, when, path(e), astr(s), txid))
            continue
        # forwarding chains (the EVM peel chain): a tainted outflow of a chain member is a peel, unless it
        # turns out below to be the chain's continuation
        root = chain_root.get((s, ai))
        if root is not None:
            fchains[root][1].append((e, t, d))
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
            res = release_injection(ctx, rel, t, dep.amount or x, hop_next) if rel is not None else None
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
                                        to_asset, to_amount, to_dec, txid, rel.txid, how, conf, as_utc(when)))
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
            # a deposit address / contract of the entity that never moved this asset on after e: deposited,
            # not yet swept (a freeze candidate at the entity)
            prov = deposits.get(d)
            state = "unswept" if prov is not None and last_out(d, ai) < e else "swept"
            leg.endpoints.append(EpEvent(lab, chain, asset, t, hop_next, when, path(e), astr(d), txid, state,
                                         prov))
            continue
        if k == S_MIXER:
            lab = labels.get(d)
            pool = astr_now(d)
            cands, n = ctx.book.candidates(chain, pool, when) if ctx.forward else ([], 0)
            cand_recs = tuple(Candidate(w.txid, w.to, x - w.fee, as_utc(w.time), round(1.0 / n, 4)) for w in cands)
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
        fresh = eng.state(d, ai) is None
        st_d = eng.ensure(d, ai, e, hop_next, when)
        # a continuation goes to an account holding none of the asset (a fresh link of the chain), not
        # to one that already has funds of its own
        forwards = forwards and st_d.bal == 0
        eng.inflow(st_d, mvin, ai)
        if fresh or hop_next < st_d.hop:
            st_d.hop = hop_next
            st_d.cont = forwards and mv is not None and mvin is mv
        elif hop_next == st_d.hop and forwards and mvin is mv:
            st_d.cont = True
        if forwards and mvin is mv and ctx.forward and (d, ai) not in chain_root:
            root = chain_root.setdefault((s, ai), (s, ai))
            steps, peels = fchains.setdefault(root, ([], []))
            if peels and peels[-1][0] == e:
                peels.pop()
            steps.append((e, t))
            chain_root[(d, ai)] = root
        if t > st_d.pred_amt:
            st_d.pred, st_d.pred_amt = e, t
        activate(d, e)
    leg.peels = _forwarding_chains(ctx, chain, L, labels, fchains)
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


class _BalanceAfter:
    """Backward haircut on EVM: an account's balance in forward time just after a ledger row (looked up
    by the row's height, transaction index, sequence and kind), from the forward ledger ``F``, one pass
    per account and asset."""

    def __init__(self, F: Any) -> None:
        self.F = F
        self.memo: dict[tuple[int, int], dict[tuple[int, int, int, int], int]] = {}

    def __call__(self, acct: int, ai: int, L: Any, e: int) -> int | None:
        m = self.memo.get((acct, ai))
        if m is None:
            F = self.F
            m = {}
            bal = 0
            for x in F.entries(acct).tolist():
                if F.asset[x] != ai:
                    continue
                a = F.amount(x)
                if F.dst[x] == acct and F.src[x] != acct and F.kind[x] != KIND_FEE:
                    bal += a
                elif F.src[x] == acct and F.dst[x] != acct:
                    bal -= a
                m[(int(F.height[x]), int(F.tx_index[x]), int(F.seq[x]), int(F.kind[x]))] = max(bal, 0)
            self.memo[(acct, ai)] = m
        return m.get((int(L.height[e]), int(L.tx_index[e]), int(L.seq[e]), int(L.kind[e])))


def _forwarding_chains(ctx: Ctx, chain: str, L: Any, labels: Any,
                       fchains: dict[tuple[int, int], tuple[list[tuple[int, int]], list[tuple[int, int, int]]]],
                       min_steps: int = PEEL_MIN_HOPS) -> list[PeelChain]:
    """The EVM forwarding chains of at least ``min_steps`` continuations as :class:`PeelChain` entries:
    ``hops`` = transfers along the chain, the peels by destination (the entity, else ``unattributed``)."""
    out: list[PeelChain] = []
    for (_acct, ai), (steps, peels) in sorted(fchains.items()):
        if len(steps) < min_steps:
            continue
        asset = L.assets[ai]
        dec, _sym = ctx.asset_meta(chain, asset)
        dest: dict[str, int] = {}
        for _e, amt, d in peels:
            lab = labels.get(d) if d >= 0 else None
            name = lab.entity if lab is not None and labels.kind(d) in (S_SERVICE, S_MIXER) else "unattributed"
            dest[name] = dest.get(name, 0) + amt
        peeled = sum(a for _e, a, _d in peels)
        out.append(PeelChain(chain=chain, asset=asset, start_txid=L.txid_of(steps[0][0]),
                             end_txid=L.txid_of(steps[-1][0]), hops=len(steps),
                             amount_in=steps[0][1] + sum(a for e, a, _d in peels if e < steps[0][0]),
                             peeled=peeled, decimals=dec,
                             peels_by_destination=tuple(sorted(dest.items(), key=lambda kv: (-kv[1], kv[0])))))
    return out
