"""``fundtrail simulate`` (write a synthetic world with ground truth) and ``fundtrail demo`` (the main job on
one)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from fundtrail.cli.common import CliProgress, HomeOpt, console, emit_json


def _trim(amount: str) -> str:
    """'749.000000000000000000' -> '749'; '104.91343384' stays (display only, the amount is exact)."""
    if "." in amount:
        whole, frac = amount.split(".", 1)
        frac = frac.rstrip("0")
        whole = f"{int(whole):,}" if whole.lstrip("-").isdigit() else whole
        return f"{whole}.{frac}" if frac else whole
    return amount


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_cmd(
        out: Path = typer.Option(..., "--out", help="Directory to write the world into."),
        scale: str = typer.Option("demo", "--scale", help="demo | small | large"),
        seed: int = typer.Option(1, "--seed", help="Random seed (the same seed gives the same bytes)."),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ) -> None:
        """Write a simulated (synthetic) two-chain world with a theft and its ground truth."""
        from fundtrail.simulate.world import simulate

        with CliProgress() as progress:
            s = simulate(out, scale, seed, progress=progress)
        if json_out:
            emit_json(s.to_json())
            return
        console.print(Text("simulated world", "bold"), f"({scale}, seed {seed}) in {s.seconds:.1f} s, "
                      f"peak memory {s.peak_rss_mb:.0f} MB — synthetic data, not a real chain")
        console.print(f"  bitcoin (regtest): {s.btc_blocks:,} blocks, {s.btc_txs:,} transactions, "
                      f"{s.btc_bytes / 1e6:,.1f} MB in {s.btc_files} blk*.dat file(s) -> {out}/bitcoin/blocks")
        console.print(f"  evm (simeth):      {s.evm_blocks:,} blocks, {s.evm_txs:,} transactions "
                      f"-> {out}/evm/rpc.jsonl ({s.rpc_lines:,} recorded calls)")
        console.print(f"  tags -> {out}/tags   prices -> {out}/prices.csv   truth -> {out}/truth.json")

    @app.command("demo")
    def demo_cmd(
        home: HomeOpt = None,
        out: Path = typer.Option(Path("fundtrail-demo"), "--out", help="Where the simulated world and the "
                                 "report go."),
        model: str = typer.Option("haircut", "--model", help="Taint model of the printed summary."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Simulate a small world with a theft, ingest it, cluster, trace the theft and report where the
        stolen funds went. The world is synthetic; every name in it is invented."""
        from fundtrail.simulate.demo import run_demo

        h = home if home is not None else out / "workspace"
        with CliProgress() as progress:
            r = run_demo(h, out, progress=progress, model=model)
        if json_out:
            import dataclasses

            emit_json(dataclasses.asdict(r))
            return
        from rich.table import Table

        console.print()
        console.print(Text("Simulated theft", "bold"), "(synthetic world): "
                      + ", ".join(f"{_trim(a)} {s}" for s, a in r.stolen) + " stolen from Helix Exchange-sim (AE)")
        t = Table(title=f"Where the stolen funds went ({r.model} taint)")
        for c in ("entity", "category", "country", "chain", "amount", "USD", "truth"):
            t.add_column(c, justify="right" if c in ("amount", "USD", "truth") else "left")
        for e in r.endpoints:
            truth = "-" if not e.expected else ("= truth" if e.expected == e.amount else _trim(e.expected))
            t.add_row(e.entity, e.category, e.country or "", e.chain, f"{_trim(e.amount)} {e.symbol}",
                      f"{e.usd:,.0f}" if e.usd is not None else "", truth)
        console.print(t)
        if r.by_country:
            console.print("By country: " + "; ".join(
                f"{c}: ${v:,.0f}" if v is not None else f"{c}: (no price)" for c, v in r.by_country))
        if r.unspent:
            console.print(f"Still unspent at {len(r.unspent)} address(es) (freeze candidates), e.g.:")
            for chain, addr, sym, amt in r.unspent[:5]:
                console.print(f"  {chain} {addr} {_trim(amt)} {sym}", highlight=False)
        if r.accuracy is not None:
            console.print(f"Attributed to the right endpoint vs the world's ground truth: {r.accuracy:.1%}")
        if r.missing:
            console.print(Text("not available yet:", "yellow"), ", ".join(r.missing))
        console.print("timings (s): " + ", ".join(f"{k} {v}" for k, v in r.timings.items()))
        if r.report_html:
            console.print(Text("HTML report:", "bold"), str(r.report_html.resolve()))
