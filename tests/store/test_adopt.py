"""Parts a distributed engine wrote (Transaction.adopt): schema checked, rows and heights from the footer,
moved into place at commit; a staging directory a dead run left is deleted by the next writer."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fundtrail.errors import WorkspaceError
from fundtrail.store import Workspace
from fundtrail.store.workspace import STAGING


def _evidence(n: int) -> pa.Table:
    return pa.table({"chain": ["regtest"] * n, "seq": list(range(n)), "a_id": [1] * n, "b_id": [2] * n,
                     "txid": ["ab" * 32] * n, "heuristic": ["cospend"] * n, "confidence": [0.99] * n,
                     "height": [10 + i for i in range(n)]})


def test_adopt_moves_a_part_into_place(tmp_path):
    ws = Workspace(tmp_path / "ws")
    with ws.writer(purpose="test"):
        staged = ws.home / STAGING / "run"
        staged.mkdir(parents=True)
        pq.write_table(_evidence(5), staged / "part-0.parquet")
        with ws.transaction() as txn:
            part = txn.adopt("cluster_evidence", "regtest", staged / "part-0.parquet")
    assert part is not None and (part.rows, part.lo, part.hi) == (5, 10, 14)
    assert not (staged / "part-0.parquet").exists()
    assert ws.read("cluster_evidence", "regtest")["seq"].to_pylist() == [0, 1, 2, 3, 4]


def test_adopt_refuses_another_schema(tmp_path):
    ws = Workspace(tmp_path / "ws")
    with ws.writer(purpose="test"):
        staged = ws.home / STAGING / "run"
        staged.mkdir(parents=True)
        pq.write_table(_evidence(2).drop_columns(["confidence"]), staged / "p.parquet")
        with pytest.raises(WorkspaceError, match="does not match table 'cluster_evidence'"), ws.transaction() as txn:
            txn.adopt("cluster_evidence", "regtest", staged / "p.parquet")
    assert ws.row_count("cluster_evidence", "regtest") == 0


def test_a_dead_runs_staging_is_collected(tmp_path):
    ws = Workspace(tmp_path / "ws")
    with ws.transaction() as txn:
        txn.append("cluster_evidence", "regtest", _evidence(1))
    left = tmp_path / "ws" / STAGING / "spark-dead"
    left.mkdir(parents=True)
    (left / "part-0.parquet").write_bytes(b"x")
    with Workspace(tmp_path / "ws").writer(purpose="next"):
        pass
    assert not left.exists()
