"""Monitoring lag: from a new block at the node to its alerts stored (and queued for the webhooks).

A simulated world's Bitcoin chain is ingested, the addresses that spend in its last ``new_blocks`` blocks
are noted, and the workspace is rolled back below them (the ingest service's reorg path). A Bitcoin Core
look-alike (``FakeNode``, real HTTP on loopback) serves the chain up to there; 50 of those spenders and the
largest cluster (an exchange, moving funds in most blocks) are watched. Then the held-back blocks appear at
the node one at a time, and each is followed by one follower cycle as ``fundtrail follow`` runs it: ingest
through the RPC service, reorg check, one watch scan of the new block, alerts with their outbox rows stored
in the service database. The lag is from the block appearing at the node to the end of that cycle (the
follower's poll interval, 1 s at most, comes on top). Re-screening runs in its own thread and waits for the
exposure index rebuild, which the screening benchmarks measure.

The anchor, measured in the same run, is SHA-256 over 64 MB (hashlib): figures are given beside it because
the machine is shared. Target: lag < 2 s on the large world.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _anchor() -> float:
    data = b"\x01" * (64 << 20)
    t = time.perf_counter()
    hashlib.sha256(data).digest()
    return time.perf_counter() - t


def _raw_blocks(blocks_dir: Path, net, tmp: Path, first: int, last: int) -> list[bytes]:
    """The serialized blocks ``first``..``last`` of the best chain in ``blocks_dir``."""
    from fundtrail.ingest.bitcoin import blockfiles as BF

    src = BF.BlockSource(BF.list_block_files(blocks_dir), BF.read_xor_key(blocks_dir), tmp_dir=tmp)
    try:
        index = BF.build_index(src, net)

        def read_block(row: int) -> bytes:
            out = np.empty(int(index.size[row]), np.uint8)
            src.read(int(index.file[row]), int(index.offset[row]), int(index.size[row]), out)
            return out.tobytes()

        chain = BF.best_chain(index, net, read_block)
        rows = chain.rows[first - chain.first_height:last - chain.first_height + 1]
        return [read_block(int(r)) for r in rows]
    finally:
        src.close()


def run(scale: str = "large", new_blocks: int = 5, home: str | None = None) -> dict:
    import pyarrow.compute as pc

    from fundtrail.cluster.service import cluster
    from fundtrail.ingest.bitcoin.rpc import FakeNode
    from fundtrail.ingest.bitcoin.service import Ingester, ingest_block_files
    from fundtrail.model.chain import bitcoin_network
    from fundtrail.monitor.follower import Follower
    from fundtrail.monitor.sources import Source
    from fundtrail.monitor.watches import WatchBook
    from fundtrail.service.store import open_store
    from fundtrail.store import Workspace

    tmp = Path(home or tempfile.mkdtemp(prefix="bench-monitor-"))
    out = tmp / "world"
    t = time.monotonic()
    if not (out / "truth.json").exists():
        code = f"from fundtrail.simulate.world import simulate; simulate({str(out)!r}, {scale!r}, 1)"
        subprocess.run([sys.executable, "-c", code], check=True)
    sim_s = time.monotonic() - t
    truth = json.loads((out / "truth.json").read_text())
    net = bitcoin_network(truth["chains"].get("bitcoin", "regtest"))
    blocks_dir = out / "bitcoin" / "blocks"
    ws = Workspace(tmp / "ws")
    t = time.monotonic()
    ingest_block_files(ws, blocks_dir, net)
    ingest_s = time.monotonic() - t
    chain = net.chain
    tip = int(ws.chain(chain)["tip_height"])
    base = tip - new_blocks
    spends = ws.read("utxo_inputs", chain, columns=["address_id"], filter=pc.field("height") > base)
    spenders = sorted(set(spends["address_id"].drop_null().to_pylist()))
    ids = spenders[:: max(1, len(spenders) // 50)]
    addrs = ws.read("addresses", chain, columns=["address"], filter=pc.field("address_id").isin(ids))
    Ingester(ws, net).rollback_to(base)
    cluster(ws, chain)
    members = ws.read("cluster_members", chain, columns=["cluster_id"])
    counts = pc.value_counts(members["cluster_id"]).to_pylist()
    biggest = max(counts, key=lambda d: d["counts"])["values"] if counts else None
    raws = _raw_blocks(blocks_dir, net, tmp, base - 5, tip)
    db = open_store(f"sqlite:///{tmp / 'service.db'}", ws.home)
    book = WatchBook(db)
    for a in addrs["address"].to_pylist():
        if a:
            book.add(ws, chain, address=a, note="bench")
    if biggest is not None:
        book.add(ws, chain, cluster_id=int(biggest), note="bench: largest cluster")
    node = FakeNode.from_raw_blocks(raws[:6], start_height=base - 5, chain=net.name)
    lags, alerts, anchors, cycles = [], 0, [], []
    with node.serve() as url:
        fol = Follower(ws, db, (Source("bitcoin", net.name, url),))
        fol.cycle(rescreen=False)  # the scan state starts at the tip
        for k in range(new_blocks):
            anchors.append(_anchor())
            node.blocks.append(FakeNode.from_raw_blocks([raws[6 + k]], start_height=base + 1 + k).blocks[0])
            t = time.perf_counter()
            rep = fol.cycle(rescreen=False)
            lags.append(time.perf_counter() - t)
            assert rep.ingested.get(net.name) == 1 and not rep.errors, rep
            alerts += len(rep.alerts)
            cycles.append((round(rep.ingest_seconds, 3), round(rep.seconds - rep.ingest_seconds, 3)))
    anchor = min(anchors)
    lags = sorted(lags)
    res = {"scale": scale, "simulate_s": round(sim_s, 1), "ingest_s": round(ingest_s, 1), "tip": tip,
           "watches": len(book.list()), "new_blocks": new_blocks, "alerts": alerts,
           "lag_median_s": round(lags[len(lags) // 2], 3), "lag_max_s": round(lags[-1], 3),
           "anchor_sha256_64mb_s": round(anchor, 3),
           "lag_max_in_anchors": round(lags[-1] / anchor, 2), "target_s": 2.0,
           "per_block_ingest_and_scan_s": cycles}
    db.close()
    if home is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "large",
                         home=sys.argv[2] if len(sys.argv) > 2 else None), indent=1))
