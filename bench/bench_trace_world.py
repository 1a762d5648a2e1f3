"""The default trace on a simulated world, as a user runs it: a fresh process, the incident ``sim-theft``.

    python bench/bench_trace_world.py --scale large      # the world cached by bench_service.py's prepare
    python bench/bench_trace_world.py --scale small

Each figure beside its anchor from the same run (the machine is shared: ratios carry over, seconds less):
1. opening the Bitcoin trace graph in a fresh process: from the copy kept on disk (trace/graphstore.py)
   against building it from the block tables (the first process after new blocks pays that, once);
2. the default trace (haircut, forward, default hop budget with peel chains at one hop each), median of 3
   in that process, against two anchors in the same process: a 10-hop trace and the default trace with every
   transaction counted as a hop (``peel_budget=False``);
3. accuracy against the simulator's truth: the share of the stolen value that reached each exchange found
   at the right one, false endpoints, the largest relative error, limit notices.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from bench_trace import _right_shares
from fundtrail.incidents import get_incident
from fundtrail.store import Workspace
from fundtrail.trace import graph as G
from fundtrail.trace import graphstore
from fundtrail.trace.service import trace

ws = Workspace(Path(sys.argv[1]))
truth = json.loads(Path(sys.argv[2]).read_text())
out = {}
chain = "regtest"
stored = graphstore.load(ws, chain, graphstore.key(ws, chain)) is not None
t = time.perf_counter(); g = G.utxo_graph(ws, chain); out["graph_open_s"] = round(time.perf_counter() - t, 3)
out["graph_from"] = "disk" if stored else "built (and kept on disk)"
out["graph"] = {"ntx": g.ntx, "nout": g.nout, "mb": round(g.nbytes() / 1e6)}
inc = get_incident(ws, "sim-theft")
seeds = list(inc.seeds)
exp = {}
for e in truth["expected"]["haircut"]["endpoints"]:
    k = (e["entity"], e["chain"], e["asset"].lower())
    exp[k] = exp.get(k, 0) + int(e["amount"])
t = time.perf_counter(); trace(ws, seeds, model="haircut", max_hops=10); out["first_trace_s"] = round(time.perf_counter() - t, 3)

def run(name, **kw):
    lat = []
    for _ in range(3):
        t = time.perf_counter(); r = trace(ws, seeds, model="haircut", **kw); lat.append(time.perf_counter() - t)
    got = {}
    for e in r.endpoints:
        k = (e.entity, e.chain, e.asset.lower()); got[k] = got.get(k, 0) + e.amount
    errs = [abs(got.get(k, 0) - v) / v for k, v in exp.items() if v]
    out[name] = {"median_s": round(sorted(lat)[1], 4), "runs_s": [round(x, 4) for x in lat],
                 "txs": r.params["transactions_traced"], "peel_free_txs": r.params.get("peel_free_txs"),
                 "right_share": _right_shares(exp, got), "false_endpoints": sorted(str(k) for k in got if k not in exp),
                 "max_rel_error": round(max(errs, default=0.0), 6), "limits": [x.message for x in r.limits],
                 "peel_chains": [p.hops for p in r.peel_chains]}

run("anchor_10_hops", max_hops=10)
run("anchor_every_tx_a_hop", peel_budget=False)
run("default")
out["default_over_10_hops"] = round(out["default"]["median_s"] / out["anchor_10_hops"]["median_s"], 2)
out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(out))
"""


def run(scale: str) -> dict:
    d = Path(os.environ.get("FUNDTRAIL_BENCH_DIR", "/tmp/fundtrail-bench")) / scale
    if not (d / "prepared.json").exists():
        return {"skipped": f"no prepared world at {d} (python bench/bench_service.py --scale {scale} --prepare-only)"}
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out: dict = {"scale": scale, "loadavg_1m": os.getloadavg()[0]}
    for attempt in ("first_process", "next_process"):
        r = subprocess.run([sys.executable, "-c", _CHILD, str(d / "ws"), str(d / "world" / "truth.json"), str(HERE)],
                           capture_output=True, text=True, env=env, timeout=7200)
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-3000:])
        out[attempt] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="small")
    a = ap.parse_args()
    print(json.dumps(run(a.scale), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
