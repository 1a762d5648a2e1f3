"""The follower against a Bitcoin Core look-alike served on loopback (FakeNode) whose chain grows and then
switches to a longer fork: a watched address's spend raises an alert, the reorg withdraws it with a
follow-up alert, and a restart of the follower repeats nothing."""

from __future__ import annotations

import json

from fundtrail.cli.main import main
from fundtrail.incidents import create_incident
from fundtrail.ingest.bitcoin.rpc import FakeNode
from fundtrail.ingest.bitcoin.service import ingest_block_files, ingest_rpc
from fundtrail.monitor.alerts import AlertBook
from fundtrail.monitor.follower import Follower
from fundtrail.monitor.sources import Source
from fundtrail.monitor.watches import WatchBook
from fundtrail.store.workspace import Workspace
from tests.ingest.bitcoin.chaingen import make_chain, write_blk


def _spender(tmp_path, blocks, height):
    """An address that spends in block ``height`` (found in a scratch workspace holding every block)."""
    d = tmp_path / "all"
    d.mkdir()
    write_blk(d / "blk00000.dat", blocks)
    ref = Workspace(tmp_path / "ref")
    ingest_block_files(ref, d, "regtest")
    rows = ref.query(f"SELECT address, txid FROM inputs WHERE height = {height} AND address IS NOT NULL "
                     "ORDER BY txid").to_pylist()
    return rows[0]["address"], {r["txid"] for r in rows if r["address"] == rows[0]["address"]}


def test_watch_reorg_and_restart(tmp_path, db, capsys):
    blocks, _ = make_chain(26, seed=21)
    raws = [b.serialize() for b in blocks]
    address, txids = _spender(tmp_path, blocks, 18)
    node = FakeNode.from_raw_blocks(raws[:17], start_height=1)
    ws = Workspace(tmp_path / "ws")
    with node.serve() as url:
        ingest_rpc(ws, url, "regtest", start=1)  # the initial sync (this chain has no genesis block at 0)
        src = Source("bitcoin", "regtest", url)
        fol = Follower(ws, db, (src,))
        fol.cycle()
        assert ws.chain("regtest")["tip_height"] == 17
        w = WatchBook(db).add(ws, "regtest", address=address, note="dormant")
        assert w.from_height == 17
        create_incident(ws, "theft", ["regtest"], addresses=[f"regtest:{address}"])
        wi = WatchBook(db).add(ws, "regtest", incident="theft")
        # the chain grows: block 18 spends from the watched address
        node.blocks += FakeNode.from_raw_blocks(raws[17:20], start_height=18).blocks
        rep = fol.cycle()
        moved = [a for a in rep.alerts if a.kind == "watched_funds_moved"]
        by_incident = [a for a in moved if a.subject["watch_id"] == wi.watch_id]
        assert {a.details["txid"] for a in by_incident} == {a.details["txid"] for a in moved if a not in by_incident}
        assert by_incident and by_incident[0].subject["incident"] == "theft"
        assert {a.details["txid"] for a in moved if a.height == 18} == txids
        first = next(a for a in moved if a.height == 18)
        assert first.block_hash == blocks[17].hash()[::-1].hex()
        assert first.details["spent"][0]["address"] == address
        assert first.details["destinations"] and all(d["asset"] == "BTC" for d in first.details["destinations"])
        assert not fol.cycle().alerts  # nothing new: nothing raised twice
        # a restarted follower (new process) repeats nothing either
        assert not Follower(ws, db, (src,)).cycle().alerts
        # reorg: the node switches to a longer fork from block 18 on
        fork, _ = make_chain(6, seed=77, prev=blocks[16].hash(), start_height=18, tag=b"fork")
        node.blocks = [b for b in node.blocks if b["height"] < 18] + \
            FakeNode.from_raw_blocks([f.serialize() for f in fork], start_height=18).blocks
        rep = fol.cycle()
        assert ws.chain("regtest")["tip_height"] == 23
        reorgs = [a for a in rep.alerts if a.kind == "reorg"]
        assert {r.details["withdrawn_alert_id"] for r in reorgs} == {a.alert_id for a in moved}
        book = AlertBook(db)
        for a in moved:
            got = book.get(a.alert_id)
            assert got["status"] == "withdrawn" and got["actions"][-1]["action"] == "withdraw"
        assert not fol.cycle().alerts
        # paging by cursor returns everything once, in order
        items, _ = book.page(None, 1000)
        assert [i["alert_id"] for i in items] == [a.alert_id for a in moved] + [r.alert_id for r in reorgs]
    # the CLI shows the same: alerts after a cursor, the watches, and removes one
    home = ["--home", str(ws.home), "--db", db.url]
    capsys.readouterr()
    assert main(["alerts", "--json", "--since", items[0]["cursor"], *home]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [o["alert_id"] for o in out] == [i["alert_id"] for i in items[1:]]
    assert main(["watch", "add", "--chain", "regtest", "--cluster", "0", "--note", "c0", *home]) == 0
    wid2 = capsys.readouterr().out.strip()
    assert main(["watch", "list", "--json", *home]) == 0
    listed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["watch_id"] for x in listed] == [w.watch_id, wi.watch_id, wid2] and listed[2]["cluster"] == "0"
    assert main(["watch", "remove", w.watch_id, *home]) == 0
    assert [x.watch_id for x in WatchBook(db).list()] == [wi.watch_id, wid2]
    assert main(["watch", "add", "--chain", "nochain", "--address", address, *home]) != 0


def test_targets_resolve_each_address_in_every_part(tmp_path):
    """Addresses looked up one at a time, before and after they appear, all resolve (regression: a part
    searched for one address was once skipped for the next)."""
    from fundtrail.monitor.watches import Targets

    blocks, _ = make_chain(12, seed=5)
    d = tmp_path / "b"
    d.mkdir()
    write_blk(d / "blk00000.dat", blocks[:6])
    ws = Workspace(tmp_path / "ws")
    ingest_block_files(ws, d, "regtest")
    ref = Workspace(tmp_path / "ref")
    write_blk(d / "blk00000.dat", blocks)
    ingest_block_files(ref, d, "regtest")
    every = ref.read("addresses", "regtest", columns=["address_id", "address"]).to_pylist()
    tg = Targets(ws)
    for r in every[:40]:
        tg.resolve("regtest", [r["address"]])
    ingest_block_files(ws, d, "regtest")  # the rest of the chain: new dictionary parts
    got = {}
    for r in every:
        got.update(tg.resolve("regtest", [r["address"]]))
    assert got == {r["address"]: r["address_id"] for r in every}
