"""``fundtrail screen``: verdicts from the command line, without a server."""

from __future__ import annotations

import json

import typer
from rich.text import Text

from fundtrail.cli.common import HomeOpt, console, workspace


def register(app: typer.Typer) -> None:
    @app.command("screen")
    def screen(
        addresses: list[str] = typer.Argument(..., help="Addresses to screen."),
        chain: str = typer.Option(..., "--chain", help="Chain of the addresses."),
        time: str = typer.Option(None, "--time", help="Judge as of this time (sanctions valid then)."),
        policy_file: str = typer.Option(None, "--policy", help="A policy YAML file (default: the service's "
                                        "current policy, else the shipped default)."),
        db: str = typer.Option(None, "--db", envvar="FUNDTRAIL_DB", help="Service database URL (its policy)."),
        home: HomeOpt = None,
        json_out: bool = typer.Option(False, "--json", help="One verdict JSON per line."),
    ) -> None:
        """Screen addresses against the exposure index and the policy: allow, review or block, and why."""
        from pathlib import Path

        from fundtrail.errors import UsageError
        from fundtrail.screen.policy import parse_policy
        from fundtrail.service.policies import current_policy
        from fundtrail.service.screening import Screener
        from fundtrail.service.store import default_db_path, open_store

        ws = workspace(home)
        if policy_file:
            p = Path(policy_file)
            if not p.is_file():
                raise UsageError(f"--policy: no such file {p}")
            policy = parse_policy(p.read_text(encoding="utf-8"), path=str(p))
        else:
            store = open_store(db, ws.home) if (db or default_db_path(ws.home).exists()) else None
            policy = current_policy(store)
        s = Screener.open(ws, policy)
        for a in addresses:
            v = s.screen_address(chain, a, time=time).to_json()
            if json_out:
                typer.echo(json.dumps(v, default=str))
                continue
            ent = v["entity"]
            who = f"{ent['name']} ({ent['category']}{', sanctioned' if ent['sanctioned'] else ''})" if ent else "-"
            console.print(Text.assemble((v["decision"].upper(), "bold"), f" {v['address']}  risk {v['risk']} "
                                        f"score {v['score']}  entity {who}"), highlight=False)
            for r in v["reasons"]:
                console.print(f"  {r['rule']}: {r['text']}", highlight=False)
            for e in v["exposure"][:10]:
                console.print(f"  {e['direction']} {e['kind']} {e['category']} {e['entity']}: {e['amount']} "
                              f"{e['asset'][:10]} share {e['share']:.2%} hops {e['hops']}", highlight=False)
