"""Ingestion speed from a real local node (anvil): blocks/s and transfers/s at a few batch sizes, and the
ingester's own rate on a replay (no node).

The chain: the laundering scenario (contracts, internal transfers, creations, self-destructs) played
``rounds`` times, then ``full_blocks`` blocks of ``per_block`` transactions each (default 25; ETH payments and
ERC-20 transfers, mined with automine off). Printed:
* the node's own answer rate per method (one block a request) over the filled blocks;
* per trace method (trace_block, callTracer) and batch size, a full ingestion from the node into a fresh
  workspace;
* the same chain replayed from a recording made during one of those runs: mapping, address book and Parquet
  commits without a node (the recording's JSON is parsed before the clock starts).
The machine is shared (2 cores, other engineers' jobs running): figures are indicative.
Usage: ``python bench/bench_ingest_evm.py [small|medium|large] [tx_per_block]``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

SCALES = {"demo": (1, 5), "small": (2, 10), "medium": (5, 40), "large": (10, 200)}


def _fill(node, scenario, blocks: int, per_block: int = 25) -> None:
    from fundtrail.simulate.contracts import load_artifact

    usdt = load_artifact("TestUSDT")
    a = node.accounts
    lp = scenario.roles["liquidity"]
    node.call("evm_setAutomine", [False])
    try:
        for b in range(blocks):
            for i in range(per_block):
                if i % 2:
                    tx = {"from": lp, "to": scenario.contracts["usdt"], "gas": hex(100_000),
                          "data": usdt.calldata("transfer", a[10 + (i + b) % 10], 1_000 + i)}
                else:
                    tx = {"from": a[10 + i % 10], "to": a[10 + (i + 3) % 10], "value": hex(10**12 + i),
                          "gas": hex(21_000)}
                node.call("eth_sendTransaction", [tx])
            node.call("evm_mine")
    finally:
        node.call("evm_setAutomine", [True])


def _raw_rates(url: str, heights: list[int]) -> dict:
    """The node's own answer rate per method (one block a request, sequential): what ingestion can not beat."""
    from fundtrail.ingest.evm.client import HttpTransport, RpcClient

    cl = RpcClient(HttpTransport(url, timeout=300), retries=0)
    out = {}
    try:
        for name, mk in (("eth_getBlockByNumber", lambda h: [hex(h), True]),
                         ("eth_getBlockReceipts", lambda h: [hex(h)]),
                         ("trace_block", lambda h: [hex(h)]),
                         ("debug_traceBlockByNumber", lambda h: [hex(h), {"tracer": "callTracer"}])):
            t0 = time.perf_counter()
            for h in heights:
                cl.call(name, mk(h))
            out[name] = round(len(heights) / (time.perf_counter() - t0), 1)
    finally:
        cl.close()
    return out


def _ingest(ws_dir: Path, url: str, bs: int, method: str, client=None) -> dict:
    from fundtrail.ingest.evm.service import ingest_evm
    from fundtrail.store import Workspace

    t0 = time.perf_counter()
    st = ingest_evm(Workspace(ws_dir), url, "anvil", batch_blocks=bs, trace_method=method, client=client)
    dt = time.perf_counter() - t0
    return {"batch_blocks": bs, "trace_method": method, "blocks": st.blocks, "transactions": st.transactions,
            "transfers": st.transfers, "seconds": round(dt, 3), "blocks_per_s": round(st.blocks / dt, 1),
            "transfers_per_s": round(st.transfers / dt, 1), "requests": st.requests}


def run(scale: str = "small", batch_sizes: tuple[int, ...] = (1, 10, 50), per_block: int = 25,
        methods: tuple[str, ...] = ("trace", "debug")) -> dict:
    """Node runs (per trace method and batch size), the node's raw per-method rates, and the ingester's own
    rate on a replay of a recording of the same chain (no node: JSON decoding of the recording excluded,
    mapping + address book + Parquet commits included)."""
    from fundtrail.ingest.evm.client import HttpTransport, RpcClient
    from fundtrail.ingest.evm.replay import RecordingTransport, ReplayTransport
    from fundtrail.simulate.contracts.anvil import start_anvil
    from fundtrail.simulate.contracts.scenario import play

    rounds, full = SCALES[scale]
    out: dict = {"scale": scale, "per_block": per_block, "note": "indicative: shared 2-core machine",
                 "runs": [], "replay": []}
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "rpc.jsonl"
        with start_anvil(accounts=20) as node:
            s = play(node, rounds=rounds)
            first_full = node.block_number() + 1
            _fill(node, s, full, per_block)
            tip = node.block_number()
            out["blocks"] = tip + 1
            out["node_raw_blocks_per_s"] = _raw_rates(node.url, list(range(first_full, min(tip, first_full + 9) + 1)))
            for method in methods:
                for bs in batch_sizes:
                    out["runs"].append(_ingest(Path(tmp) / f"ws-{method}-{bs}", node.url, bs, method))
            # a recording of the whole chain (debug traces: the richer answers) for the replay figures
            recorder = RpcClient(RecordingTransport(HttpTransport(node.url, timeout=300), rec), max_batch=100)
            _ingest(Path(tmp) / "ws-record", node.url, 50, "debug", client=recorder)
            recorder.close()
        for bs in batch_sizes:
            client = RpcClient(ReplayTransport([rec]), max_batch=100)
            out["replay"].append(_ingest(Path(tmp) / f"ws-replay-{bs}", "", bs, "debug", client=client))
    return out


if __name__ == "__main__":
    import sys

    res = run(sys.argv[1] if len(sys.argv) > 1 else "small",
              per_block=int(sys.argv[2]) if len(sys.argv) > 2 else 25)
    print(f"EVM ingestion from anvil ({res['blocks']} blocks, {res['per_block']} tx in each filled block, "
          f"scale {res['scale']}; {res['note']})")
    print("node's own rate, one block a request:",
          ", ".join(f"{k} {v} blocks/s" for k, v in res["node_raw_blocks_per_s"].items()))
    head = (f"{'source':>7} {'trace':>6} {'batch':>6} {'blocks':>7} {'txs':>6} {'transfers':>10} {'seconds':>8} "
            f"{'blocks/s':>9} {'transfers/s':>12}")
    print(head)
    for src, rows in (("node", res["runs"]), ("replay", res["replay"])):
        for r in rows:
            print(f"{src:>7} {r['trace_method']:>6} {r['batch_blocks']:>6} {r['blocks']:>7} {r['transactions']:>6} "
                  f"{r['transfers']:>10} {r['seconds']:>8} {r['blocks_per_s']:>9} {r['transfers_per_s']:>12}")
