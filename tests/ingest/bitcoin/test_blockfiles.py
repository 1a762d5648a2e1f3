"""Block files: real blocks, out-of-order and stale blocks, xor.dat, bad input, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fundtrail.errors import BlockFileError, DecodeError
from fundtrail.ingest.bitcoin import serialize as Z
from fundtrail.ingest.bitcoin.service import ingest_block_files
from fundtrail.model.chain import MAINNET, REGTEST
from fundtrail.store.workspace import Workspace
from tests.conftest import shared_path
from tests.ingest.bitcoin.chaingen import make_chain, write_blk

TABLES = ("utxo_blocks", "utxo_transactions", "utxo_outputs", "utxo_inputs", "addresses")


def dump(ws: Workspace, chain: str = "regtest", ids: bool = True) -> dict[str, list]:
    """Every row of the chain's tables (address ids too unless ids=False: a reorg leaves the ids of
    addresses only the abandoned blocks used, so ids differ from a run that never saw them)."""
    out = {}
    for t in ("utxo_blocks", "utxo_transactions", "outputs", "inputs"):
        drop = "chain" if ids or t.startswith("utxo") else "chain, address_id"
        out[t] = ws.query(f"SELECT * EXCLUDE ({drop}) FROM {t} WHERE chain = '{chain}' "
                          "ORDER BY ALL").to_pylist()
    return out


def link(src: Path, d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / src.name).symlink_to(src)
    return d


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads(shared_path("bitcoin", "parsed_block_values.json").read_text())


def test_blocks_1_to_255_match_reference(tmp_path, expected):
    exp = expected["btcd/blocks1-256.bz2"]
    ws = Workspace(tmp_path / "ws")
    st = ingest_block_files(ws, link(shared_path("bitcoin", "btcd", "blocks1-256.bz2"), tmp_path / "d"), "mainnet")
    assert st.blocks == exp["n_blocks"] == 255 and st.first_height == 1 and st.tip_height == 255
    assert st.unresolved_inputs == 0  # every spend in 1..255 spends an output of 1..255
    assert ws.query("SELECT sum(value) AS s FROM outputs").to_pylist()[0]["s"] == exp["sum_total_out_sat"]
    for b in exp["blocks"]:
        row = ws.query(f"SELECT hash, tx_count FROM blocks WHERE height = {b['height']}").to_pylist()[0]
        assert row == {"hash": b["hash"], "tx_count": b["n_tx"]}
        s = ws.query(f"SELECT sum(value) AS s FROM outputs WHERE height = {b['height']}").to_pylist()[0]["s"]
        assert s == b["total_out_sat"]
    # block 170: the first bitcoin transaction (Satoshi to Hal Finney), spent value from block 9
    tx = ws.query("SELECT * FROM transactions WHERE height = 170 AND NOT is_coinbase").to_pylist()[0]
    assert tx["txid"] == "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"
    assert tx["fee"] == 0
    inp = ws.query("SELECT * FROM inputs WHERE height = 170").to_pylist()[0]
    assert inp["value"] == 50_0000_0000 and inp["address"] == "12cbQLTFMXRnSzktFkuoG3eHoMeFtpTu3S"
    assert inp["script_type"] == "p2pk"
    # P2PK shown as the P2PKH address of its key, like explorers: block 1's coinbase
    out = ws.query("SELECT address, script_type FROM outputs WHERE height = 1").to_pylist()[0]
    assert out == {"address": "12c6DSiU4Rq3P4ZxziKxzrL5LmMBrzjrJX", "script_type": "p2pk"}


def test_block_277647_values_and_fee_total(tmp_path, expected):
    exp = expected["btcd/277647.dat.bz2"][0]
    ws = Workspace(tmp_path / "ws")
    d = link(shared_path("bitcoin", "btcd", "277647.dat.bz2"), tmp_path / "d")
    # alone, the block's inputs spend outputs that were never ingested: counted, values null
    alone = ingest_block_files(Workspace(tmp_path / "ws0"), d, "mainnet")
    assert 0 < alone.unresolved_inputs < alone.inputs  # some spend outputs of the same block
    st = ingest_block_files(ws, d, "mainnet", prevouts=shared_path("bitcoin", "btcd", "277647.utxostore.bz2"))
    assert st.first_height == exp["bip34_height"] and st.unresolved_inputs == 0
    b = ws.query("SELECT * FROM utxo_blocks").to_pylist()[0]
    assert b["hash"] == exp["hash"] and b["prev_hash"] == exp["prev"] and b["version"] == exp["version"]
    assert int(b["time"].timestamp()) == exp["time"] and b["bits"] == int(exp["bits"], 16)
    assert b["nonce"] == exp["nonce"] and b["tx_count"] == exp["n_tx"] and b["size"] == exp["size"]
    r = ws.query("SELECT sum(value) AS s FROM outputs").to_pylist()[0]
    assert r["s"] == exp["total_out_sat"]
    cb = ws.query("SELECT output_value FROM utxo_transactions WHERE is_coinbase").to_pylist()[0]
    assert cb["output_value"] == exp["coinbase_out_sat"]
    fees = ws.query("SELECT sum(fee) AS f, count(fee) AS n FROM transactions WHERE NOT is_coinbase").to_pylist()[0]
    assert fees == {"f": 4_737_355, "n": exp["n_tx"] - 1}
    # the fee is computed from the spent outputs: inputs minus outputs
    chk = ws.query("SELECT sum(i.value) - (SELECT sum(o.value) FROM outputs o JOIN transactions t USING (txid) "
                   "WHERE NOT t.is_coinbase) AS f FROM inputs i").to_pylist()[0]
    assert chk["f"] == 4_737_355


def test_segwit_block_702861_and_txids_match_bitcoinlib(tmp_path, expected):
    import bitcoin.core

    path = next(shared_path("bitcoin", "rust-bitcoin").glob("*.raw"))
    exp = expected[f"rust-bitcoin/{path.name}"]
    raw = path.read_bytes()
    d = tmp_path / "d"
    d.mkdir()
    (d / "blk00000.dat").write_bytes(Z.frame(raw, MAINNET))
    ws = Workspace(tmp_path / "ws")
    st = ingest_block_files(ws, d, "mainnet")
    assert st.first_height == exp["bip34_height"] == 702861
    b = ws.query("SELECT hash, prev_hash, tx_count, size FROM blocks").to_pylist()[0]
    assert b == {"hash": exp["hash"], "prev_hash": exp["prev"], "tx_count": exp["n_tx"], "size": exp["size"]}
    assert ws.query("SELECT sum(value) AS s FROM outputs").to_pylist()[0]["s"] == exp["total_out_sat"]
    ref = bitcoin.core.CBlock.deserialize(raw)
    txids = [r["txid"] for r in ws.query("SELECT txid FROM transactions ORDER BY tx_index").to_pylist()]
    assert txids == [bitcoin.core.b2lx(t.GetTxid()) for t in ref.vtx]
    types = {r["script_type"]: r["n"] for r in
             ws.query("SELECT script_type, count(*) AS n FROM outputs GROUP BY 1").to_pylist()}
    assert types == {"p2pkh": 1660, "p2sh": 1816, "p2wpkh": 2383, "p2wsh": 133, "op_return": 23}
    # sizes / vsize against bitcoinlib's witness-aware serialisation
    sizes = ws.query("SELECT size FROM utxo_transactions ORDER BY tx_index").to_pylist()
    assert [s["size"] for s in sizes] == [len(t.serialize()) for t in ref.vtx]


def _regtest_dir(tmp_path: Path, blocks, name="d", xor=None) -> Path:
    d = tmp_path / name
    d.mkdir()
    write_blk(d / "blk00000.dat", blocks, xor=xor)
    if xor is not None:
        (d / "xor.dat").write_bytes(xor)
    return d


def test_out_of_order_and_stale_blocks(tmp_path):
    main, _ = make_chain(12, seed=3)
    stale, _ = make_chain(3, seed=99, prev=main[5].hash(), start_height=7, tag=b"stale")
    ref = Workspace(tmp_path / "ref")
    ingest_block_files(ref, _regtest_dir(tmp_path, main, "in_order"), "regtest")
    # shuffled, with a stale fork of 3 blocks (less work than the 6 main blocks above height 6)
    import random

    recs = main + stale
    random.Random(5).shuffle(recs)
    d = tmp_path / "shuffled"
    d.mkdir()
    write_blk(d / "blk00000.dat", recs[:8])
    write_blk(d / "blk00001.dat", recs[8:])
    ws = Workspace(tmp_path / "ws")
    st = ingest_block_files(ws, d, "regtest", batch_blocks=4)
    assert st.blocks == 12 and st.stale_blocks == 3
    assert dump(ws) == dump(ref)
    assert ws.chain("regtest")["tip_hash"] == main[-1].hash()[::-1].hex()


def test_more_work_fork_in_later_files_rolls_back(tmp_path):
    main, utxos = make_chain(6, seed=4)
    d = _regtest_dir(tmp_path, main)
    ws = Workspace(tmp_path / "ws")
    ingest_block_files(ws, d, "regtest")
    fork, _ = make_chain(4, seed=8, prev=main[2].hash(), start_height=4, tag=b"fork")
    write_blk(d / "blk00001.dat", fork)
    st = ingest_block_files(ws, d, "regtest")
    assert st.rolled_back == 3 and ws.chain("regtest")["tip_height"] == 7
    ref = Workspace(tmp_path / "ref")
    ingest_block_files(ref, _regtest_dir(tmp_path, main[:3] + fork, "ref_d"), "regtest")
    assert dump(ws, ids=False) == dump(ref, ids=False)


def test_xor_obfuscated_files(tmp_path):
    blocks, _ = make_chain(8, seed=6)
    plain = Workspace(tmp_path / "plain")
    ingest_block_files(plain, _regtest_dir(tmp_path, blocks, "p"), "regtest")
    key = bytes.fromhex("a1b2c3d4e5f60718")
    d = _regtest_dir(tmp_path, blocks, "x", xor=key)
    assert Z.frame(b"", REGTEST)[:4] not in (d / "blk00000.dat").read_bytes()[:4]
    xored = Workspace(tmp_path / "xored")
    ingest_block_files(xored, d, "regtest")
    assert dump(xored) == dump(plain) and len(dump(plain)["utxo_blocks"]) == 8


def test_truncated_file_names_file_and_offset_and_keeps_committed(tmp_path):
    blocks, _ = make_chain(10, seed=7)
    d = tmp_path / "d"
    d.mkdir()
    data = write_blk(d / "blk00000.dat", blocks)
    rec_starts = np.cumsum([0] + [8 + len(b.serialize()) for b in blocks])
    cut = int(rec_starts[7]) + 50  # inside block 8 (height 8)
    (d / "blk00000.dat").write_bytes(data[:cut])
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(BlockFileError) as e:
        ingest_block_files(ws, d, "regtest", batch_blocks=3)
    assert str(d / "blk00000.dat") in str(e.value) and f"byte offset {int(rec_starts[7])}" in str(e.value)
    assert "truncated" in str(e.value)
    assert ws.chain("regtest")["tip_height"] == 7
    assert ws.query("SELECT count(*) AS n FROM blocks").to_pylist()[0]["n"] == 7


def test_corrupt_block_names_file_and_offset(tmp_path):
    blocks, _ = make_chain(10, seed=7)
    d = tmp_path / "d"
    d.mkdir()
    data = bytearray(write_blk(d / "blk00000.dat", blocks))
    rec_starts = np.cumsum([0] + [8 + len(b.serialize()) for b in blocks])
    pos = int(rec_starts[6]) + 8 + 80 + 1 + 4 + 1 + 36  # block 7: coinbase script length byte
    data[pos] = 0xFC
    (d / "blk00000.dat").write_bytes(bytes(data))
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(DecodeError) as e:
        ingest_block_files(ws, d, "regtest", batch_blocks=2)
    msg = str(e.value)
    assert str(d / "blk00000.dat") in msg and "byte offset" in msg and "block 7" in msg
    assert e.value.offset is not None and int(rec_starts[6]) < e.value.offset < int(rec_starts[7])
    assert ws.chain("regtest")["tip_height"] == 6  # batches 1-2, 3-4, 5-6 committed
    assert ws.query("SELECT count(*) AS n FROM transactions WHERE height > 6").to_pylist()[0]["n"] == 0
    # a flipped byte that still parses is caught by the merkle root
    data2 = bytearray(write_blk(d / "blk00000.dat", blocks))
    data2[int(rec_starts[8]) + 8 + 80 + 1 + 4 + 1 + 36 + 3] ^= 1
    (d / "blk00000.dat").write_bytes(bytes(data2))
    with pytest.raises(DecodeError, match="merkle"):
        ingest_block_files(ws, d, "regtest", batch_blocks=2)
    assert ws.chain("regtest")["tip_height"] == 8


CRASH_SCRIPT = """
import sys
from fundtrail.store.workspace import Workspace
from fundtrail.ingest.bitcoin.service import ingest_block_files
ingest_block_files(Workspace(sys.argv[1]), sys.argv[2], "regtest", batch_blocks=int(sys.argv[3]))
"""


def test_sigkill_mid_ingest_then_rerun_equals_uninterrupted(tmp_path):
    blocks, _ = make_chain(150, seed=11)
    d = _regtest_dir(tmp_path, blocks)
    ref = Workspace(tmp_path / "ref")
    ingest_block_files(ref, d, "regtest", batch_blocks=7)
    home = tmp_path / "ws"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[3] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    kills = 0
    for delay in (0.0, 0.2, 0.1, 0.3, 0.0, 0.1):
        p = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(home), str(d), "3"], env=env)
        deadline = time.monotonic() + 60
        # wait until it has committed something (or for the delay), then kill it hard
        while time.monotonic() < deadline and p.poll() is None:
            m = home / "manifest.json"
            if m.exists() and json.loads(m.read_text()).get("chains", {}).get("regtest", {}).get("tip_height"):
                time.sleep(delay)
                break
            time.sleep(0.05)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
    assert kills >= 1
    assert Workspace(home).chain("regtest")["tip_height"] < 150  # it really was interrupted
    st = ingest_block_files(Workspace(home), d, "regtest", batch_blocks=3)
    ws = Workspace(home)
    assert ws.chain("regtest")["tip_height"] == 150
    assert dump(ws) == dump(ref)
    n = ws.query("SELECT count(*) AS n, count(DISTINCT height) AS h FROM blocks").to_pylist()[0]
    assert n == {"n": 150, "h": 150}
    for t in TABLES:  # one part per batch (50+ commits here), merged in tiers of 16 as it goes
        assert max(p.level for p in ws.parts(t, "regtest")) >= 1
        assert len(ws.parts(t, "regtest")) < 16 and len(ref.parts(t, "regtest")) < 16
    listed = {p.file for t in TABLES for p in ws.parts(t, "regtest")}
    assert {str(f.relative_to(home)) for f in (home / "tables").rglob("*.parquet")} == listed
    assert st.unresolved_inputs == 0


def test_a_commit_that_fails_leaves_tables_and_indexes_at_the_last_batch(tmp_path, monkeypatch):
    """A batch whose commit fails after its index runs were written (the manifest is never replaced) leaves
    the tables and both on-disk indexes at the previous batch; the next run, with an index RAM budget so
    small that every run is read from disk, ends with the uninterrupted run's tables."""
    from fundtrail.store import workspace as W

    blocks, _ = make_chain(60, seed=5)
    d = _regtest_dir(tmp_path, blocks)
    ref = Workspace(tmp_path / "ref")
    ingest_block_files(ref, d, "regtest", batch_blocks=7)
    home = tmp_path / "ws"
    calls = {"n": 0}
    real = W.Transaction._commit

    def failing(self):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full (injected)")
        real(self)

    monkeypatch.setattr(W.Transaction, "_commit", failing)
    with pytest.raises(OSError, match="injected"):
        ingest_block_files(Workspace(home), d, "regtest", batch_blocks=4, index_memory=0)
    monkeypatch.setattr(W.Transaction, "_commit", real)
    ws = Workspace(home)
    tip = ws.chain("regtest")["tip_height"]
    assert 0 < tip < 60  # committed up to the batch before the failed one
    got = ws.query("SELECT count(*) AS n, max(height) AS hi, min(height) AS lo FROM blocks").to_pylist()[0]
    assert got["hi"] == tip and got["n"] == tip - got["lo"] + 1
    files = {p.relative_to(home).as_posix() for p in (home / "files").rglob("*") if p.is_file()}
    listed = {e[k] for g in ("utxo_index", "address_index") for e in ws.files(g, "regtest")
              for k in ("file", "dead_file") if e.get(k)}
    assert listed <= files  # the failed batch's files are orphans, collected by the next writer
    st = ingest_block_files(Workspace(home), d, "regtest", batch_blocks=4, index_memory=0)
    ws = Workspace(home)
    assert ws.chain("regtest")["tip_height"] == 60
    assert dump(ws) == dump(ref)
    assert st.unresolved_inputs == 0
    files = {p.relative_to(home).as_posix() for p in (home / "files").rglob("*") if p.is_file()}
    listed = {e[k] for g in ("utxo_index", "address_index") for e in ws.files(g, "regtest")
              for k in ("file", "dead_file") if e.get(k)}
    assert files - ws.trashed() == listed  # replaced files are kept while the test's older readers live


def test_addresses_of_other_writers_keep_their_ids_and_reopen_is_stable(tmp_path):
    """An address another writer put into ``addresses`` first (e.g. a tag) keeps its id when the ingester
    meets it, and ids are the same whether the chain is ingested in one run or in several (index reloaded
    from the committed keys)."""
    import pyarrow as pa

    blocks, _ = make_chain(30, seed=8)
    d = _regtest_dir(tmp_path, blocks)
    ref = Workspace(tmp_path / "ref")
    ingest_block_files(ref, d, "regtest", batch_blocks=5)
    addrs = ref.query("SELECT address_id, address FROM addresses WHERE chain = 'regtest' ORDER BY address_id")
    pick = addrs["address"].to_pylist()[7]

    home = tmp_path / "ws"
    ws = Workspace(home)
    with ws.transaction() as txn:  # another writer: one real address of the chain and one unrelated
        txn.append("addresses", "regtest", pa.table({"chain": ["regtest", "regtest"], "address_id": [0, 1],
                                                     "address": [pick, "bcrt1qnotanaddress"],
                                                     "script_type": [None, None]}))
    for stop in (9, 20, None):  # three runs: the key table is rebuilt from the workspace each time
        ingest_block_files(Workspace(home), d, "regtest", batch_blocks=4, max_blocks=stop)
    ws = Workspace(home)
    got = ws.query("SELECT address_id, address FROM addresses WHERE chain = 'regtest' ORDER BY address_id")
    got_ids = dict(zip(got["address"].to_pylist(), got["address_id"].to_pylist(), strict=True))
    assert got_ids[pick] == 0  # reused, not given a second id
    assert len(got_ids) == addrs.num_rows + 1  # every address once, plus the unrelated one
    assert sorted(got["address_id"].to_pylist()) == list(range(addrs.num_rows + 1))
    used = ws.query("SELECT count(*) AS n FROM outputs WHERE chain = 'regtest' AND address = ?".replace(
        "?", f"'{pick}'")).to_pylist()[0]["n"]
    assert used > 0
    assert dump(ws, ids=False) == dump(ref, ids=False)
