"""Reorganisations on a real anvil (``evm_snapshot`` / ``evm_revert`` and mining a longer branch): after any
reorganisation every table (rows, address dictionary and ids, tokens with their first heights) equals a
clean ingest of the final chain, including a reorganisation that lands between fetching a batch's blocks
and its receipts (which used to stop the ingest with exit 4, "no receipt for ...")."""

from __future__ import annotations

from typing import Any

import pytest

from fundtrail.ingest.evm.client import HttpTransport, RpcClient
from fundtrail.ingest.evm.service import ingest_evm
from fundtrail.simulate.contracts.anvil import find_anvil, start_anvil
from fundtrail.store import Workspace

pytestmark = pytest.mark.node
ETH = 10**18
TABLES = {
    "evm_blocks": "height",
    "evm_transactions": "height, tx_index",
    "evm_transfers": "height, tx_index, seq",
    "evm_logs": "height, tx_index, log_index",
    "tokens": "address",
    "addresses": "address_id",
}


@pytest.fixture
def node():
    if find_anvil() is None:
        pytest.skip("anvil is not installed: run dev/setup")
    with start_anvil() as n:
        yield n


def dump(ws: Workspace) -> dict[str, list[dict[str, Any]]]:
    return {t: ws.query(f"SELECT * EXCLUDE (chain) FROM {t} WHERE chain = 'anvil' ORDER BY {o}").to_pylist()
            for t, o in TABLES.items()}


def fresh(i: int) -> str:
    return "0x" + f"{i:02x}" * 20


def branch(node, tag: int, *, token: bool, empty_first: bool) -> str | None:
    """A branch on top of the current head: a transfer to an address only this branch knows, then
    (optionally after an empty block) a token deployed and minted. Returns the token address."""
    a = node.accounts
    node.send(a[0], fresh(tag), value=ETH)
    if empty_first:
        node.mine(1)
    tok = None
    if token:
        tok = node.deploy("TestUSDT", sender=a[1])
        node.transact("TestUSDT", tok, "mint", fresh(tag + 1), 5 * 10**6, sender=a[1])
    return tok


def test_reorg_rolls_back_addresses_and_tokens(node, tmp_path):
    a = node.accounts
    node.send(a[0], fresh(0x10), value=ETH)
    node.send(a[0], fresh(0x11), value=ETH)
    ws = Workspace(tmp_path / "follow")
    ingest_evm(ws, node.url, "anvil", batch_blocks=1)
    snap = node.call("evm_snapshot")
    orphan_token = branch(node, 0x20, token=True, empty_first=False)  # only on the orphaned branch
    st = ingest_evm(ws, node.url, "anvil", batch_blocks=1)
    assert st.tokens == 1
    seen = {r["address"] for r in dump(ws)["addresses"]}
    assert fresh(0x20) in seen and fresh(0x21) in seen
    assert node.call("evm_revert", [snap]) is True
    # the final chain: other addresses, the same token address (same deployer nonce) one block later,
    # and longer than the orphaned branch
    final_token = branch(node, 0x30, token=True, empty_first=True)
    assert final_token == orphan_token
    node.mine(2)
    st = ingest_evm(ws, node.url, "anvil", batch_blocks=1)
    assert st.reorgs == 1
    clean = Workspace(tmp_path / "clean")
    ingest_evm(clean, node.url, "anvil", batch_blocks=1)
    got, want = dump(ws), dump(clean)
    assert {r["address"] for r in got["addresses"]}.isdisjoint({fresh(0x20), fresh(0x21)})
    assert got["tokens"][0]["first_height"] == want["tokens"][0]["first_height"]
    for t in TABLES:
        assert got[t] == want[t], t


class ReorgBeforeReceipts:
    """Forwards to anvil; the first time receipts are asked for after ``armed``, the node switches to
    another branch first (what a reorganisation between the two requests looks like)."""

    def __init__(self, node, switch) -> None:
        self.inner = HttpTransport(node.url)
        self.url = self.inner.url
        self.switch = switch
        self.armed = False
        self.switched = 0

    def send(self, requests):
        if self.armed and any(r["method"] in ("eth_getBlockReceipts", "eth_getTransactionReceipt")
                              for r in requests):
            self.armed = False
            self.switch()
            self.switched += 1
        return self.inner.send(requests)

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("receipts", ["block", pytest.param("tx", marks=pytest.mark.slow)])
def test_reorg_between_blocks_and_receipts_refetches_the_batch(node, tmp_path, receipts):
    a = node.accounts
    node.send(a[0], fresh(0x40), value=ETH)
    ws = Workspace(tmp_path / "ws")
    ingest_evm(ws, node.url, "anvil", batch_blocks=4, receipts_method=receipts)
    snap = node.call("evm_snapshot")
    branch(node, 0x50, token=True, empty_first=False)

    def switch():
        assert node.call("evm_revert", [snap]) is True
        branch(node, 0x60, token=True, empty_first=True)
        node.mine(1)

    proxy = ReorgBeforeReceipts(node, switch)
    proxy.armed = True
    client = RpcClient(proxy, max_batch=100)
    ingest_evm(ws, node.url, "anvil", batch_blocks=4, receipts_method=receipts, client=client, prefetch=False)
    assert proxy.switched == 1
    ingest_evm(ws, node.url, "anvil", batch_blocks=4, receipts_method=receipts)  # the rest of the longer branch
    clean = Workspace(tmp_path / "clean")
    ingest_evm(clean, node.url, "anvil", batch_blocks=4, receipts_method=receipts, end=1)
    ingest_evm(clean, node.url, "anvil", batch_blocks=4, receipts_method=receipts)
    got, want = dump(ws), dump(clean)
    assert fresh(0x50) not in {r["address"] for r in got["addresses"]}
    for t in TABLES:
        assert got[t] == want[t], t
