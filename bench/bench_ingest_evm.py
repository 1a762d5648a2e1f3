"""Ingestion speed from a real local node (anvil): blocks/s and transfers/s at a few batch sizes.

The chain: the laundering scenario (contracts, internal transfers, creations, self-destructs) played
``rounds`` times, then ``full_blocks`` blocks of 25 transactions each (ETH payments and ERC-20 transfers,
mined with automine off). Each batch size ingests the whole chain into a fresh workspace with callTracer
traces. The machine is shared (2 cores, other engineers' jobs running): figures are indicative.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

SCALES = {"small": (2, 10), "medium": (5, 40), "large": (10, 200)}


def _fill(node, scenario, blocks: int, per_block: int = 25) -> None:
    from fundtrail.contracts import load_artifact

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


def run(scale: str = "small", batch_sizes: tuple[int, ...] = (1, 10, 50)) -> dict:
    from fundtrail.contracts.anvil import start_anvil
    from fundtrail.contracts.scenario import play
    from fundtrail.ingest.evm.service import ingest_evm
    from fundtrail.store import Workspace

    rounds, full = SCALES[scale]
    out: dict = {"scale": scale, "note": "indicative: shared 2-core machine", "runs": []}
    with start_anvil(accounts=20) as node:
        s = play(node, rounds=rounds)
        _fill(node, s, full)
        tip = node.block_number()
        out["blocks"] = tip + 1
        for bs in batch_sizes:
            with tempfile.TemporaryDirectory() as d:
                ws = Workspace(Path(d))
                t0 = time.perf_counter()
                st = ingest_evm(ws, node.url, "anvil", batch_blocks=bs, trace_method="debug")
                dt = time.perf_counter() - t0
                out["runs"].append({"batch_blocks": bs, "blocks": st.blocks, "transactions": st.transactions,
                                    "transfers": st.transfers, "seconds": round(dt, 3),
                                    "blocks_per_s": round(st.blocks / dt, 1),
                                    "transfers_per_s": round(st.transfers / dt, 1),
                                    "requests": st.requests})
    return out


if __name__ == "__main__":
    import sys

    res = run(sys.argv[1] if len(sys.argv) > 1 else "small")
    print(f"EVM ingestion from anvil ({res['blocks']} blocks, scale {res['scale']}; {res['note']})")
    print(f"{'batch':>6} {'blocks':>7} {'txs':>7} {'transfers':>10} {'seconds':>8} {'blocks/s':>9} {'transfers/s':>12}")
    for r in res["runs"]:
        print(f"{r['batch_blocks']:>6} {r['blocks']:>7} {r['transactions']:>7} {r['transfers']:>10} {r['seconds']:>8} "
              f"{r['blocks_per_s']:>9} {r['transfers_per_s']:>12}")
