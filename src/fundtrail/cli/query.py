"""``fundtrail query``: read-only SQL over the workspace."""

from __future__ import annotations

import typer

from fundtrail.cli.common import HomeOpt, render_table, workspace


def register(app: typer.Typer) -> None:
    @app.command("query")
    def query(
        sql: str = typer.Argument(..., help="SQL over the workspace's tables (read-only)."),
        home: HomeOpt = None,
        json_out: bool = typer.Option(False, "--json", help="JSON lines."),
        csv_out: bool = typer.Option(False, "--csv", help="CSV."),
    ) -> None:
        """Run read-only DuckDB SQL over the workspace's tables and print the result."""
        result = workspace(home).query(sql)
        render_table(result, "json" if json_out else "csv" if csv_out else "table")
