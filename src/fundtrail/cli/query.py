"""``fundtrail query``: read-only SQL over the workspace, in the SQL sandbox (store/sandbox.py)."""

from __future__ import annotations

import typer

from fundtrail.cli.common import HomeOpt, render_table, workspace
from fundtrail.store.sandbox import QueryLimits

_D = QueryLimits()


def register(app: typer.Typer) -> None:
    @app.command("query")
    def query(
        sql: str = typer.Argument(..., help="SQL over the workspace's tables (read-only)."),
        home: HomeOpt = None,
        json_out: bool = typer.Option(False, "--json", help="JSON lines."),
        csv_out: bool = typer.Option(False, "--csv", help="CSV."),
        allow_files: bool = typer.Option(False, "--allow-files", help="Let the SQL read other files of this "
                                         "machine (read_csv, read_parquet, …): only for your own use."),
        timeout: float = typer.Option(_D.timeout, "--timeout", min=0.1, metavar="SECONDS",
                                      help="Stop the statement after this long."),
        memory_limit: str = typer.Option(_D.memory_limit, "--memory-limit", help="DuckDB memory limit."),
        threads: int = typer.Option(_D.threads, "--threads", min=1, help="DuckDB threads."),
        max_rows: int = typer.Option(_D.max_rows, "--max-rows", min=1, help="Refuse larger results."),
    ) -> None:
        """Run read-only DuckDB SQL over the workspace's tables and print the result. The SQL can read the
        workspace's tables only and runs within time, memory, thread and result-size limits."""
        limits = QueryLimits(timeout=timeout, memory_limit=memory_limit, threads=threads, max_rows=max_rows)
        result = workspace(home).user_query(sql, allow_files=allow_files, limits=limits)
        render_table(result, "json" if json_out else "csv" if csv_out else "table")
