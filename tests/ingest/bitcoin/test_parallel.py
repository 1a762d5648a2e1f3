"""``ingest bitcoin --jobs N``: parse-ahead workers give the tables of a serial run, the same errors, and
the same crash safety (SIGKILL at any moment, no worker left behind or holding the lease, resume)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from fundtrail.errors import DecodeError
from fundtrail.ingest.bitcoin.service import ingest_block_files
from fundtrail.store.workspace import Workspace
from tests.conftest import shared_path
from tests.ingest.bitcoin.chaingen import make_chain, write_blk
from tests.ingest.bitcoin.test_blockfiles import TABLES, dump, link

SRC = Path(__file__).resolve().parents[3] / "src"


def _regtest_dir(tmp_path: Path, blocks, name: str = "d", xor: bytes | None = None, files: int = 1) -> Path:
    d = tmp_path / name
    d.mkdir()
    per = -(-len(blocks) // files)
    for k in range(files):
        write_blk(d / f"blk{k:05d}.dat", blocks[k * per:(k + 1) * per], xor=xor)
    if xor is not None:
        (d / "xor.dat").write_bytes(xor)
    return d


def _everything(ws: Workspace, chain: str, marks: bool = True) -> dict:
    out = dump(ws, chain)
    out["addresses"] = ws.query(f"SELECT * FROM addresses WHERE chain = '{chain}' ORDER BY address_id").to_pylist()
    st = dict(ws.chain(chain))
    out["state"] = {k: st[k] for k in ("tip_height", "tip_hash", "address_index_next", "id_marks")[:4 if marks else 3]}
    return out


def test_jobs_2_equals_jobs_1_on_real_blocks_bz2(tmp_path):
    """Mainnet blocks 1-255 from a .bz2 (inflated once by the ingesting process, read by the workers)."""
    d = link(shared_path("bitcoin", "btcd", "blocks1-256.bz2"), tmp_path / "d")
    one, two = Workspace(tmp_path / "one"), Workspace(tmp_path / "two")
    s1 = ingest_block_files(one, d, "mainnet", batch_blocks=40)
    s2 = ingest_block_files(two, d, "mainnet", batch_blocks=40, jobs=2)
    assert (s2.blocks, s2.transactions, s2.batches) == (s1.blocks, s1.transactions, s1.batches) == (255, 262, 7)
    assert _everything(two, "bitcoin") == _everything(one, "bitcoin")
    for t in TABLES:  # one part per batch in both
        assert [p.rows for p in two.parts(t, "bitcoin")] == [p.rows for p in one.parts(t, "bitcoin")]


@pytest.mark.slow
def test_jobs_2_equals_jobs_1_xor_several_files_and_continuation(tmp_path):
    blocks, _ = make_chain(60, seed=21)
    key = bytes.fromhex("0f1e2d3c4b5a6978")
    d = _regtest_dir(tmp_path, blocks, xor=key, files=3)
    ref = Workspace(tmp_path / "ref")
    ingest_block_files(ref, d, "regtest", batch_blocks=6)
    ws = Workspace(tmp_path / "ws")
    ingest_block_files(ws, d, "regtest", batch_blocks=6, jobs=2, max_blocks=25)  # stop, then continue
    st = ingest_block_files(ws, d, "regtest", batch_blocks=6, jobs=2)
    assert st.first_height == 26 and st.unresolved_inputs == 0
    # (the id marks differ: they are taken at each commit, and the stop at 25 moved the batch boundaries)
    assert _everything(ws, "regtest", marks=False) == _everything(ref, "regtest", marks=False)


def test_jobs_2_corrupt_block_same_error_and_kept_blocks(tmp_path):
    blocks, _ = make_chain(20, seed=7)
    d = tmp_path / "d"
    d.mkdir()
    data = bytearray(write_blk(d / "blk00000.dat", blocks))
    rec_starts = np.cumsum([0] + [8 + len(b.serialize()) for b in blocks])
    data[int(rec_starts[12]) + 8 + 80 + 1 + 4 + 1 + 36 + 3] ^= 1  # block 13: parses, merkle root wrong
    (d / "blk00000.dat").write_bytes(bytes(data))
    errors, tips = [], []
    for jobs in (1, 2):
        ws = Workspace(tmp_path / f"ws{jobs}")
        with pytest.raises(DecodeError) as e:
            ingest_block_files(ws, d, "regtest", batch_blocks=5, jobs=jobs)
        errors.append(str(e.value))
        tips.append(ws.chain("regtest")["tip_height"])
    assert errors[0] == errors[1] and "merkle" in errors[0] and "block 13" in errors[0]
    assert tips == [12, 12]  # batches 1-5, 6-10 and the valid blocks 11-12 of the failing batch


CRASH_SCRIPT = """
import sys
from fundtrail.store.workspace import Workspace
from fundtrail.ingest.bitcoin.service import ingest_block_files
ingest_block_files(Workspace(sys.argv[1]), sys.argv[2], "regtest", batch_blocks=int(sys.argv[3]), jobs=2)
"""


def _marked(marker: str) -> list[int]:
    """Processes whose environment carries ``marker`` (the killed ingest's workers inherit it)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if marker.encode() in (p / "environ").read_bytes():
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def _open_files(pid: int) -> set[str]:
    out = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                out.add(os.readlink(fd))
            except OSError:
                pass
    except OSError:
        pass
    return out


def test_sigkill_with_jobs_2_then_rerun_equals_uninterrupted(tmp_path):
    blocks, _ = make_chain(150, seed=11)
    d = _regtest_dir(tmp_path, blocks, files=2)
    ref = Workspace(tmp_path / "ref")
    ingest_block_files(ref, d, "regtest", batch_blocks=7)
    home = tmp_path / "ws"
    marker = f"FUNDTRAIL_TEST_MARK={uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           marker.split("=")[0]: marker.split("=")[1]}
    kills = 0
    for delay in (0.0, 0.3, 0.1):
        p = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(home), str(d), "3"], env=env)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and p.poll() is None:  # committed something: wait, then kill
            m = home / "manifest.json"
            if m.exists() and json.loads(m.read_text()).get("chains", {}).get("regtest", {}).get("tip_height"):
                time.sleep(delay)
                break
            time.sleep(0.05)
        if p.poll() is None:
            # its workers hold no copy of the writer lease's descriptor
            for pid in set(_marked(marker)) - {p.pid}:
                assert str(home / "lock") not in _open_files(pid)
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
        # the workers die with their parent (PR_SET_PDEATHSIG), and the lease is free at once
        gone = time.monotonic() + 10
        while _marked(marker) and time.monotonic() < gone:
            time.sleep(0.1)
        assert _marked(marker) == []
        with Workspace(home).writer(purpose="test"):
            pass
    assert kills >= 1
    assert Workspace(home).chain("regtest")["tip_height"] < 150  # it really was interrupted
    st = ingest_block_files(Workspace(home), d, "regtest", batch_blocks=3, jobs=2)
    ws = Workspace(home)
    assert ws.chain("regtest")["tip_height"] == 150 and st.unresolved_inputs == 0
    assert dump(ws) == dump(ref)
    listed = {p.file for t in TABLES for p in ws.parts(t, "regtest")}
    assert {str(f.relative_to(home)) for f in (home / "tables").rglob("*.parquet")} == listed


def test_cli_jobs_and_compression_options(tmp_path):
    blocks, _ = make_chain(12, seed=3)
    d = _regtest_dir(tmp_path, blocks)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "fundtrail", "ingest", "bitcoin", "--home", str(tmp_path / "ws"),
                        "--blocks-dir", str(d), "--network", "regtest", "--jobs", "2", "--batch-blocks", "5",
                        "--compression", "zstd"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "12 blocks" in r.stdout
    ref = Workspace(tmp_path / "ref")
    ingest_block_files(ref, d, "regtest", batch_blocks=5)
    assert dump(Workspace(tmp_path / "ws")) == dump(ref)
    # the codec asked for (zstd) against the default (lz4), column by column of the block tables

    def codecs(home):
        import pyarrow.parquet as pq

        return {pq.ParquetFile(f).metadata.row_group(0).column(0).compression
                for f in (home / "tables" / "utxo_outputs").rglob("*.parquet")}

    assert codecs(tmp_path / "ws") == {"ZSTD"} and codecs(tmp_path / "ref") == {"LZ4"}
    r = subprocess.run([sys.executable, "-m", "fundtrail", "ingest", "bitcoin", "--home", str(tmp_path / "ws2"),
                        "--rpc", "http://127.0.0.1:1", "--jobs", "2"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 2 and "--jobs" in r.stderr + r.stdout


def test_workers_hand_batches_over_in_shared_memory(tmp_path):
    """Each batch a worker prepares arrives as arrays viewing the shared arena (nothing pickled), equal to
    the ingesting process's own parse of the same bytes; every slot is free again at the end."""
    import mmap
    from dataclasses import fields

    from fundtrail.ingest.bitcoin import blockfiles as BF
    from fundtrail.ingest.bitcoin.parallel import ParseAhead
    from fundtrail.ingest.bitcoin.parse import parse_blocks
    from fundtrail.ingest.bitcoin.rows import classify_outputs
    from fundtrail.model.chain import MAINNET

    d = link(shared_path("bitcoin", "btcd", "blocks1-256.bz2"), tmp_path / "d")
    src = BF.BlockSource(BF.list_block_files(d), BF.read_xor_key(d), tmp_dir=tmp_path / "tmp")
    ahead = ParseAhead(2, src, True, tmp_path, batch_bytes=1 << 20)
    try:
        index = BF.build_index(src, MAINNET)

        def read_block(row: int) -> bytes:
            out = np.empty(int(index.size[row]), np.uint8)
            src.read(int(index.file[row]), int(index.offset[row]), int(index.size[row]), out)
            return out.tobytes()

        chain = BF.best_chain(index, MAINNET, read_block)
        shared = 0
        for pos, prepared in ahead.run(index, BF.iter_batches(chain, index, 1 << 20, 40), chain.rows):
            buf, starts, ends = BF.gather(src, index, chain.rows[pos])
            ref = parse_blocks(buf, starts, ends)
            if prepared is None:  # not started by a worker in time: the caller parses it (allowed)
                continue
            shared += isinstance(getattr(prepared.batch.buf.base, "obj", None), mmap.mmap)  # a view of the arena
            for f in fields(ref):
                assert np.array_equal(getattr(prepared.batch, f.name), getattr(ref, f.name)), f.name
            info = classify_outputs(ref)
            assert np.array_equal(prepared.info.types, info.types)
            assert np.array_equal(prepared.info.keys, info.keys)
        assert shared >= 1
        assert sorted(ahead._free) == list(range(ahead.slots))
    finally:
        ahead.close()
        src.close()
