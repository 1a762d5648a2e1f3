"""Bitcoin ingestion benchmark: raw block bytes -> committed workspace tables, MB/s on one core.

Input: the real mainnet block 702861 (SegWit, 2,500 transactions, 1.38 MB; ../shared/data/bitcoin/
rust-bitcoin) chained N times into blk*.dat files: copy k's header points at copy k-1, every non-coinbase
input of copy k is rewired to spend an output of copy k-1 (so every prevout resolves through the on-disk
UTXO store), and the merkle roots are recomputed. With ``fresh_addresses`` every copy also pays new
addresses (the payload of each P2PKH/P2SH/segwit output is altered), so each copy's ~5,800 addresses are
encoded and added to the dictionary, the worst case for the address path. The real block has more inputs
(~6,500) than spendable outputs (~5,800), so each copy spends ~700 outpoints a second time: those inputs
find nothing in the UTXO index and are reported as unresolved, as a double spend would be.

Memory: the address and UTXO indexes get a RAM budget (``--index-memory MB``, default 32 here) small
enough that the long chain's indexes spill to disk, so the two chain lengths show whether peak memory
grows with the number of blocks.

Tx-dense data (the second kind): the block files of the simulator's ``small`` world (``fundtrail simulate
--scale small --seed 1``: 1,662 blocks, 352,557 transactions of ~250 bytes, 87 MB), generated once and
cached under ``$FUNDTRAIL_BENCH_DIR/sim-small`` (default /tmp/fundtrail-bench); the cost there is
per transaction and per output, not per byte. Both kinds are also ingested with ``--jobs 2`` (parse-ahead
worker processes; the CPU figure then adds the workers' CPU time).

Reference in the same run: python-bitcoinlib's bare ``CBlock.deserialize`` on the same bytes (the first
30 MB of each kind), measured right after each ingest (so both see the same machine load; their ratio is
the meaningful figure), per wall second and per CPU second.
Peak memory: each measured ingest runs in its own process; its high-water mark (VmHWM) is reported for two
chain lengths to show whether it grows with the number of blocks (it should not: batches are bounded by
bytes and the indexes by their RAM budget, docs/indexes.md). Throughput is reported per wall second and per CPU
second of the ingesting process (its user + system time; Arrow is held to one thread, so the
CPU figure is the per-core one and is less disturbed by other processes on a shared machine).

    python bench/bench_ingest_bitcoin.py [demo|small|medium|large] [--repeat N] [--index-memory MB]

Figures on a shared 2-core machine are indicative: run it several times and read best and median.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RAW = next((REPO.parent / "shared" / "data" / "bitcoin" / "rust-bitcoin").glob("*.raw"), None)
SCALES = {"demo": (6, 24), "small": (48, 384), "medium": (96, 768), "large": (100, 1500)}  # (short, long) copies
INDEX_MEMORY_MB = 32


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
def peak_mb():
    # VmHWM of this process's own memory; ru_maxrss would include the parent's RSS at fork (Linux keeps the
    # high-water mark across exec)
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
def main():
    home, d, warm, mem = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) << 20
    net, jobs, comp = sys.argv[5], int(sys.argv[6]), sys.argv[7]
    ingest_block_files(Workspace(home + "-warm"), warm, "mainnet")  # numba/JIT caches
    rss0 = peak_mb()
    t = time.perf_counter()
    c = time.process_time()
    c0 = children_cpu()
    ws = Workspace(home)
    st = ingest_block_files(ws, d, net, index_memory=mem, jobs=jobs, compression=comp)
    cpu = time.process_time() - c
    workers = children_cpu() - c0
    dt = time.perf_counter() - t
    report(ws, st, dt, cpu, workers, rss0)
def report(ws, st, dt, cpu, workers, rss0):
  print(json.dumps({"seconds": dt, "cpu_seconds": cpu + workers, "parent_cpu_seconds": cpu, "bytes": st.bytes, "blocks": st.blocks,
                  "tx": st.transactions, "outputs": st.outputs, "inputs": st.inputs,
                  "unresolved": st.unresolved_inputs, "new_addresses": st.new_addresses, "batches": st.batches,
                  "maxrss_mb": peak_mb(), "maxrss_after_warmup_mb": rss0,
                  "index_runs": {g: [e["n"] for e in ws.files(g, st.chain)] for g in ("address_index", "utxo_index")},  # noqa
                  "table_mb": sum(p.stat().st_size for p in (ws.home / "tables").rglob("*.parquet")) / 1e6}))
if __name__ == "__main__":
    main()
"""


def _ingest(tmp: Path, d: Path, warm: Path, tag: str, index_mb: int = INDEX_MEMORY_MB, net: str = "mainnet",
            jobs: int = 1, compression: str = "lz4") -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    ws = tmp / f"ws-{tag}"
    script = tmp / "ingest_child.py"
    script.write_text(_CHILD)
    r = subprocess.run([sys.executable, str(script), str(ws), str(d), str(warm), str(index_mb), net, str(jobs),
                        compression],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-3000:])
    shutil.rmtree(ws, ignore_errors=True)
    shutil.rmtree(str(ws) + "-warm", ignore_errors=True)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["mb_per_s"] = out["bytes"] / out["seconds"] / 1e6
    out["mb_per_cpu_s"] = out["bytes"] / out["cpu_seconds"] / 1e6
    out["blocks_per_s"] = out["blocks"] / out["seconds"]
    out["tx_per_s"] = out["tx"] / out["seconds"]
    return out


def _read_blocks(d: Path, limit_bytes: int) -> list[bytes]:
    data = b"".join(p.read_bytes() for p in sorted(d.glob("blk*.dat")))
    blocks: list[bytes] = []
    p = 0
    total = 0
    while p < len(data) and total < limit_bytes:
        n = struct.unpack_from("<I", data, p + 4)[0]
        blocks.append(data[p + 8:p + 8 + n])
        total += n
        p += 8 + n
    return blocks


def _bitcoinlib_mbps(blocks: list[bytes]) -> tuple[float, float]:
    """python-bitcoinlib's bare parse: (MB per wall second, MB per CPU second)."""
    import bitcoin.core

    t = time.perf_counter()
    c = time.process_time()
    for blk in blocks:
        bitcoin.core.CBlock.deserialize(blk)
    mb = sum(len(x) for x in blocks) / 1e6
    return mb / (time.perf_counter() - t), mb / (time.process_time() - c)


def tx_dense_world() -> Path:
    """The block files of the simulator's small world (generated once, then cached)."""
    root = Path(os.environ.get("FUNDTRAIL_BENCH_DIR", "/tmp/fundtrail-bench")) / "sim-small"
    blocks = root / "world" / "bitcoin" / "blocks"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        subprocess.run([sys.executable, "-c", "import sys; from fundtrail.simulate.world import simulate; "
                        "simulate(sys.argv[1], 'small', 1)", str(root / "world")], env=env, check=True,
                       capture_output=True)
        (root / "done").write_text("ok")
    return blocks


def _parse_only_mbps(d: Path) -> float:
    """Parse + txids + merkle check + script classification of the first file, in this process."""
    sys.path.insert(0, str(REPO / "src"))
    from fundtrail.ingest.bitcoin import rows
    from fundtrail.ingest.bitcoin.parse import merkle_roots, parse_blocks

    data = np.fromfile(sorted(d.glob("blk*.dat"))[0], np.uint8)
    starts, ends = [], []
    p = 0
    while p + 8 <= len(data):
        n = int(data[p + 4:p + 8].view("<u4")[0])
        starts.append(p + 8)
        ends.append(p + 8 + n)
        p += 8 + n
    s, e = np.array(starts), np.array(ends)
    merkle_roots(parse_blocks(data, s[:1], e[:1]))
    t = time.perf_counter()
    b = parse_blocks(data, s, e)
    merkle_roots(b)
    rows.classify_outputs(b)
    return float(e[-1] - s[0]) / (time.perf_counter() - t) / 1e6


def _stats(xs: list[float]) -> dict:
    return {"best": max(xs), "median": float(statistics.median(xs)), "all": xs}


def run(scale: str = "small", repeat: int = 1, index_mb: int = INDEX_MEMORY_MB, tx_dense: bool = True,
        jobs: int = 2) -> dict:
    if RAW is None:
        return {"skipped": "../shared/data/bitcoin/rust-bitcoin/*.raw not available"}
    short, long_ = SCALES[scale]
    with tempfile.TemporaryDirectory(prefix="bench-btc-") as t:
        tmp = Path(t)
        warm = tmp / "warm"
        make_chain(2, warm)
        out: dict = {"scale": scale, "repeat": repeat, "index_memory_mb": index_mb, "jobs": jobs,
                     "input": "mainnet block 702861 chained (prevouts rewired, fresh addresses)"}
        # (directory, network, bitcoinlib reference kind, jobs, Parquet codec)
        cases: dict[str, tuple[Path, str, str, int, str]] = {
            "short": (tmp / "blocks-short", "mainnet", "real", 1, "lz4"),
            "long": (tmp / "blocks-long", "mainnet", "real", 1, "lz4"),
            "repeated_addresses": (tmp / "blocks-rep", "mainnet", "real", 1, "lz4"),
        }
        make_chain(short, cases["short"][0], fresh_addresses=True)
        make_chain(long_, cases["long"][0], fresh_addresses=True)
        make_chain(short, cases["repeated_addresses"][0], fresh_addresses=False)
        if jobs > 1:
            cases[f"long_jobs{jobs}"] = (cases["long"][0], "mainnet", "real", jobs, "lz4")
        cases["long_zstd"] = (cases["long"][0], "mainnet", "real", 1, "zstd")
        ref_blocks = {"real": _read_blocks(cases["long"][0], 30 << 20)}
        if tx_dense:
            d = tx_dense_world()
            cases["tx_dense"] = (d, "regtest", "tx_dense", 1, "lz4")
            if jobs > 1:
                cases[f"tx_dense_jobs{jobs}"] = (d, "regtest", "tx_dense", jobs, "lz4")
            cases["tx_dense_zstd"] = (d, "regtest", "tx_dense", 1, "zstd")
            ref_blocks["tx_dense"] = _read_blocks(d, 30 << 20)
        runs: dict[str, list[dict]] = {k: [] for k in cases}
        for _ in range(repeat):
            for tag, (d, net, kind, j, comp) in cases.items():
                r = _ingest(tmp, d, warm, tag, index_mb, net, j, comp)
                wall, cpu = _bitcoinlib_mbps(ref_blocks[kind])  # the reference under the same load
                r["bitcoinlib_mb_per_s"], r["bitcoinlib_mb_per_cpu_s"] = wall, cpu
                r["x_bitcoinlib_wall"] = r["mb_per_s"] / wall
                r["x_bitcoinlib_cpu"] = r["mb_per_cpu_s"] / cpu
                r["kind"], r["jobs"], r["codec"] = kind, j, comp
                runs[tag].append(r)
        for tag, rs in runs.items():
            best = max(rs, key=lambda r: r["mb_per_s"])
            out[f"ingest_{tag}"] = {**best, "mb_per_s": _stats([r["mb_per_s"] for r in rs]),
                                    "mb_per_cpu_s": _stats([r["mb_per_cpu_s"] for r in rs]),
                                    "x_bitcoinlib_wall": _stats([r["x_bitcoinlib_wall"] for r in rs]),
                                    "x_bitcoinlib_cpu": _stats([r["x_bitcoinlib_cpu"] for r in rs]),
                                    "bitcoinlib_mb_per_s": _stats([r["bitcoinlib_mb_per_s"] for r in rs]),
                                    "bitcoinlib_mb_per_cpu_s": _stats([r["bitcoinlib_mb_per_cpu_s"] for r in rs]),
                                    "maxrss_mb": max(r["maxrss_mb"] for r in rs)}
        out["parse_classify_only_mb_per_s"] = _stats([_parse_only_mbps(cases["long"][0]) for _ in range(repeat)])
        out["speedup_vs_bitcoinlib"] = out["ingest_long"]["x_bitcoinlib_wall"]
    return out


def _arg(name: str, default: int) -> int:
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


if __name__ == "__main__":
    rep = _arg("--repeat", 1)
    mem = _arg("--index-memory", INDEX_MEMORY_MB)
    jobs = _arg("--jobs", 2)
    skip = {str(rep), str(mem), str(jobs)}
    args = [a for a in sys.argv[1:] if not a.startswith("--") and a not in skip]
    res = run(args[0] if args else "small", repeat=rep, index_mb=mem, tx_dense="--no-tx-dense" not in sys.argv,
              jobs=jobs)
    print(f"Bitcoin ingest, raw block bytes -> committed tables (shared machine, indicative; {rep} run(s): "
          f"best / median; index RAM budget {mem} MB). Each line: the ingest, then python-bitcoinlib's bare "
          "CBlock.deserialize on the same kind of bytes right after it, and the ratio")
    for k in [k for k in res if k.startswith("ingest_")]:
        r = res[k]
        print(f"  {k:26s} {r['kind']:8s} jobs {r['jobs']} {r['codec']:4s} {r['blocks']:5d} blocks {r['tx']:7d} tx "
              f"{r['bytes'] / 1e6:6.1f} MB ({r['bytes'] / r['tx']:4.0f} B/tx)  "
              f"{r['mb_per_s']['best']:6.1f} / {r['mb_per_s']['median']:6.1f} MB/s wall  "
              f"{r['mb_per_cpu_s']['best']:6.1f} / {r['mb_per_cpu_s']['median']:6.1f} MB/cpu-s "
              f"(ingesting process alone {r['bytes'] / r['parent_cpu_seconds'] / 1e6:6.1f})  tables "
              f"{r['table_mb']:6.1f} MB  "
              f"{r['tx_per_s']:8.0f} tx/s  peak RSS {r['maxrss_mb']:6.1f} MB (after warm-up "
              f"{r['maxrss_after_warmup_mb']:.0f})  | bitcoinlib {r['bitcoinlib_mb_per_s']['median']:5.2f} MB/s "
              f"{r['bitcoinlib_mb_per_cpu_s']['median']:5.2f} MB/cpu-s  | x bitcoinlib: "
              f"{r['x_bitcoinlib_wall']['best']:5.1f} / {r['x_bitcoinlib_wall']['median']:5.1f} wall, "
              f"{r['x_bitcoinlib_cpu']['best']:5.1f} / {r['x_bitcoinlib_cpu']['median']:5.1f} cpu")
    pc_ = res["parse_classify_only_mb_per_s"]
    print(f"  parse + txids + merkle + classify only (real, in-process)   {pc_['best']:6.1f} / {pc_['median']:6.1f} MB/s")
    print(json.dumps(res, indent=1))
