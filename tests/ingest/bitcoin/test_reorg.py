"""Reorganisations against a Bitcoin Core look-alike on loopback (FakeNode: Core's JSON-RPC served from
generated blocks whose chain the test switches): afterwards every table, the address dictionary and its
ids included, equals a clean ingest of the final chain; a reorganisation in the middle of a range is
handled within the run; an orphan-only address is unknown again."""

from __future__ import annotations

from typing import Any

from fundtrail.ingest.bitcoin.rpc import FakeNode
from fundtrail.ingest.bitcoin.service import ingest_rpc
from fundtrail.store import Workspace
from tests.ingest.bitcoin.chaingen import make_chain
from tests.ingest.bitcoin.test_blockfiles import dump


def tables(ws: Workspace) -> dict[str, list[Any]]:
    out = dump(ws, ids=True)
    out["addresses"] = ws.query("SELECT address_id, address, script_type FROM addresses WHERE chain = 'regtest' "
                                "ORDER BY address_id").to_pylist()
    return out


def chains():
    blocks, _ = make_chain(20, seed=21)
    fork, _ = make_chain(6, seed=77, prev=blocks[16].hash(), start_height=18, tag=b"fork")
    a = FakeNode.from_raw_blocks([b.serialize() for b in blocks], start_height=1).blocks
    b = [x for x in a if x["height"] < 18] + \
        FakeNode.from_raw_blocks([f.serialize() for f in fork], start_height=18).blocks
    return a, b


def clean(tmp_path, final) -> Workspace:
    ref = Workspace(tmp_path / "clean")
    with FakeNode(final, chain="regtest").serve() as url:
        ingest_rpc(ref, url, "regtest", start=1, batch_blocks=4)
    return ref


def test_reorg_leaves_the_tables_of_a_clean_ingest(tmp_path):
    a, b = chains()
    node = FakeNode(list(a), chain="regtest")
    ws = Workspace(tmp_path / "ws")
    with node.serve() as url:
        ingest_rpc(ws, url, "regtest", start=1, batch_blocks=4)
        orphan_only = {r["address"] for r in tables(ws)["addresses"]}
        node.blocks = list(b)
        st = ingest_rpc(ws, url, "regtest", batch_blocks=4)
    assert st.rolled_back == 4 and ws.chain("regtest")["tip_height"] == 23  # back to the commit at 16
    want = tables(clean(tmp_path, b))
    got = tables(ws)
    orphan_only -= {r["address"] for r in want["addresses"]}
    assert orphan_only, "the orphaned blocks should pay addresses the final chain does not"
    assert orphan_only.isdisjoint({r["address"] for r in got["addresses"]})
    for t in want:
        assert got[t] == want[t], t


class SwitchingNode(FakeNode):
    """Serves chain ``a`` and switches to chain ``b`` after ``after`` getblock calls (mid-range)."""

    def __init__(self, a, b, after: int) -> None:
        super().__init__(list(a), chain="regtest")
        self.b, self.after, self.n = b, after, 0

    def dispatch(self, method: str, params: list[Any]) -> Any:
        if method == "getblock":
            self.n += 1
            if self.n == self.after:
                self.blocks = list(self.b)
        return super().dispatch(method, params)


def test_reorg_during_a_range_is_handled_in_the_run(tmp_path):
    a, b = chains()
    node = SwitchingNode(a, b, after=19)  # blocks 17..20 were fetched from chain a, then it switches
    ws = Workspace(tmp_path / "ws")
    with node.serve() as url:
        ingest_rpc(ws, url, "regtest", start=1, batch_blocks=4)
        ingest_rpc(ws, url, "regtest", batch_blocks=4)  # a run that started before the switch ends at 20
    got = tables(ws)
    want = tables(clean(tmp_path, b))
    for t in want:
        assert got[t] == want[t], t


def test_an_orphan_only_address_gets_the_next_id_when_seen_again(tmp_path):
    """Rolled-back ids are reused in order, and an address of the orphaned blocks that the final chain pays
    later gets the id a clean ingest gives it (the index's tombstone is overridden)."""
    blocks, _ = make_chain(12, seed=5)
    a = FakeNode.from_raw_blocks([x.serialize() for x in blocks], start_height=1).blocks
    # the final chain: blocks 1..8 of a, then blocks 9..12 of a again but one height later (an empty-ish
    # fork block first), so every address of a's 9..12 is seen again on the final chain
    fork, _ = make_chain(1, seed=99, prev=blocks[7].hash(), start_height=9, tag=b"x")
    ws = Workspace(tmp_path / "ws")
    node = FakeNode(list(a), chain="regtest")
    with node.serve() as url:
        ingest_rpc(ws, url, "regtest", start=1, batch_blocks=4)
        node.blocks = [x for x in a if x["height"] <= 8] + \
            FakeNode.from_raw_blocks([fork[0].serialize()], start_height=9).blocks
        ingest_rpc(ws, url, "regtest", batch_blocks=4)
    want = tables(clean(tmp_path, node.blocks))
    got = tables(ws)
    for t in want:
        assert got[t] == want[t], t
