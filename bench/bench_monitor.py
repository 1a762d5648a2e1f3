"""Monitoring lag: from a new block at the source to its alerts stored (and queued for the webhooks).

A simulated world is ingested but for its last ``new_blocks`` Bitcoin blocks; the largest cluster (an
exchange, moving funds in most blocks) and a sample of addresses that spend in the held-back blocks are
watched. Then the held-back blocks arrive one at a time in the growing blocks directory: each step is one
follower cycle as ``fundtrail follow`` runs it (ingest through the block-files service, reorg check, watch
scan, alerts with their outbox rows in the service database). Re-screening is left out: it waits for the
exposure index rebuild, which the screening benchmark measures.

The anchor, measured in the same run, is SHA-256 over 64 MB (hashlib): figures are given beside it because
the machine is shared. Target: lag < 2 s on the large world.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _anchor() -> float:
    data = b"\x01" * (64 << 20)
    t = time.perf_counter()
    hashlib.sha256(data).digest()
    return time.perf_counter() - t


def run(scale: str = "large", new_blocks: int = 5, home: str | None = None) -> dict:
    import pyarrow.compute as pc

    from fundtrail.cluster.service import cluster
    from fundtrail.ingest.bitcoin.service import ingest_block_files
    from fundtrail.monitor.follower import Follower
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
    net = truth["chains"].get("bitcoin", "regtest")
    blocks_dir = out / "bitcoin" / "blocks"
    ws = Workspace(tmp / "ws")
    full = Workspace(tmp / "full")  # a scratch copy with every block: which addresses spend in the new ones
    ingest_block_files(full, blocks_dir, net)
    tip = int(full.chain(net)["tip_height"])
    t = time.monotonic()
    ingest_block_files(ws, blocks_dir, net, max_blocks=tip + 1 - new_blocks)
    ingest_s = time.monotonic() - t
    cluster(ws, net)
    base = int(ws.chain(net)["tip_height"])
    spends = full.read("utxo_inputs", net, columns=["height", "address_id"], filter=pc.field("height") > base)
    ids = sorted(set(spends["address_id"].to_pylist()))[:: max(1, len(set(spends["address_id"].to_pylist())) // 50)]
    addrs = full.read("addresses", net, columns=["address_id", "address"], filter=pc.field("address_id").isin(ids))
    members = ws.read("cluster_members", net, columns=["cluster_id"])
    biggest = pc.value_counts(members["cluster_id"]).to_pylist()
    biggest = max(biggest, key=lambda d: d["counts"])["values"] if biggest else None
    db = open_store(f"sqlite:///{tmp / 'service.db'}", ws.home)
    book = WatchBook(db)
    for a in addrs["address"].to_pylist():
        if a:
            book.add(ws, net, address=a, note="bench")
    if biggest is not None:
        book.add(ws, net, cluster_id=int(biggest), note="bench: largest cluster")
    fol = Follower(ws, db)  # the block-files source, stepped one block at a time below
    fol.cycle()  # the scan state starts at the tip
    lags, alerts, anchors = [], 0, []
    for _ in range(new_blocks):
        anchors.append(_anchor())
        # the next block "arrives": the block-files service ingests one more block per cycle
        t = time.perf_counter()
        ingest_block_files(ws, blocks_dir, net, max_blocks=1)
        rep = fol.cycle()
        lags.append(time.perf_counter() - t)
        alerts += len(rep.alerts)
    anchor = min(anchors)
    lags.sort()
    res = {"scale": scale, "simulate_s": round(sim_s, 1), "ingest_held_s": round(ingest_s, 1), "tip": tip,
           "watches": len(book.list()), "new_blocks": new_blocks, "alerts": alerts,
           "lag_median_s": round(lags[len(lags) // 2], 3), "lag_max_s": round(lags[-1], 3),
           "anchor_sha256_64mb_s": round(anchor, 3),
           "lag_max_in_anchors": round(lags[-1] / anchor, 2), "target_s": 2.0}
    db.close()
    return res


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "large"), indent=1))
