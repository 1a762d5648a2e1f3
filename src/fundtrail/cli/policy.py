"""``fundtrail policy show|set|test``: the screening policy."""

from __future__ import annotations

from pathlib import Path

import typer

from fundtrail.cli.common import DbOpt, HomeOpt, console, emit_json, workspace


def _read(path: str) -> tuple[str, str]:
    from fundtrail.errors import UsageError

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"no such policy file {p}")
    return p.read_text(encoding="utf-8"), str(p)


def register(app: typer.Typer) -> None:
    pol = typer.Typer(help="The screening policy (YAML rules).", no_args_is_help=True)
    app.add_typer(pol, name="policy")

    @pol.command("show")
    def show(db: str = DbOpt, home: HomeOpt = None, default: bool = typer.Option(False, "--default")) -> None:
        """Print the policy in force (or the shipped default)."""
        from fundtrail.screen.policy import default_policy_text
        from fundtrail.service.policies import current_policy
        from fundtrail.service.store import open_store

        if default:
            typer.echo(default_policy_text(), nl=False)
            return
        typer.echo(current_policy(open_store(db, workspace(home).home)).text, nl=False)

    @pol.command("set")
    def set_(file: str = typer.Argument(...), db: str = DbOpt, home: HomeOpt = None) -> None:
        """Store FILE as the new policy version (validated first)."""
        from fundtrail.service.policies import put_policy
        from fundtrail.service.store import open_store

        text, _ = _read(file)
        p = put_policy(open_store(db, workspace(home).home), text, "cli")
        console.print(f"policy {p.id} stored as version {p.version} ({len(p.rules)} rules)", highlight=False)

    @pol.command("test")
    def test(file: str = typer.Argument(..., help="The candidate policy (YAML)."), db: str = DbOpt,
             home: HomeOpt = None, json_out: bool = typer.Option(False, "--json")) -> None:
        """Backtest: replay the stored verdicts under FILE and print the decisions that would change, and why."""
        from fundtrail.screen.policy import parse_policy
        from fundtrail.service.policies import backtest
        from fundtrail.service.store import open_store

        text, path = _read(file)
        cand = parse_policy(text, path=path)
        ws = workspace(home)
        res = backtest(ws, open_store(db, ws.home), cand)
        if json_out:
            emit_json(res.to_json())
            return
        console.print(f"{res.replayed} of {res.total} stored verdicts replayed under {cand.id} "
                      f"({len(res.skipped)} skipped: index version not kept); {len(res.changed)} would change",
                      highlight=False)
        for c in res.changed:
            console.print(f"  {c['verdict_id']} {c['chain']} {c['address']}: {c['before']} -> {c['after']}  "
                          f"({', '.join(c['after_rules']) or 'no rule'}: {c['why']})", highlight=False)
