"""The incremental update equals a full build: the simulated world cut at several heights of both chains.

The demo world (seed 1) is ingested up to about 60 % of its Bitcoin blocks and EVM height 200, attributed,
clustered and given the theft incident; the index is built; then blocks are appended step by step and after
each step the updated version is compared with a full build of the same workspace: the exposure rows, the
address tables and the incremental state (hits and frontier) must be identical.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from fundtrail.store import Workspace

CUT_EVM = 200


def _rows(v: Path) -> list[tuple]:
    t = pq.read_table(v / "exposure.parquet").to_pylist()
    return sorted(tuple((k, tuple(x) if isinstance(x, list) else x) for k, x in r.items()) for r in t)


def _addresses(v: Path, chain: str) -> dict[str, np.ndarray]:
    with np.load(v / f"addresses-{chain}.npz") as z:
        o = np.argsort(z["id"])
        return {k: z[k][o] for k in z.files}


def _state(v: Path, chain: str) -> tuple[list, list]:
    with np.load(v / "state" / f"utxo-{chain}.npz") as z:
        a = {k: z[k] for k in z.files}
    hp = pq.read_table(v / "state" / f"paths-{chain}.parquet")["path"].to_pylist()
    fp = pq.read_table(v / "state" / f"frontier-paths-{chain}.parquet")["path"].to_pylist()
    hits = sorted(zip(a["h_run"].tolist(), a["h_address_id"].tolist(), a["h_amount"].tolist(), a["h_hops"].tolist(),
                      a["h_best"].tolist(), map(tuple, hp), strict=True))
    front = sorted(zip(a["f_run"].tolist(), map(bytes, a["f_txid"]), a["f_n"].tolist(), a["f_taint"].tolist(),
                       a["f_hop"].tolist(), a["f_address_id"].tolist(), a["f_peel"].tolist(), map(tuple, fp),
                       strict=True))
    return hits, front


def _same(inc: Path, full: Path) -> None:
    assert _rows(inc) == _rows(full)
    meta = json.loads((full / "meta.json").read_text())
    for chain, kind in meta["kinds"].items():
        a, b = _addresses(inc, chain), _addresses(full, chain)
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k], b[k]), (chain, k)
        if kind == "utxo":
            assert _state(inc, chain) == _state(full, chain)
    mi = json.loads((inc / "meta.json").read_text())
    assert mi["heights"] == meta["heights"] and mi["digest"] == meta["digest"]


@pytest.fixture(scope="module")
def cut_world(tmp_path_factory):
    from fundtrail.attribution.service import import_paths
    from fundtrail.cluster.service import cluster
    from fundtrail.exposure.index import build_index
    from fundtrail.incidents import create_incident
    from fundtrail.ingest.bitcoin.service import ingest_block_files
    from fundtrail.ingest.evm.service import ingest_evm
    from fundtrail.prices import import_csv
    from fundtrail.simulate.world import simulate

    out = tmp_path_factory.mktemp("cut-world")
    summary = simulate(out / "world", "demo", 1)
    truth = json.loads((out / "world" / "truth.json").read_text())
    ws = Workspace(out / "ws")
    ingest_block_files(ws, out / "world" / "bitcoin" / "blocks", "regtest", max_blocks=int(summary.btc_blocks * 0.6))
    ingest_evm(ws, (out / "world" / "evm" / "rpc.jsonl").as_uri(), truth["chains"]["evm"], end=CUT_EVM)
    import_paths(ws, sorted((out / "world" / "tags").glob("*.yaml")))
    import_csv(ws, out / "world" / "prices.csv")
    for chain in ("regtest", "simeth"):
        cluster(ws, chain)
    seeds = truth["theft"]["seeds"]
    create_incident(ws, "sim-theft", sorted({s["chain"] for s in seeds}),
                    addresses=[f"{s['chain']}:{s['address']}" for s in seeds], since=truth["theft"]["time"][:10])
    build_index(ws)
    return out, truth


def _step(out: Path, truth: dict, btc_blocks: int, evm_end: int | None) -> tuple[Path, Path, dict]:
    from fundtrail.exposure.index import build_index
    from fundtrail.exposure.update import update_index
    from fundtrail.ingest.bitcoin.service import ingest_block_files
    from fundtrail.ingest.evm.service import ingest_evm

    ws = Workspace(out / "ws")
    if btc_blocks:
        ingest_block_files(ws, out / "world" / "bitcoin" / "blocks", "regtest", max_blocks=btc_blocks)
    if evm_end is not None:
        ingest_evm(ws, (out / "world" / "evm" / "rpc.jsonl").as_uri(), truth["chains"]["evm"], end=evm_end)
    inc = update_index(ws)
    how = json.loads((inc / "meta.json").read_text())["update"]
    full = build_index(ws)
    return inc, full, how


def _steps(out: Path, truth: dict, steps: list[tuple[int, int | None]]) -> list[dict]:
    modes: list[dict] = []
    for btc, evm_end in steps:
        inc, full, how = _step(out, truth, btc, evm_end)
        _same(inc, full)
        modes.append(how)
    assert all(m.get("reason") for m in modes if m["mode"] == "full")
    return [m.get("chains", {}) for m in modes if m["mode"] == "incremental"]


def test_incremental_equals_full_build_after_new_blocks(cut_world):
    """One new Bitcoin block, then two new EVM blocks."""
    out, truth = cut_world
    chains = _steps(out, truth, [(1, None), (0, CUT_EVM + 2)])
    assert any(c.get("regtest", "").startswith("extended") for c in chains)
    assert any(c.get("simeth", "").startswith("recomputed") for c in chains)


@pytest.mark.slow
def test_incremental_equals_full_build_at_several_heights(cut_world):
    """Bitcoin alone, several blocks at once; EVM alone; both together."""
    out, truth = cut_world
    chains = _steps(out, truth, [(6, None), (0, CUT_EVM + 4), (3, CUT_EVM + 6), (10, None), (0, CUT_EVM + 20)])
    assert any(c.get("regtest", "").startswith("extended") for c in chains)


def test_nothing_changed_keeps_the_version(cut_world):
    from fundtrail.exposure.index import current_version
    from fundtrail.exposure.update import update_index

    ws = Workspace(cut_world[0] / "ws")
    assert update_index(ws) == current_version(ws)


def test_changed_tags_force_a_full_build_and_say_so(cut_world, tmp_path):
    import shutil

    from fundtrail.attribution.service import import_paths
    from fundtrail.exposure.update import update_index

    out, truth = cut_world
    ws = Workspace(shutil.copytree(out / "ws", tmp_path / "ws"))
    user = sorted(a for a, o in truth["owners"]["regtest"].items() if o.startswith("user:"))[0]
    f = tmp_path / "more.csv"
    f.write_text("address,chain,label,category,entity,country,source,confidence\n"
                 f"{user},regtest,X Mixer,mixer,X Mixer,,test,0.9\n")
    import_paths(ws, [f])
    made = update_index(ws)
    how = json.loads((made / "meta.json").read_text())["update"]
    assert how["mode"] == "full" and "tags" in how["reason"]


_KILL = """
import sys, time
from fundtrail.store import Workspace
from fundtrail.exposure import index as I
real = I.pq.write_table
def slow(*a, **k):
    real(*a, **k)
    print("writing", flush=True)
    time.sleep(30)
I.pq.write_table = slow
I.build_index(Workspace(sys.argv[1]))
"""


def test_sigkill_while_publishing_leaves_the_current_version(cut_world, tmp_path):
    import shutil

    from fundtrail.exposure.index import build_index, current_version, load_index

    out, _truth = cut_world
    ws = Workspace(shutil.copytree(out / "ws", tmp_path / "ws"))
    before = current_version(ws)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    p = subprocess.Popen([sys.executable, "-c", _KILL, str(ws.home)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "writing"
        assert list((ws.home / "exposure").glob(".tmp-*"))  # a version half written
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    assert current_version(ws) == before
    assert load_index(ws).version == int(before.name[1:])
    time.sleep(0.1)
    build_index(ws)  # the next publisher removes what the killed one left
    assert not list((ws.home / "exposure").glob(".tmp-*"))


def test_running_service_swaps_to_the_updated_version(cut_world, tmp_path):
    """``Runtime.sync`` (the service's refresh loop) picks up a block ingested since, through an incremental
    update, and serves the new version without a restart; the old version stays loadable for replays."""
    import shutil

    from fundtrail.exposure.index import load_index
    from fundtrail.ingest.bitcoin.service import ingest_block_files
    from fundtrail.service.runtime import Config, Runtime

    out, _truth = cut_world
    home = shutil.copytree(out / "ws", tmp_path / "ws")
    rt = Runtime.open(Config(home=home))
    try:
        assert rt.load_current()
        rt.sync()
        before = rt.index.version
        ingest_block_files(Workspace(home), out / "world" / "bitcoin" / "blocks", "regtest", max_blocks=1)
        t0 = time.perf_counter()
        assert rt.sync()
        assert time.perf_counter() - t0 < 10
        assert rt.index.version == before + 1
        assert rt.index.meta["update"]["mode"] == "incremental", rt.index.meta["update"]
        assert rt.index.meta["heights"]["regtest"] == Workspace(home).chain("regtest")["tip_height"]
        assert load_index(Workspace(home), before).version == before
        assert not rt.sync()  # nothing changed since
    finally:
        rt.stop()
