"""Each stage of the pipeline on a simulated world: time, CPU, peak memory, and how they grow from the small
to the large world.

Stages, each in a fresh process (so its peak resident set, VmHWM, is its own), in pipeline order on one
workspace of the bench's own:

1. ``ingest_bitcoin``: the world's Bitcoin block files -> tables (``ingest_block_files``, ``--jobs 1``);
2. ``ingest_evm``: the world's recorded EVM JSON-RPC answers -> tables;
3. ``tags``: the world's tag files (not a stage of the issue; reported so the rest is explained);
4. ``cluster``: both chains (co-spend union-find, CoinJoin guard; EVM deposit addresses);
5. ``exposure_index``: the screening index built from scratch (``build_index``);
6. ``trace``: the world's theft traced forward (haircut, default settings): the first call (it builds the
   UTXO graph and labels) and a second one in the same process (warm).

Worlds: ``small`` is the simulator's small world (``simulate --scale small --seed 1``: 1,662 blocks, 352,557
Bitcoin transactions), generated once and cached under ``$FUNDTRAIL_BENCH_DIR/sim-small`` (default
/tmp/fundtrail-bench); ``large`` is the simulator's large world (8,860 blocks, 10.8 M transactions) read
from the cached ``$FUNDTRAIL_BENCH_DIR/large/world`` that ``bench/bench_service.py --scale large
--prepare-only`` writes (only read here: this bench ingests it into a workspace of its own). Large runs only
with ``--scale large`` (it takes many minutes) and only once that world is ready (``prepared.json``).

    python bench/bench_stages.py                       # small
    python bench/bench_stages.py --scale small --scale large

The growth columns divide the large figure by the small one, beside the growth of the input (Bitcoin
transactions): time should grow about with the input, peak memory much less (batches and index budgets
bound it; the clustering forest and the trace graph do grow with the chain). The machine is shared:
CPU seconds are less disturbed than wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STAGES = ("ingest_bitcoin", "ingest_evm", "tags", "cluster", "exposure_index", "trace")


def bench_root() -> Path:
    return Path(os.environ.get("FUNDTRAIL_BENCH_DIR", "/tmp/fundtrail-bench"))


def small_world() -> Path:
    """The simulator's small world (seed 1), generated once and cached."""
    root = bench_root() / "sim-small"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        subprocess.run([sys.executable, "-c", "import sys; from fundtrail.simulate.world import simulate; "
                        "simulate(sys.argv[1], 'small', 1)", str(root / "world")], env=_env(), check=True,
                       capture_output=True)
        (root / "done").write_text("ok")
    return root / "world"


def large_world() -> Path | None:
    root = bench_root() / "large"
    return root / "world" if (root / "prepared.json").exists() else None


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1"}


_CHILD = r"""
import json, resource, sys, time
from pathlib import Path

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime

def main():
    stage, home, world = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    from fundtrail.store import Workspace
    ws = Workspace(home)
    truth = json.loads((world / "truth.json").read_text())
    extra = {}
    rss0 = peak_mb()
    t, c = time.perf_counter(), cpu()
    if stage == "ingest_bitcoin":
        from fundtrail.ingest.bitcoin.service import ingest_block_files
        st = ingest_block_files(ws, world / "bitcoin" / "blocks", "regtest")
        extra = {"blocks": st.blocks, "transactions": st.transactions, "outputs": st.outputs, "mb": st.bytes / 1e6}
    elif stage == "ingest_evm":
        from fundtrail.ingest.evm.service import ingest_evm
        ingest_evm(ws, (world / "evm" / "rpc.jsonl").resolve().as_uri(), truth["chains"]["evm"])
    elif stage == "tags":
        from fundtrail.attribution.service import import_paths
        import_paths(ws, sorted((world / "tags").glob("*.yaml")))
    elif stage == "cluster":
        from fundtrail.cluster.service import cluster
        for chain in ("regtest", truth["chains"]["evm"]):
            cluster(ws, chain)
        extra = {"clusters_rows": ws.row_count("cluster_members")}
    elif stage == "exposure_index":
        from fundtrail.exposure.index import build_index
        p = build_index(ws)
        extra = {"rows": json.loads((p / "meta.json").read_text()).get("rows")}
    elif stage == "trace":
        from fundtrail.model.trace import Seed
        from fundtrail.trace.service import trace
        seeds = [Seed(s["chain"], address=s["address"]) for s in truth["theft"]["seeds"]]
        r = trace(ws, seeds, model="haircut")
        extra["first_s"] = time.perf_counter() - t
        t2 = time.perf_counter()
        trace(ws, seeds, model="haircut")
        extra.update({"warm_s": time.perf_counter() - t2, "endpoints": len(r.endpoints)})
    print(json.dumps({"seconds": time.perf_counter() - t, "cpu_seconds": cpu() - c, "peak_rss_mb": peak_mb(),
                      "rss_after_imports_mb": rss0, **extra}))

if __name__ == "__main__":
    main()
"""


def run_world(world: Path, work: Path) -> dict:
    script = work / "stage_child.py"
    script.write_text(_CHILD)
    home = work / "ws"
    out: dict = {"world": str(world)}
    for stage in STAGES:
        r = subprocess.run([sys.executable, str(script), stage, str(home), str(world)], capture_output=True,
                           text=True, env=_env(), timeout=7200)
        if r.returncode != 0:
            out[stage] = {"error": r.stderr[-1500:]}
            break
        out[stage] = json.loads(r.stdout.strip().splitlines()[-1])
    out["workspace_mb"] = sum(p.stat().st_size for p in home.rglob("*") if p.is_file()) / 1e6
    return out


def run(scale: str = "small") -> dict:
    world = small_world() if scale != "large" else large_world()
    if world is None:
        return {"skipped": f"the large world is not ready ({bench_root() / 'large' / 'prepared.json'} missing)"}
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as t:
        res = run_world(world, Path(t))
    res["scale"] = scale
    if scale == "large":
        prep = json.loads((bench_root() / "large" / "prepared.json").read_text())
        res["prepare_seconds_of_the_cached_world"] = prep.get("prepare_seconds")
    return res


def _fmt(x: float | None, w: int = 8, p: int = 1) -> str:
    return f"{x:{w}.{p}f}" if isinstance(x, int | float) else " " * (w - 1) + "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", action="append", help="small | large (repeatable; default small)")
    a = ap.parse_args(argv)
    scales = a.scale or ["small"]
    res = {s: run(s) for s in scales}
    print("stage              " + "".join(f"| {s:^38s} " for s in scales)
          + ("| growth large/small (wall, cpu, peak)" if len(scales) > 1 else ""))
    print("                   " + "".join("|  wall s    cpu s  peak MB  MB/s|tx/s  " for _ in scales))
    for stage in STAGES:
        line = f"{stage:18s} "
        for s in scales:
            r = res[s].get(stage) or {}
            rate = ""
            if stage == "ingest_bitcoin" and "mb" in r:
                rate = f"{r['mb'] / r['seconds']:5.1f} MB/s"
            line += (f"| {_fmt(r.get('seconds'))} {_fmt(r.get('cpu_seconds'))} {_fmt(r.get('peak_rss_mb'), 8, 0)}"
                     f" {rate:11s} ")
        if len(scales) > 1 and all(stage in res[s] and "seconds" in res[s][stage] for s in ("small", "large")):
            sm, lg = res["small"][stage], res["large"][stage]
            line += (f"| x{lg['seconds'] / sm['seconds']:6.1f} x{lg['cpu_seconds'] / sm['cpu_seconds']:6.1f} "
                     f"x{lg['peak_rss_mb'] / sm['peak_rss_mb']:5.2f}")
        print(line)
    for s in scales:
        r = res[s]
        if "skipped" in r:
            print(f"{s}: skipped: {r['skipped']}")
            continue
        ib = r.get("ingest_bitcoin", {})
        tr = r.get("trace", {})
        print(f"{s}: {ib.get('transactions', 0):,} Bitcoin transactions, {ib.get('mb', 0):.1f} MB of blocks; "
              f"trace first {_fmt(tr.get('first_s'), 1, 2)} s, warm {_fmt(tr.get('warm_s'), 1, 2)} s; "
              f"workspace {r.get('workspace_mb', 0):.0f} MB")
    if len(scales) > 1 and "ingest_bitcoin" in res.get("small", {}) and "ingest_bitcoin" in res.get("large", {}):
        g = res["large"]["ingest_bitcoin"]["transactions"] / res["small"]["ingest_bitcoin"]["transactions"]
        print(f"input growth (Bitcoin transactions) large/small: x{g:.1f}")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
