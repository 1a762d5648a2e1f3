"""The concurrency harness: many fundtrail processes on one workspace in random interleavings, SIGKILLs
among them, a reader checking every snapshot; then the workspace must equal a serial run's."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from fundtrail.attribution.service import import_paths
from fundtrail.cluster.service import cluster
from fundtrail.ingest.bitcoin.service import ingest_block_files
from fundtrail.store import Workspace
from tests.ingest.bitcoin.chaingen import make_chain, write_blk
from tests.store.reader_loop import check

ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2024-01-01"
BATCH = "6"  # blocks per commit: many commits per ingest, so the writers' runs overlap a lot


@dataclasses.dataclass
class Data:
    short: Path  # blk files holding the first half of the chain
    full: Path  # the whole chain
    tags: Path  # a CSV of tags on addresses of the chain
    reference: Path  # the workspace a serial run gives


@dataclasses.dataclass
class Round:
    processes: int = 0
    order: tuple[str, ...] = ()
    exits: dict[str, int] = dataclasses.field(default_factory=dict)
    killed: int = 0
    locked: int = 0  # writers started without --wait that found the workspace busy (exit 5, holder named)
    snapshots: int = 0
    generations: int = 0


def make_data(root: Path, n_blocks: int = 240) -> Data:
    blocks, _ = make_chain(n_blocks, seed=2024)
    short, full = root / "short", root / "full"
    short.mkdir(parents=True)
    full.mkdir()
    write_blk(short / "blk00000.dat", blocks[: n_blocks // 2])
    write_blk(full / "blk00000.dat", blocks[: n_blocks // 2])
    write_blk(full / "blk00001.dat", blocks[n_blocks // 2:])
    # tags: addresses of the chain (read from a throw-away ingest), so that tags and clusters meet
    probe = Workspace(root / "probe")
    ingest_block_files(probe, full, "regtest", batch_blocks=50)
    addrs = probe.query("SELECT DISTINCT address FROM outputs WHERE address IS NOT NULL ORDER BY 1 LIMIT 40")
    tags = root / "tags.csv"
    tags.write_text("address,chain,label,category,entity,country,source,confidence\n" + "".join(
        f"{a},regtest,svc {i % 5},exchange,Exchange{i % 5},SG,test,0.9\n"
        for i, a in enumerate(addrs["address"].to_pylist())))
    ref = root / "reference"
    serial(Workspace(ref), full, tags)
    return Data(short, full, tags, ref)


def serial(ws: Workspace, full: Path, tags: Path) -> None:
    """What the processes of a round do, one after the other and to completion."""
    ingest_block_files(ws, full, "regtest", batch_blocks=int(BATCH))
    import_paths(ws, [tags], as_of=AS_OF)
    cluster(ws)


def dump(home: Path) -> dict[str, list]:
    """Every table as a person sees it, address ids left out (they depend on who saw an address first)."""
    ws = Workspace(home)
    q = {
        "blocks": "SELECT * FROM blocks ORDER BY ALL",
        "transactions": "SELECT * FROM transactions ORDER BY ALL",
        "outputs": "SELECT * EXCLUDE (address_id) FROM outputs ORDER BY ALL",
        "inputs": "SELECT * EXCLUDE (address_id) FROM inputs ORDER BY ALL",
        "tags": "SELECT * EXCLUDE (imported_at, file) FROM tags ORDER BY ALL",
        # the partition into clusters, each named by its smallest address string
        "clusters": "SELECT address, min(address) OVER (PARTITION BY cluster_id) AS rep FROM clusters ORDER BY 1",
        "addresses": "SELECT address, script_type FROM addresses ORDER BY ALL",
    }
    out = {k: ws.query(v).to_pylist() for k, v in q.items()}
    ws.close()
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    return env


def run_round(data: Data, home: Path, rng: random.Random, *, writers: int = 6, kills: int = 0,
              no_wait_share: float = 0.2) -> Round:
    """Start ``writers`` writing commands in a random order with random delays (plus a reader loop and a
    `fundtrail query` loop), SIGKILL ``kills`` of them at random moments, wait for the rest."""
    env = _env()
    fundtrail = [sys.executable, "-m", "fundtrail"]
    pool = [
        ("ingest-short", ["ingest", "bitcoin", "--blocks-dir", str(data.short), "--network", "regtest",
                          "--batch-blocks", BATCH]),
        ("ingest-full", ["ingest", "bitcoin", "--blocks-dir", str(data.full), "--network", "regtest",
                         "--batch-blocks", BATCH]),
        ("tags", ["tags", "import", str(data.tags), "--as-of", AS_OF]),
        ("cluster", ["cluster"]),
        ("compact", ["compact", "--target-mb", "1"]),
    ]
    chosen = [pool[1], pool[0]] + [rng.choice(pool) for _ in range(max(0, writers - 2))]
    rng.shuffle(chosen)
    r = Round(processes=len(chosen) + 2, order=tuple(n for n, _ in chosen))
    stop, report = home.parent / f"{home.name}.stop", home.parent / f"{home.name}.reader.json"
    stop.unlink(missing_ok=True)
    reader = subprocess.Popen([sys.executable, "-m", "tests.store.reader_loop", str(home), str(stop), str(report)],
                              env=env, cwd=ROOT)
    query_loop = subprocess.Popen(
        ["bash", "-c", f'while [ ! -e "{stop}" ]; do "$0" -m fundtrail query --home "{home}" --csv '
                       '"SELECT count(*) - count(DISTINCT (chain, txid)) AS dup FROM transactions" '
                       '| tail -n 1 | grep -qx 0 || echo BAD; done', sys.executable],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    procs: list[tuple[str, bool, subprocess.Popen]] = []
    try:
        to_kill = set(rng.sample(range(len(chosen)), kills)) if kills else set()
        kill_at: dict[int, float] = {}
        for k, (name, argv) in enumerate(chosen):
            time.sleep(rng.uniform(0.0, 0.4))
            waits = rng.random() >= no_wait_share
            cmd = [*fundtrail, *argv, "--home", str(home)] + (["--wait", "900"] if waits else [])
            p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            procs.append((name, waits, p))
            if k in to_kill:
                kill_at[k] = time.monotonic() + rng.uniform(0.5, 4.0)
        while kill_at:
            now = time.monotonic()
            for k, t in list(kill_at.items()):
                if now >= t:
                    if procs[k][2].poll() is None:
                        procs[k][2].send_signal(signal.SIGKILL)
                    del kill_at[k]
            time.sleep(0.02)
        for k, (name, waits, p) in enumerate(procs):
            _, err = p.communicate(timeout=600)
            key = f"{k}:{name}"
            r.exits[key] = p.returncode
            if p.returncode == -signal.SIGKILL:
                r.killed += 1
            elif p.returncode == 5 and not waits and "another fundtrail process is writing" in err:
                assert "pid " in err and "since" in err, err  # the busy writer is named
                r.locked += 1
            else:
                assert p.returncode == 0, f"{key} {p.args} exited {p.returncode}: {err[-2000:]}"
        stop.touch()
        reader.wait(timeout=120)
        out, _ = query_loop.communicate(timeout=120)
        assert "BAD" not in out, "a `fundtrail query` saw duplicate transactions"
    finally:  # whatever happened, leave no process behind
        stop.touch()
        for _, _, p in procs:
            if p.poll() is None:
                p.kill()
        for p in (reader, query_loop):
            if p.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=60)
            if p.poll() is None:
                p.kill()
    rep = json.loads(report.read_text())
    assert rep["violations"] == [], rep["violations"][:5]
    assert rep["errors"] == [], rep["errors"][:5]
    r.snapshots, r.generations = rep["snapshots"], rep["generations"]
    ws = Workspace(home)
    assert check(ws) == {}  # the state the round left: consistent, whatever was killed
    ws.close()
    return r
