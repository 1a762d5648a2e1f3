"""Where a matched bridge release lands: the injections of taint into the destination chain's leg (an EVM
ledger row, or the Bitcoin outputs of the release not returning to the bridge wallet)."""

from __future__ import annotations

from fundtrail.trace import crossing as X
from fundtrail.trace.context import Ctx
from fundtrail.trace.graph import evm_ledger, utxo_graph
from fundtrail.trace.leg import Injection
from fundtrail.trace.taint import KIND_FEE, split_exact


def release_injection(ctx: Ctx, rel: X.BridgeRelease, tainted: int, deposited: int, hop: int):
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

