"""The ingest's tables, row for row, on real mainnet blocks: a digest of every row of every table (and the
chain state) equals the one the ingest wrote before its speed work (issue 20: sorting, gathers and Parquet
options changed; what is stored must not).

The expected digests were computed from the tables of commit f37dfcf (before the change) with
:func:`digest`; any change of a value, a type, a row or the address ids changes them. Each data set runs
with a small batch size and a small index budget, so several batches, runs spilled to disk and their
merges are exercised."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fundtrail.ingest.bitcoin.service import ingest_block_files
from fundtrail.store.workspace import Workspace
from tests.conftest import shared_path
from tests.ingest.bitcoin.test_blockfiles import link

TABLES = ("utxo_blocks", "utxo_transactions", "utxo_outputs", "utxo_inputs", "addresses")
EXPECTED = {
    "blocks1-256": "9f3a1aa7c1311ffcae87913242530a3f8fc5fb03f20e5a8036d67eddf71e09dd",
    "277647+prevouts": "7b088403ed270c2be9a1490abdf51fdbbccae460224b649f70a5dd9516f5d961",
    "702861": "24069d9da81a6765ecf4373ba6ec4335fc0e856f6d187c8bcb0645bc0df0a1ce",
}


def digest(ws: Workspace, chain: str = "bitcoin") -> str:
    """SHA-256 over every table's schema and rows (in a fixed order) and the chain's committed state."""
    h = hashlib.sha256()
    for t in TABLES:
        tab = ws.query(f"SELECT * FROM {t} WHERE chain = '{chain}' ORDER BY ALL")
        h.update(f"{t}|{tab.schema}|{tab.num_rows}\n".encode())
        for row in tab.to_pylist():
            h.update(repr(sorted(row.items())).encode() + b"\n")
    st = ws.chain(chain) or {}
    h.update(repr([(k, st.get(k)) for k in ("tip_height", "tip_hash", "address_index_next", "id_marks")]).encode())
    return h.hexdigest()


def _frame_raw(tmp_path: Path) -> Path:
    from fundtrail.ingest.bitcoin.serialize import frame
    from fundtrail.model.chain import MAINNET

    raw = next(shared_path("bitcoin", "rust-bitcoin").glob("*.raw")).read_bytes()
    d = tmp_path / "raw"
    d.mkdir()
    (d / "blk00000.dat").write_bytes(frame(raw, MAINNET))
    return d


def ingest_case(name: str, tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / f"ws-{name}")
    small = dict(index_memory=1 << 16)
    if name == "blocks1-256":
        d = link(shared_path("bitcoin", "btcd", "blocks1-256.bz2"), tmp_path / "d1")
        ingest_block_files(ws, d, "mainnet", batch_blocks=16, **small)
    elif name == "277647+prevouts":
        d = link(shared_path("bitcoin", "btcd", "277647.dat.bz2"), tmp_path / "d2")
        ingest_block_files(ws, d, "mainnet", prevouts=shared_path("bitcoin", "btcd", "277647.utxostore.bz2"),
                           **small)
    else:
        ingest_block_files(ws, _frame_raw(tmp_path), "mainnet", **small)
    return ws


@pytest.mark.parametrize("name", list(EXPECTED))
def test_tables_equal_the_ones_before_the_speed_work(tmp_path, name):
    assert digest(ingest_case(name, tmp_path)) == EXPECTED[name]
