"""``fundtrail trace``: follow funds from addresses or transactions (one service call, then render)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from fundtrail.cli.common import CliProgress, HomeOpt, console, emit_json, err_console, workspace
from fundtrail.errors import UsageError
from fundtrail.model.amount import format_units
from fundtrail.model.trace import PEEL_TXS, Seed, TraceResult

MODELS = ("poison", "haircut", "fifo")


def _prices(ws: Any) -> Any:
    try:
        from fundtrail.prices import PriceBook
    except ImportError:
        return None
    try:
        return PriceBook.load(ws)
    except Exception:  # noqa: BLE001 - no prices: usd stays null
        return None


def _usd(v: float | None) -> str:
    return "" if v is None else f"${v:,.2f}"


def _limits(r: TraceResult) -> None:
    """Value stopped at a limit, said first: how much, where, and the option that would go on."""
    for lim in r.limits:
        console.print(Text.assemble((f"LIMIT ({r.model}):", "bold red"), f" {lim.message}"), highlight=False,
                      soft_wrap=True)
        for a, txid in lim.where:
            console.print(f"    stopped at {a or '-'} (tx {txid or '-'})", highlight=False, soft_wrap=True)


def _render(r: TraceResult) -> None:
    seeds = ", ".join(s.address or s.txid or "" for s in r.seeds)
    console.print(Text.assemble((r.model, "bold"), f" trace, {r.direction}, from {seeds}"))
    _limits(r)
    t = Table(title="traced")
    for c in ("chain", "asset", "amount", "usd"):
        t.add_column(c)
    for a in r.traced:
        t.add_row(a.chain, a.symbol or a.asset, format_units(a.amount, a.decimals), _usd(a.usd))
    console.print(t)
    t = Table(title="endpoints")
    for c in ("entity", "category", "country", "chain", "asset", "amount", "usd", "hops", "state", "first seen",
              "path"):
        t.add_column(c, overflow="fold")
    for e in r.endpoints:
        path = " > ".join(x[:10] for x in e.paths[0]) if e.paths else ""
        state = e.state if e.state == "swept" else "unswept: " + " ".join(e.unswept_addresses) + (
            f" ({e.provenance})" if e.provenance else "")
        t.add_row(e.entity, e.category, e.country or "", e.chain, e.symbol or e.asset,
                  format_units(e.amount, e.decimals), _usd(e.usd), str(e.hops), state,
                  e.first_seen.strftime("%Y-%m-%d %H:%M") if e.first_seen else "", path)
    console.print(t)
    if r.unspent:
        t = Table(title=f"unspent (freeze candidates), {len(r.unspent)} addresses")
        for c in ("chain", "address", "asset", "amount", "usd", "since"):
            t.add_column(c, overflow="fold")
        for h in r.unspent[:25]:
            t.add_row(h.chain, h.address, h.symbol or h.asset, format_units(h.amount, h.decimals), _usd(h.usd),
                      h.since.strftime("%Y-%m-%d") if h.since else "")
        console.print(t)
    for title, rows in (("bridges", r.bridges), ("swaps", r.swaps)):
        if rows:
            t = Table(title=title)
            for c in ("via", "from", "amount", "to", "amount", "match", "confidence"):
                t.add_column(c, overflow="fold")
            for x in rows:
                t.add_row(x.via, f"{x.from_chain}/{x.from_asset}", format_units(x.from_amount, x.from_decimals),
                          f"{x.to_chain}/{x.to_asset}", format_units(x.to_amount, x.to_decimals), x.match,
                          f"{x.confidence:.2f}")
            console.print(t)
    if r.mixers:
        t = Table(title="mixers")
        for c in ("mixer", "chain", "asset", "amount", "deposits", "candidate withdrawals", "followed"):
            t.add_column(c, overflow="fold")
        for m in r.mixers:
            t.add_row(m.mixer, m.chain, m.asset, format_units(m.amount, m.decimals), str(len(m.deposits)),
                      str(len(m.candidates)), "yes" if m.followed else "no")
        console.print(t)
    if r.peel_chains:
        t = Table(title="peel chains (each costs one hop of the budget)")
        for c in ("start", "end", "transactions", "in", "peeled", "peels by destination"):
            t.add_column(c, overflow="fold")
        for p in r.peel_chains:
            t.add_row(p.start_txid[:16], p.end_txid[:16], str(p.hops), format_units(p.amount_in, p.decimals),
                      format_units(p.peeled, p.decimals),
                      ", ".join(f"{d}: {format_units(a, p.decimals)}" for d, a in p.peels_by_destination))
        console.print(t)
    if r.stopped:
        t = Table(title="stopped (not followed further)")
        for c in ("reason", "chain", "asset", "amount", "address"):
            t.add_column(c, overflow="fold")
        for s in r.stopped:
            t.add_row(s.reason, s.chain, s.asset, format_units(s.amount, s.decimals), s.address or "")
        console.print(t)
    _conservation([r])


def _conservation(results: list[TraceResult]) -> None:
    names = ("traced", "absorbed", "endpoints", "unspent", "fees", "stopped_hops", "stopped_dust", "mixers",
             "crossed_out", "other_stopped")
    # only the buckets some row uses (the rest are zero), so the amounts fit unabridged
    used = [n for n in names if n == "traced" or any(getattr(b, n) for r in results for b in r.balances)]
    t = Table(title="conservation: traced (+ absorbed) = endpoints + unspent + fees + stopped + mixers + crossed out")
    for c in ("model", "chain", "asset", *used, "ok"):
        t.add_column(c.replace("_", " "), overflow="fold")
    for r in results:
        for b in r.balances:
            t.add_row(r.model, b.chain, b.asset[:12], *(format_units(getattr(b, n), b.decimals) for n in used),
                      "yes" if b.balanced else "NO")
    console.print(t)


def _side_by_side(results: dict[str, TraceResult]) -> None:
    for r in results.values():
        _limits(r)
    keys: dict[tuple[str, str, str, str], dict[str, str]] = {}
    dec: dict[tuple[str, str, str, str], tuple[int, str]] = {}
    for m, r in results.items():
        amounts: dict[tuple[str, str, str, str], int] = {}
        for e in r.endpoints:  # swept and unswept rows of one entity together
            k = (e.entity, e.category, e.chain, e.asset)
            amounts[k] = amounts.get(k, 0) + e.amount
            dec[k] = (e.decimals, e.country or "")
        for k, a in amounts.items():
            keys.setdefault(k, {})[m] = format_units(a, dec[k][0])
    t = Table(title="endpoints by model")
    for c in ("entity", "category", "country", "chain", "asset", *results):
        t.add_column(c, overflow="fold")
    for k, v in sorted(keys.items()):
        t.add_row(k[0], k[1], dec[k][1], k[2], k[3][:12], *(v.get(m, "-") for m in results))
    console.print(t)
    t = Table(title="unspent by model (top 25)")
    rows: dict[tuple[str, str, str], dict[str, str]] = {}
    for m, r in results.items():
        for h in r.unspent:
            rows.setdefault((h.chain, h.address, h.asset), {})[m] = format_units(h.amount, h.decimals)
    for c in ("chain", "address", "asset", *results):
        t.add_column(c, overflow="fold")
    for k, v in list(sorted(rows.items()))[:25]:
        t.add_row(k[0], k[1], k[2][:12], *(v.get(m, "-") for m in results))
    console.print(t)
    _conservation(list(results.values()))


def register(app: typer.Typer) -> None:
    @app.command("trace")
    def trace_cmd(
        chain: str = typer.Option(..., "--chain", help="Chain of the seeds (bitcoin, testnet, regtest, ethereum, …)."),
        address: list[str] = typer.Option(None, "--address", help="Seed address (repeatable): what it received."),
        tx: list[str] = typer.Option(None, "--tx", help="Seed transaction (repeatable): its outputs / transfers."),
        model: str = typer.Option("haircut", "--model", help="poison | haircut | fifo | all (side by side)."),
        direction: str = typer.Option("forward", "--direction", help="forward (where did it go) | backward."),
        max_hops: int = typer.Option(20, "--max-hops", help="Stop after N hops (reported as stopped); a peel "
                                     "chain counts as one hop however long."),
        peel_budget: bool = typer.Option(True, "--peel-budget/--no-peel-budget",
                                         help="Count a peel chain as one hop (default) or every transaction."),
        peel_txs: int = typer.Option(PEEL_TXS, "--peel-txs", min=0,
                                     help="Transactions a trace may pass for free along peel chains per chain "
                                     "(reported when used up)."),
        dust: str = typer.Option(None, "--dust", help="Stop tainted amounts below this (whole units, e.g. 0.0001)."),
        since: str = typer.Option(None, "--since", help="Seed addresses: only what they received from DATE."),
        follow_mixers: bool = typer.Option(False, "--follow-mixers", help="Follow the likeliest mixer withdrawal."),
        json_out: bool = typer.Option(False, "--json", help="The contract's trace JSON."),
        as_of_height: list[str] = typer.Option(None, "--as-of-height", help="Trace the chain as it stood at "
                                               "block height H (or CHAIN=H, repeatable)."),
        tags_as_of: str = typer.Option(None, "--tags-as-of", help="Tags as the workspace knew them at TIME "
                                       "(imported by then, valid then): YYYY-MM-DD or ISO time."),
        home: HomeOpt = None,
    ) -> None:
        """Trace funds from addresses or transactions to where they went (or came from)."""
        from fundtrail.trace.service import trace

        if not address and not tx:
            raise UsageError("give seeds: --address A ... or --tx TXID ...")
        if model not in (*MODELS, "all"):
            raise UsageError(f"--model {model!r}: use poison, haircut, fifo or all")
        seeds = [Seed(chain, address=a) for a in address or []] + [Seed(chain, txid=t) for t in tx or []]
        ws = workspace(home)
        prices = _prices(ws)
        models = MODELS if model == "all" else (model,)
        results: dict[str, TraceResult] = {}
        with CliProgress() as progress:
            for m in models:
                results[m] = trace(ws, seeds, model=m, direction=direction, max_hops=max_hops, dust=dust,
                                   since=since, follow_mixers=follow_mixers, prices=prices, progress=progress,
                                   as_of_height=as_of_height or None, tags_as_of=tags_as_of,
                                   peel_budget=peel_txs if peel_budget else False)
        for w in next(iter(results.values())).params.get("warnings", []):
            err_console.print(Text.assemble(("warning:", "yellow"), f" {w}"), highlight=False)
        if json_out:
            emit_json(results[model].to_json() if model != "all" else {m: r.to_json() for m, r in results.items()})
        elif model == "all":
            _side_by_side(results)
        else:
            _render(results[model])
