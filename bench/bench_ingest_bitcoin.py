"""Bitcoin ingestion benchmark: raw block bytes -> committed workspace tables, MB/s on one core.

Input: the real mainnet block 702861 (SegWit, 2,500 transactions, 1.38 MB; ../shared/data/bitcoin/
rust-bitcoin) chained N times into blk*.dat files: copy k's header points at copy k-1, every non-coinbase
input of copy k is rewired to spend an output of copy k-1 (so every prevout resolves through the on-disk
UTXO store), and the merkle roots are recomputed. With ``fresh_addresses`` every copy also pays new
addresses (the payload of each P2PKH/P2SH/segwit output is altered), so each copy's ~5,800 addresses are
encoded and added to the dictionary, the worst case for the address path.

Reference in the same run: python-bitcoinlib's bare ``CBlock.deserialize`` on the same bytes.
Peak memory: each measured ingest runs in its own process; ru_maxrss is reported for two chain lengths
to show it does not grow with the number of blocks. Figures on a shared 2-core machine are indicative.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RAW = next((REPO.parent / "shared" / "data" / "bitcoin" / "rust-bitcoin").glob("*.raw"), None)
SCALES = {"small": (12, 48), "medium": (24, 120), "large": (40, 300)}  # (short chain, long chain) copies


def _sha256d(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def make_chain(copies: int, out_dir: Path, fresh_addresses: bool = True, file_mb: int = 128) -> int:
    """Write ``copies`` chained copies of block 702861 as blk*.dat; returns the bytes of block data."""
    sys.path.insert(0, str(REPO / "src"))
    from fundtrail.ingest.bitcoin import script as S
    from fundtrail.ingest.bitcoin.parse import merkle_root, parse_blocks
    from fundtrail.model.chain import MAINNET

    raw = RAW.read_bytes()
    buf = np.frombuffer(raw, np.uint8)
    b = parse_blocks(buf, np.array([0]), np.array([len(raw)]))
    types = np.zeros(len(b.out_val), np.int8)
    keys = np.zeros((len(types), S.KEYW), np.uint8)
    S.classify(buf, b.out_off, b.out_len, types, keys)
    payload_off = np.where(np.isin(types, [S.ST_P2PKH]), b.out_off + 3,
                           np.where(np.isin(types, [S.ST_P2SH, S.ST_P2WPKH, S.ST_P2WSH, S.ST_P2TR]),
                                    b.out_off + 2, -1))
    coinbase_in = b.tx_fin[0]
    spend_in = np.arange(len(b.in_prev))
    spend_in = spend_in[spend_in != coinbase_in]
    spendable = np.flatnonzero(types != S.ST_OP_RETURN)
    spendable = spendable[b.out_tx[spendable] != 0]  # not the coinbase (maturity)
    out_n = np.arange(len(b.out_val)) - b.tx_fout[b.out_tx]
    out_dir.mkdir(parents=True, exist_ok=True)
    prev_hash = raw[4:36]
    prev_txids = b.txid
    fh = None
    total = 0
    file_no = 0
    for k in range(copies):
        blk = bytearray(raw)
        if k:
            for j, i in enumerate(spend_in.tolist()):
                o = spendable[j % len(spendable)]
                p = int(b.in_prev[i])
                blk[p:p + 32] = prev_txids[b.out_tx[o]].tobytes()
                blk[p + 32:p + 36] = struct.pack("<I", int(out_n[o]))
            if fresh_addresses:
                tag = struct.pack("<I", k)
                for p in payload_off[payload_off >= 0].tolist():
                    blk[p:p + 4] = tag
        cb_lock = int(b.tx_end[0]) - 4
        blk[cb_lock:cb_lock + 4] = struct.pack("<I", k)  # distinct coinbase txids
        blk[4:36] = prev_hash
        nb = parse_blocks(np.frombuffer(bytes(blk), np.uint8), np.array([0]), np.array([len(blk)]))
        blk[36:68] = merkle_root(nb.txid)
        prev_txids = nb.txid
        prev_hash = _sha256d(bytes(blk[:80]))
        if fh is None or fh.tell() > file_mb << 20:
            if fh:
                fh.close()
            fh = open(out_dir / f"blk{file_no:05d}.dat", "wb")
            file_no += 1
        fh.write(MAINNET.magic + struct.pack("<I", len(blk)) + bytes(blk))
        total += len(blk)
    if fh:
        fh.close()
    return total


_CHILD = r"""
import json, resource, sys, time
import pyarrow as pa
pa.set_cpu_count(1); pa.set_io_thread_count(1)
from fundtrail.store.workspace import Workspace
from fundtrail.ingest.bitcoin.service import ingest_block_files
home, d, warm = sys.argv[1], sys.argv[2], sys.argv[3]
ingest_block_files(Workspace(home + "-warm"), warm, "mainnet", duckdb_threads=1)  # numba/JIT caches
t = time.perf_counter()
st = ingest_block_files(Workspace(home), d, "mainnet", duckdb_threads=1)
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "bytes": st.bytes, "blocks": st.blocks, "tx": st.transactions,
                  "outputs": st.outputs, "inputs": st.inputs, "unresolved": st.unresolved_inputs,
                  "new_addresses": st.new_addresses, "batches": st.batches,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _ingest(tmp: Path, d: Path, warm: Path, tag: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", _CHILD, str(tmp / f"ws-{tag}"), str(d), str(warm)],
                       capture_output=True, text=True, env=env, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def _bitcoinlib_mbps(d: Path, limit_bytes: int = 30 << 20) -> float:
    import bitcoin.core

    data = b"".join(p.read_bytes() for p in sorted(d.glob("blk*.dat")))
    blocks = []
    p = 0
    while p < len(data) and sum(len(x) for x in blocks) < limit_bytes:
        n = struct.unpack_from("<I", data, p + 4)[0]
        blocks.append(data[p + 8:p + 8 + n])
        p += 8 + n
    t = time.perf_counter()
    for blk in blocks:
        bitcoin.core.CBlock.deserialize(blk)
    return sum(len(x) for x in blocks) / (time.perf_counter() - t) / 1e6


def _parse_only_mbps(d: Path) -> float:
    sys.path.insert(0, str(REPO / "src"))
    from fundtrail.ingest.bitcoin import rows
    from fundtrail.ingest.bitcoin.parse import parse_blocks

    data = np.fromfile(sorted(d.glob("blk*.dat"))[0], np.uint8)
    starts, ends = [], []
    p = 0
    while p + 8 <= len(data):
        n = int(data[p + 4:p + 8].view("<u4")[0])
        starts.append(p + 8)
        ends.append(p + 8 + n)
        p += 8 + n
    s, e = np.array(starts), np.array(ends)
    parse_blocks(data, s[:1], e[:1])
    t = time.perf_counter()
    b = parse_blocks(data, s, e)
    rows.classify_outputs(b)
    return float(e[-1] - s[0]) / (time.perf_counter() - t) / 1e6


def run(scale: str = "small") -> dict:
    if RAW is None:
        return {"skipped": "../shared/data/bitcoin/rust-bitcoin/*.raw not available"}
    short, long_ = SCALES[scale]
    with tempfile.TemporaryDirectory(prefix="bench-btc-") as t:
        tmp = Path(t)
        warm = tmp / "warm"
        make_chain(2, warm)
        out: dict = {"scale": scale, "input": "mainnet block 702861 chained (prevouts rewired, fresh addresses)"}
        for tag, n in (("short", short), ("long", long_)):
            d = tmp / f"blocks-{tag}"
            make_chain(n, d, fresh_addresses=True)
            r = _ingest(tmp, d, warm, tag)
            r["mb_per_s"] = r["bytes"] / r["seconds"] / 1e6
            out[f"ingest_{tag}"] = r
        d = tmp / "blocks-repeat"
        make_chain(short, d, fresh_addresses=False)
        r = _ingest(tmp, d, warm, "repeat")
        r["mb_per_s"] = r["bytes"] / r["seconds"] / 1e6
        out["ingest_repeated_addresses"] = r
        out["parse_classify_only_mb_per_s"] = _parse_only_mbps(tmp / "blocks-long")
        out["bitcoinlib_deserialize_mb_per_s"] = _bitcoinlib_mbps(tmp / "blocks-long")
        out["speedup_vs_bitcoinlib"] = out["ingest_long"]["mb_per_s"] / out["bitcoinlib_deserialize_mb_per_s"]
    return out


if __name__ == "__main__":
    res = run(sys.argv[1] if len(sys.argv) > 1 else "small")
    print("Bitcoin ingest (one core; shared machine, indicative)")
    for k in ("ingest_short", "ingest_long", "ingest_repeated_addresses"):
        r = res[k]
        print(f"  {k:28s} {r['blocks']:5d} blocks {r['bytes'] / 1e6:8.1f} MB  {r['seconds']:7.2f} s  "
              f"{r['mb_per_s']:6.1f} MB/s  peak RSS {r['maxrss_mb']:7.1f} MB  unresolved {r['unresolved']}  "
              f"new addresses {r['new_addresses']}")
    print(f"  parse + classify only        {res['parse_classify_only_mb_per_s']:6.1f} MB/s")
    print(f"  python-bitcoinlib deserialize {res['bitcoinlib_deserialize_mb_per_s']:6.2f} MB/s")
    print(f"  end-to-end speedup vs bitcoinlib: {res['speedup_vs_bitcoinlib']:.1f}x")
    print(json.dumps(res, indent=1))
