"""``fundtrail incident create|list|show``, ``fundtrail report INCIDENT``, ``fundtrail prices import|fetch``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.text import Text

from fundtrail.cli.common import CliProgress, HomeOpt, WaitOpt, console, emit_json, err_console, workspace

incident_app = typer.Typer(help="Incidents: a named theft and the seeds its trace starts from.",
                           no_args_is_help=True)
prices_app = typer.Typer(help="Daily USD prices (for the USD value of traced amounts).", no_args_is_help=True)


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    err_console.print(f"wrote {out} ({len(text.encode()):,} bytes)", highlight=False)


def register(app: typer.Typer) -> None:
    @incident_app.command("create")
    def incident_create(
        name: str = typer.Argument(..., help="Incident name (letters, digits, . _ -)."),
        chain: list[str] = typer.Option(..., "--chain", help="Chain(s) the seeds are on (repeatable)."),
        address: list[str] = typer.Option([], "--address", "-a",
                                          help="Seed address (repeatable; CHAIN:ADDRESS when several chains fit)."),
        tx: list[str] = typer.Option([], "--tx", help="Seed transaction TXID or TXID:N (repeatable; CHAIN:TXID)."),
        actor: str | None = typer.Option(None, "--actor", help="Actor id (e.g. from an ActorPack: lazarus)."),
        since: str | None = typer.Option(None, "--since", help="Start of the incident: YYYY-MM-DD or ISO time."),
        description: str | None = typer.Option(None, "--description", help="Free text."),
        replace: bool = typer.Option(False, "--replace", help="Overwrite an incident of the same name."),
        home: HomeOpt = None,
        json_out: bool = typer.Option(False, "--json", help="Print the incident as JSON."),
        wait: WaitOpt = 0.0,
    ) -> None:
        """Create an incident from seed addresses and/or transactions."""
        from fundtrail.incidents import create_incident

        inc = create_incident(workspace(home, wait=wait), name, chain, addresses=address, txids=tx, actor=actor,
                              since=since, description=description, replace=replace)
        if json_out:
            emit_json(inc.to_json())
        else:
            console.print(Text.assemble("incident ", (inc.name, "bold"),
                                        f": {len(inc.seeds)} seeds on {', '.join(inc.chains)}"), highlight=False)

    @incident_app.command("list")
    def incident_list(home: HomeOpt = None,
                      json_out: bool = typer.Option(False, "--json", help="JSON lines.")) -> None:
        """List the workspace's incidents."""
        from rich.table import Table

        from fundtrail.incidents import list_incidents

        incs = list_incidents(workspace(home))
        if json_out:
            import json

            for i in incs:
                sys.stdout.write(json.dumps(i.to_json()) + "\n")
            return
        t = Table(title="Incidents", title_justify="left")
        for c in ("name", "chains", "seeds", "actor", "since", "created"):
            t.add_column(c)
        for i in incs:
            t.add_row(i.name, ", ".join(i.chains), str(len(i.seeds)), i.actor or "",
                      i.since.strftime("%Y-%m-%d %H:%M") if i.since else "",
                      i.created.strftime("%Y-%m-%d %H:%M") if i.created else "")
        console.print(t)

    @incident_app.command("show")
    def incident_show(name: str = typer.Argument(...), home: HomeOpt = None,
                      json_out: bool = typer.Option(False, "--json", help="JSON.")) -> None:
        """Show one incident and its seeds."""
        from fundtrail.incidents import get_incident

        inc = get_incident(workspace(home), name)
        if json_out:
            emit_json(inc.to_json())
            return
        console.print(Text.assemble((inc.name, "bold"), f"  chains: {', '.join(inc.chains)}  actor: "
                                    f"{inc.actor or '—'}  since: {inc.since or '—'}  created: {inc.created}"),
                      highlight=False)
        if inc.description:
            console.print(inc.description, highlight=False)
        for s in inc.seeds:
            what = s.address or (f"tx {s.txid}" + (f":{s.n}" if s.n is not None else ""))
            console.print(f"  {s.chain}  {what}", highlight=False)

    app.add_typer(incident_app, name="incident")

    @app.command("report")
    def report(
        incident: str = typer.Argument(..., help="Incident name (fundtrail incident list)."),
        fmt: str = typer.Option("table", "--format", "-f", help="table | json | csv | html"),
        out: Path | None = typer.Option(None, "--out", "-o", help="Write to this file instead of stdout."),
        model: list[str] = typer.Option(["poison", "haircut", "fifo"], "--model",
                                        help="Taint models to run side by side (repeatable)."),
        primary: str | None = typer.Option(None, "--primary", help="Model leading the JSON and the diagram "
                                           "(default haircut)."),
        direction: str = typer.Option("forward", "--direction", help="forward | backward"),
        max_hops: int = typer.Option(20, "--max-hops", help="Stop following after this many hops."),
        dust: int | None = typer.Option(None, "--dust", help="Stop at amounts below this (base units)."),
        follow_mixers: bool = typer.Option(False, "--follow-mixers", help="Follow candidate mixer withdrawals."),
        as_of_height: list[str] = typer.Option(None, "--as-of-height", help="Report on the chains as they stood "
                                               "at block height H (or CHAIN=H, repeatable)."),
        tags_as_of: str | None = typer.Option(None, "--tags-as-of", help="Tags as the workspace knew them at "
                                              "TIME (YYYY-MM-DD or ISO time)."),
        home: HomeOpt = None,
    ) -> None:
        """Trace an incident under each taint model and report where the funds went."""
        from fundtrail.errors import UsageError
        from fundtrail.report.render import FORMATS, render
        from fundtrail.report.service import build_report

        if fmt not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        with CliProgress() as progress:
            rep = build_report(workspace(home), incident, models=model, primary=primary, direction=direction,
                               max_hops=max_hops, dust=dust, follow_mixers=follow_mixers, progress=progress,
                               as_of_height=as_of_height or None, tags_as_of=tags_as_of)
        if fmt == "table" and out is None and console.is_terminal and console.width >= 140:
            from fundtrail.report.render.table import renderables

            for r in renderables(rep):
                console.print(r)
            return
        # files, pipes and narrow terminals get the tables at full width rather than squeezed
        _write(render(rep, fmt, width=max(console.width, 160)) if fmt == "table" else render(rep, fmt), out)

    @prices_app.command("import")
    def prices_import(
        path: Path = typer.Argument(..., help="CSV with the header date,asset,usd."),
        home: HomeOpt = None,
        wait: WaitOpt = 0.0,
    ) -> None:
        """Import daily USD prices from CSV (rows for the same date and asset are replaced)."""
        from fundtrail.prices import import_csv

        s = import_csv(workspace(home, wait=wait), path)
        console.print(f"imported {s.rows:,} prices for {', '.join(s.assets)} ({s.first} .. {s.last}); "
                      f"{s.total:,} in the table", highlight=False)

    @prices_app.command("fetch")
    def prices_fetch(
        asset: list[str] = typer.Option(["BTC", "ETH"], "--asset", help="Asset(s) to fetch (repeatable)."),
        url: str | None = typer.Option(None, "--url", envvar="FUNDTRAIL_PRICES_URL",
                                       help="Source URL template ({id}, {asset}, {days}); default CoinGecko."),
        days: int = typer.Option(365, "--days", help="How many days of history."),
        coin_id: str | None = typer.Option(None, "--coin-id", help="The source's id for the asset (e.g. tether)."),
        home: HomeOpt = None,
        wait: WaitOpt = 0.0,
    ) -> None:
        """Download a public daily USD price history (when online), then import it."""
        from fundtrail.prices import fetch_prices

        ws = workspace(home, wait=wait)
        for a in asset:
            s = fetch_prices(ws, a, url=url, days=days, coin_id=coin_id)
            console.print(f"{a}: {s.rows:,} daily prices ({s.first} .. {s.last}) from {s.source}", highlight=False)

    app.add_typer(prices_app, name="prices")
