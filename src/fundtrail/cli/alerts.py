"""``fundtrail alerts``: the monitor's alerts, oldest first, after a cursor."""

from __future__ import annotations

import json

import typer

from fundtrail.cli.common import DbOpt, HomeOpt, render_table, workspace


def register(app: typer.Typer) -> None:
    @app.command("alerts")
    def alerts(since: str = typer.Option(None, "--since", help="Cursor: alerts after this one ('cursor' field)."),
               limit: int = typer.Option(100, "--limit"),
               kind: str = typer.Option(None, "--kind", help="decision_changed, watched_funds_moved or reorg."),
               db: str = DbOpt, home: HomeOpt = None,
               json_out: bool = typer.Option(False, "--json", help="One JSON alert per line.")) -> None:
        """Print alerts: cursor, time, kind, severity, status, subject."""
        import pyarrow as pa

        from fundtrail.monitor.alerts import AlertBook
        from fundtrail.service.store import open_store

        items, nxt = AlertBook(open_store(db, workspace(home).home)).page(since, limit, kind)
        if json_out:
            for a in items:
                typer.echo(json.dumps(a, separators=(",", ":")))
            return
        rows = [{"cursor": a["cursor"], "created": a["created"], "kind": a["kind"], "severity": a["severity"],
                 "status": a["status"], "alert_id": a["alert_id"],
                 "subject": json.dumps(a["subject"], separators=(",", ":"))[:80]} for a in items]
        render_table(pa.Table.from_pylist(rows) if rows else pa.table({"cursor": pa.array([], pa.string())}))
        if nxt:
            typer.echo(f"next: --since {nxt}")
