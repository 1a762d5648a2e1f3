"""Core JSON-RPC ingestion against a fake node served on loopback: real getblock fixtures, resume, follow,
reorganisation."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from fundtrail.ingest.bitcoin.rpc import FakeNode
from fundtrail.ingest.bitcoin.service import ingest_block_files, ingest_rpc
from fundtrail.store.workspace import Workspace
from tests.conftest import shared_path
from tests.ingest.bitcoin.chaingen import make_chain, write_blk
from tests.ingest.bitcoin.test_blockfiles import dump

ETL_TYPES = {"pubkey": "p2pk", "pubkeyhash": "p2pkh", "scripthash": "p2sh", "witness_v0_keyhash": "p2wpkh",
             "witness_v0_scripthash": "p2wsh", "nulldata": "op_return", "multisig": "multisig",
             "nonstandard": "nonstandard"}


def fixture_node(name: str) -> tuple[FakeNode, Path]:
    d = shared_path("bitcoin", "bitcoin-etl_rpc_fixtures", name)
    blocks = [json.loads(p.read_text()) for p in sorted(d.glob("rpc_response_getblock_*.json"))]
    raw = {json.loads(p.read_text())["txid"]: json.loads(p.read_text())
           for p in d.glob("rpc_response_getrawtransaction_*.json")}
    return FakeNode(blocks, chain="main", raw_transactions=raw), d


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.mark.parametrize("name,via_rpc", [("block_0", False), ("block_1", False),
                                          ("block_without_transactions", False),
                                          ("block_with_transactions", False), ("stream_50001_50002", True)])
def test_getblock_fixtures_match_expected(tmp_path, name, via_rpc):
    node, d = fixture_node(name)
    start = min(int(b["height"]) for b in node.blocks)
    ws = Workspace(tmp_path / "ws")
    with node.serve() as url:
        st = ingest_rpc(ws, url, "mainnet", start=start, prevouts_via_rpc=via_rpc)
    exp_blocks = lines(d / "expected_blocks.json")
    assert st.blocks == len(exp_blocks)
    for e in exp_blocks:
        b = ws.query(f"SELECT * FROM utxo_blocks WHERE height = {e['number']}").to_pylist()[0]
        assert (b["hash"], b["size"], b["version"], b["merkle_root"], int(b["time"].timestamp()),
                b["nonce"], b["bits"], b["tx_count"]) == \
            (e["hash"], e["size"], e["version"], e["merkle_root"], e["timestamp"], int(e["nonce"], 16),
             int(e["bits"], 16), e["transaction_count"])
    for e in lines(d / "expected_transactions.json"):
        t = ws.query(f"SELECT * FROM utxo_transactions WHERE txid = unhex('{e['hash']}')").to_pylist()[0]
        assert t["txid"].hex() == e["hash"]  # stored as 32 bytes in display order
        assert (t["height"], t["tx_index"], t["size"], t["vsize"], t["version"], t["locktime"],
                t["is_coinbase"], t["input_count"], t["output_count"], t["output_value"]) == \
            (e["block_number"], e["index"], e["size"], e["virtual_size"], e["version"], e["lock_time"],
             e["is_coinbase"], e["input_count"], e["output_count"], e["output_value"])
        resolved = all(i["value"] is not None for i in e["inputs"])
        if resolved:
            assert (t["input_value"], t["fee"]) == (e["input_value"], e["fee"])
        else:  # bitcoin-etl without prevouts writes 0 and a negative fee; we write null
            assert t["input_value"] is None and t["fee"] is None
        outs = ws.query(f"SELECT * FROM outputs WHERE txid = '{e['hash']}' ORDER BY n").to_pylist()
        assert [(o["n"], o["value"], o["address"], o["script_type"]) for o in outs] == \
            [(o["index"], o["value"], (o["addresses"] or [None])[0], ETL_TYPES[o["type"]]) for o in e["outputs"]]
        ins = ws.query(f"SELECT * FROM inputs WHERE txid = '{e['hash']}' ORDER BY n").to_pylist()
        assert [(i["n"], i["prev_txid"], i["prev_n"], i["sequence"], i["value"], i["address"],
                 i["script_type"]) for i in ins] == \
            [(i["index"], i["spent_transaction_hash"], i["spent_output_index"], i["sequence"], i["value"],
              (i["addresses"] or [None])[0], ETL_TYPES.get(i["type"])) for i in e["inputs"]]


def test_rpc_rows_equal_block_file_rows(tmp_path):
    """Block 1 from the getblock fixture and from blocks1-256.bz2 give the same rows."""
    node, _ = fixture_node("block_1")
    via_rpc = Workspace(tmp_path / "rpc")
    with node.serve() as url:
        ingest_rpc(via_rpc, url, "mainnet", start=1)
    d = tmp_path / "d"
    d.mkdir()
    (d / "blocks1-256.bz2").symlink_to(shared_path("bitcoin", "btcd", "blocks1-256.bz2"))
    via_files = Workspace(tmp_path / "files")
    ingest_block_files(via_files, d, "mainnet")
    for t in ("utxo_blocks", "utxo_transactions", "outputs", "inputs", "transfers"):
        q = f"SELECT * FROM {t} WHERE height = 1 ORDER BY ALL"
        assert via_rpc.query(q).to_pylist() == via_files.query(q).to_pylist(), t
    assert via_rpc.query("SELECT count(*) AS n FROM utxo_outputs").to_pylist()[0]["n"] == 1


def test_resume_follow_and_reorg(tmp_path):
    blocks, _ = make_chain(30, seed=21)
    raws = [b.serialize() for b in blocks]
    node = FakeNode.from_raw_blocks(raws[:10], start_height=1)
    ws = Workspace(tmp_path / "ws")
    with node.serve() as url:
        st = ingest_rpc(ws, url, "regtest", start=1, batch_blocks=4)
        assert (st.first_height, st.tip_height, st.blocks) == (1, 10, 10)
        # resume: only the new blocks are fetched
        node.blocks += FakeNode.from_raw_blocks(raws[10:15], start_height=11).blocks
        st = ingest_rpc(ws, url, "regtest")
        assert (st.first_height, st.tip_height, st.blocks) == (11, 15, 5)
        # follow (bounded): blocks appear while it polls
        added = threading.Event()

        def grow() -> None:
            node.blocks += FakeNode.from_raw_blocks(raws[15:20], start_height=16).blocks
            added.set()

        threading.Timer(0.3, grow).start()
        st = ingest_rpc(ws, url, "regtest", follow=True, poll_interval=0.2, stop=lambda: added.is_set() and
                        ws.chain("regtest")["tip_height"] >= 20, max_polls=50)
        assert ws.chain("regtest")["tip_height"] == 20
        # reorg: the node replaces blocks 18.. with a longer fork
        fork, _ = make_chain(6, seed=77, prev=blocks[16].hash(), start_height=18, tag=b"fork")
        node.blocks = [b for b in node.blocks if b["height"] < 18] + \
            FakeNode.from_raw_blocks([f.serialize() for f in fork], start_height=18).blocks
        st = ingest_rpc(ws, url, "regtest")
        # back to the last commit at or below the fork (17): the one at 15, with its address-id mark
        assert st.rolled_back == 5 and ws.chain("regtest")["tip_height"] == 23
        assert ws.chain("regtest")["tip_hash"] == fork[-1].hash()[::-1].hex()
    # the same chain from files gives the same rows (address ids aside: they follow the batches' order)
    d = tmp_path / "d"
    d.mkdir()
    write_blk(d / "blk00000.dat", blocks[:17] + fork)
    ref = Workspace(tmp_path / "ref")
    ingest_block_files(ref, d, "regtest")
    assert dump(ws, ids=False) == dump(ref, ids=False)
    # and the UTXO index was rolled back too: no input of the fork is unresolved
    assert ws.query("SELECT count(*) AS n FROM inputs WHERE value IS NULL").to_pylist()[0]["n"] == 0


def test_mock_transport_and_network_check(tmp_path):
    from fundtrail.errors import ChainMismatchError

    blocks, _ = make_chain(3, seed=2)
    node = FakeNode.from_raw_blocks([b.serialize() for b in blocks], start_height=1)
    ws = Workspace(tmp_path / "ws")
    st = ingest_rpc(ws, "http://node.invalid/", "regtest", start=1, transport=node.transport())
    assert st.blocks == 3
    with pytest.raises(ChainMismatchError):
        ingest_rpc(ws, "http://node.invalid/", "mainnet", transport=node.transport())
