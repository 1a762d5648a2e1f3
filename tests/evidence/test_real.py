"""Real mainnet blocks (../shared/data): the raw transaction of Satoshi's payment to Hal Finney (block 170)
in a bundle, read from the block files and from a Bitcoin Core-style JSON-RPC node, checked by an
independent library.

The only invented thing is the tag that makes Hal Finney's address an endpoint (a test fixture, labelled
so): real tag sources do not attribute that address."""

from __future__ import annotations

import json

import pytest

from fundtrail.store import Workspace

from ..conftest import shared_path

SATOSHI = "12cbQLTFMXRnSzktFkuoG3eHoMeFtpTu3S"
HAL = "1Q2TWHE3GMdB6BZKafqwxXtWAWgFt5Jvm3"
TX170 = "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def mainnet(tmp_path_factory):
    from fundtrail.attribution.service import import_paths
    from fundtrail.incidents import create_incident
    from fundtrail.ingest.bitcoin.service import ingest_block_files

    src = shared_path("bitcoin", "btcd", "blocks1-256.bz2")
    d = tmp_path_factory.mktemp("blocks")
    (d / src.name).symlink_to(src)
    ws = Workspace(tmp_path_factory.mktemp("ws"))
    ingest_block_files(ws, d, "mainnet")
    tags = d.parent / "test-endpoint.csv"
    tags.write_text("address,chain,label,category,entity,country,source,confidence\n"
                    f"{HAL},bitcoin,test endpoint,exchange,Test endpoint (not a real attribution),,test,1.0\n")
    import_paths(ws, [tags])
    create_incident(ws, "block-170", ["bitcoin"], addresses=[SATOSHI])
    return ws, d


def test_raw_mainnet_transaction_from_block_files_and_from_a_node(mainnet, tmp_path):
    from fundtrail.evidence.bundle import export_bundle, read_bundle
    from fundtrail.evidence.rawtx import BlockFiles
    from fundtrail.evidence.verify import verify_bundle
    from fundtrail.ingest.bitcoin.rpc import FakeNode

    ws, blocks = mainnet
    a = export_bundle(ws, "block-170", tmp_path / "files.zip", models=("haircut",), blocks_dirs={"bitcoin": blocks})
    files = read_bundle(a.path)
    raw = files[f"raw/bitcoin/{TX170}.hex"].decode().strip()
    paths = json.loads(files["paths/paths.json"])
    assert [t["height"] for t in paths[0]["transactions"]] == [170]
    assert verify_bundle(a.path, ws).ok
    try:
        from bitcoin.core import CTransaction, b2lx
    except ImportError:
        pytest.skip("python-bitcoinlib (dev extra) not installed")
    tx = CTransaction.deserialize(bytes.fromhex(raw))
    assert b2lx(tx.GetTxid()) == TX170 and [o.nValue for o in tx.vout] == [10 * 10**8, 40 * 10**8]
    # the same bytes from a node's getblock (served over HTTP on loopback)
    bf = BlockFiles(blocks, "mainnet")
    try:
        hashes = [r["hash"] for r in ws.query("SELECT hash FROM blocks WHERE chain = 'bitcoin' "
                                              "AND height BETWEEN 1 AND 256 ORDER BY height").to_pylist()]
        node = FakeNode.from_raw_blocks([bf.block(h) for h in hashes], start_height=1, chain="main")
    finally:
        bf.close()
    with node.serve() as url:
        b = export_bundle(ws, "block-170", tmp_path / "node.zip", models=("haircut",), rpc={"bitcoin": url})
    assert read_bundle(b.path)[f"raw/bitcoin/{TX170}.hex"].decode().strip() == raw
    assert "127.0.0.1" in b.manifest["raw_transactions"]["bitcoin"]["source"]
    assert "pass" not in json.dumps(b.manifest)
