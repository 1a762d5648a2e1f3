"""``fundtrail compact``: merge the per-batch Parquet parts of ingested tables into few large files."""

from __future__ import annotations

from typing import Annotated

import pyarrow as pa
import typer

from fundtrail.cli.common import HomeOpt, WaitOpt, render_table, workspace
from fundtrail.ingest.compact import compact_workspace


def register(app: typer.Typer) -> None:
    @app.command("compact")
    def compact(
        chain: Annotated[str | None, typer.Option("--chain", help="Only this chain's tables.")] = None,
        target_mb: Annotated[int, typer.Option("--target-mb", min=1, help="Largest part to build.")] = 512,
        home: HomeOpt = None,
        wait: WaitOpt = 0.0,
    ) -> None:
        """Merge many small Parquet parts (one per ingest batch) into parts of up to --target-mb: same rows,
        faster queries. Run after a large ingest; safe to interrupt."""
        ws = workspace(home, wait=wait)
        if chain is not None:
            ws.require_chain(chain)
        done = compact_workspace(ws, chain, target_bytes=target_mb << 20)
        render_table(pa.table({
            "table": [d.table for d in done], "chain": [d.chain for d in done],
            "parts_before": [d.parts_before for d in done], "parts_after": [d.parts_after for d in done],
            "mb": [round(d.bytes / 1e6, 1) for d in done]}), title="compacted")
