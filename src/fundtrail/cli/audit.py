"""``fundtrail audit``: the service's append-only audit log."""

from __future__ import annotations

import json

import typer

from fundtrail.cli.common import DbOpt, HomeOpt, render_table, workspace


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit(after: int = typer.Option(0, "--after", help="Records after this id."),
              limit: int = typer.Option(100, "--limit"),
              db: str = DbOpt, home: HomeOpt = None,
              json_out: bool = typer.Option(False, "--json")) -> None:
        """Print audit records: time, key, role, endpoint, parameter hash, status, decision."""
        import pyarrow as pa

        from fundtrail.service.store import open_store

        rows = open_store(db, workspace(home).home).audit_rows(after=after, limit=limit)
        if json_out:
            for r in rows:
                typer.echo(json.dumps(r, default=str))
            return
        render_table(pa.Table.from_pylist(rows) if rows else pa.table({"id": pa.array([], pa.int64())}))
