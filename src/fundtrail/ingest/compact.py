"""Compaction of ingested tables: merge the many per-batch Parquet parts into few large ones.

A bulk ingest commits one part per table per batch (about 21,000 per table for Bitcoin mainnet in 32 MB
batches). Ingestion merges parts as it goes only when its batches are small (following the tip;
``Transaction.merge_tail``), because rewriting a bulk run's parts would cost about half again the ingest
time; DuckDB, however, pays per file on every query (~0.1 ms a file: seconds at mainnet scale).
``compact_workspace`` rewrites runs of consecutive parts into parts of up to ``target_bytes``, keeping rows
and their order, one workspace transaction per table and chain: a crash keeps what the last finished table
committed, and the rest is as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fundtrail.ingest.bitcoin.addresses import WRITE_OPTIONS as ADDRESS_WRITE_OPTIONS
from fundtrail.ingest.bitcoin.service import WRITE_OPTIONS as BITCOIN_WRITE_OPTIONS
from fundtrail.store import schema as S
from fundtrail.store.workspace import Workspace, writes


@dataclass(frozen=True, slots=True)
class Compacted:
    table: str
    chain: str
    parts_before: int
    parts_after: int
    bytes: int


def _write_options(ws: Workspace, table: str, chain: str) -> dict[str, Any]:
    """The Parquet options the ingester writes ``table`` with (pyarrow's defaults with zstd elsewhere)."""
    state = ws.chain(chain) or {}
    if state.get("kind") == "utxo":
        if table in BITCOIN_WRITE_OPTIONS:
            return BITCOIN_WRITE_OPTIONS[table]
        if table == "addresses":
            return ADDRESS_WRITE_OPTIONS["addresses"]
    return {}


@writes("compact")
def compact_workspace(ws: Workspace, chain: str | None = None, *, target_bytes: int = 512 << 20,
                      ) -> list[Compacted]:
    """Merge the parts of every table (of ``chain``, or of every chain and the global tables)."""
    out: list[Compacted] = []
    for table in S.TABLES:
        for ch in ws.table_chains(table):
            if chain is not None and ch != chain:
                continue
            before = ws.parts(table, ch)
            if len(before) < 2:
                continue
            with ws.transaction() as txn:
                txn.compact(table, ch, target_bytes=target_bytes, **_write_options(ws, table, ch))
            after = ws.parts(table, ch)
            out.append(Compacted(table, ch, len(before), len(after),
                                 sum((ws.home / p.file).stat().st_size for p in after)))
    return out
