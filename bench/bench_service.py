"""The KYT screening service under load, and the exposure index on a simulated world.

    python bench/bench_service.py --scale large              # prepare (cached) + every figure
    python bench/bench_service.py --scale demo --rate 200 --seconds 10
    python bench/run.py --scale demo --only service          # through the common runner

Phases, each figure beside an anchor measured in the same run (the machine is shared, so ratios are what
carries over):
1. the world (cached under ``$FUNDTRAIL_BENCH_DIR`` or /tmp/fundtrail-bench/<scale>): simulate, ingest all
   Bitcoin blocks but the last, the EVM chain, tags, prices, cluster, incident ``sim-theft``;
2. index build from scratch in a fresh process (time, peak RSS), anchor: the UTXO graph build alone in a
   fresh process;
3. incremental update after one new block (ingest the last block, then ``update_index``: a new version
   written, incremental or full with its reason from ``meta.json``), then the running service's swap to it
   (``Runtime.sync``: loading the version); anchor: the same sync with no change (the digest check alone);
4. ``fundtrail serve`` with 2 workers; an open-loop load generator in a separate process sends
   POST /v1/screen/address at a fixed arrival rate (default 500/s for 60 s; latency counted from each
   request's scheduled time, so a stall is not hidden by coordinated omission); p50/p99/max and errors;
   anchor: GET /v1/health at the same rate in the same way (the server's own floor);
5. a batch of 1,000 addresses (median of 5), anchor: 1,000 single requests back to back (closed loop);
6. the service's memory (RSS of the supervisor and each worker).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
INCIDENT = "sim-theft"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def bench_dir(scale: str) -> Path:
    return Path(os.environ.get("FUNDTRAIL_BENCH_DIR", "/tmp/fundtrail-bench")) / scale


# --- 1. the world -----------------------------------------------------------------------------------

def prepare(scale: str) -> dict:
    d = bench_dir(scale)
    done = d / "prepared.json"
    if done.exists():
        return json.loads(done.read_text())
    from fundtrail.attribution.service import import_paths
    from fundtrail.cluster.service import cluster
    from fundtrail.incidents import create_incident
    from fundtrail.ingest.bitcoin.service import ingest_block_files
    from fundtrail.ingest.evm.service import ingest_evm
    from fundtrail.prices import import_csv
    from fundtrail.simulate.world import simulate
    from fundtrail.store import Workspace

    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    summary = simulate(d / "world", scale, 1)
    t["simulate"] = time.perf_counter() - t0
    truth = json.loads((d / "world" / "truth.json").read_text())
    ws = Workspace(d / "ws")
    t0 = time.perf_counter()
    # all blocks but the last (btc_blocks counts the genesis block): the last one is phase 3's new block
    ingest_block_files(ws, d / "world" / "bitcoin" / "blocks", "regtest", max_blocks=summary.btc_blocks - 1)
    t["ingest_bitcoin"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ingest_evm(ws, (d / "world" / "evm" / "rpc.jsonl").as_uri(), truth["chains"]["evm"])
    t["ingest_evm"] = time.perf_counter() - t0
    import_paths(ws, sorted((d / "world" / "tags").glob("*.yaml")))
    import_csv(ws, d / "world" / "prices.csv")
    t0 = time.perf_counter()
    for chain in ("regtest", "simeth"):
        cluster(ws, chain)
    t["cluster"] = time.perf_counter() - t0
    seeds = truth["theft"]["seeds"]
    create_incident(ws, INCIDENT, sorted({s["chain"] for s in seeds}),
                    addresses=[f"{s['chain']}:{s['address']}" for s in seeds], since=truth["theft"]["time"][:10])
    owners = truth["owners"]
    sample = [("regtest", a) for a in list(owners.get("regtest", {}))[:2000]]
    sample += [("simeth", a) for a in list(owners.get("simeth", {}))[:500]]
    info = {"scale": scale, "btc_txs": summary.btc_txs, "btc_blocks": summary.btc_blocks,
            "evm_txs": summary.evm_txs, "addresses": summary.addresses,
            "prepare_seconds": {k: round(v, 1) for k, v in t.items()}, "sample": sample}
    done.write_text(json.dumps(info))
    return info


# --- 2./3. index build and update -------------------------------------------------------------------

def _child(code: str, home: Path) -> dict:
    """Run ``code`` in a fresh interpreter (its own peak RSS); it prints one JSON line."""
    r = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, env=_env(),
                       timeout=7200)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


_BUILD = """
import json, resource, sys, time
from fundtrail.store import Workspace
from fundtrail.exposure.index import build_index
ws = Workspace(sys.argv[1]); t = time.perf_counter(); p = build_index(ws)
meta = json.loads((p / "meta.json").read_text())
print(json.dumps({"seconds": time.perf_counter() - t, "rows": meta["rows"], "timings": meta["timings"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_GRAPH = """
import json, resource, sys, time
from fundtrail.store import Workspace
from fundtrail.trace.graph import build_utxo_graph
ws = Workspace(sys.argv[1]); t = time.perf_counter(); g = build_utxo_graph(ws, "regtest")
print(json.dumps({"seconds": time.perf_counter() - t, "ntx": g.ntx, "mb": g.nbytes() / 1e6,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_UPDATE = """
import json, resource, sys, time
from pathlib import Path
from fundtrail.service.runtime import Config, Runtime
from fundtrail.exposure.update import update_index
rt = Runtime.open(Config(home=Path(sys.argv[1])))
t = time.perf_counter(); rt.load_current(); load0 = time.perf_counter() - t
rt.sync()
t = time.perf_counter(); changed0 = rt.sync(); noop = time.perf_counter() - t
from fundtrail.ingest.bitcoin.service import ingest_block_files
t, c = time.perf_counter(), time.process_time()
st = ingest_block_files(rt.ws, Path(sys.argv[1]).parent / "world" / "bitcoin" / "blocks", "regtest", max_blocks=1)
ingest, ingest_cpu = time.perf_counter() - t, time.process_time() - c
t, c = time.perf_counter(), time.process_time(); made = update_index(rt.ws)
update, update_cpu = time.perf_counter() - t, time.process_time() - c
t = time.perf_counter(); changed = rt.sync(); swap = time.perf_counter() - t
meta = json.loads((made / "meta.json").read_text())
print(json.dumps({"noop_seconds": noop, "noop_changed": changed0, "ingest_seconds": ingest,
                  "ingest_cpu_seconds": ingest_cpu,
                  "update_seconds": update, "update_cpu_seconds": update_cpu, "update": meta.get("update"),
                  "swap_seconds": swap,
                  "index_load_seconds": load0, "changed": changed, "version": rt.index.version,
                  "timings": meta["timings"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


# --- 4. open-loop load --------------------------------------------------------------------------------

def open_loop(url: str, key: str, path: str, rate: float, seconds: float, bodies: list | None, tmp: Path,
              workers: list[int] | None = None) -> dict:
    bf = "-"
    if bodies is not None:
        bf = str(tmp / f"bodies-{abs(hash(path))}.json")
        Path(bf).write_text(json.dumps(bodies))
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = _cpu(workers) if workers else 0.0
    load = os.getloadavg()[0]
    r = subprocess.run([sys.executable, str(HERE / "loadgen.py"), url, key, path, str(rate), str(seconds), bf],
                       capture_output=True, text=True, env=_env(), timeout=seconds * 10 + 120)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the generator's own CPU (it must keep up with the schedule), the workers' CPU per request and the
    # machine's load average when the phase began (the machine is shared)
    out["loadgen_cpu_s"] = round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 2)
    if workers:
        out["server_cpu_ms_per_request"] = round((_cpu(workers) - cpu0) * 1000 / max(1, out["requests"]), 3)
    out["loadavg_1m"] = round(load, 1)
    return out


def _cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by ``pids``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            f = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def _quiet(pids: list[int], limit: float = 900.0) -> float:
    """Wait until the workers are done starting (index load, trace-graph warm-up): under 5 % of a core for
    2 s. Returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        c = _cpu(pids)
        time.sleep(2.0)
        if _cpu(pids) - c < 0.1 * len(pids):
            break
    return round(time.perf_counter() - t0, 1)


def _rss(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text().split()
            except OSError:
                continue
            if int(stat[3]) == pid:
                out.append(int(p.name))
    return out


def serve_phase(home: Path, sample: list, rate: float, seconds: float) -> dict:
    import httpx

    from fundtrail.service.auth import create_key
    from fundtrail.service.store import open_store

    store = open_store(None, home)
    key = create_key(store, f"bench{os.getpid()}{int(time.time())}", "screener", rate_limit=1e9)
    proc = subprocess.Popen([sys.executable, "-m", "fundtrail", "serve", "--home", str(home), "--port", "0",
                             "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=_env(), start_new_session=True)
    url = proc.stdout.readline().strip()
    out: dict = {}
    try:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 600:
            try:
                if all(httpx.get(url + "/v1/ready", timeout=5).status_code == 200 for _ in range(4)):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        out["ready_seconds"] = round(time.perf_counter() - t0, 1)
        workers = _children(proc.pid)
        workers = [w for w in workers if "resource_tracker" not in _cmdline(w)]
        out["settle_seconds"] = _quiet(workers)
        bodies = [{"chain": c, "address": a} for c, a in sample]
        tmp = bench_dir("tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        # warm both workers
        open_loop(url, key, "/v1/screen/address", 100, 3, bodies, tmp)
        out["health_open_loop"] = open_loop(url, key, "/v1/health", rate, seconds, None, tmp, workers)
        out["screen_open_loop"] = open_loop(url, key, "/v1/screen/address", rate, seconds, bodies, tmp, workers)
        h = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, timeout=60, headers=h) as c:
            items = (bodies * (1000 // max(1, len(bodies)) + 1))[:1000]
            ts = []
            payload = json.dumps({"items": items}).encode()
            hb = {"Content-Type": "application/json"}
            cpu0 = _cpu(workers)
            for _ in range(5):
                t = time.perf_counter()
                r = c.post("/v1/screen/batch", content=payload, headers=hb)
                ts.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text[:300]
            out["batch_1000_server_cpu_ms"] = round((_cpu(workers) - cpu0) * 1000 / 5, 1)
            out["batch_1000_ms"] = round(statistics.median(ts) * 1000, 1)
            out["batch_1000_min_ms"] = round(min(ts) * 1000, 1)
            t = time.perf_counter()
            for b in items:
                c.post("/v1/screen/address", json=b)
            out["closed_loop_1000_singles_ms"] = round((time.perf_counter() - t) * 1000, 1)
        out["rss_mb"] = {"supervisor": round(_rss(proc.pid), 1),
                         "workers": [round(_rss(w), 1) for w in workers]}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return out


PHASES = ("build", "service", "update")


def run(scale: str = "demo", rate: float | None = None, seconds: float | None = None,
        phases: tuple[str, ...] = PHASES) -> dict:
    rate = rate if rate is not None else 500.0
    seconds = seconds if seconds is not None else (60.0 if scale == "large" else 10.0)
    info = prepare(scale)
    home = bench_dir(scale) / "ws"
    res: dict = {"world": {k: v for k, v in info.items() if k != "sample"}}
    if "build" in phases or not (home / "exposure" / "CURRENT").exists():
        shutil.rmtree(home / "exposure", ignore_errors=True)
        res["graph_build_anchor"] = _child(_GRAPH, home)
        res["index_build"] = _child(_BUILD, home)
        res["index_build"]["ratio_to_graph_build"] = round(res["index_build"]["seconds"] /
                                                           res["graph_build_anchor"]["seconds"], 2)
        res["index_build"]["rss_ratio_to_graph_build"] = round(res["index_build"]["peak_rss_mb"] /
                                                               res["graph_build_anchor"]["peak_rss_mb"], 2)
    if "service" in phases:
        res["service"] = serve_phase(home, info["sample"], rate, seconds)
        sv = res["service"]
        sv["screen_p99_over_health_p99"] = round(sv["screen_open_loop"]["p99_ms"] /
                                                 max(sv["health_open_loop"]["p99_ms"], 1e-3), 2)
        sv["batch_over_1000_singles"] = round(sv["batch_1000_ms"] / max(sv["closed_loop_1000_singles_ms"], 1e-3), 3)
    upd = bench_dir(scale) / "ws-update"
    if "update" in phases and not (upd / "updated").exists():
        shutil.rmtree(upd, ignore_errors=True)
        shutil.copytree(home, upd, ignore=shutil.ignore_patterns("service"))
        u = res["update_after_one_block"] = _child(_UPDATE, upd)
        u["ratio_to_noop"] = round(u["update_seconds"] / max(u["noop_seconds"], 1e-6), 1)
        (upd / "updated").write_text("1")
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="demo")
    ap.add_argument("--rate", type=float, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--prepare-only", action="store_true")
    ap.add_argument("--phases", default=",".join(PHASES), help="build,service,update (default: all)")
    a = ap.parse_args()
    if a.prepare_only:
        info = prepare(a.scale)
        print(json.dumps({k: v for k, v in info.items() if k != "sample"}, indent=1))
        return 0
    res = run(a.scale, a.rate, a.seconds, tuple(a.phases.split(",")))
    res["peak_rss_bench_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res, indent=1))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"service-{a.scale}-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
