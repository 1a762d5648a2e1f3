"""A reader process for the concurrency tests: query the workspace in a loop while writers run, and check
that every snapshot it sees is one committed state (no duplicate keys, no gaps, tables that agree).

    python -m tests.store.reader_loop HOME STOP_FILE REPORT_JSON
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import duckdb

from fundtrail.errors import FundtrailError
from fundtrail.store import Workspace

# each query returns one row of numbers that must all be 0 in a committed state
CHECK = """
WITH b AS (SELECT count(*) AS n, count(DISTINCT (chain, height)) AS d, coalesce(max(height), -1) AS hi, coalesce(min(height), 0) AS lo,
                  coalesce(sum(tx_count), 0) AS txs FROM utxo_blocks),
     t AS (SELECT count(*) AS n, count(DISTINCT (chain, txid)) AS d, coalesce(sum(output_count), 0) AS outs,
                  coalesce(sum(input_count), 0) AS ins FROM utxo_transactions),
     o AS (SELECT count(*) AS n, count(DISTINCT (chain, txid, n)) AS d FROM utxo_outputs),
     i AS (SELECT count(*) AS n, count(DISTINCT (chain, txid, n)) AS d FROM utxo_inputs),
     m AS (SELECT count(*) AS n, count(DISTINCT (chain, address_id)) AS d FROM cluster_members),
     a AS (SELECT count(*) AS n, count(DISTINCT (chain, address_id)) AS d FROM addresses)
SELECT b.n - b.d AS dup_blocks, CASE WHEN b.n = 0 THEN 0 ELSE b.hi - b.lo + 1 - b.n END AS gap_blocks,
       t.n - t.d AS dup_transactions, o.n - o.d AS dup_outputs, i.n - i.d AS dup_inputs,
       b.txs - t.n AS blocks_vs_transactions, t.outs - o.n AS transactions_vs_outputs,
       m.n - m.d AS dup_members, a.n - a.d AS dup_addresses
FROM b, t, o, i, m, a
"""


def check(ws: Workspace) -> dict[str, int]:
    """The numbers of CHECK that are not 0 (empty: a consistent snapshot)."""
    row = ws.query(CHECK).to_pylist()[0]
    return {k: v for k, v in row.items() if v}


def main(home: str, stop: str, report: str) -> int:
    snapshots, violations, errors = 0, [], []
    generations: set[int] = set()
    while not Path(stop).exists():
        try:
            ws = Workspace(home)
            bad = check(ws)
            generations.add(ws.generation)
            ws.close()
        except (FundtrailError, duckdb.Error, OSError) as e:  # none expected: the test fails on any
            errors.append(f"{type(e).__name__}: {e}")
            time.sleep(0.05)
            continue
        snapshots += 1
        if bad:
            violations.append({"generation": ws.generation, **bad})
    Path(report).write_text(json.dumps({"snapshots": snapshots, "generations": len(generations),
                                        "violations": violations, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
