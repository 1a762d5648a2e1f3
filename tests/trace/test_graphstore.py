"""The trace graph kept on disk: the same graph as a build, opened without building, rebuilt after new blocks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fundtrail.model.trace import Seed
from fundtrail.store import Workspace
from fundtrail.trace import graph as G
from fundtrail.trace import graphstore
from fundtrail.trace.service import trace
from tests.conftest import shared_path

from .world import BtcWorld, addr


def _world(ws: Workspace) -> None:
    w = BtcWorld()
    w.tx("cb1", [], [("victim", 80_000)], height=1)
    w.tx("theft", [("cb1", 0)], [("thief", 79_000)], height=2)
    w.tx("cb2", [], [("clean", 30_000)], height=2)
    w.tx("peel", [("theft", 0)], [("thief2", 60_000), ("exch", 18_500)], height=3)
    w.tx("join", [("peel", 0), ("cb2", 0)], [("x", 70_000), ("y", 19_000)], height=4)
    w.tx("memo", [("join", 1)], [("z", 18_000), (None, 0, b"memo")], height=4)
    w.tag("exch", "exchange", "Garantex", "RU")
    w.write(ws)


def _same(a: G.UtxoGraph, b: G.UtxoGraph) -> None:
    for n in graphstore.ARRAYS:
        x, y = getattr(a, n), getattr(b, n)
        assert x.dtype == y.dtype and np.array_equal(x, y), n
    assert np.array_equal(a.txid.raw, b.txid.raw)
    assert a.op_return == b.op_return


def test_stored_graph_equals_a_build_and_is_opened_without_building(home, monkeypatch):
    ws = Workspace(home)
    _world(ws)
    G.clear_cache()
    built = G.utxo_graph(ws, "regtest")
    k = graphstore.key(ws, "regtest")
    stored = list((home / "index" / "graph").rglob("meta.json"))
    assert len(stored) == 1 and stored[0].parent.name == k
    seeds = [Seed("regtest", address=addr("thief"))]
    before = trace(ws, seeds, model="haircut").to_json()
    G.clear_cache()  # a new process: no graph in memory

    def no_build(*a, **kw):
        raise AssertionError("the graph was built again")

    monkeypatch.setattr(G, "build_utxo_graph", no_build)
    opened = G.utxo_graph(ws, "regtest")
    _same(opened, built)
    assert list(opened.op_return.values()) == [b"memo"]
    assert opened.tx_number(built.txid_of(2)) == 2
    after = trace(ws, seeds, model="haircut").to_json()
    assert after["endpoints"]
    assert {k: v for k, v in after.items() if k != "params"} == {k: v for k, v in before.items() if k != "params"}
    G.clear_cache()


def test_the_address_index_is_stored_and_opened_with_the_graph(home, monkeypatch):
    ws = Workspace(home)
    _world(ws)
    G.clear_cache()
    built = G.utxo_graph(ws, "regtest")
    d = next((home / "index" / "graph").rglob("meta.json")).parent
    assert d.name.startswith(f"v{graphstore.VERSION}-") and graphstore.VERSION >= 2
    assert all((d / f"{n}.npy").exists() for n in graphstore.INDEX)
    G.clear_cache()
    monkeypatch.setattr(G, "address_index", lambda *a: pytest.fail("the address index was built again"))
    opened = G.utxo_graph(ws, "regtest")
    ptr, order = opened.address_index()
    assert isinstance(order.base, np.memmap) or isinstance(order, np.memmap)
    for a in range(-1, int(built.out_addr.max()) + 3):
        assert opened.outputs_of(a).tolist() == (np.flatnonzero(built.out_addr == a).tolist() if a >= 0 else [])
    G.clear_cache()


def test_a_store_of_an_older_format_is_built_again(home):
    ws = Workspace(home)
    _world(ws)
    G.clear_cache()
    built = G.utxo_graph(ws, "regtest")
    d = next((home / "index" / "graph").rglob("meta.json")).parent
    # the same graph as format 1 wrote it: no address index, version 1 in its key and meta
    old = d.parent / d.name.replace(f"v{graphstore.VERSION}-", "v1-", 1)
    d.rename(old)
    for n in graphstore.INDEX:
        (old / f"{n}.npy").unlink()
    meta = json.loads((old / "meta.json").read_text())
    (old / "meta.json").write_text(json.dumps({**meta, "version": 1}))
    G.clear_cache()
    _same(G.utxo_graph(ws, "regtest"), built)
    assert {p.parent.name for p in (home / "index" / "graph").rglob("meta.json")} == {d.name}
    assert graphstore.load(ws, "regtest", old.name) is None
    G.clear_cache()


def test_new_blocks_give_a_new_key_and_the_old_graph_is_removed(home):
    ws = Workspace(home)
    _world(ws)
    G.clear_cache()
    G.utxo_graph(ws, "regtest")
    k1 = graphstore.key(ws, "regtest")
    w = BtcWorld()
    w.tx("cb9", [], [("later", 7_000)], height=5)
    w.write(ws)
    k2 = graphstore.key(ws, "regtest")
    assert k2 != k1
    G.clear_cache()
    g = G.utxo_graph(ws, "regtest")
    assert g.ntx == 7
    keys = {p.parent.name for p in (home / "index" / "graph").rglob("meta.json")}
    assert keys == {k2}
    G.clear_cache()


def test_an_unreadable_store_is_rebuilt(home):
    ws = Workspace(home)
    _world(ws)
    G.clear_cache()
    built = G.utxo_graph(ws, "regtest")
    d = next((home / "index" / "graph").rglob("meta.json")).parent
    (d / "out_value.npy").write_bytes(b"not an array")
    assert graphstore.load(ws, "regtest", d.name) is None
    G.clear_cache()
    _same(G.utxo_graph(ws, "regtest"), built)
    G.clear_cache()


def test_a_view_pinned_at_a_past_height_never_uses_the_stored_graph(home):
    from fundtrail.trace.asof import as_of

    ws = Workspace(home)
    _world(ws)
    G.clear_cache()
    assert G.utxo_graph(ws, "regtest").ntx == 6
    past = as_of(ws, heights=2)
    assert G.utxo_graph(past, "regtest").ntx == 3  # cb1, theft, cb2
    assert G.utxo_graph(ws, "regtest").ntx == 6
    assert len(list((home / "index" / "graph").rglob("meta.json"))) == 1
    G.clear_cache()


def test_a_read_only_workspace_keeps_its_graph_in_the_temporary_directory(home, tmp_path, monkeypatch):
    import os

    from fundtrail.store import derived

    ws = Workspace(home)
    _world(ws)
    real = os.access
    monkeypatch.setattr(derived.os, "access", lambda p, mode: False if str(p) == str(ws.home) else real(p, mode))
    monkeypatch.setattr(derived.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    G.clear_cache()
    assert G.utxo_graph(ws, "regtest").ntx == 6
    assert not (home / "index" / "graph").exists()
    assert len(list((tmp_path / "tmp").rglob("meta.json"))) == 1
    G.clear_cache()


@pytest.mark.real
def test_real_mainnet_block_graph_round_trips(tmp_path):
    """Block 277647 (real mainnet, its prevouts from btcd's UTXO store): the graph read back from disk is the
    graph built from the tables, array for array."""
    from fundtrail.ingest.bitcoin.service import ingest_block_files

    src = shared_path("bitcoin", "btcd", "277647.dat.bz2")
    if not src.exists():
        pytest.skip(f"real block not available: {src}")
    d = tmp_path / "d"
    d.mkdir()
    (d / src.name).symlink_to(src)
    ws = Workspace(tmp_path / "ws")
    st = ingest_block_files(ws, d, "mainnet", prevouts=shared_path("bitcoin", "btcd", "277647.utxostore.bz2"))
    chain = st.chain
    G.clear_cache()
    built = G.build_utxo_graph(ws, chain)
    assert built.ntx > 200 and (built.in_node >= 0).any()
    G.utxo_graph(ws, chain)  # builds and keeps it
    fields = graphstore.load(ws, chain, graphstore.key(ws, chain))
    assert fields is not None
    _same(G.UtxoGraph(txid=G.TxIds(fields.pop("txid")), **fields), built)
    G.clear_cache()
