"""Stored utxo_* txids are 32-byte binary (display order); the contract views show the usual hex strings."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fundtrail.errors import WorkspaceError
from fundtrail.store import Workspace
from fundtrail.store import schema as S

T = datetime(2024, 1, 1, tzinfo=UTC)


def _hex(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _write(ws: Workspace) -> None:
    a, b = _hex("a"), _hex("b")
    with ws.transaction() as txn:
        txn.append("utxo_transactions", "regtest", pa.table({
            "chain": ["regtest"] * 2, "height": [1, 2], "tx_index": [0, 0],
            "txid": S.txid_array([a, b]), "time": pa.array([T, T], S.TS), "fee": [0, 10],
            "is_coinbase": [True, False], "output_value": [50, 40]}))
        txn.append("utxo_outputs", "regtest", pa.table({
            "chain": ["regtest"] * 2, "height": [1, 2], "txid": [bytes.fromhex(a), bytes.fromhex(b)],
            "n": pa.array([0, 0], pa.int32()), "value": [50, 40], "address_id": [0, 1]}))
        txn.append("utxo_inputs", "regtest", pa.table({
            "chain": ["regtest"], "height": [2], "txid": S.txid_array([b]), "n": pa.array([0], pa.int32()),
            "prev_txid": S.txid_array([a]), "prev_n": [0], "value": [50], "address_id": [0]}))
        txn.append("addresses", "regtest", pa.table({"chain": ["regtest"] * 2, "address_id": [0, 1],
                                                     "address": ["addr-a", "addr-b"]}))


def test_stored_binary_views_hex(home):
    ws = Workspace(home)
    _write(ws)
    a, b = _hex("a"), _hex("b")
    assert ws.read("utxo_inputs")["prev_txid"].type == pa.binary(32)
    assert ws.read("utxo_inputs")["prev_txid"].to_pylist() == [bytes.fromhex(a)]
    assert ws.query(f"SELECT count(*) AS n FROM utxo_outputs WHERE txid = unhex('{b}')")["n"].to_pylist() == [1]
    con = ws.connect()
    try:
        for view, cols in (("transactions", ["txid"]), ("outputs", ["txid", "spent_by_txid"]),
                           ("inputs", ["txid", "prev_txid"]), ("transfers", ["txid"])):
            types = dict(zip(con.sql(f"SELECT * FROM {view}").columns, con.sql(f"SELECT * FROM {view}").types,
                             strict=True))
            assert all(str(types[c]) == "VARCHAR" for c in cols), (view, types)
    finally:
        con.close()
    assert ws.query("SELECT txid, spent_by_txid FROM outputs ORDER BY height").to_pylist() == [
        {"txid": a, "spent_by_txid": b}, {"txid": b, "spent_by_txid": None}]
    assert ws.query("SELECT txid, prev_txid FROM inputs").to_pylist() == [{"txid": b, "prev_txid": a}]
    assert ws.query(f"SELECT kind, from_address FROM transfers WHERE txid = '{b}' ORDER BY seq").to_pylist() == [
        {"kind": "fee", "from_address": "addr-a"}, {"kind": "output", "from_address": "addr-a"}]


def test_txid_array_nulls_what_is_not_a_txid():
    assert S.txid_array(["ab" * 32, "zz" * 32, "ab", None]).to_pylist() == [b"\xab" * 32, None, None, None]


def test_text_txids_are_refused_by_conform():
    t = pa.table({"chain": ["regtest"], "txid": [_hex("a")]})
    with pytest.raises(WorkspaceError, match="utxo_outputs.*older fundtrail.*re-ingest"):
        S.conform(t, S.schema_of("utxo_outputs"), "utxo_outputs")


def test_a_workspace_with_text_txids_is_refused_not_misread(home):
    """A part as an older fundtrail wrote it (hex txid text) makes opening the workspace fail clearly."""
    ws = Workspace(home)
    rel = f"tables/utxo_transactions/regtest/{uuid.uuid4().hex}.parquet"
    with ws.transaction() as txn:
        (home / rel).parent.mkdir(parents=True)
        pq.write_table(pa.table({"chain": ["regtest"], "height": [1], "txid": [_hex("a")]}), home / rel)
        txn.m["tables"]["utxo_transactions"] = {"regtest": [{"file": rel, "rows": 1, "lo": 1, "hi": 1}]}
    with pytest.raises(WorkspaceError, match="utxo_transactions.*older fundtrail.*re-ingest"):
        ws.query("SELECT * FROM transactions")
