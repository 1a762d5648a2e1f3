"""Workspace commit cost as the part lists grow (one part per table per ingest batch).

Mainnet Bitcoin in 32 MB batches is about 21,000 batches, and every batch appends one part to each of ~7
tables: ~150,000 part entries. This benchmark builds a manifest with that many entries (synthetic entries;
the Parquet files they name are not needed for a commit) and times a commit that appends one real part per
table, with the part lists sealed into segments (the workspace's default) and, for comparison, with every
entry inline in manifest.json (as before segments existed).

Figures are wall-clock on whatever machine runs it (indicative on a shared machine).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

TABLES = ["utxo_blocks", "utxo_transactions", "utxo_outputs", "utxo_inputs", "transfers", "addresses",
          "utxo_prevouts"]
SCALES = {"demo": [1_000, 10_000], "small": [1_000, 10_000, 50_000, 150_000], "large": [150_000, 500_000]}


def _manifest(n: int) -> dict:
    per = n // len(TABLES)
    return {"version": 1, "generation": 1, "chains": {"bitcoin": {"kind": "utxo", "tip_height": per * 40}},
            "settings": {}, "tables": {t: {"bitcoin": [
                {"file": f"tables/{t}/bitcoin/{uuid.uuid4().hex}.parquet", "rows": 123_456, "lo": i * 40,
                 "hi": i * 40 + 39} for i in range(per)]} for t in TABLES}}


def _time_commits(home: Path, seal: int, commits: int) -> dict:
    import pyarrow as pa

    from fundtrail.store import Workspace
    from fundtrail.store import workspace as W

    blocks = pa.table({"chain": ["bitcoin"], "height": [10**9], "hash": ["00" * 32], "tx_count": [1]})
    old = W.SEAL
    W.SEAL = seal
    try:
        ws = Workspace(home)
        with ws.transaction():  # seals the synthetic lists (one-off), collects nothing
            pass
        times = []
        for _ in range(commits):
            t0 = time.perf_counter()
            with ws.transaction() as txn:
                txn.append("utxo_blocks", "bitcoin", blocks)
                txn.set_chain("bitcoin", tip_height=10**9)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        n = len(Workspace(home).parts("utxo_blocks", "bitcoin"))
        open_s = time.perf_counter() - t0
    finally:
        W.SEAL = old
    return {"commit_ms_median": round(1000 * statistics.median(times), 1),
            "commit_ms_max": round(1000 * max(times), 1),
            "manifest_kb": round((home / "manifest.json").stat().st_size / 1024, 1),
            "open_and_list_one_table_ms": round(1000 * open_s, 1), "parts_listed": n}


def run(scale: str = "small") -> dict:
    from fundtrail.store import workspace as W

    figures: dict = {"scale": scale, "seal": W.SEAL}
    for n in SCALES[scale]:
        for mode, seal in (("segments", W.SEAL), ("inline", 10**12)):
            with tempfile.TemporaryDirectory() as tmp:
                home = Path(tmp) / "ws"
                home.mkdir()
                (home / "manifest.json").write_text(json.dumps(_manifest(n)))
                figures[f"{n}_entries_{mode}"] = _time_commits(home, seal, commits=10)
    return figures


def main(argv: list[str]) -> int:
    scale = argv[0] if argv else "small"
    f = run(scale)
    print(f"Workspace commit with N part entries already listed (seal = {f['seal']} entries per segment)")
    for n in SCALES[scale]:
        for mode in ("segments", "inline"):
            r = f[f"{n}_entries_{mode}"]
            print(f"  {n:>8,} entries, {mode:8}: commit {r['commit_ms_median']:7.1f} ms median "
                  f"({r['commit_ms_max']:.1f} max), manifest.json {r['manifest_kb']:8.1f} KB, "
                  f"open + list one table {r['open_and_list_one_table_ms']:.1f} ms")
    print(json.dumps(f, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
